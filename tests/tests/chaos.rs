//! Nothing lost under faults, against the real Redis server: three worker
//! processes (the crate's runner on a Redis stream, 8 jobs at a time each)
//! consume 1,029 jobs over three tenants while the test kills workers with
//! SIGKILL mid-job (by pid, restarting them), about 2% of first attempts
//! panic, and each worker's connections to Redis are cut through a TCP
//! proxy on 127.0.0.1 that the test runs (the shared server is never
//! touched). Afterwards every job is completed or dead-lettered, each
//! handler saw its own job's trace id and tenant, and the poisoned jobs are
//! dead-lettered with their reasons. Duplicates (at-least-once
//! redelivery) are counted and printed.
//!
//! The control runs the same chaos with crash recovery disabled (a
//! visibility timeout of an hour: no job of a dead worker is taken over)
//! and must report lost jobs.
//!
//! The same chaos runs on apalis with its Redis backend and the crate's
//! `JobLayer` (apalis's own crash recovery: the tasks of a worker whose
//! heartbeat stopped are re-enqueued), with its control; and on apalis
//! with its PostgreSQL backend (the same recovery: a worker whose heartbeat
//! stopped for 2 s is orphaned and its tasks go back to `Pending`; dead
//! letters in a PostgreSQL table), whose control sets the orphan timeout to
//! an hour.
//!
//! And on RabbitMQ and NATS JetStream, with the crate's runner over their
//! consumers: a quorum queue with a delivery limit (a dead worker's
//! deliveries go back to the queue, counted), and a JetStream pull
//! consumer with a 2 s ack wait and `max_deliver` = attempts + 1. Their
//! controls: on RabbitMQ the handler acks its delivery before it works (at
//! most once), on NATS the ack wait is an hour (no redelivery within the
//! run); both must report lost jobs.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use context_runtime::jobs::{Job, Policy};
use context_runtime::redis::Queue;
use context_runtime::{Context, ContextSource as _, TenantId};
use context_tests::brokers::{unique_name, TENANTS};
use context_tests::chaos::{ChaosJob, Expect, Fleet, Ledger, TcpProxy, Verdict};
use context_tests::pg_dead_letters::PgDeadLetters;

const WORKER: &str = env!("CARGO_BIN_EXE_broker-worker");
const REDIS: &str = "127.0.0.1:6379";
const AMQP: &str = "127.0.0.1:5672";
const NATS: &str = "127.0.0.1:4222";
const POSTGRES: &str = "127.0.0.1:5432";
const ATTEMPTS: u32 = 3;
const WORKERS: usize = 3;
const GOOD: u64 = 1_020;
/// Jobs that panic on every attempt, and jobs without a tenant.
const PANIC_ALWAYS: u64 = 6;
const NO_TENANT: u64 = 3;
const KILLS: usize = 5;

/// The chaos runs share two cores with the rest: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Run {
    verdict: Verdict,
    kills: Vec<(u32, usize)>,
    /// Workers that exited on their own and were started again.
    revived: usize,
    cuts: Vec<usize>,
    elapsed: Duration,
    left_in_stream: usize,
}

/// The brokers the chaos runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broker {
    /// The crate's Redis transport and runner.
    Redis,
    /// apalis on Redis, with `JobLayer`.
    Apalis,
    /// apalis on PostgreSQL, with `JobLayer` and a PostgreSQL sink.
    ApalisPg,
    /// The crate's RabbitMQ consumer and runner (a quorum queue).
    Amqp,
    /// The crate's JetStream consumer and runner.
    Nats,
}

impl Broker {
    /// Whether the crate's runner consumes (not apalis's worker).
    fn is_runner(self) -> bool {
        !matches!(self, Broker::Apalis | Broker::ApalisPg)
    }
}

/// The broker's side of a run: where jobs go and dead letters are read.
enum Backend {
    /// Redis and apalis: the test's own connection does it all.
    Redis,
    /// apalis on PostgreSQL: its tables, and the dead letters' table.
    Pg {
        pool: apalis_postgres::PgPool,
        sink: PgDeadLetters,
        queue: String,
    },
    Amqp {
        conn: lapin::Connection,
        channel: lapin::Channel,
        queue: context_runtime::lapin::Queue,
    },
    Nats {
        js: jetstream::Context,
        jobs: context_runtime::nats::Queue,
        stream: String,
        dead_stream: String,
    },
}

