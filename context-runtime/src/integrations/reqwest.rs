//! Outgoing `reqwest` calls carry the current context (feature `reqwest`).

use crate::model::context::Context;
use crate::propagate::propagator::Propagator;

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
///
/// Between your own services, sign the identity with a keyring the next
/// hop verifies:
///
/// ```no_run
/// use context_runtime::reqwest::RequestBuilderExt as _;
/// use context_runtime::{Keyring, Propagator};
///
/// # async fn call(keyring: Keyring) -> Result<(), reqwest::Error> {
/// let internal = Propagator::new().keyring(keyring);
/// let response = reqwest::Client::new()
///     .get("http://127.0.0.1:8080/invoices")
///     .inject_current_using(&internal)
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

    /// Like [`inject_current`](RequestBuilderExt::inject_current), written
    /// by `propagator` (keys, outbound policy, signing keyring).
    fn inject_current_using(self, propagator: &Propagator) -> Self;

    /// Like [`inject`](RequestBuilderExt::inject), written by `propagator`.
    fn inject_using(self, cx: &Context, propagator: &Propagator) -> Self;
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

    fn inject_current_using(self, propagator: &Propagator) -> Self {
        match crate::scope::store::current() {
            Some(cx) => self.inject_using(&cx, propagator),
            None => self,
        }
    }

    fn inject_using(self, cx: &Context, propagator: &Propagator) -> Self {
        let mut headers = ::http::HeaderMap::new();
        propagator.inject(cx, &mut headers);
        self.headers(headers)
    }
}
