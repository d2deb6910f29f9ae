//! Jobs on Redis lists, the producer's [`Carrier`](struct@crate::Carrier) in the
//! JSON payload (feature `redis`).
//!
//! A [`Queue`] is three lists: the jobs (`name`), the jobs being handled
//! (`name:processing`) and the dead letters (`name:dead`, JSON
//! [`DeadLetter`] records). A job is `{"ctx": <carrier>, "data": <T>}`
//! ([`Job`]), plus `"attempt"` once it has been retried.
//!
//! - [`Queue::enqueue`] captures the current context into the job, once.
//! - [`Queue::process`] takes one job (`LMOVE` into the processing list, so
//!   a crash loses nothing), checks it with the queue's [`Policy`], runs the
//!   handler inside the job's context, then in one `MULTI`: removes it, and
//!   either re-queues the *original* job with the next attempt number, or
//!   pushes its dead letter.
//!
//! ```no_run
//! use context_runtime::redis::Queue;
//! use context_runtime::jobs::{Job, Outcome};
//! use context_runtime::{with_context, requires_tenant, CarrierError, TenantRequired};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Invoice { number: u64 }
//!
//! #[derive(Debug)]
//! struct JobError(String);
//! impl std::fmt::Display for JobError {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(&self.0) }
//! }
//! impl From<CarrierError> for JobError { fn from(e: CarrierError) -> Self { JobError(e.to_string()) } }
//! impl From<TenantRequired> for JobError { fn from(e: TenantRequired) -> Self { JobError(e.to_string()) } }
//!
//! #[with_context(from = "job")]
//! #[requires_tenant]
//! async fn send_invoice(job: Job<Invoice>) -> Result<(), JobError> {
//!     let tenant = context_runtime::tenant()?;
//!     println!("invoice {} for {tenant}", job.data.number);
//!     Ok(())
//! }
//!
//! # async fn run(cx: context_runtime::Context) -> redis::RedisResult<()> {
//! let client = redis::Client::open("redis://127.0.0.1:6379")?;
//! let mut conn = client.get_multiplexed_async_connection().await?;
//! let queue = Queue::new("invoices");
//!
//! // Producer, inside the request's scope: the context is captured here.
//! cx.scope(queue.enqueue(&mut conn, &Invoice { number: 7 })).await?;
//!
//! // Consumer: one job at a time per task; run several tasks for concurrency.
//! loop {
//!     match queue.process(&mut conn, send_invoice).await? {
//!         Some(Outcome::DeadLettered(letter)) => eprintln!("dead letter: {}", letter.reason),
//!         Some(_) => {}
//!         None => tokio::time::sleep(std::time::Duration::from_millis(50)).await, // empty
//!     }
//! }
//! # }
//! ```

use std::fmt;
use std::future::Future;

use ::redis::aio::ConnectionLike;
use ::redis::RedisResult;
use serde::de::DeserializeOwned;
use serde::{Deserialize as _, Serialize};
use serde_json::Value;

use crate::jobs::{admit, run_in, DeadLetter, Job, Outcome, Policy, Rejection};

/// A job queue on Redis lists: its name, and the [`Policy`] its consumers apply.
#[derive(Debug, Clone)]
pub struct Queue {
    name: String,
    policy: Policy,
}

impl Queue {
    /// The queue on the list `name` (and `name:processing`, `name:dead`),
    /// with the default [`Policy`]: a tenant is required, 3 attempts.
    pub fn new(name: impl Into<String>) -> Queue {
        Queue {
            name: name.into(),
            policy: Policy::new(),
        }
    }

    /// The policy consumers of this queue apply.
    pub fn with_policy(mut self, policy: Policy) -> Queue {
        self.policy = policy;
        self
    }

    /// The list of waiting jobs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The list of jobs being handled (`name:processing`). After a worker
    /// crash, its jobs are still here: move them back to re-run them.
    pub fn processing_list(&self) -> String {
        format!("{}:processing", self.name)
    }

    /// The list of [`DeadLetter`] records (`name:dead`), newest first.
    pub fn dead_letter_list(&self) -> String {
        format!("{}:dead", self.name)
    }

    /// Enqueues `data` with the current context (no context outside a
    /// scope: a consumer that requires a tenant dead-letters such a job).
    ///
    /// # Errors
    ///
    /// A Redis error.
    pub async fn enqueue<T: Serialize>(
        &self,
        conn: &mut impl ConnectionLike,
        data: &T,
    ) -> RedisResult<()> {
        self.enqueue_job(conn, &Job::current(data)).await
    }

    /// Enqueues a job made beforehand (with [`Job::new`] or [`Job::current`]).
    /// When the queue's [`Policy`] has a keyring, an unsigned carrier is
    /// signed with it.
    ///
    /// # Errors
    ///
    /// A Redis error, or a payload that does not serialize to JSON.
    pub async fn enqueue_job<T: Serialize>(
        &self,
        conn: &mut impl ConnectionLike,
        job: &Job<T>,
    ) -> RedisResult<()> {
        let payload = match self.policy.signing_keyring() {
            None => serde_json::to_vec(job).map_err(json_error)?,
            Some(_) => {
                // With a keyring in the policy, the identity leaves signed.
                let mut payload = serde_json::to_value(job).map_err(json_error)?;
                crate::jobs::seal_payload(&self.policy, &mut payload);
                serde_json::to_vec(&payload).map_err(json_error)?
            }
        };
        ::redis::cmd("LPUSH")
            .arg(&self.name)
            .arg(payload)
            .query_async(conn)
            .await
    }

