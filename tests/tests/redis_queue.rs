//! The Redis transport's guarantees one at a time, against the real
//! server: a dead consumer's job is taken over with its attempt counted, a
//! job that kills its workers every time ends dead-lettered, a dead letter
//! that cannot be written leaves the job unacknowledged, non-UTF-8 payloads
//! are dead-lettered byte for byte, a redrive starts a fresh attempt count
//! with the same job id, and the job id is readable inside the handler.

use std::time::{Duration, Instant};

use context_runtime::jobs::pipeline::process;
use context_runtime::jobs::{
    current_job_id, Job, Outcome, Policy, RejectionKind, Transport, Worker,
};
use context_runtime::redis::{Consumer, Queue, JOB_FIELD};
use context_runtime::{Context, TenantId};
use context_tests::brokers::unique_name;

const REDIS: &str = "127.0.0.1:6379";

/// `XPENDING`'s summary: count, smallest and greatest id, per consumer.
type Pending = (
    u64,
    Option<String>,
    Option<String>,
    Option<Vec<(String, String)>>,
);
/// A stream entry: its id and fields.
type Entry = (String, Vec<(String, Vec<u8>)>);

fn client() -> redis::Client {
    redis::Client::open(format!("redis://{REDIS}")).expect("a Redis URL")
}

async fn connect() -> redis::aio::MultiplexedConnection {
    client()
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis")
}

fn queue(prefix: &str) -> Queue {
    Queue::new(unique_name(prefix))
        .visibility_timeout(Duration::from_millis(300))
        .with_policy(
            Policy::new()
                .backoff(Duration::from_millis(10), Duration::from_millis(10))
                .jitter(0.0),
        )
}

async fn clean_up(queue: &Queue, conn: &mut redis::aio::MultiplexedConnection) {
    redis::cmd("DEL")
        .arg(queue.name())
        .arg(queue.dead_letter_stream())
        .query_async::<()>(conn)
        .await
        .expect("clean up");
}

/// Receives until at least one delivery comes (at most 10 s).
async fn receive_one<T>(
    consumer: &mut Consumer<T>,
) -> context_runtime::jobs::pipeline::Delivery<Job<T>, <Consumer<T> as Transport>::Settle>
where
    T: serde::de::DeserializeOwned + Send + 'static,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut got = consumer.receive(1).await.expect("receive");
        if let Some(delivery) = got.pop() {
            return delivery;
        }
        assert!(Instant::now() < deadline, "no delivery within 10 s");
    }
}

