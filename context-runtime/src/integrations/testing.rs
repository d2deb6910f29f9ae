//! A cross-talk test kit for your own handlers (feature `testing`).
//!
//! [`CrossTalk`] runs many jobs across several tenants through your handler,
//! concurrently on a multi-thread runtime with random yields, and compares
//! the context the handler observed at each [`checkpoint`] with the job's
//! own. Its built-in control runs the same jobs through an ambient,
//! `enter_with`-style handler first and fails if *that* shows no cross-talk:
//! a clean report then means something, on this machine, with these
//! settings.
//!
//! ```
//! use context_runtime::testing::{self, CrossTalk, TestJob};
//! use context_runtime::{requires_tenant, with_context, TenantRequired};
//!
//! // The handler under test (in your code, the one your worker runs).
//! #[with_context(from = "job")]
//! #[requires_tenant]
//! async fn handle(job: TestJob) -> Result<(), TenantRequired> {
//!     for _ in 0..3 {
//!         testing::checkpoint(); // what the handler sees now
//!         testing::pause().await; // let other jobs run on this thread
//!     }
//!     Ok(())
//! }
//!
//! let report = CrossTalk::new().jobs(200).run_checked(|job| async move {
//!     handle(job).await.unwrap();
//! });
//! report.assert_clean();
//! ```
//!
//! A handler's checkpoints are usually in a test double it calls (a
//! repository, a client) rather than in the handler itself. The job a
//! checkpoint belongs to is known from the task the kit runs it in, not from
//! the context, so a handler that loses or swaps its context is caught. A
//! checkpoint in a task the handler spawned records nothing (the kit cannot
//! tell which job it belongs to); use [`TestJob::checkpoint`] there.
//!
//! Small helpers build contexts in tests: [`context`], [`context_for_user`],
//! [`carrier`] and [`tenant_id`].

use std::cell::RefCell;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::model::context::Context;
use crate::model::tenant::TenantId;
use crate::model::trace::TraceId;
use crate::model::user::UserRef;
use crate::propagate::source::ContextSource;
use crate::wire::carrier::Carrier;

/// A context with a fresh trace id and `tenant`.
///
/// ```
/// let cx = context_runtime::testing::context("acme");
/// assert_eq!(cx.tenant().unwrap().as_str(), "acme");
/// ```
///
/// # Panics
///
/// When `tenant` is not a valid [`TenantId`].
pub fn context(tenant: &str) -> Context {
    Context::root().with_tenant(tenant_id(tenant))
}

/// A context with a fresh trace id, `tenant` and the user `user:{id}`.
///
/// ```
/// let cx = context_runtime::testing::context_for_user("acme", "42");
/// assert_eq!(cx.user().unwrap().to_string(), "user:42");
/// ```
///
/// # Panics
///
/// When `tenant` or `id` is invalid.
pub fn context_for_user(tenant: &str, id: &str) -> Context {
    let user = UserRef::user(id.to_owned()).expect("a valid user id");
    context(tenant).with_user(user)
}

/// The [`Carrier`] of a fresh context with `tenant`, as a job would carry it.
///
/// ```
/// let carrier = context_runtime::testing::carrier("acme");
/// let cx = context_runtime::Context::from_carrier(&carrier).unwrap();
/// assert_eq!(cx.tenant().unwrap().as_str(), "acme");
/// ```
///
/// # Panics
///
/// When `tenant` is not a valid [`TenantId`].
pub fn carrier(tenant: &str) -> Carrier {
    context(tenant).to_carrier()
}

/// `tenant` as a [`TenantId`].
///
/// ```
/// assert_eq!(context_runtime::testing::tenant_id("acme").as_str(), "acme");
/// ```
///
/// # Panics
///
/// When `tenant` is not a valid tenant id.
pub fn tenant_id(tenant: &str) -> TenantId {
    TenantId::new(tenant).expect("a valid tenant id")
}

tokio::task_local! {
    /// The job of the kit task being polled.
    static JOB: Arc<Recorder>;
}

