//! The demo over a real broker (`--broker URL`): the producer enqueues the
//! same jobs as the in-process demo, three worker processes (this program,
//! started again with `--work`) run them 8 at a time, and the summary is
//! checked against what the producer stamped.

use std::process::Stdio;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use context_runtime::jobs::{DeadLetter, Job, Outcome, Worker};
use context_runtime::lapin as amqp;
use context_runtime::nats;
use context_runtime::redis as redis_jobs;
use context_runtime::{requires_tenant, with_context, Context, TenantId, UserRef};
use futures_util::StreamExt as _;
use lapin::message::Delivery;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio::sync::{mpsc, watch};

use crate::{run_invoice, summarize, Done, JobError, Stamped};

const WORKERS: usize = 3;
const CONCURRENCY: usize = 8;

/// A job's data on the wire; the context rides beside it.
#[derive(Debug, Serialize, Deserialize)]
struct Invoice {
    id: u32,
    invoice: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Redis,
    Amqp,
    Nats,
}

impl Mode {
    fn of(url: &str) -> Option<Mode> {
        let scheme = url.split("://").next()?;
        match scheme {
            "redis" => Some(Mode::Redis),
            "amqp" => Some(Mode::Amqp),
            "nats" => Some(Mode::Nats),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Redis => "Redis",
            Mode::Amqp => "RabbitMQ",
            Mode::Nats => "NATS JetStream",
        }
    }
}

/// The names this run uses, unique per run.
#[derive(Debug, Clone)]
struct Names {
    queue: String,
    stream: String,
}

impl Names {
    fn new() -> Names {
        let base = format!("ctx_demo_{}", std::process::id());
        Names {
            queue: format!("{base}.invoices"),
            stream: base.to_uppercase(),
        }
    }
}

/// The parent: set up, start the workers, produce, collect, summarize.
pub(crate) async fn run(url: &str) {
    let Some(mode) = Mode::of(url) else {
        eprintln!("--broker takes a redis://, amqp:// or nats:// URL, not {url:?}");
        std::process::exit(2);
    };
    let names = Names::new();
    println!(
        "== context-runtime demo over {}: {WORKERS} worker processes × {CONCURRENCY} ==",
        mode.name()
    );
    let broker = Broker::connect(mode, url, &names).await;

    let exe = std::env::current_exe().expect("this program's path");
    let (lines_tx, mut lines) = mpsc::unbounded_channel::<(usize, String)>();
    let mut children = Vec::new();
    for n in 0..WORKERS {
        let mut child = tokio::process::Command::new(&exe)
            .args(["--work", url, &names.queue, &names.stream])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start a worker process");
        let mut out = BufReader::new(child.stdout.take().expect("piped")).lines();
        let tx = lines_tx.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                let _ = tx.send((n, line));
            }
        });
        children.push(child);
    }
    drop(lines_tx);

    let stamped = broker.produce().await;
    let good = stamped.values().filter(|(_, t)| t.is_some()).count();
    let expected_dead = stamped.len() - good;

    let mut done: Vec<Done> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut dead = Vec::new();
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(200), lines.recv()).await {
            Ok(Some((n, line))) => match line.strip_prefix("DONE ") {
                Some(json) => done.push(serde_json::from_str(json).expect("a DONE line")),
                None => println!("[worker {n}]{line}"),
            },
            Ok(None) => break,
            Err(_) => {}
        }
        if done.len() == good {
            dead = broker.dead_letters().await;
            if dead.len() >= expected_dead {
                break;
            }
        }
    }
    for child in &mut children {
        drop(child.stdin.take());
    }
    for child in &mut children {
        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    }
    while let Ok((n, line)) = lines.try_recv() {
        match line.strip_prefix("DONE ") {
            Some(json) => done.push(serde_json::from_str(json).expect("a DONE line")),
            None => println!("[worker {n}]{line}"),
        }
    }
    broker.clean_up().await;
    summarize(&stamped, &done, &dead);
}

