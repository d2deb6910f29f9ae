//! The one consume pipeline every broker settles through: admit the job
//! (the [`Policy`]), run the handler inside the job's context with its
//! panics caught, then settle the delivery through the broker's adapter
//! ([`Settle`]): acknowledge it, retry it, or dead-letter it.
//!
//! The semantics are written here once; a broker only maps the three
//! settlements onto its engine:
//!
//! | the delivery | settles as |
//! | --- | --- |
//! | unreadable payload, broken carrier, invalid identity, no tenant where required | [`Settle::dead_letter`] with the [`Rejection`]; the handler does not run |
//! | delivered more than [`Policy::attempts`] times (its workers died mid-job) | [`Settle::dead_letter`], [`RejectionKind::Exhausted`](super::RejectionKind::Exhausted); the handler does not run again |
//! | the handler returns `Ok` | [`Settle::ack`] |
//! | the handler returns `Err` or panics (`panicked: <message>`), attempts left | [`Settle::retry`] after [`Policy::retry_delay`]: the *original* message, carrier and id, again |
//! | the same on the last attempt | [`Settle::dead_letter`], [`RejectionKind::Exhausted`](super::RejectionKind::Exhausted) |
//!
//! A settlement that fails is returned as the adapter's error: the
//! delivery then stays with the broker, which delivers it again (at least
//! once). A dead letter is written and the job removed in one step, or
//! neither.
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//! use context_runtime::jobs::pipeline::{process, Delivery, Settle};
//! use context_runtime::jobs::{DeadLetter, Job, Outcome, Policy};
//! use context_runtime::{Context, TenantId};
//!
//! /// An adapter that only remembers how the delivery was settled.
//! #[derive(Default)]
//! struct Recorded(Option<String>);
//!
//! impl Settle for Recorded {
//!     type Error = Infallible;
//!     async fn ack(&mut self) -> Result<(), Infallible> {
//!         self.0 = Some("ack".into());
//!         Ok(())
//!     }
//!     async fn retry(&mut self, delay: Duration) -> Result<(), Infallible> {
//!         self.0 = Some(format!("retry in {delay:?}"));
//!         Ok(())
//!     }
//!     async fn dead_letter(&mut self, letter: &DeadLetter) -> Result<(), Infallible> {
//!         self.0 = Some(format!("dead: {}", letter.reason));
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cx = Context::root().with_tenant(TenantId::new("acme")?);
//! let job = Job::new(&cx, 7u32);
//! let payload = serde_json::to_vec(&job)?;
//! let mut settled = Recorded::default();
//! let delivery = Delivery::new(Ok(job), payload, 1, &mut settled);
//! let policy = Policy::new().jitter(0.0);
//! let outcome = process("invoices", &policy, delivery, |job: Job<u32>| async move {
//!     if job.data == 7 {
//!         panic!("no invoice 7");
//!     }
//!     Ok::<_, String>(())
//! })
//! .await?;
//! assert!(matches!(outcome, Outcome::Retried { attempt: 1, ref error } if error == "panicked: no invoice 7"));
//! assert_eq!(settled.0.as_deref(), Some("retry in 1s"));
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use super::run::run_in;
use super::{admit, DeadLetter, JobId, Outcome, Policy, Rejection};
use crate::propagate::source::ContextSource;

/// How a broker settles one delivery: the adapter each broker implements.
///
/// Every method is called at most once per delivery, except
/// [`keep_alive`](Settle::keep_alive), and only by [`process`].
pub trait Settle: Send {
    /// What the broker's client fails with.
    type Error: fmt::Display + Send + 'static;

