//! Scheduled work over many tenants, each in its own child scope.
//!
//! A nightly job that closes the month for every tenant is where a tenant
//! leaks into the next: a loop that re-binds "the current tenant" at the top
//! of each iteration runs the next tenant under the previous one as soon as
//! one iteration fails or skips the re-bind. Here there is nothing to
//! re-bind. [`for_each_tenant`] makes, for each tenant, a fresh child of the
//! current context (same trace, that tenant) and runs that tenant's work
//! inside it; the next tenant's child is made from the same parent, never
//! from the previous tenant's. A failure, or a panic, is recorded for its
//! tenant and the others still run.
//!
//! ```
//! use context_runtime::{fanout, Context, TenantId};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tenants = ["acme", "globex", "initech"].map(|t| TenantId::new(t).unwrap());
//! let cron = Context::root().with_source("cron:close-month");
//! let results = cron
//!     .scope(fanout::for_each_tenant(tenants, |tenant| async move {
//!         // Inside: this tenant, the cron job's trace.
//!         assert_eq!(context_runtime::tenant(), Ok(tenant.clone()));
//!         if tenant.as_str() == "globex" {
//!             return Err("ledger locked".to_string());
//!         }
//!         Ok(tenant.as_str().len())
//!     }))
//!     .await;
//!
//! assert_eq!(results.successes().count(), 2);
//! let (failed, why) = results.failures().next().unwrap();
//! assert_eq!((failed.as_str(), why.to_string()), ("globex", "ledger locked".to_string()));
//! # Ok(())
//! # }
//! ```

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;
use tokio::task::JoinSet;

use crate::model::context::Context;
use crate::model::tenant::TenantId;

/// How each tenant's child scope is made from the parent.
///
/// By default a tenant's scope keeps the parent's trace, baggage and source,
/// but **not its user**: the user who started the fan-out acts for their own
/// tenant, not inside every other tenant's scope. Ask for it with
/// [`keep_user`](Options::keep_user) when the user is a service principal
/// meant to act for every tenant.
///
/// ```
/// use context_runtime::{fanout, Context, TenantId, UserRef};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let admin = Context::root().with_user(UserRef::new("service", "closer").unwrap());
/// let tenants = || ["acme", "globex"].map(|t| TenantId::new(t).unwrap());
/// let users = |results: fanout::TenantResults<Option<String>, ()>| {
///     results.successes().map(|(_, u)| u.clone()).collect::<Vec<_>>()
/// };
/// let work = |_| async { Ok::<_, ()>(context_runtime::user().map(|u| u.to_string())) };
///
/// let dropped = admin.scope(fanout::for_each_tenant(tenants(), work)).await;
/// assert_eq!(users(dropped), [None, None]);
///
/// let kept = admin
///     .scope(fanout::for_each_tenant_with(fanout::Options::new().keep_user(), tenants(), work))
///     .await;
/// assert_eq!(users(kept), [Some("service:closer".into()), Some("service:closer".into())]);
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    keep_user: bool,
}

impl Options {
    /// The defaults: the parent's user is not inherited.
    pub fn new() -> Options {
        Options::default()
    }

    /// Each tenant's scope keeps the parent's user.
    pub fn keep_user(mut self) -> Options {
        self.keep_user = true;
        self
    }
}

/// The parent of every tenant's scope: the current context, or a fresh root
/// shared by all tenants when there is none; without its user unless
/// `options` keep it.
fn parent(options: Options) -> Context {
    let parent = crate::scope::store::current().unwrap_or_else(Context::root);
    if options.keep_user || parent.user().is_none() {
        parent
    } else {
        parent.without_user()
    }
}

/// Runs `work` for each tenant in turn, each in a fresh child scope of the
/// current context (a fresh root when none is current) with that tenant, and
/// collects every tenant's outcome in order.
///
/// `work` is called inside the tenant's scope too, so code before its first
/// `.await` sees the tenant. An error or a panic is recorded as that tenant's
/// [`TenantFailure`] and the next tenant runs. A tenant listed twice runs
/// twice. The parent's user is not inherited ([`Options`]).
pub async fn for_each_tenant<I, F, Fut, T, E>(tenants: I, work: F) -> TenantResults<T, E>
where
    I: IntoIterator<Item = TenantId>,
    F: FnMut(TenantId) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    for_each_tenant_with(Options::new(), tenants, work).await
}

