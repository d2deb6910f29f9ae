//! Jobs cross real brokers to three worker processes (8 jobs at a time
//! each): every completed job reports the trace id and tenant its producer
//! stamped, poisoned jobs land in the dead-letter destination with their
//! reason, a job that fails once keeps its trace id on the retry, and
//! enqueued = completed + dead-lettered.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use context_runtime::jobs::{DeadLetter, Job, RejectionKind};
use context_runtime::{Context, TenantId, UserRef};
use context_tests::brokers::{tally, unique_name, Stamp, TestJob, Workers, TENANTS};

const WORKER: &str = env!("CARGO_BIN_EXE_broker-worker");
const WORKERS: usize = 3;
const CONCURRENCY: usize = 8;
/// Good jobs; the first three fail once and succeed on the retry.
const GOOD: u64 = 1_020;
const FAIL_ONCE: u64 = 3;
/// Each run stays well under a minute.
const LIMIT: Duration = Duration::from_secs(45);

const REDIS: &str = "127.0.0.1:6379";
const AMQP: &str = "127.0.0.1:5672";
const NATS: &str = "127.0.0.1:4222";

/// A poisoned job: what it is, and the dead letter it must become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Poison {
    /// Enqueued in a context without a tenant.
    NoTenant,
    /// The tenant is not a valid tenant id.
    BadTenant,
    /// The carrier does not parse.
    BrokenCarrier,
    /// Not a job at all (payload brokers only).
    Unreadable,
}

const BAD_TENANT: &str = "bad;tenant";

impl Poison {
    fn kind(self) -> RejectionKind {
        match self {
            Poison::NoTenant => RejectionKind::TenantRequired,
            Poison::BadTenant | Poison::BrokenCarrier => RejectionKind::InvalidCarrier,
            Poison::Unreadable => RejectionKind::Unreadable,
        }
    }
}

/// The jobs to enqueue, in order: good ones over three tenants with a
/// poisoned one every 60, the last one good.
enum Planned {
    Good {
        id: u64,
        tenant: &'static str,
        fail_once: bool,
    },
    Poisoned {
        id: u64,
        poison: Poison,
    },
}

fn plan(poisons: &[Poison]) -> Vec<Planned> {
    let mut planned = Vec::new();
    let mut next_poison = 0;
    for id in 1..=GOOD {
        let tenant = TENANTS[usize::try_from(id % 3).expect("small")];
        planned.push(Planned::Good {
            id,
            tenant,
            fail_once: id <= FAIL_ONCE,
        });
        if id % 60 == 30 {
            let poison = poisons[next_poison % poisons.len()];
            planned.push(Planned::Poisoned {
                id: 100_000 + id,
                poison,
            });
            next_poison += 1;
        }
    }
    planned
}

/// A request's context for a good job.
fn request(tenant: &str, id: u64) -> Context {
    Context::root()
        .with_tenant(TenantId::new(tenant).expect("a valid tenant"))
        .with_user(UserRef::user(i64::try_from(id).expect("small")).expect("a valid user"))
}

fn stamp(stamps: &mut HashMap<u64, Stamp>, id: u64, cx: &Context, fail_once: bool) {
    let tenant = cx.tenant().expect("a good job has a tenant").to_string();
    stamps.insert(
        id,
        Stamp {
            trace_id: cx.trace_id().to_string(),
            tenant,
            fail_once,
        },
    );
}

/// The id of a dead letter's job, from its original payload.
fn letter_id(letter: &DeadLetter) -> Option<u64> {
    if let Some(rest) = letter.payload.strip_prefix("not a job #") {
        return rest.parse().ok();
    }
    let value: serde_json::Value = serde_json::from_str(&letter.payload).ok()?;
    value
        .get("data")
        .unwrap_or(&value)
        .get("id")
        .and_then(serde_json::Value::as_u64)
}