fn postgres_url(addr: &str) -> String {
    format!("postgres://postgres@{addr}/test")
}

fn amqp_url(addr: &str) -> String {
    format!("amqp://guest:guest@{addr}/%2f")
}

impl Backend {
    async fn start(broker: Broker, name: &str, recovery: bool) -> Backend {
        match broker {
            Broker::Redis | Broker::Apalis => Backend::Redis,
            Broker::ApalisPg => {
                let pool = apalis_postgres::PgPool::connect(&postgres_url(POSTGRES))
                    .await
                    .expect("connect to PostgreSQL");
                apalis_postgres::PostgresStorage::setup(&pool)
                    .await
                    .expect("apalis's tables");
                let sink = PgDeadLetters::new(pool.clone());
                sink.create_table().await.expect("the dead-letter table");
                Backend::Pg {
                    pool,
                    sink,
                    queue: name.to_owned(),
                }
            }
            Broker::Amqp => {
                let conn = lapin::Connection::connect(&amqp_url(AMQP), Default::default())
                    .await
                    .expect("connect to RabbitMQ");
                let channel = conn.create_channel().await.expect("a channel");
                channel
                    .confirm_select(Default::default())
                    .await
                    .expect("confirms");
                let queue = context_runtime::lapin::Queue::new(name)
                    .with_policy(Policy::new().max_attempts(ATTEMPTS));
                queue.declare(&channel).await.expect("declare the queue");
                Backend::Amqp {
                    conn,
                    channel,
                    queue,
                }
            }
            Broker::Nats => {
                let client = async_nats::connect(format!("nats://{NATS}"))
                    .await
                    .expect("connect to NATS");
                let js = jetstream::new(client);
                let jobs = context_runtime::nats::Queue::new(format!("{name}.jobs"))
                    .with_policy(Policy::new().max_attempts(ATTEMPTS))
                    .with_ack_wait(nats_ack_wait(recovery));
                let stream = name.to_uppercase();
                let dead_stream = format!("{stream}_DEAD");
                let work = js
                    .create_stream(stream::Config {
                        name: stream.clone(),
                        subjects: vec![jobs.subject().to_owned()],
                        retention: stream::RetentionPolicy::WorkQueue,
                        ..Default::default()
                    })
                    .await
                    .expect("the jobs stream");
                js.create_stream(stream::Config {
                    name: dead_stream.clone(),
                    subjects: vec![jobs.dead_letter_subject().to_owned()],
                    ..Default::default()
                })
                .await
                .expect("the dead-letter stream");
                work.create_consumer(jobs.consumer_config("workers"))
                    .await
                    .expect("the workers' consumer");
                Backend::Nats {
                    js,
                    jobs,
                    stream,
                    dead_stream,
                }
            }
        }
    }

    /// Publishes `job` (for RabbitMQ and NATS: its data as the body, its
    /// context in the headers).
    async fn publish(&self, job: &Job<ChaosJob>) {
        let cx = job.to_context().expect("a readable job");
        let body = serde_json::to_vec(&job.data).expect("json");
        match self {
            Backend::Redis | Backend::Pg { .. } => {
                unreachable!("Redis and apalis jobs are enqueued by the producer")
            }
            Backend::Amqp { channel, queue, .. } => {
                let confirm = cx
                    .scope(queue.publish(channel, &body))
                    .await
                    .expect("publish")
                    .await
                    .expect("confirmed");
                assert_eq!(confirm, lapin::Confirmation::Ack(None));
            }
            Backend::Nats { js, jobs, .. } => {
                cx.scope(jobs.publish(js, &body))
                    .await
                    .expect("publish")
                    .await
                    .expect("stored");
            }
        }
    }