/// The parent's side of the broker.
enum Broker {
    Redis {
        conn: redis::aio::MultiplexedConnection,
        queue: redis_jobs::Queue,
    },
    Amqp {
        conn: lapin::Connection,
        channel: lapin::Channel,
        queue: amqp::Queue,
    },
    Nats {
        js: jetstream::Context,
        jobs: nats::Queue,
        names: Names,
    },
}

impl Broker {
    async fn connect(mode: Mode, url: &str, names: &Names) -> Broker {
        match mode {
            Mode::Redis => {
                let client = redis::Client::open(url).expect("a Redis URL");
                let conn = client
                    .get_multiplexed_async_connection()
                    .await
                    .expect("connect to Redis");
                Broker::Redis {
                    conn,
                    queue: redis_jobs::Queue::new(names.queue.clone()),
                }
            }
            Mode::Amqp => {
                let conn = lapin::Connection::connect(url, Default::default())
                    .await
                    .expect("connect to RabbitMQ");
                let channel = conn.create_channel().await.expect("a channel");
                channel
                    .confirm_select(Default::default())
                    .await
                    .expect("publisher confirms");
                let queue = amqp::Queue::new(names.queue.clone());
                queue.declare(&channel).await.expect("declare the queues");
                Broker::Amqp {
                    conn,
                    channel,
                    queue,
                }
            }
            Mode::Nats => {
                let client = async_nats::connect(url).await.expect("connect to NATS");
                let js = jetstream::new(client);
                let jobs = nats::Queue::new(names.queue.clone());
                let work = js
                    .create_stream(stream::Config {
                        name: names.stream.clone(),
                        subjects: vec![names.queue.clone()],
                        retention: stream::RetentionPolicy::WorkQueue,
                        ..Default::default()
                    })
                    .await
                    .expect("the jobs stream");
                js.create_stream(stream::Config {
                    name: format!("{}_DEAD", names.stream),
                    subjects: vec![jobs.dead_letter_subject().to_owned()],
                    ..Default::default()
                })
                .await
                .expect("the dead-letter stream");
                work.create_consumer(consumer::pull::Config {
                    durable_name: Some("workers".into()),
                    filter_subject: names.queue.clone(),
                    ..Default::default()
                })
                .await
                .expect("the workers' consumer");
                Broker::Nats {
                    js,
                    jobs,
                    names: names.clone(),
                }
            }
        }
    }

    /// Enqueues the demo's jobs, each inside its own request's context
    /// (captured at enqueue), and one without a tenant.
    async fn produce(&self) -> Stamped {
        let mut stamped = Stamped::new();
        let mut id = 0;
        for tenant in ["acme", "globex", "initech"] {
            for n in 0..4 {
                id += 1;
                let request = Context::root()
                    .with_tenant(TenantId::new(tenant).expect("a valid tenant"))
                    .with_user(UserRef::user(100 + n).expect("a valid user"));
                request.scope(self.enqueue(id)).await;
                stamped.insert(
                    id,
                    (request.trace_id().to_string(), Some(tenant.to_owned())),
                );
            }
        }
        // A producer that forgot its tenant: the job must not run.
        id += 1;
        let orphan = Context::root();
        orphan.scope(self.enqueue(id)).await;
        stamped.insert(id, (orphan.trace_id().to_string(), None));
        stamped
    }

    async fn enqueue(&self, id: u32) {
        let data = Invoice {
            id,
            invoice: 1000 + id,
        };
        match self {
            Broker::Redis { conn, queue } => {
                queue
                    .enqueue(&mut conn.clone(), &data)
                    .await
                    .expect("enqueue");
            }
            Broker::Amqp { channel, queue, .. } => {
                let body = serde_json::to_vec(&data).expect("json");
                queue
                    .publish(channel, &body)
                    .await
                    .expect("publish")
                    .await
                    .expect("confirmed");
            }
            Broker::Nats { js, jobs, .. } => {
                let body = serde_json::to_vec(&data).expect("json");
                jobs.publish(js, &body)
                    .await
                    .expect("publish")
                    .await
                    .expect("stored");
            }
        }
    }

