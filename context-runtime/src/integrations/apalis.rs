//! apalis workers: a tower layer that runs every task inside the context
//! its arguments carry, and dead-letters what must not run (feature `apalis`).
//!
//! The arguments are the [`ContextSource`]: a [`Job<T>`](crate::jobs::Job) (the
//! carrier in a `ctx` field) or a payload with
//! [`#[derive(Carrier)]`](macro@crate::Carrier). [`JobLayer`] checks them
//! with its [`Policy`] before the handler:
//!
//! - admitted: the handler (and every layer below) runs inside the job's
//!   context, so `context_runtime::tenant()` works anywhere in it; the
//!   handler may also say `#[with_context(from = "job")]` and
//!   `#[requires_tenant]` (the same context, read again);
//! - rejected (broken carrier, invalid tenant, no tenant where required):
//!   the handler does not run; a [`DeadLetter`] record is pushed to the
//!   Redis list [`dead_letter_list`]`(queue)` and the task ends as apalis's
//!   `AbortError`, which apalis's Redis backend files in its own dead set
//!   instead of retrying it;
//! - a handler that fails is retried by apalis (the backend re-schedules
//!   the same stored arguments: the original carrier) until
//!   [`Policy::attempts`], then dead-lettered the same way.
//!
//! Arguments that do not decode at all never reach a layer: apalis reports
//! a codec error for them. Keep identity fields tolerant in the argument
//! type (a [`Job`](crate::jobs::Job), or `Option<String>` tenant fields) so that
//! bad identity is dead-lettered here with its reason.
//!
//! ```no_run
//! use apalis::prelude::*;
//! use apalis_redis::{Config, RedisStorage};
//! use context_runtime::apalis::JobLayer;
//! use context_runtime::jobs::Job;
//! use context_runtime::{with_context, requires_tenant, CarrierError, TenantRequired};
//!
//! #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
//! struct Invoice { number: u64 }
//!
//! #[derive(Debug)]
//! struct JobError(String);
//! impl std::fmt::Display for JobError {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(&self.0) }
//! }
//! impl std::error::Error for JobError {}
//! impl From<CarrierError> for JobError { fn from(e: CarrierError) -> Self { JobError(e.to_string()) } }
//! impl From<TenantRequired> for JobError { fn from(e: TenantRequired) -> Self { JobError(e.to_string()) } }
//!
//! #[with_context(from = "job")]
//! #[requires_tenant]
//! async fn send_invoice(job: Job<Invoice>) -> Result<(), JobError> {
//!     println!("invoice {} for {}", job.data.number, context_runtime::tenant()?);
//!     Ok(())
//! }
//!
//! # async fn run(cx: context_runtime::Context) -> Result<(), Box<dyn std::error::Error>> {
//! let conn = apalis_redis::connect("redis://127.0.0.1:6379").await?;
//! let mut storage = RedisStorage::new(conn.clone()).with_config(Config::default().queue("invoices"));
//!
//! // Producer, inside the request's scope: the context is captured here.
//! storage.push(cx.scope(async { Job::current(Invoice { number: 7 }) }).await).await?;
//!
//! // Worker.
//! WorkerBuilder::new("invoices-worker")
//!     .backend(storage)
//!     .layer(JobLayer::new(conn, "invoices"))
//!     .build(send_invoice)
//!     .run()
//!     .await?;
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use ::apalis_core::error::{AbortError, BoxDynError};
use ::apalis_core::task::status::Status;
use ::apalis_core::task::{ExecutionContext, Task};
use ::redis::aio::ConnectionLike;
use ::redis::RedisResult;
use serde::Serialize;

use crate::jobs::{admit, DeadLetter, Policy, Rejection};
use crate::propagate::source::ContextSource;

/// The Redis list where [`JobLayer`] records the dead letters of the
/// apalis queue `queue`: `queue:dead-letters` (apalis's own dead set, of
/// task ids, is `queue:dead`).
pub fn dead_letter_list(queue: &str) -> String {
    format!("{queue}:dead-letters")
}

/// The dead letters [`JobLayer`] recorded for `queue`, newest first.
///
/// # Errors
///
/// A Redis error.
pub async fn dead_letters(
    conn: &mut impl ConnectionLike,
    queue: &str,
) -> RedisResult<Vec<DeadLetter>> {
    super::redis::read_dead_letters(conn, &dead_letter_list(queue)).await
}