fn worker_args(mode: &str, url: &str, queue: &str, stream: &str, leak: bool) -> Vec<String> {
    let mut args: Vec<String> = [
        "--mode",
        mode,
        "--url",
        url,
        "--queue",
        queue,
        "--stream",
        stream,
        "--concurrency",
        &CONCURRENCY.to_string(),
        "--max-seconds",
        "90",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    if leak {
        args.push("--leak".into());
    }
    args
}

/// Runs the workers until every good job is reported and `dead_letters()`
/// holds every poisoned one, then stops them and checks everything.
async fn run_and_check<F, Fut>(
    broker: &str,
    mut workers: Workers,
    planned: &[Planned],
    stamps: &HashMap<u64, Stamp>,
    started: Instant,
    mut dead_letters: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Vec<DeadLetter>>,
{
    let good = stamps.len();
    let poisoned: HashMap<u64, Poison> = planned
        .iter()
        .filter_map(|p| match p {
            Planned::Poisoned { id, poison } => Some((*id, *poison)),
            Planned::Good { .. } => None,
        })
        .collect();

    let left = LIMIT.saturating_sub(started.elapsed());
    let all_reported = workers
        .collect_until(left, |seen| {
            seen.keys().filter(|id| stamps.contains_key(id)).count() == good
        })
        .await;
    let mut letters = dead_letters().await;
    while letters.len() < poisoned.len() && started.elapsed() < LIMIT {
        tokio::time::sleep(Duration::from_millis(100)).await;
        letters = dead_letters().await;
    }
    workers.stop().await;
    let letters_after_stop = dead_letters().await;
    let t = tally(stamps, &workers.seen);

    println!(
        "{broker}: enqueued {} = completed {} + dead-lettered {}; mismatches {}, duplicates {}, \
         retried with the same trace {}/{FAIL_ONCE}, per tenant {:?}, workers {}×{CONCURRENCY}, {:.1?}",
        planned.len(),
        t.completed,
        letters_after_stop.len(),
        t.mismatches,
        t.duplicates,
        t.retried_ok,
        t.per_tenant,
        t.workers,
        started.elapsed(),
    );
    assert!(
        all_reported,
        "{broker}: not every good job was reported in time"
    );
    assert_eq!(
        t.mismatches, 0,
        "{broker}: a job ran under another job's identity"
    );
    assert_eq!(t.duplicates, 0, "{broker}: a job completed twice");
    assert_eq!(t.unexpected, 0, "{broker}: a poisoned job ran");
    // apalis wakes one waiting worker per "jobs available" signal and the
    // others only on their poll interval, so on a fast run one of its three
    // workers may find the queue already drained; the other brokers hand
    // jobs to every consumer.
    let least_workers = if broker == "apalis" { 2 } else { WORKERS };
    assert!(
        t.workers >= least_workers,
        "{broker}: only {} of {WORKERS} worker processes took jobs",
        t.workers
    );
    assert_eq!(
        t.retried_ok, FAIL_ONCE as usize,
        "{broker}: retries keep the trace id"
    );
    for tenant in TENANTS {
        assert_eq!(
            t.per_tenant.get(tenant),
            Some(&(good / 3)),
            "{broker}: {tenant}"
        );
    }

    // Every poisoned job is dead-lettered once, with its reason.
    assert_eq!(
        letters_after_stop.len(),
        poisoned.len(),
        "{broker}: {letters_after_stop:#?}"
    );
    let mut seen_ids = std::collections::HashSet::new();
    for letter in &letters_after_stop {
        let id = letter_id(letter).unwrap_or_else(|| panic!("{broker}: no job id in {letter:?}"));
        assert!(
            seen_ids.insert(id),
            "{broker}: job {id} dead-lettered twice"
        );
        let poison = poisoned
            .get(&id)
            .unwrap_or_else(|| panic!("{broker}: good job {id} dead-lettered: {letter:?}"));
        assert_eq!(letter.kind, poison.kind(), "{broker}: {letter:?}");
        assert!(!letter.reason.is_empty());
        if *poison == Poison::BadTenant {
            assert_eq!(
                letter.tenant.as_deref(),
                Some(BAD_TENANT),
                "{broker}: {letter:?}"
            );
        } else {
            assert_eq!(letter.tenant, None, "{broker}: {letter:?}");
        }
    }
    assert_eq!(
        planned.len(),
        t.completed + letters_after_stop.len(),
        "{broker}: a job was lost"
    );
}

// ---------------------------------------------------------------- Redis

async fn redis_run(leak: bool) -> Option<(Workers, Vec<Planned>, HashMap<u64, Stamp>, String)> {
    use context_runtime::redis::Queue;
    if !context_tests::service_available("Redis", REDIS) {
        return None;
    }
    let url = format!("redis://{REDIS}");
    let name = unique_name("ctx-test-redis");
    let client = redis::Client::open(url.as_str()).expect("a Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis");
    let queue = Queue::new(name.clone());
    let planned = plan(&[
        Poison::NoTenant,
        Poison::BadTenant,
        Poison::BrokenCarrier,
        Poison::Unreadable,
    ]);
    let mut workers = Workers::spawn(
        WORKER,
        WORKERS,
        &worker_args("redis", &url, &name, "", leak),
    );

    workers.wait_ready(Duration::from_secs(20)).await;
    let mut stamps = HashMap::new();
    for p in &planned {
        match p {
            Planned::Good {
                id,
                tenant,
                fail_once,
            } => {
                let cx = request(tenant, *id);
                let data = TestJob {
                    id: *id,
                    fail_once: *fail_once,
                };
                cx.scope(queue.enqueue(&mut conn, &data))
                    .await
                    .expect("enqueue");
                stamp(&mut stamps, *id, &cx, *fail_once);
            }
            Planned::Poisoned { id, poison } => {
                let data = serde_json::json!({ "id": id });
                let raw = match poison {
                    Poison::NoTenant => serde_json::to_string(&Job::new(&Context::root(), data)).expect("json"),
                    Poison::BadTenant => serde_json::json!({
                        "ctx": { "traceId": Context::root().trace_id().to_string(), "tenantId": BAD_TENANT },
                        "data": data,
                    })
                    .to_string(),
                    Poison::BrokenCarrier => serde_json::json!({ "ctx": "garbage", "data": data }).to_string(),
                    Poison::Unreadable => format!("not a job #{id}"),
                };
                redis::cmd("XADD")
                    .arg(queue.name())
                    .arg("*")
                    .arg(context_runtime::redis::JOB_FIELD)
                    .arg(raw)
                    .query_async::<()>(&mut conn)
                    .await
                    .expect("enqueue a poisoned job");
            }
        }
    }
    Some((workers, planned, stamps, name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_jobs_keep_their_context_across_worker_processes() {
    let started = Instant::now();
    let Some((workers, planned, stamps, name)) = redis_run(false).await else {
        return;
    };
    let client = redis::Client::open(format!("redis://{REDIS}")).expect("a Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let queue = context_runtime::redis::Queue::new(name.clone());
    let reader = conn.clone();
    run_and_check("redis", workers, &planned, &stamps, started, || {
        let (queue, mut conn) = (queue.clone(), reader.clone());
        async move {
            queue
                .dead_letters(&mut conn)
                .await
                .expect("read dead letters")
        }
    })
    .await;
    // Nothing waits or hangs unacknowledged: acknowledged jobs are removed.
    let len: usize = redis::cmd("XLEN")
        .arg(queue.name())
        .query_async(&mut conn)
        .await
        .expect("XLEN");
    assert_eq!(len, 0, "the stream is empty");
    redis::cmd("DEL")
        .arg(queue.name())
        .arg(queue.dead_letter_stream())
        .query_async::<()>(&mut conn)
        .await
        .expect("clean up");
}

/// The control: the same run with workers that read an "ambient" context
/// (the last job that started in the process) reports mismatches, so the
/// test above would catch cross-talk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_an_ambient_context_in_the_workers_is_caught() {
    let started = Instant::now();
    let Some((mut workers, _planned, stamps, name)) = redis_run(true).await else {
        return;
    };
    workers
        .collect_until(LIMIT, |seen| {
            seen.keys().filter(|id| stamps.contains_key(id)).count() == stamps.len()
        })
        .await;
    workers.stop().await;
    let t = tally(&stamps, &workers.seen);
    println!(
        "control: {} mismatches in {} jobs, {:.1?}",
        t.mismatches,
        t.completed,
        started.elapsed()
    );
    assert!(t.mismatches > 0, "the check must catch cross-talk");
    let client = redis::Client::open(format!("redis://{REDIS}")).expect("a Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let queue = context_runtime::redis::Queue::new(name);
    redis::cmd("DEL")
        .arg(queue.name())
        .arg(queue.dead_letter_stream())
        .query_async::<()>(&mut conn)
        .await
        .expect("clean up");
}

// ---------------------------------------------------------------- RabbitMQ

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_jobs_keep_their_context_across_worker_processes() {
    use context_runtime::lapin::{self as amqp, Queue};
    use lapin::options::{
        BasicGetOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions,
    };
    use lapin::types::{AMQPValue, FieldTable, LongString};
    use lapin::BasicProperties;

    let started = Instant::now();
    if !context_tests::service_available("RabbitMQ", AMQP) {
        return;
    }
    let url = format!("amqp://guest:guest@{AMQP}/%2f");
    let name = unique_name("ctx-test-amqp");
    let conn = lapin::Connection::connect(&url, Default::default())
        .await
        .expect("connect to RabbitMQ");
    let channel = conn.create_channel().await.expect("a channel");
    channel
        .confirm_select(Default::default())
        .await
        .expect("confirms");
    let queue = Queue::new(name.clone());
    queue.declare(&channel).await.expect("declare the queues");

    let planned = plan(&[Poison::NoTenant, Poison::BadTenant, Poison::BrokenCarrier]);
    let mut workers = Workers::spawn(
        WORKER,
        WORKERS,
        &worker_args("amqp", &url, &name, "", false),
    );
    workers.wait_ready(Duration::from_secs(20)).await;
    let mut stamps = HashMap::new();
    for p in &planned {
        match p {
            Planned::Good {
                id,
                tenant,
                fail_once,
            } => {
                let cx = request(tenant, *id);
                let body = serde_json::to_vec(&TestJob {
                    id: *id,
                    fail_once: *fail_once,
                })
                .expect("json");
                cx.scope(queue.publish(&channel, &body))
                    .await
                    .expect("publish")
                    .await
                    .expect("confirmed");
                stamp(&mut stamps, *id, &cx, *fail_once);
            }
            Planned::Poisoned { id, poison } => {
                let body = serde_json::to_vec(&serde_json::json!({ "id": id })).expect("json");
                let mut headers = FieldTable::default();
                let text = |s: &str| AMQPValue::LongString(LongString::from(s));
                match poison {
                    Poison::NoTenant => amqp::inject(&Context::root(), &mut headers),
                    Poison::BadTenant => {
                        amqp::inject(&Context::root(), &mut headers);
                        headers.insert("baggage".into(), text("tenantId=bad%3Btenant"));
                    }
                    Poison::BrokenCarrier => {
                        headers.insert("traceparent".into(), text("garbage"));
                        headers.insert("baggage".into(), text("tenantId=acme"));
                    }
                    Poison::Unreadable => unreachable!("not planned for header brokers"),
                }
                channel
                    .basic_publish(
                        "".into(),
                        name.as_str().into(),
                        BasicPublishOptions::default(),
                        &body,
                        BasicProperties::default().with_headers(headers),
                    )
                    .await
                    .expect("publish a poisoned job")
                    .await
                    .expect("confirmed");
            }
        }
    }

    let conn = std::sync::Arc::new(conn);
    let dead_queue = queue.dead_letter_queue();
    let reader = conn.clone();
    run_and_check("rabbitmq", workers, &planned, &stamps, started, || {
        let (conn, dead_queue) = (reader.clone(), dead_queue.clone());
        async move {
            // A snapshot: get every dead letter without acking, then close
            // the channel, which puts them all back.
            let channel = conn.create_channel().await.expect("a channel");
            let mut letters = Vec::new();
            while let Some(message) = channel
                .basic_get(dead_queue.as_str().into(), BasicGetOptions::default())
                .await
                .expect("basic.get")
            {
                letters.push(amqp::dead_letter(&message.delivery).expect("a dead-letter record"));
            }
            channel.close(200, "snapshot".into()).await.expect("close");
            letters
        }
    })
    .await;

    let left = channel
        .queue_declare(
            name.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("the queue exists");
    assert_eq!(left.message_count(), 0, "nothing waits in the queue");
    for q in [name.clone(), queue.dead_letter_queue()] {
        channel
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
            .expect("clean up");
    }
    channel
        .exchange_delete(
            queue.dead_letter_exchange().as_str().into(),
            Default::default(),
        )
        .await
        .expect("clean up");
}

// ---------------------------------------------------------------- NATS

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_jobs_keep_their_context_across_worker_processes() {
    use async_nats::jetstream::{self, stream};
    use context_runtime::nats::{self, Queue};

    let started = Instant::now();
    if !context_tests::service_available("NATS", NATS) {
        return;
    }
    let url = format!("nats://{NATS}");
    let name = unique_name("ctx-test-nats").replace('-', "_");
    let subject = format!("{name}.jobs");
    let jobs = Queue::new(subject.clone());
    let client = async_nats::connect(&url).await.expect("connect to NATS");
    let js = jetstream::new(client.clone());
    let stream_name = name.to_uppercase();
    let dead_stream_name = format!("{stream_name}_DEAD");
    let work = js
        .create_stream(stream::Config {
            name: stream_name.clone(),
            subjects: vec![subject.clone()],
            retention: stream::RetentionPolicy::WorkQueue,
            ..Default::default()
        })
        .await
        .expect("the jobs stream");
    let dead = js
        .create_stream(stream::Config {
            name: dead_stream_name.clone(),
            subjects: vec![jobs.dead_letter_subject().to_owned()],
            ..Default::default()
        })
        .await
        .expect("the dead-letter stream");
    // Explicit acks, ack_wait 30 s, max_deliver = attempts + 1.
    work.create_consumer(jobs.consumer_config("workers"))
        .await
        .expect("the workers' consumer");

    let planned = plan(&[Poison::NoTenant, Poison::BadTenant, Poison::BrokenCarrier]);
    let mut workers = Workers::spawn(
        WORKER,
        WORKERS,
        &worker_args("nats", &url, &subject, &stream_name, false),
    );
    workers.wait_ready(Duration::from_secs(20)).await;
    let mut stamps = HashMap::new();
    for p in &planned {
        match p {
            Planned::Good {
                id,
                tenant,
                fail_once,
            } => {
                let cx = request(tenant, *id);
                let body = serde_json::to_vec(&TestJob {
                    id: *id,
                    fail_once: *fail_once,
                })
                .expect("json");
                cx.scope(jobs.publish(&js, &body))
                    .await
                    .expect("publish")
                    .await
                    .expect("stored");
                stamp(&mut stamps, *id, &cx, *fail_once);
            }
            Planned::Poisoned { id, poison } => {
                let body = serde_json::to_vec(&serde_json::json!({ "id": id })).expect("json");
                let mut headers = async_nats::HeaderMap::new();
                match poison {
                    Poison::NoTenant => nats::inject(&Context::root(), &mut headers),
                    Poison::BadTenant => {
                        nats::inject(&Context::root(), &mut headers);
                        headers.insert("baggage", "tenantId=bad%3Btenant");
                    }
                    Poison::BrokenCarrier => {
                        headers.insert("traceparent", "garbage");
                        headers.insert("baggage", "tenantId=acme");
                    }
                    Poison::Unreadable => unreachable!("not planned for header brokers"),
                }
                js.publish_with_headers(subject.clone(), headers, body.into())
                    .await
                    .expect("publish a poisoned job")
                    .await
                    .expect("stored");
            }
        }
    }

    let dead_reader = dead.clone();
    run_and_check("nats", workers, &planned, &stamps, started, || {
        let dead = dead_reader.clone();
        async move {
            let mut dead = dead;
            let count = dead.info().await.expect("stream info").state.messages;
            let mut letters = Vec::new();
            for seq in 1..=count {
                let raw = dead
                    .get_raw_message(seq)
                    .await
                    .expect("a stored dead letter");
                let message = async_nats::Message {
                    subject: raw.subject.clone(),
                    reply: None,
                    payload: raw.payload.clone(),
                    headers: Some(raw.headers.clone()),
                    status: None,
                    description: None,
                    length: raw.payload.len(),
                };
                letters.push(nats::dead_letter(&message).expect("a dead-letter record"));
            }
            letters
        }
    })
    .await;

    let mut work = work;
    let left = work.info().await.expect("stream info").state.messages;
    assert_eq!(left, 0, "nothing waits in the work queue");
    js.delete_stream(&stream_name).await.expect("clean up");
    js.delete_stream(&dead_stream_name).await.expect("clean up");
}

// ---------------------------------------------------------------- apalis

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apalis_jobs_keep_their_context_across_worker_processes() {
    use apalis::prelude::TaskSink as _;
    use apalis_redis::{Config, RedisStorage};
    use context_runtime::apalis::dead_letters;

    let started = Instant::now();
    if !context_tests::service_available("Redis", REDIS) {
        return;
    }
    let url = format!("redis://{REDIS}");
    let name = unique_name("ctx-test-apalis");
    let conn = apalis_redis::connect(url.as_str())
        .await
        .expect("connect to Redis");
    let mut storage =
        RedisStorage::<Job<TestJob>>::new(conn.clone()).with_config(Config::default().queue(&name));

    let planned = plan(&[Poison::NoTenant, Poison::BadTenant, Poison::BrokenCarrier]);
    let mut workers = Workers::spawn(
        WORKER,
        WORKERS,
        &worker_args("apalis", &url, &name, "", false),
    );
    workers.wait_ready(Duration::from_secs(20)).await;
    let mut stamps = HashMap::new();
    for p in &planned {
        match p {
            Planned::Good {
                id,
                tenant,
                fail_once,
            } => {
                let cx = request(tenant, *id);
                let data = TestJob {
                    id: *id,
                    fail_once: *fail_once,
                };
                let job = cx.scope(async { Job::current(data) }).await;
                storage.push(job).await.expect("push");
                stamp(&mut stamps, *id, &cx, *fail_once);
            }
            Planned::Poisoned { id, poison } => {
                let data = serde_json::json!({ "id": id });
                let job: Job<TestJob> = match poison {
                    Poison::NoTenant => serde_json::from_value(serde_json::json!({
                        "ctx": Context::root().to_carrier(), "data": data,
                    })),
                    Poison::BadTenant => serde_json::from_value(serde_json::json!({
                        "ctx": { "traceId": Context::root().trace_id().to_string(), "tenantId": BAD_TENANT },
                        "data": data,
                    })),
                    Poison::BrokenCarrier => {
                        serde_json::from_value(serde_json::json!({ "ctx": "garbage", "data": data }))
                    }
                    Poison::Unreadable => unreachable!("apalis cannot decode it: not planned"),
                }
                .expect("a job that parses");
                storage.push(job).await.expect("push a poisoned job");
            }
        }
    }

    let reader = conn.clone();
    let queue = name.clone();
    run_and_check("apalis", workers, &planned, &stamps, started, || {
        let (mut conn, queue) = (reader.clone(), queue.clone());
        async move {
            dead_letters(&mut conn, &queue)
                .await
                .expect("read dead letters")
        }
    })
    .await;

    // apalis filed the rejected tasks in its own dead set too.
    let mut conn = conn;
    let dead: usize = redis::cmd("SCARD")
        .arg(format!("{name}:dead"))
        .query_async(&mut conn)
        .await
        .expect("SCARD");
    assert_eq!(dead, planned.len() - stamps.len(), "apalis's dead set");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{name}:*"))
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    if !keys.is_empty() {
        redis::cmd("DEL")
            .arg(keys)
            .query_async::<()>(&mut conn)
            .await
            .expect("clean up");
    }
}