    /// The job is done: remove it from the broker for good.
    fn ack(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Deliver the same message again (the original bytes, so the original
    /// carrier and job id), not before `delay`, counting one more attempt.
    fn retry(&mut self, delay: Duration) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Record `letter` and the original bytes in the dead-letter
    /// destination and remove the job, in one step: when the record cannot
    /// be written, the job must stay (and be delivered again).
    fn dead_letter(
        &mut self,
        letter: &DeadLetter,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// How often [`keep_alive`](Settle::keep_alive) runs while the handler
    /// does; `None` (the default) when the broker needs no sign of life.
    fn keep_alive_every(&self) -> Option<Duration> {
        None
    }

    /// Tells the broker the handler still runs (a progress ack, a renewed
    /// lease), so that the job is not given to another worker meanwhile.
    fn keep_alive(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        async { Ok(()) }
    }
}

impl<S: Settle> Settle for &mut S {
    type Error = S::Error;

    fn ack(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        (**self).ack()
    }

    fn retry(&mut self, delay: Duration) -> impl Future<Output = Result<(), Self::Error>> + Send {
        (**self).retry(delay)
    }

    fn dead_letter(
        &mut self,
        letter: &DeadLetter,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        (**self).dead_letter(letter)
    }

    fn keep_alive_every(&self) -> Option<Duration> {
        (**self).keep_alive_every()
    }

    fn keep_alive(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        (**self).keep_alive()
    }
}

/// One delivered job, as a broker adapter hands it to [`process`].
#[derive(Debug)]
pub struct Delivery<J, S> {
    /// The job read from the message, or why it cannot be read.
    pub job: Result<J, Rejection>,
    /// The message's original bytes (kept in the dead letter).
    pub payload: Vec<u8>,
    /// This delivery's attempt, 1 for the first, counted by the broker (so
    /// deliveries whose worker died count too).
    pub attempt: u32,
    /// The job's id, the same on every delivery (the idempotency key).
    pub job_id: Option<String>,
    /// The trace id the message claims, as written (for dead letters of
    /// jobs that are not admitted).
    pub claimed_trace_id: Option<String>,
    /// How to settle it.
    pub settle: S,
}

impl<J, S> Delivery<J, S> {
    /// A delivery of `job` (`payload` as received) on its `attempt`.
    pub fn new(job: Result<J, Rejection>, payload: Vec<u8>, attempt: u32, settle: S) -> Self {
        Delivery {
            job,
            payload,
            attempt: attempt.max(1),
            job_id: None,
            claimed_trace_id: None,
            settle,
        }
    }

    /// With the job's id.
    pub fn with_job_id(mut self, job_id: Option<String>) -> Self {
        self.job_id = job_id;
        self
    }

    /// With the trace id the message claims.
    pub fn with_claimed_trace_id(mut self, trace_id: Option<String>) -> Self {
        self.claimed_trace_id = trace_id;
        self
    }
}

/// Handles one delivery to the end (see the table in the [module
/// docs](self)): admitted with `policy`, `handler` run inside the job's
/// context (with [`current_job_id`](super::current_job_id) set) and its
/// panics caught, then settled. `queue` names the queue in dead letters.
///
/// # Errors
///
/// The adapter's error when the settlement failed: the job then stays
/// with the broker and is delivered again.
pub async fn process<J, S, F, Fut, R, E>(
    queue: &str,
    policy: &Policy,
    delivery: Delivery<J, S>,
    handler: F,
) -> Result<Outcome<R>, S::Error>
where
    J: ContextSource,
    J::Error: Into<Rejection>,
    S: Settle,
    F: FnOnce(J) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    E: fmt::Display,
{
    let Delivery {
        job,
        payload,
        attempt,
        job_id,
        claimed_trace_id,
        mut settle,
    } = delivery;
    let job = match job {
        Ok(job) => job,
        Err(rejection) => {
            let letter = DeadLetter::new(queue, &rejection, &payload)
                .with_trace_id(claimed_trace_id.clone());
            return dead_letter(&mut settle, letter).await;
        }
    };
    let cx = match admit(&job, policy) {
        Ok(cx) => cx,
        Err(rejection) => {
            let letter =
                DeadLetter::new(queue, &rejection, &payload).with_trace_id(claimed_trace_id);
            return dead_letter(&mut settle, letter).await;
        }
    };
    if attempt > policy.attempts() {
        // Every allowed attempt was delivered, and none came back with a
        // result: its workers died (or lost the broker) mid-job.
        let rejection = Rejection::Exhausted {
            attempts: attempt - 1,
            error: format!(
                "delivered {} time(s) without an ack: the worker stopped mid-job \
                 (killed, or lost its connection)",
                attempt - 1
            ),
        };
        return dead_letter(
            &mut settle,
            DeadLetter::exhausted(queue, &rejection, &payload, &cx),
        )
        .await;
    }
    let cx = match job_id {
        Some(id) => cx.with_value(JobId(id)),
        None => cx,
    };

    let handled = {
        // The handler's call (a closure's synchronous part) and its future
        // both run inside the job's context.
        let run = run_in(&cx, cx.scope_sync(|| handler(job)));
        match settle.keep_alive_every() {
            None => run.await,
            Some(every) => with_keep_alive(&mut settle, every, run).await,
        }
    };
    match handled {
        Ok(value) => {
            settle.ack().await?;
            Ok(Outcome::Completed(value))
        }
        Err(error) => match policy.after_failure(attempt, error.clone()) {
            Some(rejection) => {
                let letter = DeadLetter::exhausted(queue, &rejection, &payload, &cx);
                dead_letter(&mut settle, letter).await
            }
            None => {
                settle.retry(policy.retry_delay(attempt)).await?;
                Ok(Outcome::Retried { attempt, error })
            }
        },
    }
}

async fn dead_letter<S: Settle, R>(
    settle: &mut S,
    letter: DeadLetter,
) -> Result<Outcome<R>, S::Error> {
    settle.dead_letter(&letter).await?;
    tracing::warn!(
        target: "context_runtime::jobs",
        queue = %letter.queue,
        kind = letter.kind.as_str(),
        tenant = letter.tenant.as_deref(),
        reason = %letter.reason,
        "dead-lettered a job"
    );
    Ok(Outcome::DeadLettered(letter))
}

/// Runs `work` while calling `settle.keep_alive()` every `every`.
async fn with_keep_alive<S: Settle, T>(
    settle: &mut S,
    every: Duration,
    work: impl Future<Output = T>,
) -> T {
    let mut work = pin!(work);
    let mut beat = pin!(async {
        loop {
            tokio::time::sleep(every).await;
            if let Err(error) = settle.keep_alive().await {
                tracing::warn!(
                    target: "context_runtime::jobs",
                    %error,
                    "could not tell the broker a job is still running"
                );
            }
        }
    });
    poll_fn(|cx| {
        if let Poll::Ready(value) = work.as_mut().poll(cx) {
            return Poll::Ready(value);
        }
        // The heartbeat never ends; it only runs beside the work.
        let _ = beat.as_mut().poll(cx);
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{Job, RejectionKind};
    use crate::model::context::Context;
    use crate::model::tenant::TenantId;

    /// An adapter that records its settlements; `fail` makes every
    /// settlement fail (a lost connection).
    #[derive(Debug, Default)]
    struct Recorder {
        settled: Vec<String>,
        letters: Vec<DeadLetter>,
        beats: u32,
        fail: bool,
        beat_every: Option<Duration>,
    }

    impl Recorder {
        fn done(&mut self, what: String) -> Result<(), String> {
            if self.fail {
                return Err("connection lost".into());
            }
            self.settled.push(what);
            Ok(())
        }
    }

    impl Settle for Recorder {
        type Error = String;

        async fn ack(&mut self) -> Result<(), String> {
            self.done("ack".into())
        }

        async fn retry(&mut self, delay: Duration) -> Result<(), String> {
            self.done(format!("retry {}ms", delay.as_millis()))
        }

        async fn dead_letter(&mut self, letter: &DeadLetter) -> Result<(), String> {
            self.done("dead".into())?;
            self.letters.push(letter.clone());
            Ok(())
        }

        fn keep_alive_every(&self) -> Option<Duration> {
            self.beat_every
        }

        async fn keep_alive(&mut self) -> Result<(), String> {
            self.beats += 1;
            Ok(())
        }
    }

    fn job(tenant: Option<&str>, data: u32) -> (Job<u32>, Vec<u8>, Context) {
        let mut cx = Context::root();
        if let Some(t) = tenant {
            cx = cx.with_tenant(TenantId::new(t).expect("valid"));
        }
        let job = Job::new(&cx, data);
        let payload = serde_json::to_vec(&job).expect("json");
        (job, payload, cx)
    }

    fn policy() -> Policy {
        Policy::new()
            .max_attempts(3)
            .backoff(Duration::from_millis(100), Duration::from_millis(250))
            .jitter(0.0)
    }

    async fn run(
        recorder: &mut Recorder,
        job: Result<Job<u32>, Rejection>,
        payload: Vec<u8>,
        attempt: u32,
        behaviour: &'static str,
    ) -> Result<Outcome<(String, Option<String>, Option<String>)>, String> {
        let id = job.as_ref().ok().map(|j| j.id().to_owned());
        let delivery = Delivery::new(job, payload, attempt, recorder).with_job_id(id);
        process("q", &policy(), delivery, move |_job: Job<u32>| async move {
            match behaviour {
                "panic" => panic!("boom"),
                "fail" => Err("no luck".to_owned()),
                _ => Ok((
                    crate::scope::store::tenant()
                        .map(|t| t.to_string())
                        .unwrap_or_default(),
                    crate::scope::store::trace_id().map(|t| t.to_string()),
                    crate::jobs::current_job_id(),
                )),
            }
        })
        .await
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_good_job_runs_in_its_context_with_its_id_and_is_acked() {
        let (job, payload, cx) = job(Some("acme"), 1);
        let id = job.id().to_owned();
        assert_eq!(id.len(), 32);
        let mut rec = Recorder::default();
        let outcome = run(&mut rec, Ok(job), payload, 1, "ok").await;
        assert_eq!(
            outcome,
            Ok(Outcome::Completed((
                "acme".to_owned(),
                Some(cx.trace_id().to_string()),
                Some(id)
            )))
        );
        assert_eq!(rec.settled, ["ack"]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn failures_and_panics_retry_with_backoff_then_dead_letter() {
        for behaviour in ["fail", "panic"] {
            let error = if behaviour == "panic" {
                "panicked: boom"
            } else {
                "no luck"
            };
            let (job, payload, cx) = job(Some("acme"), 1);
            let mut rec = Recorder::default();
            for attempt in 1..=3 {
                let outcome = run(
                    &mut rec,
                    Ok(job.clone()),
                    payload.clone(),
                    attempt,
                    behaviour,
                )
                .await
                .expect("settled");
                assert_eq!(outcome.is_final(), attempt == 3, "{behaviour} {attempt}");
            }
            assert_eq!(rec.settled, ["retry 100ms", "retry 200ms", "dead"]);
            let letter = &rec.letters[0];
            assert_eq!(letter.kind, RejectionKind::Exhausted);
            assert_eq!(letter.attempts, 3);
            assert!(letter.reason.ends_with(error), "{}", letter.reason);
            assert_eq!(letter.tenant.as_deref(), Some("acme"));
            assert_eq!(letter.trace_id, Some(cx.trace_id().to_string()));
            assert_eq!(letter.payload.as_bytes(), &payload[..]);
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_job_delivered_past_its_attempts_is_dead_lettered_without_running() {
        let (job, payload, _) = job(Some("acme"), 1);
        let mut rec = Recorder::default();
        let outcome = run(&mut rec, Ok(job), payload, 4, "panic").await;
        let Ok(Outcome::DeadLettered(letter)) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(letter.kind, RejectionKind::Exhausted);
        assert!(
            letter.reason.contains("stopped mid-job"),
            "{}",
            letter.reason
        );
        assert_eq!(rec.settled, ["dead"]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn rejected_jobs_never_run_and_are_dead_lettered_with_their_reason() {
        let (orphan, payload, _) = job(None, 1);
        let mut rec = Recorder::default();
        let outcome = run(&mut rec, Ok(orphan), payload, 1, "panic").await;
        let Ok(Outcome::DeadLettered(letter)) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(letter.kind, RejectionKind::TenantRequired);

        let unreadable = Rejection::Unreadable {
            reason: "not JSON".into(),
        };
        let outcome = run(&mut rec, Err(unreadable), b"\xff\xfe".to_vec(), 1, "panic").await;
        let Ok(Outcome::DeadLettered(letter)) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(letter.kind, RejectionKind::Unreadable);
        assert_eq!(rec.settled, ["dead", "dead"]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_settlement_is_an_error_and_nothing_is_claimed_done() {
        let (job, payload, _) = job(Some("acme"), 1);
        let mut rec = Recorder {
            fail: true,
            ..Recorder::default()
        };
        let outcome = run(&mut rec, Ok(job.clone()), payload.clone(), 1, "ok").await;
        assert_eq!(outcome, Err("connection lost".to_owned()));
        let outcome = run(&mut rec, Ok(job), payload, 3, "fail").await;
        assert_eq!(outcome, Err("connection lost".to_owned()));
        assert!(rec.letters.is_empty());
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_long_handler_keeps_its_lease_alive() {
        let cx = Context::root().with_tenant(TenantId::new("acme").expect("valid"));
        let job = Job::new(&cx, 1u32);
        let mut rec = Recorder {
            beat_every: Some(Duration::from_secs(1)),
            ..Recorder::default()
        };
        let delivery = Delivery::new(Ok(job), Vec::new(), 1, &mut rec);
        let outcome = process("q", &policy(), delivery, |_job: Job<u32>| async {
            tokio::time::sleep(Duration::from_millis(3500)).await;
            Ok::<_, String>(())
        })
        .await;
        assert_eq!(outcome, Ok(Outcome::Completed(())));
        assert_eq!(rec.beats, 3);
        assert_eq!(rec.settled, ["ack"]);
    }
}