/// Records what the handler saw now ([`crate::current()`]) against the job
/// whose task is running. Outside a [`CrossTalk`] job it does nothing.
///
/// ```
/// context_runtime::testing::checkpoint(); // outside a run: nothing happens
/// ```
pub fn checkpoint() {
    observe(crate::scope::store::current().as_ref());
}

/// Records `seen` as what the handler observed, against the job whose task
/// is running: for a handler that keeps its identity somewhere else than in
/// a scope (the kit's own control does). Outside a job it does nothing.
///
/// ```
/// let cx = context_runtime::testing::context("acme");
/// context_runtime::testing::observe(Some(&cx));
/// ```
pub fn observe(seen: Option<&Context>) {
    let _ = JOB.try_with(|job| job.record(seen));
}

/// Yields to the runtime zero to two times, and now and then sleeps a few
/// microseconds, so that jobs interleave on the worker threads.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// context_runtime::testing::pause().await;
/// # }
/// ```
pub async fn pause() {
    for _ in 0..fastrand::usize(0..3) {
        tokio::task::yield_now().await;
    }
    if fastrand::u8(..) < 40 {
        tokio::time::sleep(Duration::from_micros(fastrand::u64(1..300))).await;
    }
}

/// One job of a [`CrossTalk`] run: its own context, and how to read it.
///
/// It is a [`ContextSource`] (`#[with_context(from = "job")]`) and gives
/// its [`Carrier`] to build your own payload.
#[derive(Clone)]
pub struct TestJob {
    recorder: Arc<Recorder>,
}

impl TestJob {
    /// The job's number, from 0.
    pub fn index(&self) -> usize {
        self.recorder.index
    }

    /// The job's own context: what every checkpoint should see.
    pub fn context(&self) -> &Context {
        &self.recorder.expected
    }

    /// The job's tenant.
    pub fn tenant(&self) -> &TenantId {
        self.recorder
            .expected
            .tenant()
            .expect("every test job has a tenant")
    }

    /// The job's context as a [`Carrier`], to put in your own payload.
    pub fn carrier(&self) -> Carrier {
        self.recorder.expected.to_carrier()
    }

    /// Like [`checkpoint`], from any task (a task the handler spawned).
    pub fn checkpoint(&self) {
        self.recorder
            .record(crate::scope::store::current().as_ref());
    }
}

impl fmt::Debug for TestJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestJob")
            .field("index", &self.index())
            .field("context", self.context())
            .finish()
    }
}

/// The job's own context.
impl ContextSource for TestJob {
    type Error = Infallible;

    fn to_context(&self) -> Result<Context, Infallible> {
        Ok(self.recorder.expected.clone())
    }
}

/// What one job saw, shared with the run's report.
struct Recorder {
    index: usize,
    expected: Context,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    checkpoints: Mutex<Vec<usize>>,
    mismatches: Mutex<Vec<Mismatch>>,
}

impl Recorder {
    fn record(&self, seen: Option<&Context>) {
        let checkpoint = {
            let mut counts = self.shared.checkpoints.lock().expect("checkpoints");
            let count = &mut counts[self.index];
            *count += 1;
            *count - 1
        };
        let seen_trace = seen.map(Context::trace_id);
        let seen_tenant = seen.and_then(|cx| cx.tenant().cloned());
        if seen_trace != Some(self.expected.trace_id())
            || seen_tenant.as_ref() != self.expected.tenant()
        {
            self.shared
                .mismatches
                .lock()
                .expect("mismatches")
                .push(Mismatch {
                    job: self.index,
                    checkpoint,
                    expected_trace: self.expected.trace_id(),
                    expected_tenant: self.expected.tenant().cloned(),
                    seen_trace,
                    seen_tenant,
                });
        }
    }
}