    /// The dead letters, as `(job data JSON, kind, reason)`.
    async fn dead_letters(&self) -> Vec<(Vec<u8>, String, String)> {
        match self {
            Backend::Redis => unreachable!("read by read_dead_letters"),
            Backend::Pg { sink, queue, .. } => sink
                .read(queue)
                .await
                .expect("read dead letters")
                .into_iter()
                .map(|(kind, reason, _, payload)| (payload.into_bytes(), kind, reason))
                .collect(),
            Backend::Amqp { conn, queue, .. } => {
                // A snapshot: read without acking, put back by closing.
                let channel = conn.create_channel().await.expect("a channel");
                let mut letters = Vec::new();
                while let Some(message) = channel
                    .basic_get(
                        queue.dead_letter_queue().as_str().into(),
                        lapin::options::BasicGetOptions::default(),
                    )
                    .await
                    .expect("basic.get")
                {
                    let letter = context_runtime::lapin::dead_letter(&message.delivery)
                        .expect("a dead-letter record");
                    letters.push((
                        message.delivery.data.clone(),
                        letter.kind.to_string(),
                        letter.reason,
                    ));
                }
                channel.close(200, "snapshot".into()).await.expect("close");
                letters
            }
            Backend::Nats {
                js, dead_stream, ..
            } => {
                let mut dead = js
                    .get_stream(dead_stream)
                    .await
                    .expect("the dead-letter stream");
                let count = dead.info().await.expect("stream info").state.messages;
                let mut letters = Vec::new();
                for seq in 1..=count {
                    let raw = dead.get_raw_message(seq).await.expect("a dead letter");
                    let message = async_nats::Message {
                        subject: raw.subject.clone(),
                        reply: None,
                        payload: raw.payload.clone(),
                        headers: Some(raw.headers.clone()),
                        status: None,
                        description: None,
                        length: raw.payload.len(),
                    };
                    let letter =
                        context_runtime::nats::dead_letter(&message).expect("a dead-letter record");
                    letters.push((raw.payload.to_vec(), letter.kind.to_string(), letter.reason));
                }
                letters
            }
        }
    }

    /// Jobs still waiting in the broker (not for Redis: read there).
    async fn waiting(&self) -> usize {
        match self {
            Backend::Redis => 0,
            Backend::Pg { pool, queue, .. } => {
                let waiting: i64 = sqlx_apalis::query_scalar(
                    "SELECT count(*) FROM apalis.jobs WHERE job_type = $1 \
                     AND status IN ('Pending', 'Queued', 'Running')",
                )
                .bind(queue)
                .fetch_one(pool)
                .await
                .expect("count waiting tasks");
                usize::try_from(waiting).expect("small")
            }
            Backend::Amqp { channel, queue, .. } => {
                let passive = lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                };
                let declared = channel
                    .queue_declare(queue.name().into(), passive, Default::default())
                    .await
                    .expect("the queue");
                usize::try_from(declared.message_count()).expect("small")
            }
            Backend::Nats { js, stream, .. } => {
                let mut work = js.get_stream(stream).await.expect("the stream");
                let messages = work.info().await.expect("stream info").state.messages;
                usize::try_from(messages).expect("small")
            }
        }
    }

    async fn clean_up(&self) {
        match self {
            Backend::Redis => {}
            Backend::Pg { pool, sink, queue } => {
                let _ = sink.delete(queue).await;
                for sql in [
                    "DELETE FROM apalis.jobs WHERE job_type = $1",
                    "DELETE FROM apalis.workers WHERE worker_type = $1",
                ] {
                    let _ = sqlx_apalis::query(sql).bind(queue).execute(pool).await;
                }
            }
            Backend::Amqp { channel, queue, .. } => {
                for name in [queue.name().to_owned(), queue.dead_letter_queue()] {
                    let _ = channel
                        .queue_delete(name.as_str().into(), Default::default())
                        .await;
                }
                let _ = channel
                    .exchange_delete(
                        queue.dead_letter_exchange().as_str().into(),
                        Default::default(),
                    )
                    .await;
            }
            Backend::Nats {
                js,
                stream,
                dead_stream,
                ..
            } => {
                let _ = js.delete_stream(stream).await;
                let _ = js.delete_stream(dead_stream).await;
            }
        }
    }
}

/// The JetStream consumer's ack wait: short with recovery, an hour in the
/// control (no redelivery within the run).
fn nats_ack_wait(recovery: bool) -> Duration {
    if recovery {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(3_600)
    }
}