    /// Takes the oldest job, if any, and handles it to the end: checked
    /// against the policy, `handler` run inside the job's context, then
    /// acknowledged, re-queued (same carrier, next attempt) or dead-lettered.
    ///
    /// `Ok(None)` when the queue is empty. Take jobs concurrently by
    /// calling this from several tasks; a multiplexed connection can be
    /// shared (the command does not block).
    ///
    /// # Errors
    ///
    /// A Redis error. The job is then still in the processing list.
    pub async fn process<T, F, Fut, R, E>(
        &self,
        conn: &mut impl ConnectionLike,
        handler: F,
    ) -> RedisResult<Option<Outcome<R>>>
    where
        T: DeserializeOwned,
        F: FnOnce(Job<T>) -> Fut,
        Fut: Future<Output = Result<R, E>>,
        E: fmt::Display,
    {
        let processing = self.processing_list();
        let raw: Option<Vec<u8>> = ::redis::cmd("LMOVE")
            .arg(&self.name)
            .arg(&processing)
            .arg("RIGHT")
            .arg("LEFT")
            .query_async(conn)
            .await?;
        let Some(raw) = raw else {
            return Ok(None);
        };

        let (mut value, job) = match read_job::<T>(&raw) {
            Ok(read) => read,
            Err(rejection) => {
                let letter = DeadLetter::new(&self.name, &rejection, &raw);
                return self.dead_letter(conn, &raw, letter).await.map(Some);
            }
        };
        let cx = match admit(&job, &self.policy) {
            Ok(cx) => cx,
            Err(rejection) => {
                let letter = DeadLetter::new(&self.name, &rejection, &raw)
                    .with_trace_id(job.claimed_trace_id());
                return self.dead_letter(conn, &raw, letter).await.map(Some);
            }
        };

        let attempt = job.attempt();
        match run_in(&cx, handler(job)).await {
            Ok(done) => {
                ::redis::cmd("LREM")
                    .arg(&processing)
                    .arg(1)
                    .arg(&raw)
                    .query_async::<()>(conn)
                    .await?;
                Ok(Some(Outcome::Completed(done)))
            }
            Err(error) => match self.policy.after_failure(attempt, error.clone()) {
                Some(rejection) => {
                    let letter = DeadLetter::exhausted(&self.name, &rejection, &raw, &cx);
                    self.dead_letter(conn, &raw, letter).await.map(Some)
                }
                None => {
                    // The original job, as written, with the next attempt number.
                    if let Value::Object(fields) = &mut value {
                        fields.insert("attempt".into(), Value::from(attempt + 1));
                    }
                    let retry = serde_json::to_vec(&value).map_err(json_error)?;
                    ::redis::pipe()
                        .atomic()
                        .cmd("LPUSH")
                        .arg(&self.name)
                        .arg(retry)
                        .ignore()
                        .cmd("LREM")
                        .arg(&processing)
                        .arg(1)
                        .arg(&raw)
                        .ignore()
                        .query_async::<()>(conn)
                        .await?;
                    Ok(Some(Outcome::Retried { attempt, error }))
                }
            },
        }
    }

    async fn dead_letter<R>(
        &self,
        conn: &mut impl ConnectionLike,
        raw: &[u8],
        letter: DeadLetter,
    ) -> RedisResult<Outcome<R>> {
        ::redis::pipe()
            .atomic()
            .cmd("LPUSH")
            .arg(self.dead_letter_list())
            .arg(letter.to_json())
            .ignore()
            .cmd("LREM")
            .arg(self.processing_list())
            .arg(1)
            .arg(raw)
            .ignore()
            .query_async::<()>(conn)
            .await?;
        Ok(Outcome::DeadLettered(letter))
    }

    /// The dead letters of this queue, newest first (records that are not
    /// [`DeadLetter`] JSON are skipped).
    ///
    /// # Errors
    ///
    /// A Redis error.
    pub async fn dead_letters(
        &self,
        conn: &mut impl ConnectionLike,
    ) -> RedisResult<Vec<DeadLetter>> {
        read_dead_letters(conn, &self.dead_letter_list()).await
    }
}

/// The [`DeadLetter`] records in the Redis list `list`, newest first.
pub(crate) async fn read_dead_letters(
    conn: &mut impl ConnectionLike,
    list: &str,
) -> RedisResult<Vec<DeadLetter>> {
    let raw: Vec<Vec<u8>> = ::redis::cmd("LRANGE")
        .arg(list)
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await?;
    Ok(raw
        .iter()
        .filter_map(|r| serde_json::from_slice(r).ok())
        .collect())
}

/// The job's JSON object and the job; a payload that is not one is unreadable.
fn read_job<T: DeserializeOwned>(raw: &[u8]) -> Result<(Value, Job<T>), Rejection> {
    let unreadable = |reason: String| Rejection::Unreadable { reason };
    crate::jobs::check_payload_size(raw)?;
    let value = match serde_json::from_slice::<Value>(raw) {
        Ok(value @ Value::Object(_)) => value,
        Ok(_) => return Err(unreadable("not a JSON object".into())),
        Err(e) => return Err(unreadable(e.to_string())),
    };
    let attempt = match value.get("attempt") {
        None => 1,
        Some(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|&n| n >= 1)
            .ok_or_else(|| unreadable(format!("`attempt` is {n}, not a positive number")))?,
    };
    let mut job = Job::<T>::deserialize(&value).map_err(|e| unreadable(e.to_string()))?;
    job.set_attempt(attempt);
    Ok((value, job))
}

fn json_error(e: serde_json::Error) -> ::redis::RedisError {
    ::redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
