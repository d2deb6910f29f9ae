//! Outgoing `reqwest` calls carry the current context (feature `reqwest`).

use crate::model::context::Context;

/// Injects a context into a `reqwest` request.
///
/// ```no_run
/// use context_runtime::reqwest::RequestBuilderExt as _;
///
/// # async fn call() -> Result<(), reqwest::Error> {
/// let response = reqwest::Client::new()
///     .get("http://127.0.0.1:8080/invoices")
///     .inject_current()
///     .send()
///     .await?;
/// # let _ = response;
/// # Ok(())
/// # }
/// ```
pub trait RequestBuilderExt: Sized {
    /// Adds `traceparent` (new parent id), `tracestate` and `baggage` for
    /// the current context, if there is one.
    fn inject_current(self) -> Self;

    /// Adds `traceparent` (new parent id), `tracestate` and `baggage` for `cx`.
    fn inject(self, cx: &Context) -> Self;
}

impl RequestBuilderExt for reqwest::RequestBuilder {
    fn inject_current(self) -> Self {
        match crate::scope::store::current() {
            Some(cx) => self.inject(&cx),
            None => self,
        }
    }

    fn inject(self, cx: &Context) -> Self {
        let mut headers = ::http::HeaderMap::new();
        crate::integrations::http::inject(cx, &mut headers);
        self.headers(headers)
    }
}