fn acme() -> Context {
    Context::root().with_tenant(TenantId::new("acme").expect("valid"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_consumers_job_is_taken_over_and_a_crash_loop_ends_dead_lettered() {
    if !context_tests::service_available("Redis", REDIS) {
        return;
    }
    let mut conn = connect().await;
    let queue = queue("ctx-redis-takeover");
    let mut a = queue.consumer::<u32>(client()).await.expect("consumer a");
    let mut b = queue.consumer::<u32>(client()).await.expect("consumer b");
    let id = acme()
        .scope(queue.enqueue(&mut conn, &7u32))
        .await
        .expect("enqueue");

    // Three consumers in turn take the job and die with it (the delivery
    // is dropped unsettled, as by a SIGKILL): each delivery counts.
    let mut attempts = Vec::new();
    for turn in 0..3 {
        let consumer = if turn == 1 { &mut b } else { &mut a };
        let delivery = receive_one(consumer).await;
        assert_eq!(delivery.job_id.as_deref(), Some(id.as_str()));
        attempts.push(delivery.attempt);
        drop(delivery);
    }
    assert_eq!(attempts, [1, 2, 3]);

    // The fourth delivery is past the policy's 3 attempts: dead-lettered
    // without running the handler.
    let delivery = receive_one(&mut b).await;
    assert_eq!(delivery.attempt, 4);
    let outcome = process(queue.name(), queue.policy(), delivery, |_job| async {
        panic!("must not run");
        #[allow(unreachable_code)]
        Ok::<(), String>(())
    })
    .await
    .expect("settled");
    let Outcome::DeadLettered(letter) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(letter.kind, RejectionKind::Exhausted);
    assert!(
        letter.reason.contains("stopped mid-job"),
        "{}",
        letter.reason
    );
    let dead = queue.dead_jobs(&mut conn).await.expect("dead jobs");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].job_id.as_deref(), Some(id.as_str()));
    assert_eq!(dead[0].letter.tenant.as_deref(), Some("acme"));
    clean_up(&queue, &mut conn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_that_cannot_be_written_leaves_the_job_unacknowledged() {
    if !context_tests::service_available("Redis", REDIS) {
        return;
    }
    let mut conn = connect().await;
    let queue = queue("ctx-redis-dlq-fails");
    // The dead-letter key exists with another type: XADD to it fails.
    redis::cmd("SET")
        .arg(queue.dead_letter_stream())
        .arg("not a stream")
        .query_async::<()>(&mut conn)
        .await
        .expect("SET");
    let mut consumer = queue.consumer::<u32>(client()).await.expect("consumer");
    // No tenant: rejected, to be dead-lettered.
    Context::root()
        .scope(queue.enqueue(&mut conn, &1u32))
        .await
        .expect("enqueue");
    let delivery = receive_one(&mut consumer).await;
    let failed = process(queue.name(), queue.policy(), delivery, |_job| async {
        Ok::<(), String>(())
    })
    .await;
    assert!(failed.is_err(), "the failed write is reported: {failed:?}");
    let pending: Pending = redis::cmd("XPENDING")
        .arg(queue.name())
        .arg(queue.group())
        .query_async(&mut conn)
        .await
        .expect("XPENDING");
    assert_eq!(pending.0, 1, "the job is still pending, not acknowledged");
    let len: usize = redis::cmd("XLEN")
        .arg(queue.name())
        .query_async(&mut conn)
        .await
        .expect("XLEN");
    assert_eq!(len, 1, "the job is still in the stream");

    // Once the dead-letter stream can be written, the redelivery lands there.
    redis::cmd("DEL")
        .arg(queue.dead_letter_stream())
        .query_async::<()>(&mut conn)
        .await
        .expect("DEL");
    let delivery = receive_one(&mut consumer).await;
    assert_eq!(delivery.attempt, 2);
    let outcome = process(queue.name(), queue.policy(), delivery, |_job| async {
        Ok::<(), String>(())
    })
    .await
    .expect("settled");
    assert!(
        matches!(outcome, Outcome::DeadLettered(ref l) if l.kind == RejectionKind::TenantRequired)
    );
    assert_eq!(queue.dead_letters(&mut conn).await.expect("read").len(), 1);
    clean_up(&queue, &mut conn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_keep_the_original_bytes_and_redrive_starts_a_fresh_count() {
    if !context_tests::service_available("Redis", REDIS) {
        return;
    }
    let mut conn = connect().await;
    let queue = queue("ctx-redis-redrive");
    let garbage: Vec<u8> = vec![0xff, 0xfe, b'{', 0x00, 0x80, b'}'];
    redis::cmd("XADD")
        .arg(queue.name())
        .arg("*")
        .arg(JOB_FIELD)
        .arg(&garbage)
        .query_async::<()>(&mut conn)
        .await
        .expect("XADD");
    let job = Job::new(&acme(), 5u32);
    let id = queue.enqueue_job(&mut conn, &job).await.expect("enqueue");
    assert_eq!(id, job.id());

    // A worker whose handler always fails, recording attempts and ids.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let run = |tx: tokio::sync::mpsc::UnboundedSender<_>, consumer| {
        let worker = Worker::new(consumer, move |job: Job<u32>| {
            let seen = (job.attempt(), job.id().to_owned(), current_job_id());
            let tx = tx.clone();
            async move {
                let _ = tx.send(seen);
                Err::<(), _>("always fails")
            }
        })
        .concurrency(2);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(worker.run(async {
            let _ = stop_rx.await;
        }));
        (stop_tx, handle)
    };
    let consumer = queue.consumer::<u32>(client()).await.expect("consumer");
    let (stop, handle) = run(tx.clone(), consumer);
    let deadline = Instant::now() + Duration::from_secs(20);
    while queue.dead_jobs(&mut conn).await.expect("read").len() < 2 {
        assert!(Instant::now() < deadline, "not dead-lettered in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    handle.await.expect("the worker stops");

    let mut seen = Vec::new();
    while let Ok(s) = rx.try_recv() {
        seen.push(s);
    }
    let expected: Vec<_> = (1..=3).map(|a| (a, id.clone(), Some(id.clone()))).collect();
    assert_eq!(
        seen, expected,
        "three attempts, one job id, readable inside"
    );

    let dead = queue.dead_jobs(&mut conn).await.expect("read");
    let unreadable = dead
        .iter()
        .find(|d| d.letter.kind == RejectionKind::Unreadable)
        .expect("the garbage is dead-lettered");
    assert_eq!(unreadable.job, garbage, "the original bytes, exactly");
    let exhausted = dead
        .iter()
        .find(|d| d.letter.kind == RejectionKind::Exhausted)
        .expect("the failing job is dead-lettered");
    assert_eq!(exhausted.letter.attempts, 3);
    assert!(exhausted.letter.reason.ends_with("always fails"));
    assert_eq!(exhausted.job, serde_json::to_vec(&job).expect("json"));

    // Redrive: both back, byte for byte, with a fresh attempt count.
    assert_eq!(queue.redrive(&mut conn).await.expect("redrive"), 2);
    assert!(queue.dead_jobs(&mut conn).await.expect("read").is_empty());
    let raw: Vec<Entry> = redis::cmd("XRANGE")
        .arg(queue.name())
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .expect("XRANGE");
    let bytes: Vec<&Vec<u8>> = raw.iter().map(|(_, f)| &f[0].1).collect();
    assert!(bytes.contains(&&garbage));
    let consumer = queue.consumer::<u32>(client()).await.expect("consumer");
    let (stop, handle) = run(tx, consumer);
    let first = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("redelivered")
        .expect("a run");
    assert_eq!(first, (1, id.clone(), Some(id.clone())));
    let _ = stop.send(());
    handle.await.expect("the worker stops");
    clean_up(&queue, &mut conn).await;
}