/// A tower layer for apalis workers: every task runs inside the context
/// its arguments carry, or is dead-lettered before its handler runs.
///
/// `conn` is where dead letters are recorded (the list
/// [`dead_letter_list`]`(queue)`); `queue` names the apalis queue in them.
#[derive(Clone)]
pub struct JobLayer<C> {
    conn: C,
    queue: Arc<str>,
    policy: Policy,
}

impl<C> std::fmt::Debug for JobLayer<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobLayer")
            .field("queue", &self.queue)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<C> JobLayer<C> {
    /// The layer for the apalis queue `queue`, recording dead letters on
    /// `conn`, with the default [`Policy`] (a tenant is required, 3 attempts).
    pub fn new(conn: C, queue: impl AsRef<str>) -> JobLayer<C> {
        JobLayer {
            conn,
            queue: Arc::from(queue.as_ref()),
            policy: Policy::new(),
        }
    }

    /// The policy tasks are checked with.
    pub fn with_policy(mut self, policy: Policy) -> JobLayer<C> {
        self.policy = policy;
        self
    }
}

impl<S, C: Clone> tower_layer::Layer<S> for JobLayer<C> {
    type Service = JobService<S, C>;

    fn layer(&self, inner: S) -> JobService<S, C> {
        JobService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`JobLayer`] wraps around an apalis handler.
#[derive(Clone)]
pub struct JobService<S, C> {
    inner: S,
    layer: JobLayer<C>,
}

impl<S, C> std::fmt::Debug for JobService<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobService")
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, C, Args> tower_service::Service<Task<Args>> for JobService<S, C>
where
    S: tower_service::Service<Task<Args>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxDynError>,
    S::Response: Send + 'static,
    C: ConnectionLike + Clone + Send + Sync + 'static,
    Args: ContextSource + Serialize,
    <Args as ContextSource>::Error: Into<Rejection>,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = BoxFuture<Result<S::Response, BoxDynError>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxDynError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<Args>) -> Self::Future {
        let execution = Arc::clone(task.ctx());
        let payload = serde_json::to_vec(&task.args).unwrap_or_default();
        let layer = self.layer.clone();
        let cx = match admit(&task.args, &layer.policy) {
            Ok(cx) => cx,
            Err(rejection) => {
                let letter = DeadLetter::new(&*layer.queue, &rejection, &payload);
                return Box::pin(
                    async move { layer.dead_letter(&execution, rejection, letter).await },
                );
            }
        };
        let handled = cx.scope(cx.scope_sync(|| self.inner.call(task)));
        Box::pin(async move {
            let error: BoxDynError = match handled.await {
                Ok(done) => return Ok(done),
                Err(error) => error.into(),
            };
            if error.downcast_ref::<AbortError>().is_some() {
                return Err(error);
            }
            let attempt = u32::try_from(execution.attempt()).unwrap_or(u32::MAX);
            match layer.policy.after_failure(attempt, error.to_string()) {
                None => Err(error),
                Some(rejection) => {
                    let letter = DeadLetter::new(&*layer.queue, &rejection, &payload)
                        .with_tenant(cx.tenant().map(|t| t.as_str().to_owned()))
                        .with_trace_id(Some(cx.trace_id().to_string()));
                    layer.dead_letter(&execution, rejection, letter).await
                }
            }
        })
    }
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> JobLayer<C> {
    /// Records the dead letter, then ends the task as killed (apalis files
    /// it in its dead set). When the record cannot be written, the task
    /// fails instead, and apalis runs it again later: nothing is lost.
    async fn dead_letter<R>(
        &self,
        execution: &ExecutionContext,
        rejection: Rejection,
        letter: DeadLetter,
    ) -> Result<R, BoxDynError> {
        let mut conn = self.conn.clone();
        let recorded = ::redis::cmd("LPUSH")
            .arg(dead_letter_list(&self.queue))
            .arg(letter.to_json())
            .query_async::<()>(&mut conn)
            .await;
        match recorded {
            Ok(()) => {
                tracing::warn!(
                    target: "context_runtime::jobs",
                    queue = &*self.queue,
                    kind = letter.kind.as_str(),
                    tenant = letter.tenant.as_deref(),
                    reason = %letter.reason,
                    "dead-lettered an apalis task"
                );
                execution.raw_status().store(Status::Killed);
                Err(Box::new(AbortError::new(rejection)))
            }
            Err(e) => {
                execution.raw_status().store(Status::Failed);
                Err(Box::new(e))
            }
        }
    }
}
