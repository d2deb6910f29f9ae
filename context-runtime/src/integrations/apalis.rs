//! apalis workers: a tower layer that runs every task inside the context
//! its arguments carry, and dead-letters what must not run (feature `apalis`).
//!
//! The arguments are the [`ContextSource`]: a [`Job<T>`](crate::jobs::Job) (the
//! carrier in a `ctx` field) or a payload with
//! [`#[derive(Carrier)]`](macro@crate::Carrier). [`JobLayer`] checks them
//! with its [`Policy`] before the handler:
//!
//! - admitted: the handler (and every layer below) runs inside the job's
//!   context, so `context_runtime::tenant()` works anywhere in it; do not
//!   scope the handler again with `#[with_context(from = "job")]` (the
//!   layer already did);
//! - rejected (broken carrier, invalid tenant, no tenant where required):
//!   the handler does not run; a [`DeadLetter`] record goes to the layer's
//!   [`DeadLetterSink`] (with the `redis` feature, [`RedisDeadLetters`]: the
//!   Redis list `queue:dead-letters`; any store otherwise) and the task
//!   ends as apalis's `AbortError`, which apalis's backends file as dead
//!   instead of retrying it;
//! - a handler that fails or panics (`panicked: <message>`) is retried by
//!   apalis (the backend re-schedules the same stored arguments: the
//!   original carrier) until [`Policy::attempts`], then dead-lettered the
//!   same way.
//!
//! The layer works with any apalis backend: it is tested on apalis's
//! Redis, PostgreSQL and in-memory backends, with sinks on Redis,
//! PostgreSQL and in memory. Crash recovery (a worker killed mid-task) is the
//! backend's: apalis's Redis and PostgreSQL backends re-enqueue the tasks
//! of a worker whose heartbeat stopped.
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
//!
//! #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
//! struct Invoice { number: u64 }
//!
//! // Runs in the job's context: the layer scoped it.
//! async fn send_invoice(job: Job<Invoice>) -> Result<(), BoxDynError> {
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
//!     .layer(JobLayer::redis(conn, "invoices"))
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
use serde::Serialize;

use crate::jobs::{admit, catch_panic, DeadLetter, Policy, Rejection};
use crate::propagate::source::ContextSource;

/// Where [`JobLayer`] records dead letters: any store, so that the layer
/// works with every apalis backend. The task is ended as dead (apalis's
/// `AbortError`) only after [`record`](DeadLetterSink::record) succeeded;
/// when it fails, the task fails and apalis runs it again later.
///
/// With the `redis` feature, [`RedisDeadLetters`] records them in a Redis
/// list. Any other store is a few lines:
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use context_runtime::apalis::DeadLetterSink;
/// use context_runtime::jobs::DeadLetter;
///
/// /// Dead letters kept in memory (a test's sink).
/// #[derive(Clone, Default)]
/// struct InMemory(Arc<Mutex<Vec<DeadLetter>>>);
///
/// impl DeadLetterSink for InMemory {
///     type Error = std::convert::Infallible;
///     async fn record(&self, letter: &DeadLetter) -> Result<(), Self::Error> {
///         self.0.lock().unwrap().push(letter.clone());
///         Ok(())
///     }
/// }
/// ```
pub trait DeadLetterSink: Clone + Send + Sync + 'static {
    /// What recording fails with.
    type Error: Into<BoxDynError> + Send;

    /// Records `letter` durably.
    fn record(&self, letter: &DeadLetter) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// The Redis list where [`RedisDeadLetters`] records the dead letters of
/// the apalis queue `queue`: `queue:dead-letters` (apalis's own dead set,
/// of task ids, is `queue:dead`).
#[cfg(feature = "redis")]
pub fn dead_letter_list(queue: &str) -> String {
    format!("{queue}:dead-letters")
}

/// The dead letters [`RedisDeadLetters`] recorded for `queue`, newest first.
///
/// # Errors
///
/// A Redis error.
#[cfg(feature = "redis")]
pub async fn dead_letters(
    conn: &mut impl ::redis::aio::ConnectionLike,
    queue: &str,
) -> ::redis::RedisResult<Vec<DeadLetter>> {
    let raw: Vec<Vec<u8>> = ::redis::cmd("LRANGE")
        .arg(dead_letter_list(queue))
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await?;
    Ok(raw
        .iter()
        .filter_map(|r| serde_json::from_slice(r).ok())
        .collect())
}

