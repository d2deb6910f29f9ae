//! Log lines under concurrency (feature `tracing`): 200 jobs on a
//! multi-thread runtime log at several await points, in a spawned task, on the
//! blocking pool and inside their own spans, with no logging code beyond
//! `tracing::info!`; every captured line must carry its own job's trace id,
//! tenant and user, and nothing else's. Beside it, the control: the same jobs
//! with the identity in a span entered by a guard held across `.await` (the
//! usual mistake) produce lines with other jobs' identities.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use context_runtime::{with_context, Carrier, CarrierError, Context, TenantId, UserRef};
use tracing::Instrument as _;

const JOBS: usize = 200;
const TENANTS: [&str; 3] = ["acme", "globex", "initech"];
/// Lines per job: four steps, a spawned task, a blocking task, a user span.
const LINES_PER_JOB: usize = 7;

/// Everything the global subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The process-wide subscriber (worker threads need a global one), and a
/// lock so that one test at a time uses it.
fn capture() -> (MutexGuard<'static, ()>, Captured) {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let captured = CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .without_time()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        captured
    });
    let guard = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    captured.0.lock().expect("capture").clear();
    (guard, captured.clone())
}

fn lines(captured: &Captured) -> Vec<String> {
    String::from_utf8(captured.0.lock().expect("capture").clone())
        .expect("utf-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Every value of `key=` in a formatted line (span fields and event fields).
fn values<'a>(line: &'a str, key: &str) -> Vec<&'a str> {
    let pattern = format!("{key}=");
    line.match_indices(&pattern)
        .filter(|(at, _)| *at == 0 || matches!(line.as_bytes()[at - 1], b'{' | b' '))
        .map(|(at, _)| {
            let rest = &line[at + pattern.len()..];
            let end = rest.find([' ', '}']).unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

struct Expected {
    trace_id: String,
    tenant: Option<String>,
    user: Option<String>,
}

struct Job {
    index: usize,
    ctx: Carrier,
    seed: u64,
}

/// Jobs for three tenants, one in ten without a tenant, one in three with a user.
fn make_jobs() -> (Vec<Job>, Vec<Expected>) {
    (0..JOBS)
        .map(|i| {
            let mut cx = Context::root();
            if i % 10 != 0 {
                cx = cx.with_tenant(TenantId::new(TENANTS[i % 3]).expect("valid"));
            }
            if i % 3 == 0 {
                cx = cx.with_user(UserRef::user(i as i64).expect("valid"));
            }
            let expected = Expected {
                trace_id: cx.trace_id().to_string(),
                tenant: cx.tenant().map(|t| t.as_str().to_owned()),
                user: cx.user().map(ToString::to_string),
            };
            let job = Job {
                index: i,
                ctx: cx.to_carrier(),
                seed: i as u64,
            };
            (job, expected)
        })
        .unzip()
}

/// Counts lines that lack their job's identity or carry another's.
fn mismatches(lines: &[String], expected: &[Expected]) -> usize {
    lines
        .iter()
        .filter(|line| {
            let Some(job) = values(line, "job")
                .first()
                .and_then(|j| j.parse::<usize>().ok())
            else {
                return true;
            };
            let want = &expected[job];
            let traces = values(line, "trace_id");
            let tenants = values(line, "tenant_id");
            let users = values(line, "user");
            let trace_ok = !traces.is_empty() && traces.iter().all(|t| *t == want.trace_id);
            let tenant_ok = match &want.tenant {
                Some(tenant) => !tenants.is_empty() && tenants.iter().all(|t| t == tenant),
                None => tenants.is_empty(),
            };
            let user_ok = match &want.user {
                Some(user) => !users.is_empty() && users.iter().all(|u| u == user),
                None => users.is_empty(),
            };
            !(trace_ok && tenant_ok && user_ok)
        })
        .count()
}

async fn random_pause(rng: &mut fastrand::Rng) {
    for _ in 0..rng.usize(0..3) {
        tokio::task::yield_now().await;
    }
    if rng.u8(..) < 60 {
        tokio::time::sleep(Duration::from_micros(rng.u64(1..300))).await;
    }
}

/// A handler with no logging code but `tracing::info!`.
#[with_context(from = "job.ctx")]
async fn handle(job: Job) -> Result<(), CarrierError> {
    let mut rng = fastrand::Rng::with_seed(job.seed);
    let index = job.index;
    for step in 0..4 {
        tracing::info!(job = index, step, "working");
        random_pause(&mut rng).await;
    }
    context_runtime::spawn(async move {
        tokio::task::yield_now().await;
        tracing::info!(job = index, "in a spawned task");
    })
    .await
    .expect("spawned task");
    context_runtime::spawn_blocking(move || tracing::info!(job = index, "on the blocking pool"))
        .await
        .expect("blocking task");
    async move {
        tokio::task::yield_now().await;
        tracing::info!(job = index, "inside the handler's own span");
    }
    .instrument(tracing::info_span!("charge", invoice = index))
    .await;
    Ok(())
}

#[test]
fn every_line_of_200_concurrent_jobs_carries_its_own_identity() {
    let (_one_at_a_time, captured) = capture();
    let (jobs, expected) = make_jobs();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|job| tokio::spawn(handle(job)))
            .collect();
        for handle in handles {
            handle.await.expect("job").expect("carrier");
        }
    });
    drop(runtime);

    let lines = lines(&captured);
    let bad = mismatches(&lines, &expected);
    eprintln!(
        "{} lines captured, {bad} mismatches; for example:\n{}",
        lines.len(),
        lines.iter().take(3).cloned().collect::<Vec<_>>().join("\n")
    );
    assert_eq!(lines.len(), JOBS * LINES_PER_JOB);
    assert_eq!(bad, 0);
    // The user's span sits inside the context span.
    assert!(lines
        .iter()
        .any(|l| l.contains("}:charge{invoice=") && l.contains("context{trace_id=")));
}

/// The control: the identity in a span entered with a guard that lives
/// across `.await`, on one thread (the guard cannot cross threads).
async fn ambient_handle(job: Job) {
    let cx = Context::from_carrier(&job.ctx).expect("carrier");
    let span = tracing::error_span!(
        "context",
        trace_id = %cx.trace_id(),
        tenant_id = cx.tenant().map(tracing::field::display),
        user = cx.user().map(tracing::field::display),
    );
    let _guard = span.enter();
    let mut rng = fastrand::Rng::with_seed(job.seed);
    for step in 0..4 {
        tracing::info!(job = job.index, step, "working");
        random_pause(&mut rng).await;
    }
}

#[test]
fn control_a_span_guard_held_across_await_mixes_identities() {
    let (_one_at_a_time, captured) = capture();
    let (jobs, expected) = make_jobs();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|job| tokio::task::spawn_local(ambient_handle(job)))
            .collect();
        for handle in handles {
            handle.await.expect("job");
        }
    });

    let lines = lines(&captured);
    let bad = mismatches(&lines, &expected);
    eprintln!("control: {} lines, {bad} mismatches", lines.len());
    assert_eq!(lines.len(), JOBS * 4);
    assert!(bad > 0, "the check caught no cross-talk in the control");
}
