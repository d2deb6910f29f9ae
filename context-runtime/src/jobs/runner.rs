//! The worker runner: the consume loop users would otherwise write, one
//! for every broker ([`Transport`]).

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::task::JoinSet;

use super::pipeline::{process, Delivery, Settle};
use super::{Outcome, Policy, Rejection};
use crate::propagate::source::ContextSource;

/// Where a [`Worker`] takes its jobs from: a broker's consumer.
///
/// [`receive`](Transport::receive) waits with the engine's blocking read
/// and returns the deliveries that came. Its wait must be bounded (a few
/// seconds at most): on shutdown the worker finishes a read in flight.
pub trait Transport: Send + 'static {
    /// The job a handler receives.
    type Job: ContextSource<Error: Into<Rejection>> + Send + 'static;
    /// How a delivery is settled.
    type Settle: Settle + 'static;
    /// What the broker's client fails with.
    type Error: fmt::Display + Send + 'static;

    /// The queue's name (for dead letters and logs).
    fn queue(&self) -> &str;

    /// The policy jobs are admitted and retried with.
    fn policy(&self) -> &Policy;

    /// Up to `max` deliveries; none when nothing came within the
    /// transport's wait.
    #[allow(clippy::type_complexity)]
    fn receive(
        &mut self,
        max: usize,
    ) -> impl Future<Output = Result<Vec<Delivery<Self::Job, Self::Settle>>, Self::Error>> + Send;
}

/// What became of one delivery, as [`Worker::on_outcome`] sees it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Handled<R> {
    /// The job's id.
    pub job_id: Option<String>,
    /// The delivery's attempt (1 for the first).
    pub attempt: u32,
    /// The outcome, or why the delivery could not be settled (the broker
    /// then delivers the job again).
    pub outcome: Result<Outcome<R>, String>,
}

/// How a [`Worker::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stopped {
    /// Jobs still running at the end of the shutdown grace period: they
    /// were stopped unsettled, and the broker delivers them again.
    pub abandoned: usize,
}

type Callback<R> = Arc<dyn Fn(Handled<R>) + Send + Sync>;

/// Runs a handler over a broker's jobs: `concurrency` at a time, each
/// inside its job's context (do not scope the handler again with
/// `#[with_context]`: it already runs in the job's context), settled by the
/// [pipeline](super::pipeline), until a shutdown signal.
///
/// - **Empty queue**: the transport waits with the broker's blocking read;
///   there is no polling loop.
/// - **Broker errors** (a lost connection): logged, then retried after a
///   back-off (100 ms doubling to 5 s); the worker keeps running, and what
///   it held is delivered again by the broker.
/// - **Shutdown**: when the `shutdown` future passed to [`run`](Worker::run)
///   completes, no new job is taken (a read already waiting is finished,
///   and what it brought runs); jobs in flight get
///   [`shutdown_grace`](Worker::shutdown_grace) (30 s by default) to finish
///   and settle; the rest are stopped unsettled and the broker delivers
///   them again.
///
/// ```no_run
/// # #[cfg(feature = "redis")]
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use context_runtime::jobs::{Job, Worker};
/// use context_runtime::redis::Queue;
///
/// async fn send_invoice(job: Job<u64>) -> Result<(), std::io::Error> {
///     println!("invoice {} for {}", job.data, context_runtime::tenant().unwrap());
///     Ok(())
/// }
///
/// let client = redis::Client::open("redis://127.0.0.1:6379")?;
/// let consumer = Queue::new("invoices").consumer::<u64>(client).await?;
/// Worker::new(consumer, send_invoice)
///     .concurrency(8)
///     .on_outcome(|handled| eprintln!("{:?}: {:?}", handled.job_id, handled.outcome))
///     .run(async { tokio::signal::ctrl_c().await.ok(); })
///     .await;
/// # Ok(())
/// # }
/// ```
pub struct Worker<T: Transport, F, R> {
    transport: T,
    handler: Arc<F>,
    concurrency: usize,
    grace: Duration,
    on_outcome: Option<Callback<R>>,
}

impl<T: Transport, F, R> fmt::Debug for Worker<T, F, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("queue", &self.transport.queue())
            .field("concurrency", &self.concurrency)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl<T, F, Fut, R, E> Worker<T, F, R>