/// A checkpoint at which a job saw another identity than its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The job's number.
    pub job: usize,
    /// The checkpoint's number within the job, from 0.
    pub checkpoint: usize,
    /// The job's own trace id.
    pub expected_trace: TraceId,
    /// The job's own tenant.
    pub expected_tenant: Option<TenantId>,
    /// The trace id seen (`None`: no context at all).
    pub seen_trace: Option<TraceId>,
    /// The tenant seen.
    pub seen_tenant: Option<TenantId>,
}

/// The outcome of a run: how many checkpoints ran, and every mismatch.
#[derive(Debug, Clone)]
pub struct Report {
    /// How many jobs ran.
    pub jobs: usize,
    /// How many checkpoints ran, over all jobs.
    pub checkpoints: usize,
    /// How many jobs reached no checkpoint.
    pub jobs_without_checkpoint: usize,
    /// Every checkpoint that saw another identity than its job's.
    pub mismatches: Vec<Mismatch>,
}

impl Report {
    /// No mismatch, and every job reached a checkpoint.
    pub fn is_clean(&self) -> bool {
        self.mismatches.is_empty() && self.jobs_without_checkpoint == 0 && self.checkpoints > 0
    }

    /// Panics with a summary unless [`is_clean`](Report::is_clean).
    ///
    /// # Panics
    ///
    /// On a mismatch, or when a job reached no checkpoint (a test that
    /// observes nothing cannot catch cross-talk).
    pub fn assert_clean(&self) {
        assert!(
            self.jobs_without_checkpoint == 0 && self.checkpoints > 0,
            "{} of {} jobs reached no checkpoint: call `testing::checkpoint()` where the handler reads its context",
            self.jobs_without_checkpoint,
            self.jobs,
        );
        assert!(
            self.mismatches.is_empty(),
            "cross-talk: {} of {} checkpoints saw another job's context; first: {:?}",
            self.mismatches.len(),
            self.checkpoints,
            self.mismatches.first(),
        );
    }
}

/// Runs jobs through a handler and reports every checkpoint at which a job
/// saw another job's context (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct CrossTalk {
    jobs: usize,
    tenants: Vec<TenantId>,
    concurrency: usize,
    worker_threads: usize,
}

impl Default for CrossTalk {
    fn default() -> Self {
        CrossTalk::new()
    }
}

impl CrossTalk {
    /// 1,000 jobs over the tenants `tenant-a` to `tenant-d`, 64 at a time,
    /// on 4 worker threads.
    pub fn new() -> Self {
        CrossTalk {
            jobs: 1_000,
            tenants: ["tenant-a", "tenant-b", "tenant-c", "tenant-d"]
                .into_iter()
                .map(tenant_id)
                .collect(),
            concurrency: 64,
            worker_threads: 4,
        }
    }

