//! `JobLayer` works with any apalis backend: dead letters go through a
//! `DeadLetterSink` of the user's choice, not a hard-wired Redis list. Here
//! apalis's in-memory backend with a sink in memory: a good task runs in its
//! job's context (no `#[with_context]` on the handler), a task without a
//! tenant and a task whose handler panics on its last attempt are
//! dead-lettered with their reasons, and the worker keeps running.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use apalis::prelude::*;
use context_runtime::apalis::{DeadLetterSink, JobLayer};
use context_runtime::jobs::{DeadLetter, Job, Policy, RejectionKind};
use context_runtime::{Context, TenantId};
use context_tests::pg_dead_letters::PgDeadLetters;
use tokio::sync::mpsc;

/// Dead letters kept in memory.
#[derive(Clone, Default)]
struct InMemory(Arc<Mutex<Vec<DeadLetter>>>);

impl DeadLetterSink for InMemory {
    type Error = std::convert::Infallible;

    async fn record(&self, letter: &DeadLetter) -> Result<(), Self::Error> {
        self.0.lock().expect("not poisoned").push(letter.clone());
        Ok(())
    }
}

/// What a handler saw: the job's data, the tenant and trace id in scope.
type Seen = (u32, String, String);

async fn handle(job: Job<u32>, seen: Data<mpsc::UnboundedSender<Seen>>) -> Result<(), BoxDynError> {
    if job.data == 13 {
        panic!("job 13 always panics");
    }
    let tenant = context_runtime::tenant()?.to_string();
    let trace = context_runtime::trace_id()
        .map(|t| t.to_string())
        .unwrap_or_default();
    let _ = seen.send((job.data, tenant, trace));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_works_on_apalis_memory_backend_with_any_dead_letter_sink() {
    let mut storage = MemoryStorage::new();
    let acme = Context::root().with_tenant(TenantId::new("acme").expect("valid"));
    storage.push(Job::new(&acme, 1u32)).await.expect("push");
    storage
        .push(Job::new(&Context::root(), 2u32))
        .await
        .expect("push");
    storage.push(Job::new(&acme, 13u32)).await.expect("push");
    storage.push(Job::new(&acme, 4u32)).await.expect("push");

    let sink = InMemory::default();
    let (tx, mut rx) = mpsc::unbounded_channel::<Seen>();
    let letters = Arc::clone(&sink.0);
    let worker = WorkerBuilder::new("memory-worker")
        .backend(storage)
        .data(tx)
        .layer(JobLayer::new(sink, "memory").with_policy(Policy::new().max_attempts(1)))
        .build(handle);
    let done = async move {
        let mut seen = Vec::new();
        let waited = tokio::time::timeout(Duration::from_secs(20), async {
            while seen.len() < 2 || letters.lock().expect("not poisoned").len() < 2 {
                tokio::select! {
                    Some(s) = rx.recv() => seen.push(s),
                    () = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
            }
        })
        .await;
        (waited.is_ok(), seen, letters)
    };
    let (finished_tx, finished_rx) = tokio::sync::oneshot::channel();
    let checker = tokio::spawn(async move {
        let result = done.await;
        let _ = finished_tx.send(());
        result
    });
    worker
        .run_until(async move {
            let _ = finished_rx.await;
            Ok::<(), WorkerError>(())
        })
        .await
        .expect("the worker runs");
    let (in_time, mut seen, letters) = checker.await.expect("the checker");
    assert!(in_time, "every task handled in time: {seen:?}");

    seen.sort();
    let trace = acme.trace_id().to_string();
    assert_eq!(
        seen,
        [
            (1, "acme".to_owned(), trace.clone()),
            (4, "acme".to_owned(), trace)
        ],
        "good tasks ran in their job's context"
    );
    let letters = letters.lock().expect("not poisoned").clone();
    let kinds: Vec<_> = letters.iter().map(|l| l.kind).collect();
    assert!(
        kinds.contains(&RejectionKind::TenantRequired),
        "{letters:?}"
    );
    let panicked = letters
        .iter()
        .find(|l| l.kind == RejectionKind::Exhausted)
        .expect("the panicking task is dead-lettered");
    assert!(
        panicked.reason.contains("panicked: job 13 always panics"),
        "{}",
        panicked.reason
    );
    assert_eq!(panicked.tenant.as_deref(), Some("acme"));
}

// ---------------------------------------------------------------- PostgreSQL

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_works_on_apalis_postgres_backend_with_a_postgres_sink() {
    use apalis_postgres::{Config, PgPool, PostgresStorage};

    if !context_tests::service_available("PostgreSQL", "127.0.0.1:5432") {
        return;
    }
    let pool = PgPool::connect("postgres://postgres@127.0.0.1:5432/test")
        .await
        .expect("connect to PostgreSQL");
    PostgresStorage::setup(&pool)
        .await
        .expect("apalis's tables");
    let name = context_tests::brokers::unique_name("ctx-apalis-pg");
    PgDeadLetters::new(pool.clone())
        .create_table()
        .await
        .expect("the dead-letter table");

    let mut storage =
        PostgresStorage::<Job<u32>>::new(&pool).with_config(Config::default().queue(&name));
    let acme = Context::root().with_tenant(TenantId::new("acme").expect("valid"));
    for job in [
        Job::new(&acme, 1u32),
        Job::new(&Context::root(), 2u32),
        Job::new(&acme, 13u32),
        Job::new(&acme, 4u32),
    ] {
        storage.push(job).await.expect("push");
    }
    let sink = PgDeadLetters::new(pool.clone());
    let count = {
        let (pool, name) = (pool.clone(), name.clone());
        move || {
            let (pool, name) = (pool.clone(), name.clone());
            async move {
                sqlx_apalis::query_scalar::<_, i64>(
                    "SELECT count(*) FROM ctx_apalis_dead_letters WHERE queue = $1",
                )
                .bind(name)
                .fetch_one(&pool)
                .await
                .expect("count dead letters")
            }
        }
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<Seen>();
    let worker = WorkerBuilder::new(format!("{name}-worker"))
        .backend(storage)
        .data(tx)
        .layer(JobLayer::new(sink, &name).with_policy(Policy::new().max_attempts(1)))
        .build(handle);
    let (finished_tx, finished_rx) = tokio::sync::oneshot::channel();
    let checker = tokio::spawn(async move {
        let mut seen = Vec::new();
        let waited = tokio::time::timeout(Duration::from_secs(30), async {
            while seen.len() < 2 || count().await < 2 {
                tokio::select! {
                    Some(s) = rx.recv() => seen.push(s),
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        })
        .await;
        let _ = finished_tx.send(());
        (waited.is_ok(), seen)
    });
    worker
        .run_until(async move {
            let _ = finished_rx.await;
            Ok::<(), WorkerError>(())
        })
        .await
        .expect("the worker runs");
    let (in_time, mut seen) = checker.await.expect("the checker");

    let letters: Vec<(String, String, Option<String>)> = sqlx_apalis::query_as(
        "SELECT kind, reason, tenant FROM ctx_apalis_dead_letters WHERE queue = $1 ORDER BY kind",
    )
    .bind(&name)
    .fetch_all(&pool)
    .await
    .expect("read dead letters");
    let _ = sqlx_apalis::query("DELETE FROM ctx_apalis_dead_letters WHERE queue = $1")
        .bind(&name)
        .execute(&pool)
        .await;
    let _ = sqlx_apalis::query("DELETE FROM apalis.jobs WHERE job_type = $1")
        .bind(&name)
        .execute(&pool)
        .await;

    assert!(in_time, "every task handled in time: {seen:?} {letters:?}");
    seen.sort();
    let trace = acme.trace_id().to_string();
    assert_eq!(
        seen,
        [
            (1, "acme".to_owned(), trace.clone()),
            (4, "acme".to_owned(), trace)
        ],
        "good tasks ran in their job's context"
    );
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert_eq!(letters[0].0, "exhausted");
    assert!(
        letters[0].1.contains("panicked: job 13 always panics"),
        "{letters:?}"
    );
    assert_eq!(letters[0].2.as_deref(), Some("acme"));
    assert_eq!(letters[1].0, "tenant_required");
}