where
    T: Transport,
    F: Fn(T::Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send + 'static,
    R: Send + 'static,
    E: fmt::Display + 'static,
{
    /// A worker running `handler` over the jobs of `transport`, one at a
    /// time until [`concurrency`](Worker::concurrency) says otherwise.
    pub fn new(transport: T, handler: F) -> Self {
        Worker {
            transport,
            handler: Arc::new(handler),
            concurrency: 1,
            grace: Duration::from_secs(30),
            on_outcome: None,
        }
    }

    /// How many jobs run at once (at least 1).
    pub fn concurrency(mut self, jobs: usize) -> Self {
        self.concurrency = jobs.max(1);
        self
    }

    /// How long jobs in flight may take to finish after the shutdown signal.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Called with what became of every delivery (from the task that ran
    /// it; send it to a channel for anything slow).
    pub fn on_outcome(mut self, callback: impl Fn(Handled<R>) + Send + Sync + 'static) -> Self {
        self.on_outcome = Some(Arc::new(callback));
        self
    }

    /// Runs until `shutdown` completes, then drains (see [`Worker`]).
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Stopped {
        let mut shutdown = pin!(shutdown);
        let mut tasks = JoinSet::new();
        let queue: Arc<str> = Arc::from(self.transport.queue());
        let policy = Arc::new(self.transport.policy().clone());
        let mut backoff = Duration::from_millis(100);
        loop {
            while let Some(joined) = tasks.try_join_next() {
                report_panic(joined);
            }
            if tasks.len() >= self.concurrency {
                match first(tasks.join_next(), shutdown.as_mut()).await {
                    Either::Left(joined) => {
                        if let Some(joined) = joined {
                            report_panic(joined);
                        }
                        continue;
                    }
                    Either::Right(()) => break,
                }
            }
            let free = self.concurrency - tasks.len();
            let mut receive = pin!(self.transport.receive(free));
            let mut stopping = false;
            let received = match first(receive.as_mut(), shutdown.as_mut()).await {
                Either::Left(received) => received,
                Either::Right(()) => {
                    // The read in flight may already hold jobs: its wait is
                    // bounded, so finish it and run what it brought within
                    // the grace period, rather than leave them to the
                    // broker's redelivery.
                    stopping = true;
                    receive.await
                }
            };
            let deliveries = match received {
                Ok(deliveries) => {
                    backoff = Duration::from_millis(100);
                    deliveries
                }
                Err(error) => {
                    tracing::warn!(
                        target: "context_runtime::jobs",
                        queue = &*queue,
                        %error,
                        retry_in = ?backoff,
                        "could not receive jobs"
                    );
                    if stopping {
                        break;
                    }
                    let pause = tokio::time::sleep(backoff);
                    if let Either::Right(()) = first(pause, shutdown.as_mut()).await {
                        break;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            for delivery in deliveries {
                let (queue, handler) = (Arc::clone(&queue), Arc::clone(&self.handler));
                let policy = Arc::clone(&policy);
                let on_outcome = self.on_outcome.clone();
                tasks.spawn(async move {
                    let (job_id, attempt) = (delivery.job_id.clone(), delivery.attempt);
                    let outcome = process(&queue, &policy, delivery, |job| handler(job)).await;
                    let outcome = outcome.map_err(|e| e.to_string());
                    if let Err(error) = &outcome {
                        tracing::warn!(
                            target: "context_runtime::jobs",
                            queue = &*queue,
                            job_id = job_id.as_deref(),
                            %error,
                            "could not settle a job; the broker delivers it again"
                        );
                    }
                    if let Some(callback) = on_outcome {
                        callback(Handled {
                            job_id,
                            attempt,
                            outcome,
                        });
                    }
                });
            }
            if stopping {
                break;
            }
        }

        // Shutdown: no new jobs; the ones in flight get the grace period.
        let drain = async {
            while let Some(joined) = tasks.join_next().await {
                report_panic(joined);
            }
        };
        let drained = matches!(
            first(drain, tokio::time::sleep(self.grace)).await,
            Either::Left(())
        );
        let abandoned = if drained { 0 } else { tasks.len() };
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        Stopped { abandoned }
    }
}

fn report_panic(joined: Result<(), tokio::task::JoinError>) {
    if let Err(error) = joined {
        if error.is_panic() {
            tracing::error!(
                target: "context_runtime::jobs",
                %error,
                "a job's task panicked outside its handler (an on_outcome callback?)"
            );
        }
    }
}

enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Whichever of `a` and `b` completes first (`a` when both are ready).
async fn first<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let (mut a, mut b) = (pin!(a), pin!(b));
    poll_fn(|cx| {
        if let Poll::Ready(out) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(out));
        }
        if let Poll::Ready(out) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(out));
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;
    use crate::jobs::{DeadLetter, Job};
    use crate::model::context::Context;
    use crate::model::tenant::TenantId;

    /// The jobs waiting, with their next attempt.
    type Waiting = VecDeque<(Job<u32>, u32)>;

    /// A queue in memory: a retry puts the job back, with the next attempt.
    #[derive(Clone, Default)]
    struct Memory {
        waiting: Arc<Mutex<Waiting>>,
        settled: Arc<Mutex<Vec<String>>>,
    }

    struct MemorySettle {
        memory: Memory,
        job: Job<u32>,
        attempt: u32,
    }

    impl Settle for MemorySettle {
        type Error = String;

        async fn ack(&mut self) -> Result<(), String> {
            let line = format!("ack {}", self.job.data);
            self.memory.settled.lock().expect("lock").push(line);
            Ok(())
        }

        async fn retry(&mut self, _delay: Duration) -> Result<(), String> {
            let again = (self.job.clone(), self.attempt + 1);
            self.memory.waiting.lock().expect("lock").push_back(again);
            Ok(())
        }

        async fn dead_letter(&mut self, _letter: &DeadLetter) -> Result<(), String> {
            let line = format!("dead {}", self.job.data);
            self.memory.settled.lock().expect("lock").push(line);
            Ok(())
        }
    }

    impl Transport for Memory {
        type Job = Job<u32>;
        type Settle = MemorySettle;
        type Error = String;

        fn queue(&self) -> &str {
            "memory"
        }

        fn policy(&self) -> &Policy {
            static POLICY: std::sync::OnceLock<Policy> = std::sync::OnceLock::new();
            POLICY.get_or_init(|| Policy::new().backoff(Duration::ZERO, Duration::ZERO))
        }

        async fn receive(
            &mut self,
            max: usize,
        ) -> Result<Vec<Delivery<Job<u32>, MemorySettle>>, String> {
            let taken: Vec<_> = {
                let mut waiting = self.waiting.lock().expect("lock");
                let n = max.min(waiting.len());
                waiting.drain(..n).collect()
            };
            if taken.is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(taken
                .into_iter()
                .map(|(mut job, attempt)| {
                    job.set_attempt(attempt);
                    let settle = MemorySettle {
                        memory: self.clone(),
                        job: job.clone(),
                        attempt,
                    };
                    Delivery::new(Ok(job), Vec::new(), attempt, settle)
                })
                .collect())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_runner_handles_every_job_concurrently_and_stops_on_the_signal() {
        let memory = Memory::default();
        let cx = Context::root().with_tenant(TenantId::new("acme").expect("valid"));
        for n in 0..40u32 {
            let job = Job::new(&cx, n);
            memory.waiting.lock().expect("lock").push_back((job, 1));
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (running2, most2) = (Arc::clone(&running), Arc::clone(&most));
        let worker = Worker::new(memory.clone(), move |job: Job<u32>| {
            let (running, most) = (Arc::clone(&running2), Arc::clone(&most2));
            async move {
                use std::sync::atomic::Ordering::SeqCst;
                let now = running.fetch_add(1, SeqCst) + 1;
                most.fetch_max(now, SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                running.fetch_sub(1, SeqCst);
                match job.data % 10 {
                    // Panics on the first attempt, succeeds on the second.
                    3 if job.attempt() == 1 => panic!("first try of {}", job.data),
                    // Always fails: dead-lettered after 3 attempts.
                    7 => Err("never".to_owned()),
                    _ => Ok(crate::scope::store::tenant().ok().map(|t| t.to_string())),
                }
            }
        })
        .concurrency(4)
        .on_outcome(move |handled| {
            let _ = tx.send(handled);
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(worker.run(async {
            let _ = stop_rx.await;
        }));
        let mut finals = 0;
        let mut retried = 0;
        while finals < 40 {
            let handled = tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .expect("every job is handled in time")
                .expect("the worker runs");
            match handled.outcome.expect("settled") {
                Outcome::Completed(tenant) => {
                    assert_eq!(tenant.as_deref(), Some("acme"));
                    finals += 1;
                }
                Outcome::DeadLettered(_) => finals += 1,
                Outcome::Retried { .. } => retried += 1,
            }
        }
        let _ = stop_tx.send(());
        let stopped = run.await.expect("the runner ends");
        assert_eq!(stopped.abandoned, 0);
        assert_eq!(
            retried,
            4 + 4 * 2,
            "4 panics once, 4 fail twice before the last"
        );
        let settled = memory.settled.lock().expect("lock").clone();
        assert_eq!(settled.iter().filter(|s| s.starts_with("dead")).count(), 4);
        assert_eq!(settled.iter().filter(|s| s.starts_with("ack")).count(), 36);
        let most = most.load(std::sync::atomic::Ordering::SeqCst);
        assert!((2..=4).contains(&most), "at most 4 at once, saw {most}");
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn on_shutdown_jobs_in_flight_finish_within_the_grace_or_are_left_to_the_broker() {
        let memory = Memory::default();
        let cx = Context::root().with_tenant(TenantId::new("acme").expect("valid"));
        for n in [1u32, 60] {
            memory
                .waiting
                .lock()
                .expect("lock")
                .push_back((Job::new(&cx, n), 1));
        }
        let worker = Worker::new(memory.clone(), |job: Job<u32>| async move {
            // Job 1 takes 1 s, job 60 takes 60 s.
            tokio::time::sleep(Duration::from_secs(u64::from(job.data))).await;
            Ok::<_, String>(())
        })
        .concurrency(2)
        .shutdown_grace(Duration::from_secs(10));
        let stopped = worker
            .run(tokio::time::sleep(Duration::from_millis(100)))
            .await;
        assert_eq!(stopped.abandoned, 1);
        assert_eq!(*memory.settled.lock().expect("lock"), ["ack 1"]);
    }
}