    /// How many jobs to run.
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs;
        self
    }

    /// The tenants the jobs take in turn.
    ///
    /// # Panics
    ///
    /// When `tenants` is empty.
    pub fn tenants(mut self, tenants: impl IntoIterator<Item = TenantId>) -> Self {
        self.tenants = tenants.into_iter().collect();
        assert!(!self.tenants.is_empty(), "at least one tenant");
        self
    }

    /// How many jobs are in flight at once.
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// How many worker threads the run's runtime has.
    pub fn worker_threads(mut self, worker_threads: usize) -> Self {
        self.worker_threads = worker_threads.max(1);
        self
    }

    /// Runs every job through `handler` on a new multi-thread runtime (call
    /// it from a plain `#[test]`, not from inside a runtime).
    ///
    /// # Panics
    ///
    /// When the runtime cannot be built, or a job panics.
    pub fn run<H, F>(&self, handler: H) -> Report
    where
        H: Fn(TestJob) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let shared = Arc::new(Shared {
            checkpoints: Mutex::new(vec![0; self.jobs]),
            mismatches: Mutex::new(Vec::new()),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.worker_threads)
            .enable_all()
            .build()
            .expect("a runtime for the cross-talk run");
        let handler = Arc::new(handler);
        runtime.block_on(async {
            let permits = Arc::new(tokio::sync::Semaphore::new(self.concurrency));
            let mut tasks = Vec::with_capacity(self.jobs);
            for index in 0..self.jobs {
                let tenant = self.tenants[index % self.tenants.len()].clone();
                let recorder = Arc::new(Recorder {
                    index,
                    expected: Context::root().with_tenant(tenant),
                    shared: shared.clone(),
                });
                let permit = permits.clone().acquire_owned().await.expect("permits");
                let handler = handler.clone();
                let job = TestJob {
                    recorder: recorder.clone(),
                };
                // A plain spawn on purpose: the job must not inherit anything.
                tasks.push(tokio::spawn(JOB.scope(recorder, async move {
                    pause().await;
                    handler(job).await;
                    drop(permit);
                })));
            }
            for task in tasks {
                if let Err(error) = task.await {
                    std::panic::resume_unwind(error.into_panic());
                }
            }
        });
        let checkpoints = shared.checkpoints.lock().expect("checkpoints");
        let mut mismatches = shared.mismatches.lock().expect("mismatches").clone();
        mismatches.sort_by_key(|m| (m.job, m.checkpoint));
        Report {
            jobs: self.jobs,
            checkpoints: checkpoints.iter().sum(),
            jobs_without_checkpoint: checkpoints.iter().filter(|&&n| n == 0).count(),
            mismatches,
        }
    }

    /// The built-in control: the same jobs through a handler that sets its
    /// context ambiently (one "current" slot per thread, like `enter_with`
    /// or a guard held across `.await`) and reads it back after each pause.
    /// Its report has mismatches whenever these settings can show
    /// cross-talk on this machine.
    pub fn control(&self) -> Report {
        self.run(ambient_handler)
    }

    /// Runs the [control](CrossTalk::control) first, then `handler`.
    ///
    /// # Panics
    ///
    /// When the control shows no cross-talk: with these settings (too few
    /// jobs, a concurrency of 1…) a clean report would prove nothing.
    pub fn run_checked<H, F>(&self, handler: H) -> Report
    where
        H: Fn(TestJob) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let control = self.control();
        assert!(
            !control.mismatches.is_empty(),
            "the ambient control showed no cross-talk over {} checkpoints: raise `jobs`, `concurrency` or `worker_threads`, or a clean report proves nothing",
            control.checkpoints,
        );
        self.run(handler)
    }
}

thread_local! {
    /// The control's ambient slot: one "current" per thread, shared by
    /// every task that thread polls.
    static AMBIENT: RefCell<Option<Context>> = const { RefCell::new(None) };
}

/// The control: sets the job's context ambiently on entry, then reads the
/// slot back after each pause.
async fn ambient_handler(job: TestJob) {
    let own = job.context().clone();
    AMBIENT.with(|slot| *slot.borrow_mut() = Some(own));
    for _ in 0..4 {
        let seen = AMBIENT.with(|slot| slot.borrow().clone());
        observe(seen.as_ref());
        pause().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_catches_an_ambient_set_and_a_scoped_handler_is_clean() {
        let kit = CrossTalk::new().jobs(300);
        let control = kit.control();
        assert!(!control.mismatches.is_empty(), "{control:?}");
        assert_eq!(control.checkpoints, 300 * 4);

        let report = kit.run_checked(|job| async move {
            let cx = job.context().clone();
            cx.scope(async {
                for _ in 0..3 {
                    checkpoint();
                    pause().await;
                }
            })
            .await;
        });
        report.assert_clean();
        assert_eq!(report.checkpoints, 300 * 3);
    }

    #[test]
    fn a_handler_without_its_context_is_reported() {
        let report = CrossTalk::new().jobs(20).run(|_job| async move {
            checkpoint();
        });
        assert_eq!(report.mismatches.len(), 20);
        assert_eq!(report.mismatches[0].seen_trace, None);
        assert!(!report.is_clean());
    }

    #[test]
    #[should_panic(expected = "reached no checkpoint")]
    fn a_run_without_checkpoints_is_not_clean() {
        CrossTalk::new()
            .jobs(5)
            .run(|_job| async move {})
            .assert_clean();
    }
}