    /// The dead letters so far, as (job id, reason).
    async fn dead_letters(&self) -> Vec<(u32, String)> {
        let letters: Vec<DeadLetter> = match self {
            Broker::Redis { conn, queue } => queue
                .dead_letters(&mut conn.clone())
                .await
                .expect("read dead letters"),
            Broker::Amqp { conn, queue, .. } => {
                // A snapshot: get them all without acking on a channel of
                // its own, whose closing puts them back.
                let channel = conn.create_channel().await.expect("a channel");
                let mut letters = Vec::new();
                let dlq = queue.dead_letter_queue();
                while let Some(message) = channel
                    .basic_get(dlq.as_str().into(), Default::default())
                    .await
                    .expect("basic.get")
                {
                    letters.extend(amqp::dead_letter(&message.delivery));
                }
                let _ = channel.close(200, "snapshot".into()).await;
                letters
            }
            Broker::Nats { js, names, .. } => {
                let mut dead = js
                    .get_stream(format!("{}_DEAD", names.stream))
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
                    letters.extend(nats::dead_letter(&message));
                }
                letters
            }
        };
        letters
            .into_iter()
            .map(|letter| {
                let value: serde_json::Value =
                    serde_json::from_str(&letter.payload).unwrap_or_default();
                let data = value.get("data").unwrap_or(&value);
                let id = data.get("id").and_then(serde_json::Value::as_u64);
                let id = id.and_then(|id| u32::try_from(id).ok()).unwrap_or(0);
                (id, letter.reason)
            })
            .collect()
    }

    async fn clean_up(&self) {
        match self {
            Broker::Redis { conn, queue } => {
                let _: Result<(), _> = redis::cmd("DEL")
                    .arg(queue.name())
                    .arg(queue.dead_letter_stream())
                    .query_async(&mut conn.clone())
                    .await;
            }
            Broker::Amqp { channel, queue, .. } => {
                for q in [queue.name().to_owned(), queue.dead_letter_queue()] {
                    let _ = channel
                        .queue_delete(q.as_str().into(), Default::default())
                        .await;
                }
                let _ = channel
                    .exchange_delete(
                        queue.dead_letter_exchange().as_str().into(),
                        Default::default(),
                    )
                    .await;
            }
            Broker::Nats { js, names, .. } => {
                let _ = js.delete_stream(&names.stream).await;
                let _ = js.delete_stream(format!("{}_DEAD", names.stream)).await;
            }
        }
    }
}

// ---------------------------------------------------------------- workers

/// The runner already runs it in the job's context and checked its tenant:
/// no `#[with_context]` here.
async fn handle_redis(job: Job<Invoice>) -> Result<Done, JobError> {
    run_invoice(job.data.id, job.data.invoice).await
}

#[with_context(from = "delivery")]
#[requires_tenant]
async fn handle_amqp(delivery: Delivery) -> Result<Done, WorkError> {
    let data: Invoice = serde_json::from_slice(&delivery.data)?;
    Ok(run_invoice(data.id, data.invoice).await?)
}

#[with_context(from = "message")]
#[requires_tenant]
async fn handle_nats(message: jetstream::Message) -> Result<Done, WorkError> {
    let data: Invoice = serde_json::from_slice(&message.payload)?;
    Ok(run_invoice(data.id, data.invoice).await?)
}

/// A header broker's handler error: the job's or its payload's.
#[derive(Debug)]
enum WorkError {
    Job(JobError),
    Payload(serde_json::Error),
}

impl std::fmt::Display for WorkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkError::Job(e) => e.fmt(f),
            WorkError::Payload(e) => write!(f, "the payload is not an invoice: {e}"),
        }
    }
}

impl From<JobError> for WorkError {
    fn from(e: JobError) -> Self {
        WorkError::Job(e)
    }
}

impl From<serde_json::Error> for WorkError {
    fn from(e: serde_json::Error) -> Self {
        WorkError::Payload(e)
    }
}

impl From<context_runtime::CarrierError> for WorkError {
    fn from(e: context_runtime::CarrierError) -> Self {
        WorkError::Job(e.into())
    }
}

