//! Outgoing `reqwest` calls carry the current context (feature `reqwest`).

use crate::Context;

/// Injects a context into a `reqwest` request.
///
/// ```no_run
/// use context_runtime::http::RequestBuilderExt as _;
///
/// # async fn call() -> Result<(), reqwest::Error> {
/// let response = reqwest::Client::new()
///     .get("http://127.0.0.1:8080/invoices")
///     .with_current_context()
///     .send()
///     .await?;
/// # let _ = response;
/// # Ok(())
/// # }
/// ```
pub trait RequestBuilderExt: Sized {
    /// Adds `traceparent` (new parent id), `tracestate` and `baggage` for
    /// the current context, if there is one.
    fn with_current_context(self) -> Self;

    /// Adds `traceparent` (new parent id), `tracestate` and `baggage` for `cx`.
    fn with_context(self, cx: &Context) -> Self;
}

impl RequestBuilderExt for reqwest::RequestBuilder {
    fn with_current_context(self) -> Self {
        match crate::current() {
            Some(cx) => self.with_context(&cx),
            None => self,
        }
    }

    fn with_context(self, cx: &Context) -> Self {
        let mut headers = ::http::HeaderMap::new();
        super::inject(cx, &mut headers);
        self.headers(headers)
    }
}