/// A [`DeadLetterSink`] on Redis: JSON [`DeadLetter`] records pushed to the
/// list [`dead_letter_list`]`(queue)` (feature `redis`).
#[cfg(feature = "redis")]
#[derive(Clone)]
pub struct RedisDeadLetters<C> {
    conn: C,
    list: Arc<str>,
}

#[cfg(feature = "redis")]
impl<C> std::fmt::Debug for RedisDeadLetters<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisDeadLetters")
            .field("list", &self.list)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "redis")]
impl<C> RedisDeadLetters<C> {
    /// Dead letters of the apalis queue `queue`, on `conn`.
    pub fn new(conn: C, queue: &str) -> Self {
        RedisDeadLetters {
            conn,
            list: Arc::from(dead_letter_list(queue)),
        }
    }
}

#[cfg(feature = "redis")]
impl<C> DeadLetterSink for RedisDeadLetters<C>
where
    C: ::redis::aio::ConnectionLike + Clone + Send + Sync + 'static,
{
    type Error = ::redis::RedisError;

    async fn record(&self, letter: &DeadLetter) -> Result<(), ::redis::RedisError> {
        let mut conn = self.conn.clone();
        ::redis::cmd("LPUSH")
            .arg(&*self.list)
            .arg(letter.to_json())
            .query_async::<()>(&mut conn)
            .await
    }
}

/// A tower layer for apalis workers: every task runs inside the context
/// its arguments carry, or is dead-lettered before its handler runs.
///
/// `sink` is where dead letters are recorded ([`DeadLetterSink`]); `queue`
/// names the apalis queue in them.
#[derive(Clone)]
pub struct JobLayer<D> {
    sink: D,
    queue: Arc<str>,
    policy: Policy,
}

impl<D> std::fmt::Debug for JobLayer<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobLayer")
            .field("queue", &self.queue)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<D> JobLayer<D> {
    /// The layer for the apalis queue `queue`, recording dead letters in
    /// `sink`, with the default [`Policy`] (a tenant is required, 3 attempts).
    pub fn new(sink: D, queue: impl AsRef<str>) -> JobLayer<D> {
        JobLayer {
            sink,
            queue: Arc::from(queue.as_ref()),
            policy: Policy::new(),
        }
    }

    /// The policy tasks are checked with.
    pub fn with_policy(mut self, policy: Policy) -> JobLayer<D> {
        self.policy = policy;
        self
    }
}

#[cfg(feature = "redis")]
impl<C> JobLayer<RedisDeadLetters<C>> {
    /// The layer for the apalis queue `queue`, recording dead letters in
    /// the Redis list [`dead_letter_list`]`(queue)` on `conn`.
    pub fn redis(conn: C, queue: impl AsRef<str>) -> Self {
        let sink = RedisDeadLetters::new(conn, queue.as_ref());
        JobLayer::new(sink, queue)
    }
}

impl<S, D: Clone> tower_layer::Layer<S> for JobLayer<D> {
    type Service = JobService<S, D>;

    fn layer(&self, inner: S) -> JobService<S, D> {
        JobService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`JobLayer`] wraps around an apalis handler.
#[derive(Clone)]
pub struct JobService<S, D> {
    inner: S,
    layer: JobLayer<D>,
}

impl<S, D> std::fmt::Debug for JobService<S, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobService")
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, D, Args> tower_service::Service<Task<Args>> for JobService<S, D>
where
    S: tower_service::Service<Task<Args>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxDynError>,
    S::Response: Send + 'static,
    D: DeadLetterSink,
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
        let handled = catch_panic(cx.scope(cx.scope_sync(|| self.inner.call(task))));
        Box::pin(async move {
            let error: BoxDynError = match handled.await {
                Ok(Ok(done)) => return Ok(done),
                Ok(Err(error)) => error.into(),
                Err(panicked) => {
                    // apalis records a task's status when its future ends;
                    // a panic unwound through that code, so the task would
                    // stay "running" (never retried, never done): record the
                    // failure here.
                    execution.raw_status().store(Status::Failed);
                    panicked.into()
                }
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

impl<D: DeadLetterSink> JobLayer<D> {
    /// Records the dead letter, then ends the task as killed (apalis files
    /// it in its dead set). When the record cannot be written, the task
    /// fails instead, and apalis runs it again later: nothing is lost.
    async fn dead_letter<R>(
        &self,
        execution: &ExecutionContext,
        rejection: Rejection,
        letter: DeadLetter,
    ) -> Result<R, BoxDynError> {
        match self.sink.record(&letter).await {
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
                Err(e.into())
            }
        }
    }
}