impl From<context_runtime::TenantRequired> for WorkError {
    fn from(e: context_runtime::TenantRequired) -> Self {
        WorkError::Job(e.into())
    }
}

/// Prints a completed job's `DONE` line for the parent, or a dead letter.
fn report<R: Serialize>(outcome: &Outcome<R>) {
    match outcome {
        Outcome::Completed(done) => println!(
            "DONE {}",
            serde_json::to_string(done).expect("a report serializes")
        ),
        Outcome::DeadLettered(letter) => println!(
            " dead-lettered ({}, tenant {}): {}",
            letter.kind,
            letter.tenant.as_deref().unwrap_or("-"),
            letter.reason
        ),
        _ => {}
    }
}

/// A worker process: `--work URL QUEUE STREAM`; stops when stdin closes.
pub(crate) async fn work(args: &[String]) {
    let [url, queue, stream] = args else {
        eprintln!("usage: jobs --work URL QUEUE STREAM");
        std::process::exit(2);
    };
    let (tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        let mut sink = Vec::new();
        let limit = Duration::from_secs(60);
        let _ = tokio::time::timeout(limit, tokio::io::stdin().read_to_end(&mut sink)).await;
        let _ = tx.send(true);
    });
    let stopped = {
        let mut stop = stop.clone();
        async move {
            let _ = stop.wait_for(|s| *s).await;
        }
    };
    match Mode::of(url) {
        Some(Mode::Redis) => {
            let client = redis::Client::open(url.as_str()).expect("a Redis URL");
            let consumer = redis_jobs::Queue::new(queue.clone())
                .consumer(client)
                .await
                .expect("join the consumer group");
            Worker::new(consumer, handle_redis)
                .concurrency(CONCURRENCY)
                .on_outcome(|handled| match &handled.outcome {
                    Ok(outcome) => report(outcome),
                    Err(e) => eprintln!(" could not settle a job (it comes back): {e}"),
                })
                .run(stopped)
                .await;
        }
        Some(Mode::Amqp) => {
            let conn = lapin::Connection::connect(url, Default::default())
                .await
                .expect("connect to RabbitMQ");
            let channel = conn.create_channel().await.expect("a channel");
            channel
                .confirm_select(Default::default())
                .await
                .expect("confirms");
            channel
                .basic_qos(8, Default::default())
                .await
                .expect("prefetch");
            let jobs = amqp::Queue::new(queue.clone());
            let deliveries = channel
                .basic_consume(
                    queue.as_str().into(),
                    "".into(),
                    Default::default(),
                    Default::default(),
                )
                .await
                .expect("consume");
            deliveries
                .take_until(stopped)
                .for_each_concurrent(CONCURRENCY, |delivery| {
                    let (jobs, channel) = (&jobs, &channel);
                    async move {
                        let delivery = delivery.expect("a delivery");
                        let outcome = jobs
                            .process(channel, delivery, handle_amqp)
                            .await
                            .expect("settle");
                        report(&outcome);
                    }
                })
                .await;
            let _ = channel.close(200, "done".into()).await;
            let _ = conn.close(200, "done".into()).await;
        }
        Some(Mode::Nats) => {
            let client = async_nats::connect(url).await.expect("connect to NATS");
            let js = jetstream::new(client.clone());
            let jobs = nats::Queue::new(queue.clone());
            let consumer: consumer::PullConsumer = js
                .get_stream(stream)
                .await
                .expect("the jobs stream")
                .get_consumer("workers")
                .await
                .expect("the workers' consumer");
            let messages = consumer.messages().await.expect("messages");
            messages
                .take_until(stopped)
                .for_each_concurrent(CONCURRENCY, |message| {
                    let (jobs, js) = (&jobs, &js);
                    async move {
                        let message = message.expect("a message");
                        let outcome = jobs
                            .process(js, message, handle_nats)
                            .await
                            .expect("settle");
                        report(&outcome);
                    }
                })
                .await;
            let _ = client.flush().await;
        }
        None => {
            eprintln!("--work takes a redis://, amqp:// or nats:// URL");
            std::process::exit(2);
        }
    }
}
