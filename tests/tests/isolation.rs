//! Concurrency isolation: 1,200 jobs on a multi-thread runtime, each yielding
//! at random points and checking at every await that it still sees its own
//! trace id and tenant. Beside it, the control: the same jobs through an
//! ambient, `enter_with`-style thread-local setter *do* cross-talk, which
//! shows the check catches the bug it guards against.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use context_runtime::{
    requires_tenant, with_context, Carrier, CarrierError, Context, TenantId, TenantRequired,
    TraceId,
};

const JOBS: usize = 1_200;
const TENANTS: [&str; 3] = ["acme", "globex", "initech"];

#[derive(Debug)]
enum JobError {
    Tenant,
    Carrier,
}

impl From<TenantRequired> for JobError {
    fn from(_: TenantRequired) -> Self {
        JobError::Tenant
    }
}

impl From<CarrierError> for JobError {
    fn from(_: CarrierError) -> Self {
        JobError::Carrier
    }
}

struct Job {
    ctx: Carrier,
    expected_trace: TraceId,
    expected_tenant: TenantId,
    seed: u64,
}

fn make_jobs() -> Vec<Job> {
    (0..JOBS)
        .map(|i| {
            let tenant = TenantId::new(TENANTS[i % TENANTS.len()]).expect("valid tenant");
            let cx = Context::root().with_tenant(tenant.clone());
            Job {
                ctx: cx.to_carrier(),
                expected_trace: cx.trace_id(),
                expected_tenant: tenant,
                seed: i as u64,
            }
        })
        .collect()
}

/// Yields a random number of times, sometimes through the timer, so that
/// jobs interleave on the runtime's worker threads.
async fn random_pause(rng: &mut fastrand::Rng) {
    for _ in 0..rng.usize(0..3) {
        tokio::task::yield_now().await;
    }
    if rng.u8(..) < 40 {
        tokio::time::sleep(Duration::from_micros(rng.u64(1..300))).await;
    }
}

/// Counts the checkpoints at which a job saw another job's identity.
fn check(
    seen_trace: Option<TraceId>,
    seen_tenant: Option<TenantId>,
    job: &Job,
    checks: &AtomicUsize,
    mismatches: &AtomicUsize,
) {
    checks.fetch_add(1, Ordering::Relaxed);
    if seen_trace != Some(job.expected_trace) || seen_tenant.as_ref() != Some(&job.expected_tenant)
    {
        mismatches.fetch_add(1, Ordering::Relaxed);
    }
}

/// The safe path: the handler is annotated, the body runs inside the job's scope.
#[with_context(from = "job.ctx")]
#[requires_tenant]
async fn scoped_handler(
    job: Job,
    checks: Arc<AtomicUsize>,
    mismatches: Arc<AtomicUsize>,
) -> Result<(), JobError> {
    let mut rng = fastrand::Rng::with_seed(job.seed);
    for _ in 0..6 {
        check(
            context_runtime::trace_id(),
            context_runtime::tenant().ok(),
            &job,
            &checks,
            &mismatches,
        );
        random_pause(&mut rng).await;
    }
    // A task spawned from inside the job carries the same identity.
    let (trace, tenant) = context_runtime::spawn(async {
        (context_runtime::trace_id(), context_runtime::tenant().ok())
    })
    .await
    .expect("spawned task");
    check(trace, tenant, &job, &checks, &mismatches);
    Ok(())
}

thread_local! {
    /// What an `enter_with`-style API amounts to: one ambient slot per
    /// thread, shared by every task that thread polls.
    static AMBIENT: RefCell<Option<Context>> = const { RefCell::new(None) };
}

fn enter_with(cx: Context) {
    AMBIENT.with(|slot| *slot.borrow_mut() = Some(cx));
}

fn ambient_trace_and_tenant() -> (Option<TraceId>, Option<TenantId>) {
    AMBIENT.with(|slot| {
        let slot = slot.borrow();
        (
            slot.as_ref().map(Context::trace_id),
            slot.as_ref().and_then(|cx| cx.tenant().cloned()),
        )
    })
}

/// The control: the same job, with the context set ambiently on entry.
async fn ambient_handler(job: Job, checks: Arc<AtomicUsize>, mismatches: Arc<AtomicUsize>) {
    enter_with(Context::from_carrier(&job.ctx).expect("valid carrier"));
    let mut rng = fastrand::Rng::with_seed(job.seed);
    for _ in 0..6 {
        let (trace, tenant) = ambient_trace_and_tenant();
        check(trace, tenant, &job, &checks, &mismatches);
        random_pause(&mut rng).await;
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime")
}

struct Outcome {
    checks: usize,
    mismatches: usize,
}

fn run_all<Fut>(handler: impl Fn(Job, Arc<AtomicUsize>, Arc<AtomicUsize>) -> Fut) -> Outcome
where
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let checks = Arc::new(AtomicUsize::new(0));
    let mismatches = Arc::new(AtomicUsize::new(0));
    let rt = runtime();
    rt.block_on(async {
        let handles: Vec<_> = make_jobs()
            .into_iter()
            .map(|job| tokio::spawn(handler(job, checks.clone(), mismatches.clone())))
            .collect();
        assert_eq!(handles.len(), JOBS);
        for handle in handles {
            handle.await.expect("job task");
        }
    });
    Outcome {
        checks: checks.load(Ordering::Relaxed),
        mismatches: mismatches.load(Ordering::Relaxed),
    }
}

#[test]
fn concurrent_jobs_only_ever_see_their_own_context() {
    let outcome = run_all(|job, checks, mismatches| async move {
        scoped_handler(job, checks, mismatches)
            .await
            .expect("every job has a tenant");
    });
    assert_eq!(outcome.checks, JOBS * 7, "every checkpoint ran");
    assert_eq!(outcome.mismatches, 0, "a job saw another job's context");
}

#[test]
fn control_an_ambient_setter_does_cross_talk() {
    let outcome = run_all(ambient_handler);
    assert_eq!(outcome.checks, JOBS * 6, "every checkpoint ran");
    assert!(
        outcome.mismatches > 0,
        "the ambient control produced no mismatch: the isolation test could not catch cross-talk"
    );
}