/// The jobs: good ones over three tenants (every 50th panics on its first
/// attempt, every 97th fails once), then the poisoned ones, spread in.
fn plan(ledger: &mut Ledger) -> Vec<Job<ChaosJob>> {
    let mut payloads = Vec::new();
    for id in 1..=GOOD {
        let tenant = TENANTS[usize::try_from(id % 3).expect("small")];
        let cx = Context::root().with_tenant(TenantId::new(tenant).expect("valid"));
        let data = ChaosJob {
            id,
            fail_once: id % 97 == 0,
            panic_once: id % 50 == 7,
            work_ms: 10 + id % 40,
            ..ChaosJob::default()
        };
        ledger.expect(
            id,
            Expect::Completed {
                trace_id: cx.trace_id().to_string(),
                tenant: tenant.to_owned(),
            },
        );
        payloads.push(Job::new(&cx, data));
        if id % 100 == 50 && id / 100 < PANIC_ALWAYS + NO_TENANT {
            let poison_id = 100_000 + id;
            let n = id / 100;
            let (cx, data, expect) = if n < PANIC_ALWAYS {
                let cx = Context::root().with_tenant(TenantId::new("acme").expect("valid"));
                let data = ChaosJob {
                    id: poison_id,
                    panic_always: true,
                    ..ChaosJob::default()
                };
                let expect = Expect::DeadLettered {
                    kind: "exhausted".into(),
                    reason: "panicked: a planned panic".into(),
                };
                (cx, data, expect)
            } else {
                let data = ChaosJob {
                    id: poison_id,
                    ..ChaosJob::default()
                };
                let expect = Expect::DeadLettered {
                    kind: "tenant_required".into(),
                    reason: "no tenant".into(),
                };
                (Context::root(), data, expect)
            };
            ledger.expect(poison_id, expect);
            payloads.push(Job::new(&cx, data));
        }
    }
    payloads
}

async fn connect() -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{REDIS}"))
        .expect("a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis")
}

/// Reads the dead letters into the ledger.
async fn read_dead_letters(
    broker: Broker,
    queue: &Queue,
    backend: &Backend,
    conn: &mut redis::aio::MultiplexedConnection,
    ledger: &mut Ledger,
) {
    if broker == Broker::ApalisPg {
        // The payload is the job's JSON.
        let letters = backend.dead_letters().await;
        ledger.dead_letters(letters.into_iter().filter_map(|(payload, kind, reason)| {
            let job: Job<ChaosJob> = serde_json::from_slice(&payload).ok()?;
            Some((job.data.id, kind, reason))
        }));
        return;
    }
    if matches!(broker, Broker::Amqp | Broker::Nats) {
        // The body is the job's data.
        let letters = backend.dead_letters().await;
        ledger.dead_letters(letters.into_iter().filter_map(|(body, kind, reason)| {
            let data: ChaosJob = serde_json::from_slice(&body).ok()?;
            Some((data.id, kind, reason))
        }));
        return;
    }
    let letters: Vec<(Vec<u8>, String, String)> = match broker {
        Broker::Redis => queue
            .dead_jobs(conn)
            .await
            .expect("read dead letters")
            .into_iter()
            .map(|d| (d.job, d.letter.kind.to_string(), d.letter.reason))
            .collect(),
        Broker::Apalis => context_runtime::apalis::dead_letters(conn, queue.name())
            .await
            .expect("read dead letters")
            .into_iter()
            .map(|l| (l.payload.into_bytes(), l.kind.to_string(), l.reason))
            .collect(),
        Broker::Amqp | Broker::Nats | Broker::ApalisPg => unreachable!("read above"),
    };
    ledger.dead_letters(letters.into_iter().filter_map(|(job, kind, reason)| {
        let job: Job<ChaosJob> = serde_json::from_slice(&job).ok()?;
        Some((job.data.id, kind, reason))
    }));
}

