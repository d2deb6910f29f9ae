//! [`ContextLayer`]: a tower layer that scopes every request.

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use ::http::Request;
use tower_layer::Layer;
use tower_service::Service;

use crate::propagate::propagator::{log_refused, Propagator, Trust};
use crate::scope::store::Scoped;
use crate::wire::carrier::CarrierError;

/// Put in a request's extensions by [`ContextLayer`] when the request
/// claimed an identity the propagator refused (invalid, unsigned where a
/// keyring requires a signature, forged, expired, or refused by a
/// resolver). The request's context then has no tenant and no user, and the
/// axum extractors reject the request with a problem response (`400` for an
/// invalid identity, `401` for an unverified one, `403` for one a resolver
/// refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedIdentity {
    /// Why the identity was refused (for logs, not for the client).
    pub error: CarrierError,
}

/// A tower [`Layer`] that runs every request inside the context its headers
/// carry (see [`Propagator::extract_with`]), or a fresh one.
///
/// The context is current while the inner service is called and while its
/// response future runs: handlers, extractors and inner middleware read it
/// with [`current`](crate::current) (or the `CurrentContext` extractor in axum), across
/// every `.await`. It is not copied into the request's extensions, which
/// would cost three allocations per request; code that runs the inner
/// service on another task (`tower::buffer`) should carry it there itself
/// (`cx.scope(..)`, [`spawn`](crate::spawn)).
///
/// A request whose identity is refused (see [`RefusedIdentity`]) runs with
/// its trace and no identity, with the refusal in its extensions; the
/// refusal is logged once, with the trace id and the reason.
#[derive(Debug, Clone, Default)]
pub struct ContextLayer {
    propagator: Arc<Propagator>,
}

impl ContextLayer {
    /// A layer with this propagator (trust policy, baggage keys).
    pub fn new(propagator: Propagator) -> Self {
        ContextLayer {
            propagator: Arc::new(propagator),
        }
    }
}

impl<S> Layer<S> for ContextLayer {
    type Service = ContextService<S>;

    fn layer(&self, inner: S) -> ContextService<S> {
        ContextService {
            inner,
            propagator: self.propagator.clone(),
        }
    }
}

/// The service made by [`ContextLayer`].
#[derive(Debug, Clone)]
pub struct ContextService<S> {
    inner: S,
    propagator: Arc<Propagator>,
}

impl<S, B> Service<Request<B>> for ContextService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Scoped<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let cx = match self
            .propagator
            .try_extract_with(request.headers(), request.extensions())
        {
            Ok(cx) => cx,
            Err(error) => {
                let cx = Propagator::clone(&self.propagator)
                    .trust(Trust::Nothing)
                    .extract(request.headers());
                log_refused(&cx, "http", &error);
                request.extensions_mut().insert(RefusedIdentity { error });
                cx
            }
        };
        let future = cx.scope_sync(|| self.inner.call(request));
        cx.scope(future)
    }
}