/// Like [`for_each_tenant`], with [`Options`].
pub async fn for_each_tenant_with<I, F, Fut, T, E>(
    options: Options,
    tenants: I,
    mut work: F,
) -> TenantResults<T, E>
where
    I: IntoIterator<Item = TenantId>,
    F: FnMut(TenantId) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let parent = parent(options);
    let mut results = Vec::new();
    for tenant in tenants {
        let child = parent.with_tenant(tenant.clone());
        let started = catch_unwind(AssertUnwindSafe(|| {
            child.scope_sync(|| work(tenant.clone()))
        }));
        let outcome = match started {
            Ok(future) => match (CatchUnwind {
                inner: child.scope(future),
            })
            .await
            {
                Ok(result) => result.map_err(TenantFailure::Failed),
                Err(panic) => Err(TenantFailure::Panicked(panic_message(&*panic))),
            },
            Err(panic) => Err(TenantFailure::Panicked(panic_message(&*panic))),
        };
        results.push((tenant, outcome));
    }
    TenantResults { results }
}

/// Like [`for_each_tenant`], with up to `limit` tenants at once, each on its
/// own Tokio task (a `limit` of 0 counts as 1).
///
/// Outcomes are in the order of `tenants`, whatever the order of completion.
/// Dropping the returned future aborts the tenants still running.
///
/// ```
/// use context_runtime::{fanout, TenantId};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let tenants = (0..10).map(|i| TenantId::new(format!("t{i}")).unwrap());
/// let results = fanout::for_each_tenant_concurrently(tenants, 4, |tenant| async move {
///     Ok::<_, std::convert::Infallible>(context_runtime::tenant().unwrap() == tenant)
/// })
/// .await;
/// assert!(results.successes().all(|(_, same)| *same));
/// # }
/// ```
///
/// # Panics
///
/// When called outside a Tokio runtime.
pub async fn for_each_tenant_concurrently<I, F, Fut, T, E>(
    tenants: I,
    limit: usize,
    work: F,
) -> TenantResults<T, E>
where
    I: IntoIterator<Item = TenantId>,
    F: FnMut(TenantId) -> Fut,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    for_each_tenant_concurrently_with(Options::new(), tenants, limit, work).await
}

/// Like [`for_each_tenant_concurrently`], with [`Options`].
///
/// # Panics
///
/// When called outside a Tokio runtime.
pub async fn for_each_tenant_concurrently_with<I, F, Fut, T, E>(
    options: Options,
    tenants: I,
    limit: usize,
    mut work: F,
) -> TenantResults<T, E>
where
    I: IntoIterator<Item = TenantId>,
    F: FnMut(TenantId) -> Fut,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    type Slot<T, E> = (TenantId, Option<Result<T, TenantFailure<E>>>);
    let parent = parent(options);
    let limit = limit.max(1);
    let mut tenants = tenants.into_iter();
    let mut slots: Vec<Slot<T, E>> = Vec::new();
    let mut running = JoinSet::new();
    let mut index_of = HashMap::new();
    loop {
        while running.len() < limit {
            let Some(tenant) = tenants.next() else { break };
            let index = slots.len();
            let child = parent.with_tenant(tenant.clone());
            let started = catch_unwind(AssertUnwindSafe(|| {
                child.scope_sync(|| work(tenant.clone()))
            }));
            let outcome = match started {
                Ok(future) => {
                    let handle = running.spawn(child.scope(future));
                    index_of.insert(handle.id(), index);
                    None
                }
                Err(panic) => Some(Err(TenantFailure::Panicked(panic_message(&*panic)))),
            };
            slots.push((tenant, outcome));
        }
        let (index, outcome) = match running.join_next_with_id().await {
            None => break,
            Some(Ok((id, result))) => (index_of[&id], result.map_err(TenantFailure::Failed)),
            Some(Err(e)) => {
                let index = index_of[&e.id()];
                if e.is_panic() {
                    let message = panic_message(&*e.into_panic());
                    (index, Err(TenantFailure::Panicked(message)))
                } else {
                    (index, Err(TenantFailure::Cancelled))
                }
            }
        };
        slots[index].1 = Some(outcome);
    }
    TenantResults {
        results: slots
            .into_iter()
            .map(|(tenant, outcome)| {
                let outcome = outcome.unwrap_or(Err(TenantFailure::Cancelled));
                (tenant, outcome)
            })
            .collect(),
    }
}