async fn chaos(broker: Broker, recovery: bool) -> Run {
    let started = Instant::now();
    let name = unique_name(match (broker, recovery) {
        (Broker::Redis, true) => "ctx-chaos-redis",
        (Broker::Redis, false) => "ctx-chaos-redis-control",
        (Broker::Apalis, true) => "ctx-chaos-apalis",
        (Broker::Apalis, false) => "ctx-chaos-apalis-control",
        (Broker::ApalisPg, true) => "ctx-chaos-apalis-pg",
        (Broker::ApalisPg, false) => "ctx-chaos-apalis-pg-control",
        (Broker::Amqp, true) => "ctx-chaos-amqp",
        (Broker::Amqp, false) => "ctx-chaos-amqp-control",
        (Broker::Nats, true) => "ctx_chaos_nats",
        (Broker::Nats, false) => "ctx_chaos_nats_control",
    });
    // NATS subjects and stream names: no dashes.
    let name = if broker == Broker::Nats {
        name.replace('-', "_")
    } else {
        name
    };
    let queue = Queue::new(name.clone());
    let mut conn = connect().await;
    let backend = std::sync::Arc::new(Backend::start(broker, &name, recovery).await);
    let mut ledger = Ledger::default();
    let payloads = plan(&mut ledger);

    let upstream: SocketAddr = match broker {
        Broker::Redis | Broker::Apalis => REDIS,
        Broker::Amqp => AMQP,
        Broker::Nats => NATS,
        Broker::ApalisPg => POSTGRES,
    }
    .parse()
    .expect("an address");
    let mut proxies = Vec::new();
    for _ in 0..WORKERS {
        proxies.push(TcpProxy::start(upstream).await.expect("start a proxy"));
    }
    let visibility = if recovery { "1500" } else { "3600000" };
    let mode = match broker {
        Broker::Redis => "redis",
        Broker::Apalis => "apalis",
        Broker::ApalisPg => "apalis-postgres",
        Broker::Amqp => "amqp-runner",
        Broker::Nats => "nats-runner",
    };
    let attempts = ATTEMPTS.to_string();
    let ack_wait = nats_ack_wait(recovery).as_millis().to_string();
    let mut common: Vec<String> = [
        "--mode",
        mode,
        "--queue",
        &name,
        "--concurrency",
        "8",
        "--visibility-ms",
        visibility,
        "--attempts",
        &attempts,
        "--max-seconds",
        "100",
        "--chaos",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    match &*backend {
        Backend::Amqp { .. } if !recovery => common.push("--ack-first".into()),
        Backend::Nats { jobs, stream, .. } => {
            common[3] = jobs.subject().to_owned();
            common.extend(["--stream".into(), stream.clone()]);
            common.extend(["--ack-wait-ms".into(), ack_wait]);
        }
        _ => {}
    }
    let mut fleet = Fleet::new(WORKER, &common);
    for proxy in &proxies {
        let url = match broker {
            Broker::Redis | Broker::Apalis => format!("redis://{}", proxy.addr()),
            Broker::Amqp => amqp_url(&proxy.addr().to_string()),
            Broker::Nats => format!("nats://{}", proxy.addr()),
            Broker::ApalisPg => postgres_url(&proxy.addr().to_string()),
        };
        fleet.add(&["--url".into(), url]);
    }
    let ready_by = Instant::now() + Duration::from_secs(20);
    while fleet.ready < WORKERS {
        assert!(Instant::now() < ready_by, "workers not ready in 20 s");
        fleet.pump(&mut ledger, Duration::from_millis(50)).await;
    }

    // The producer: 25 jobs every 150 ms, straight to the server.
    let producer = {
        let (queue, mut conn) = (queue.clone(), conn.clone());
        let apalis = match broker {
            Broker::Apalis => Some(
                apalis_redis::connect(format!("redis://{REDIS}"))
                    .await
                    .expect("connect to Redis"),
            ),
            Broker::Redis | Broker::Amqp | Broker::Nats | Broker::ApalisPg => None,
        };
        let mut pg_storage = match &*backend {
            Backend::Pg { pool, queue, .. } => Some(
                apalis_postgres::PostgresStorage::<Job<ChaosJob>>::new(pool)
                    .with_config(apalis_postgres::Config::default().queue(queue)),
            ),
            _ => None,
        };
        let backend = std::sync::Arc::clone(&backend);
        tokio::spawn(async move {
            use apalis::prelude::TaskSink as _;
            let mut storage = apalis.map(|conn| {
                apalis_redis::RedisStorage::<Job<ChaosJob>>::new(conn)
                    .with_config(apalis_redis::Config::default().queue(queue.name()))
            });
            for batch in payloads.chunks(25) {
                for job in batch {
                    if let Some(storage) = &mut pg_storage {
                        storage.push(job.clone()).await.expect("push");
                        continue;
                    }
                    match &mut storage {
                        Some(storage) => storage.push(job.clone()).await.expect("push"),
                        None if broker == Broker::Redis => {
                            queue.enqueue_job(&mut conn, job).await.expect("enqueue");
                        }
                        None => backend.publish(job).await,
                    }
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
    };

    // The chaos: a kill (mid-job, then a restart) or a cut every 300 ms,
    // while the producer runs.
    let mut cuts = vec![0; WORKERS];
    let actions = [
        "kill 0", "cut 1", "kill 1", "cut 2", "kill 2", "cut 0", "kill 0", "kill 1", "cut 1",
    ];
    for action in actions {
        fleet.pump(&mut ledger, Duration::from_millis(300)).await;
        fleet.revive();
        let (what, slot) = action.split_once(' ').expect("an action");
        let slot: usize = slot.parse().expect("a slot");
        if what == "kill" {
            fleet
                .kill_mid_job(slot, &mut ledger, Duration::from_secs(3))
                .await;
            fleet.start(slot);
            let ready = fleet.ready + 1;
            assert!(
                fleet
                    .wait_ready(&mut ledger, ready, Duration::from_secs(20))
                    .await,
                "a restarted worker is not ready in 20 s"
            );
        } else {
            let cut = proxies[slot].cut();
            println!("cut {slot}: {cut} connections");
            cuts[slot] += cut;
        }
    }
    producer.await.expect("the producer");

    // Until every job ended, or the limit (a control never gets there).
    let limit = if recovery {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(5)
    };
    let settle_by = Instant::now() + limit;
    while Instant::now() < settle_by {
        fleet.pump(&mut ledger, Duration::from_millis(500)).await;
        fleet.revive();
        read_dead_letters(broker, &queue, &backend, &mut conn, &mut ledger).await;
        if ledger.settled() {
            break;
        }
    }
    fleet.stop(&mut ledger, Duration::from_secs(15)).await;
    read_dead_letters(broker, &queue, &backend, &mut conn, &mut ledger).await;
    let left_in_stream = match broker {
        Broker::Redis => redis::cmd("XLEN")
            .arg(queue.name())
            .query_async(&mut conn)
            .await
            .expect("XLEN"),
        Broker::Apalis => 0,
        Broker::Amqp | Broker::Nats | Broker::ApalisPg => backend.waiting().await,
    };
    backend.clean_up().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{name}*"))
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
    Run {
        verdict: ledger.verdict(),
        kills: fleet.kills.clone(),
        revived: fleet.revived,
        cuts,
        elapsed: started.elapsed(),
        left_in_stream,
    }
}

fn print(label: &str, run: &Run) {
    let v = &run.verdict;
    println!(
        "{label}: {} jobs = completed {} + dead-lettered {} (lost {}: {:?}); duplicates {} \
         ({} extra runs), dead-lettered twice {}; context mismatches {}; SIGKILLs (pid, jobs \
         in flight) {:?}; connections cut per worker {:?}; workers that exited on their own \
         and were restarted {}; left in the stream {}; {:.1?}",
        v.jobs,
        v.completed,
        v.dead_lettered,
        v.lost,
        v.lost_ids,
        v.duplicates,
        v.extra_runs,
        v.dead_duplicates,
        v.mismatches,
        run.kills,
        run.cuts,
        run.revived,
        run.left_in_stream,
        run.elapsed,
    );
    for line in &v.unexpected {
        println!("{label}: unexpected: {line}");
    }
}

fn check(label: &str, broker: Broker, run: &Run) {
    let v = &run.verdict;
    if broker == Broker::Redis {
        // The dead letter and the acknowledgement are one script on Redis;
        // apalis acknowledges after the layer's sink wrote it (at least once).
        assert_eq!(v.dead_duplicates, 0, "{label}: a job dead-lettered twice");
    }
    assert_eq!(v.lost, 0, "{label}: jobs lost: {:?}", v.lost_ids);
    assert_eq!(
        v.mismatches, 0,
        "{label}: a handler saw another job's context"
    );
    assert!(v.unexpected.is_empty(), "{label}: {:#?}", v.unexpected);
    assert_eq!(
        v.completed + v.dead_lettered,
        v.jobs,
        "{label}: every job ended once at least"
    );
    assert!(
        v.dead_lettered >= usize::try_from(PANIC_ALWAYS + NO_TENANT).expect("small"),
        "{label}: the poisoned jobs are dead-lettered"
    );
    assert!(run.kills.len() >= KILLS, "{label}: {:?}", run.kills);
    if broker.is_runner() {
        // apalis's worker may exit when its connection is cut (the fleet
        // starts it again, as a supervisor would): printed, checked here on
        // the crate's runner only.
        assert_eq!(run.revived, 0, "{label}: a worker exited on its own");
    }
    if broker != Broker::Apalis {
        // On apalis's Redis backend a cut may find the process gone and a
        // kill may find a process just started (its worker exits on a cut):
        // printed, checked on the others (apalis's PostgreSQL pool
        // reconnects).
        assert!(
            run.kills.iter().all(|&(_, in_flight)| in_flight > 0),
            "{label}: every kill lands mid-job: {:?}",
            run.kills
        );
        assert!(
            run.cuts.iter().all(|&n| n > 0),
            "{label}: each worker's connection is cut: {:?}",
            run.cuts
        );
    }
    assert_eq!(
        run.left_in_stream, 0,
        "{label}: nothing waits in the stream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_loses_nothing_under_kills_panics_and_cut_connections() {
    if !context_tests::service_available("RabbitMQ", AMQP) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let run = chaos(Broker::Amqp, true).await;
    print("rabbitmq chaos", &run);
    check("rabbitmq chaos", Broker::Amqp, &run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_control_acked_before_the_work_jobs_are_lost() {
    if !context_tests::service_available("RabbitMQ", AMQP) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let run = chaos(Broker::Amqp, false).await;
    print("rabbitmq control (acked before the work)", &run);
    assert!(
        run.verdict.lost > 0,
        "the chaos test must catch lost jobs when recovery is off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_loses_nothing_under_kills_panics_and_cut_connections() {
    if !context_tests::service_available("NATS", NATS) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let run = chaos(Broker::Nats, true).await;
    print("nats chaos", &run);
    check("nats chaos", Broker::Nats, &run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_control_without_redelivery_jobs_are_lost() {
    if !context_tests::service_available("NATS", NATS) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let run = chaos(Broker::Nats, false).await;
    print("nats control (no redelivery)", &run);
    assert!(
        run.verdict.lost > 0,
        "the chaos test must catch lost jobs when recovery is off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_loses_nothing_under_kills_panics_and_cut_connections() {
    if !context_tests::service_available("Redis", REDIS) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let run = chaos(Broker::Redis, true).await;
    print("redis chaos", &run);
    check("redis chaos", Broker::Redis, &run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_without_crash_recovery_jobs_are_lost() {
    if !context_tests::service_available("Redis", REDIS) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let run = chaos(Broker::Redis, false).await;
    print("redis control (no recovery)", &run);
    assert!(
        run.verdict.lost > 0,
        "the chaos test must catch lost jobs when recovery is off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apalis_on_redis_loses_nothing_under_kills_panics_and_cut_connections() {
    if !context_tests::service_available("Redis", REDIS) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let run = chaos(Broker::Apalis, true).await;
    print("apalis chaos", &run);
    check("apalis chaos", Broker::Apalis, &run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apalis_control_without_crash_recovery_jobs_are_lost() {
    if !context_tests::service_available("Redis", REDIS) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let run = chaos(Broker::Apalis, false).await;
    print("apalis control (no recovery)", &run);
    assert!(
        run.verdict.lost > 0,
        "the chaos test must catch lost jobs when recovery is off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apalis_on_postgres_loses_nothing_under_kills_panics_and_cut_connections() {
    if !context_tests::service_available("PostgreSQL", POSTGRES) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let run = chaos(Broker::ApalisPg, true).await;
    print("apalis-postgres chaos", &run);
    check("apalis-postgres chaos", Broker::ApalisPg, &run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apalis_on_postgres_control_without_crash_recovery_jobs_are_lost() {
    if !context_tests::service_available("PostgreSQL", POSTGRES) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let run = chaos(Broker::ApalisPg, false).await;
    print("apalis-postgres control (no recovery)", &run);
    assert!(
        run.verdict.lost > 0,
        "the chaos test must catch lost jobs when recovery is off"
    );
}