/// Why one tenant's work did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TenantFailure<E> {
    /// The work returned this error.
    Failed(E),
    /// The work panicked, with this message.
    Panicked(String),
    /// The work's task was cancelled (its runtime shut down).
    Cancelled,
}

impl<E: fmt::Display> fmt::Display for TenantFailure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TenantFailure::Failed(e) => e.fmt(f),
            TenantFailure::Panicked(message) => write!(f, "panicked: {message}"),
            TenantFailure::Cancelled => f.write_str("cancelled"),
        }
    }
}

impl<E: std::error::Error> std::error::Error for TenantFailure<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TenantFailure::Failed(e) => e.source(),
            _ => None,
        }
    }
}

/// Every tenant's outcome, in the order the tenants were given.
#[derive(Debug, Clone)]
#[must_use = "a tenant's failure is reported only here"]
pub struct TenantResults<T, E> {
    results: Vec<(TenantId, Result<T, TenantFailure<E>>)>,
}

impl<T, E> TenantResults<T, E> {
    /// How many tenants ran.
    pub fn len(&self) -> usize {
        self.results.len()
    }

    /// Whether no tenant ran.
    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
    }

    /// Whether every tenant succeeded.
    pub fn is_all_ok(&self) -> bool {
        self.results.iter().all(|(_, outcome)| outcome.is_ok())
    }

    /// Every tenant with its outcome.
    pub fn iter(&self) -> impl Iterator<Item = (&TenantId, &Result<T, TenantFailure<E>>)> + '_ {
        self.results
            .iter()
            .map(|(tenant, outcome)| (tenant, outcome))
    }

    /// The tenants that succeeded, with their values.
    pub fn successes(&self) -> impl Iterator<Item = (&TenantId, &T)> + '_ {
        self.results
            .iter()
            .filter_map(|(tenant, outcome)| outcome.as_ref().ok().map(|value| (tenant, value)))
    }

    /// The tenants that failed, with why.
    pub fn failures(&self) -> impl Iterator<Item = (&TenantId, &TenantFailure<E>)> + '_ {
        self.results
            .iter()
            .filter_map(|(tenant, outcome)| outcome.as_ref().err().map(|e| (tenant, e)))
    }

    /// The outcomes, in order.
    pub fn into_vec(self) -> Vec<(TenantId, Result<T, TenantFailure<E>>)> {
        self.results
    }
}

impl<T, E> IntoIterator for TenantResults<T, E> {
    type Item = (TenantId, Result<T, TenantFailure<E>>);
    type IntoIter = std::vec::IntoIter<Self::Item>;

    fn into_iter(self) -> Self::IntoIter {
        self.results.into_iter()
    }
}

pin_project! {
    /// A future whose panic becomes an `Err`, as `catch_unwind` does for a closure.
    struct CatchUnwind<F> {
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let inner = self.project().inner;
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenants(names: &[&str]) -> Vec<TenantId> {
        names
            .iter()
            .map(|n| TenantId::new(n).expect("valid"))
            .collect()
    }

    #[tokio::test]
    async fn a_panic_is_recorded_for_its_tenant_and_the_next_one_runs() {
        let results = for_each_tenant(tenants(&["a", "b", "c"]), |tenant| async move {
            assert_ne!(tenant.as_str(), "b", "b explodes");
            Ok::<_, ()>(context_runtime_tenant())
        })
        .await;
        let outcomes: Vec<_> = results
            .iter()
            .map(|(t, o)| (t.as_str(), o.clone()))
            .collect();
        assert_eq!(outcomes[0], ("a", Ok(Some("a".to_owned()))));
        assert!(
            matches!(&outcomes[1], ("b", Err(TenantFailure::Panicked(m))) if m.contains("b explodes"))
        );
        assert_eq!(outcomes[2], ("c", Ok(Some("c".to_owned()))));
    }

    fn context_runtime_tenant() -> Option<String> {
        crate::scope::store::tenant()
            .ok()
            .map(|t| t.as_str().to_owned())
    }
}
