//! A worker process for the broker tests: consumes one queue with
//! `--concurrency` jobs at a time and prints, for each job it completed, a
//! JSON [`Report`] with the trace id and tenant read inside the annotated
//! handler. It stops when its stdin closes (or after `--max-seconds`).
//!
//! ```text
//! broker-worker --mode redis|amqp|nats|apalis|apalis-postgres|amqp-runner|nats-runner --url URL --queue NAME
//!               [--stream NAME] [--concurrency 8] [--worker w0] [--max-seconds 90] [--leak]
//!               [--attempts 3] [--ack-wait-ms 30000] [--announce] [--panic-escapes]
//!               [--visibility-ms 30000] [--chaos] [--ack-first]
//! ```
//!
//! `amqp-runner` and `nats-runner` are the crate's runner (`jobs::Worker`)
//! over the RabbitMQ and JetStream consumers, for the chaos tests: a job's
//! body is a [`ChaosJob`] (its context in the headers). `--ack-first` is
//! the RabbitMQ chaos control: the handler acks its delivery before it
//! works (at most once), so a killed worker's job is gone.
//!
//! `apalis-postgres` is apalis's worker on its PostgreSQL backend with the
//! crate's `JobLayer` and a PostgreSQL dead-letter sink (`--url` is a
//! PostgreSQL URL).
//!
//! In redis mode the worker is the crate's runner (`jobs::Worker`) on a
//! Redis stream; `--visibility-ms` is the queue's visibility timeout (in
//! apalis mode, about how long a silent worker's tasks wait before apalis
//! re-enqueues them), and `--chaos` prints `STARTED <id>` when a handler
//! starts (so a test knows which worker is mid-job) and honours the jobs'
//! planned panics (redis and apalis modes).
//!
//! `--leak` is the control: the handler reports the context of whichever
//! job last started in this process (what an ambient set does), so the
//! tests can show they catch cross-talk.
//!
//! For the fault tests (RabbitMQ and NATS): a job's JSON may ask for a
//! fault ([`Fault`]: panic, hang, sleep); `--attempts` is the queue's
//! policy, `--ack-wait-ms` the NATS consumer's ack wait, `--announce`
//! prints `STARTED <id> <attempt> <worker>` when a handler starts, and
//! `--panic-escapes` is the control that lets a job's panic escape the
//! consume loop (what a loop without caught panics does).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;

use apalis::prelude::*;
use async_nats::jetstream;
use context_runtime::apalis::JobLayer;
use context_runtime::jobs::{Job, Outcome, Policy, Worker};
use context_runtime::lapin as amqp;
use context_runtime::nats;
use context_runtime::redis as redis_jobs;
use context_runtime::{requires_tenant, with_context, CarrierError, Context, TenantRequired};
use context_tests::brokers::{Report, TestJob, READY};
use context_tests::chaos::{ChaosJob, STARTED};
use context_tests::pg_dead_letters::PgDeadLetters;
use futures_util::StreamExt as _;
use lapin::message::Delivery;
use tokio::io::AsyncReadExt as _;
use tokio::sync::watch;

#[derive(Debug)]
struct JobError(String);

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for JobError {}

impl From<CarrierError> for JobError {
    fn from(e: CarrierError) -> Self {
        JobError(e.to_string())
    }
}

impl From<TenantRequired> for JobError {
    fn from(e: TenantRequired) -> Self {
        JobError(e.to_string())
    }
}

#[derive(Debug, Clone)]
struct Args {
    mode: String,
    url: String,
    queue: String,
    stream: String,
    concurrency: usize,
    worker: String,
    max_seconds: u64,
    leak: bool,
    attempts: u32,
    ack_wait_ms: u64,
    announce: bool,
    panic_escapes: bool,
    visibility_ms: u64,
    chaos: bool,
    ack_first: bool,
}

fn args() -> Args {
    let mut args = Args {
        mode: String::new(),
        url: String::new(),
        queue: String::new(),
        stream: String::new(),
        concurrency: 8,
        worker: "w0".into(),
        max_seconds: 90,
        leak: false,
        attempts: 3,
        ack_wait_ms: 30_000,
        announce: false,
        panic_escapes: false,
        visibility_ms: 30_000,
        chaos: false,
        ack_first: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--mode" => args.mode = value(),
            "--url" => args.url = value(),
            "--queue" => args.queue = value(),
            "--stream" => args.stream = value(),
            "--concurrency" => args.concurrency = value().parse().expect("a number"),
            "--worker" => args.worker = value(),
            "--max-seconds" => args.max_seconds = value().parse().expect("a number"),
            "--leak" => args.leak = true,
            "--attempts" => args.attempts = value().parse().expect("a number"),
            "--ack-wait-ms" => args.ack_wait_ms = value().parse().expect("a number"),
            "--announce" => args.announce = true,
            "--panic-escapes" => args.panic_escapes = true,
            "--visibility-ms" => args.visibility_ms = value().parse().expect("a number"),
            "--chaos" => args.chaos = true,
            "--ack-first" => args.ack_first = true,
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// The control's "ambient" context: the last job that started here.
static LAST_STARTED: Mutex<Option<Context>> = Mutex::new(None);

/// Business code a few awaits deep, with no context parameter: it reads
/// the trace id and tenant from the scope.
async fn work(job: &TestJob, attempt: u32, worker: &str, leak: bool) -> Result<Report, JobError> {
    if leak {
        *LAST_STARTED.lock().expect("not poisoned") = context_runtime::current();
    }
    tokio::time::sleep(Duration::from_millis(fastrand::u64(0..4))).await;
    tokio::task::yield_now().await;
    if job.fail_once && attempt == 1 {
        return Err(JobError("a planned failure on the first attempt".into()));
    }
    let (trace_id, tenant) = if leak {
        let last = LAST_STARTED.lock().expect("not poisoned").clone();
        let last = last.expect("a job started");
        (
            last.trace_id().to_string(),
            last.tenant().map(ToString::to_string).unwrap_or_default(),
        )
    } else {
        let trace = context_runtime::trace_id().expect("inside the job's scope");
        (trace.to_string(), context_runtime::tenant()?.to_string())
    };
    Ok(Report {
        id: job.id,
        trace_id,
        tenant,
        attempt,
        worker: worker.to_owned(),
    })
}

/// The runner already runs it in the job's context (no `#[with_context]`).
/// Its data is a [`ChaosJob`]: a [`TestJob`] with planned panics and work.
async fn handle_redis(job: Job<ChaosJob>, args: Arc<Args>) -> Result<(), JobError> {
    let attempt = job.attempt();
    let data = &job.data;
    if args.chaos {
        println!("{STARTED}{}", data.id);
        if data.panic_always || (data.panic_once && attempt == 1) {
            panic!("a planned panic in job {} (attempt {attempt})", data.id);
        }
    }
    if data.work_ms > 0 {
        tokio::time::sleep(Duration::from_millis(data.work_ms)).await;
    }
    let test_job = TestJob {
        id: data.id,
        fail_once: data.fail_once,
    };
    let report = work(&test_job, attempt, &args.worker, args.leak).await?;
    print_report(&report);
    Ok(())
}

/// The runner already runs it in the job's context (no `#[with_context]`).
/// `body` is a [`ChaosJob`]'s JSON.
async fn handle_chaos(body: &[u8], attempt: u32, args: &Args) -> Result<(), JobError> {
    let data: ChaosJob = serde_json::from_slice(body).map_err(|e| JobError(e.to_string()))?;
    if args.chaos {
        println!("{STARTED}{}", data.id);
        if data.panic_always || (data.panic_once && attempt == 1) {
            panic!("a planned panic in job {} (attempt {attempt})", data.id);
        }
    }
    if data.work_ms > 0 {
        tokio::time::sleep(Duration::from_millis(data.work_ms)).await;
    }
    let test_job = TestJob {
        id: data.id,
        fail_once: data.fail_once,
    };
    let report = work(&test_job, attempt, &args.worker, args.leak).await?;
    print_report(&report);
    Ok(())
}

async fn handle_amqp_runner(delivery: Delivery, args: Arc<Args>) -> Result<(), JobError> {
    if args.ack_first {
        // The control: settled before the work (at most once).
        let _ = delivery.acker.ack(Default::default()).await;
    }
    handle_chaos(&delivery.data, amqp::attempt(&delivery), &args).await
}

async fn handle_nats_runner(message: jetstream::Message, args: Arc<Args>) -> Result<(), JobError> {
    handle_chaos(&message.payload, nats::attempt(&message), &args).await
}

/// A fault a job asks its handler for (fields of the job's JSON, beside
/// [`TestJob`]'s).
#[derive(Debug, Default, Deserialize)]
struct Fault {
    /// Panic on every attempt.
    #[serde(default)]
    panic: bool,
    /// Hang (until the process is killed): `"always"`, or `"first"` for the
    /// first attempt only.
    #[serde(default)]
    hang: Option<String>,
    /// Take this long before finishing.
    #[serde(default)]
    sleep_ms: u64,
}

fn fault_of(body: &[u8]) -> Fault {
    serde_json::from_slice(body).unwrap_or_default()
}

/// Announces the start, then does what the job's [`Fault`] asks.
async fn inject_fault(body: &[u8], id: u64, attempt: u32, args: &Args) {
    if args.announce {
        println!("STARTED {id} {attempt} {}", args.worker);
    }
    let fault = fault_of(body);
    assert!(!fault.panic, "job {id} is poisoned");
    let hang = match fault.hang.as_deref() {
        Some("always") => true,
        Some("first") => attempt == 1,
        _ => false,
    };
    if hang {
        tokio::time::sleep(Duration::from_secs(3_600)).await;
    }
    if fault.sleep_ms > 0 {
        tokio::time::sleep(Duration::from_millis(fault.sleep_ms)).await;
    }
}

#[with_context(from = "delivery")]
#[requires_tenant]
async fn handle_amqp(delivery: Delivery, args: &Args) -> Result<Report, JobError> {
    let job: TestJob =
        serde_json::from_slice(&delivery.data).map_err(|e| JobError(e.to_string()))?;
    let attempt = amqp::attempt(&delivery);
    inject_fault(&delivery.data, job.id, attempt, args).await;
    work(&job, attempt, &args.worker, args.leak).await
}

#[with_context(from = "message")]
#[requires_tenant]
async fn handle_nats(message: jetstream::Message, args: &Args) -> Result<Report, JobError> {
    let job: TestJob =
        serde_json::from_slice(&message.payload).map_err(|e| JobError(e.to_string()))?;
    let attempt = nats::attempt(&message);
    inject_fault(&message.payload, job.id, attempt, args).await;
    work(&job, attempt, &args.worker, args.leak).await
}

/// `JobLayer` already runs it in the job's context (no `#[with_context]`).
async fn handle_apalis(
    job: Job<ChaosJob>,
    attempt: Attempt,
    args: Data<Args>,
) -> Result<(), JobError> {
    let attempt = u32::try_from(attempt.current()).unwrap_or(u32::MAX);
    let data = &job.data;
    if args.chaos {
        println!("{STARTED}{}", data.id);
        if data.panic_always || (data.panic_once && attempt == 1) {
            panic!("a planned panic in job {} (attempt {attempt})", data.id);
        }
    }
    if data.work_ms > 0 {
        tokio::time::sleep(Duration::from_millis(data.work_ms)).await;
    }
    let test_job = TestJob {
        id: data.id,
        fail_once: data.fail_once,
    };
    let report = work(&test_job, attempt, &args.worker, args.leak).await?;
    print_report(&report);
    Ok(())
}

fn print_report(report: &Report) {
    println!(
        "{}",
        serde_json::to_string(report).expect("a report serializes")
    );
}

fn print_outcome<R>(worker: &str, outcome: &Outcome<R>) {
    match outcome {
        Outcome::Retried { attempt, error } => {
            eprintln!("[{worker}] attempt {attempt} failed, retrying: {error}");
        }
        Outcome::DeadLettered(letter) => {
            eprintln!(
                "[{worker}] dead-lettered ({}): {}",
                letter.kind, letter.reason
            );
        }
        _ => {}
    }
}

/// Resolves when stdin closes or the time limit passes.
fn stop_signal(max_seconds: u64) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(
            Duration::from_secs(max_seconds),
            stdin.read_to_end(&mut sink),
        )
        .await;
        let _ = tx.send(true);
    });
    rx
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

async fn run_redis(args: Args, stop: watch::Receiver<bool>) -> Result<(), Failure> {
    let client = redis::Client::open(args.url.as_str())?;
    let policy = Policy::new().backoff(Duration::from_millis(100), Duration::from_secs(1));
    let queue = redis_jobs::Queue::new(args.queue.clone())
        .with_policy(policy)
        .visibility_timeout(Duration::from_millis(args.visibility_ms));
    let consumer = queue.consumer::<ChaosJob>(client).await?;
    println!("{READY}");
    let worker = args.worker.clone();
    let args = Arc::new(args);
    let concurrency = args.concurrency;
    let stopped = Worker::new(consumer, move |job| handle_redis(job, Arc::clone(&args)))
        .concurrency(concurrency)
        .shutdown_grace(Duration::from_secs(10))
        .on_outcome(move |handled| {
            if let Ok(outcome) = &handled.outcome {
                print_outcome(&worker, outcome);
            }
        })
        .run(stopped(stop))
        .await;
    if stopped.abandoned > 0 {
        eprintln!("{} jobs left to redelivery", stopped.abandoned);
    }
    Ok(())
}

async fn run_amqp(args: Args, stop: watch::Receiver<bool>) -> Result<(), Failure> {
    let conn = lapin::Connection::connect(&args.url, Default::default()).await?;
    let channel = conn.create_channel().await?;
    channel.confirm_select(Default::default()).await?;
    let prefetch = u16::try_from(args.concurrency).unwrap_or(u16::MAX);
    channel.basic_qos(prefetch, Default::default()).await?;
    let queue =
        amqp::Queue::new(args.queue.clone()).with_policy(Policy::new().max_attempts(args.attempts));
    let consumer = channel
        .basic_consume(
            args.queue.as_str().into(),
            args.worker.as_str().into(),
            Default::default(),
            Default::default(),
        )
        .await?;
    println!("{READY}");
    consumer
        .take_until(stopped(stop))
        .for_each_concurrent(args.concurrency, |delivery| {
            let (queue, channel, args) = (&queue, &channel, &args);
            async move {
                let delivery = delivery.expect("a delivery");
                assert!(
                    !(args.panic_escapes && fault_of(&delivery.data).panic),
                    "a poisoned job's panic escapes the consume loop (control)"
                );
                match queue
                    .process(channel, delivery, |d| handle_amqp(d, args))
                    .await
                {
                    Ok(Outcome::Completed(report)) => print_report(&report),
                    Ok(outcome) => print_outcome(&args.worker, &outcome),
                    // Not settled: the broker delivers it again.
                    Err(e) => eprintln!("[{}] not settled: {e}", args.worker),
                }
            }
        })
        .await;
    channel.close(200, "done".into()).await?;
    conn.close(200, "done".into()).await?;
    Ok(())
}

async fn run_nats(args: Args, stop: watch::Receiver<bool>) -> Result<(), Failure> {
    let client = async_nats::connect(&args.url).await?;
    let js = jetstream::new(client.clone());
    let jobs = nats::Queue::new(args.queue.clone())
        .with_policy(Policy::new().max_attempts(args.attempts))
        .with_ack_wait(Duration::from_millis(args.ack_wait_ms));
    let consumer: jetstream::consumer::PullConsumer = js
        .get_stream(&args.stream)
        .await?
        .get_consumer("workers")
        .await?;
    let messages = consumer.messages().await?;
    println!("{READY}");
    messages
        .take_until(stopped(stop))
        .for_each_concurrent(args.concurrency, |message| {
            let (jobs, js, args) = (&jobs, &js, &args);
            async move {
                let message = message.expect("a message");
                assert!(
                    !(args.panic_escapes && fault_of(&message.payload).panic),
                    "a poisoned job's panic escapes the consume loop (control)"
                );
                match jobs.process(js, message, |m| handle_nats(m, args)).await {
                    Ok(Outcome::Completed(report)) => print_report(&report),
                    Ok(outcome) => print_outcome(&args.worker, &outcome),
                    // Not settled: JetStream delivers it again after its ack wait.
                    Err(e) => eprintln!("[{}] not settled: {e}", args.worker),
                }
            }
        })
        .await;
    client.flush().await?;
    Ok(())
}

/// Runs `consumer` with the crate's runner until `stop`.
async fn run_worker<T, F, Fut>(consumer: T, handler: F, args: &Args, stop: watch::Receiver<bool>)
where
    T: context_runtime::jobs::Transport,
    F: Fn(T::Job) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), JobError>> + Send + 'static,
{
    println!("{READY}");
    let worker = args.worker.clone();
    let stopped = Worker::new(consumer, handler)
        .concurrency(args.concurrency)
        .shutdown_grace(Duration::from_secs(10))
        .on_outcome(move |handled| match &handled.outcome {
            Ok(outcome) => print_outcome(&worker, outcome),
            Err(e) => eprintln!("[{worker}] not settled: {e}"),
        })
        .run(stopped(stop))
        .await;
    if stopped.abandoned > 0 {
        eprintln!("{} jobs left to redelivery", stopped.abandoned);
    }
}

fn chaos_policy(args: &Args) -> Policy {
    Policy::new()
        .max_attempts(args.attempts)
        .backoff(Duration::from_millis(100), Duration::from_secs(1))
}

async fn run_amqp_runner(args: Args, stop: watch::Receiver<bool>) -> Result<(), Failure> {
    let queue = amqp::Queue::new(args.queue.clone()).with_policy(chaos_policy(&args));
    let prefetch = u16::try_from(args.concurrency).unwrap_or(u16::MAX);
    let consumer = queue.consumer(args.url.clone(), args.worker.clone(), prefetch);
    let shared = Arc::new(args.clone());
    let handler = move |delivery| handle_amqp_runner(delivery, Arc::clone(&shared));
    run_worker(consumer, handler, &args, stop).await;
    Ok(())
}

async fn run_nats_runner(args: Args, stop: watch::Receiver<bool>) -> Result<(), Failure> {
    let client = async_nats::connect(&args.url).await?;
    let js = jetstream::new(client.clone());
    let jobs = nats::Queue::new(args.queue.clone())
        .with_policy(chaos_policy(&args))
        .with_ack_wait(Duration::from_millis(args.ack_wait_ms));
    let pull: jetstream::consumer::PullConsumer = js
        .get_stream(&args.stream)
        .await?
        .get_consumer("workers")
        .await?;
    let consumer = jobs.consumer(js, pull);
    let shared = Arc::new(args.clone());
    let handler = move |message| handle_nats_runner(message, Arc::clone(&shared));
    run_worker(consumer, handler, &args, stop).await;
    client.flush().await?;
    Ok(())
}

async fn run_apalis(args: Args, stop: watch::Receiver<bool>) -> Result<(), Failure> {
    let conn = apalis_redis::connect(args.url.as_str()).await?;
    // A worker whose heartbeat stopped for about `--visibility-ms` is
    // orphaned: apalis re-enqueues its tasks (apalis's own crash recovery).
    let missed = usize::try_from(args.visibility_ms / 500)
        .unwrap_or(usize::MAX)
        .max(2);
    let config = apalis_redis::Config::default()
        .queue(&args.queue)
        .batch_size(args.concurrency)
        .heartbeat_interval(Duration::from_millis(500))
        .missed_heartbeats(missed);
    // Poll on a short interval too: apalis's "jobs available" signal wakes
    // one waiting worker, and the others would otherwise sit out a short run.
    let storage = apalis_redis::RedisStorage::<Job<ChaosJob>>::new(conn.clone())
        .with_config(config)
        .poll_with_interval(Duration::from_millis(50));
    let worker = WorkerBuilder::new(format!("{}-{}", args.queue, args.worker))
        .backend(storage)
        .data(args.clone())
        .layer(JobLayer::redis(conn, &args.queue))
        .concurrency(args.concurrency)
        .on_event(|_, event| {
            if matches!(event, Event::Start) {
                println!("{READY}");
            }
        })
        .build(handle_apalis);
    worker
        .run_until(async move {
            stopped(stop).await;
            Ok::<(), WorkerError>(())
        })
        .await?;
    Ok(())
}

async fn run_apalis_postgres(args: Args, stop: watch::Receiver<bool>) -> Result<(), Failure> {
    let pool = apalis_postgres::PgPool::connect(&args.url).await?;
    // A worker whose heartbeat (every second) stopped for about
    // `--visibility-ms` is orphaned: apalis re-enqueues its tasks (apalis's
    // own crash recovery; its resolution is a second).
    let missed = usize::try_from(args.visibility_ms / 1_000)
        .unwrap_or(usize::MAX)
        .max(2);
    let config = apalis_postgres::Config::default()
        .queue(&args.queue)
        .batch_size(args.concurrency)
        .heartbeat_interval(Duration::from_secs(1))
        .missed_heartbeats(missed);
    let storage = apalis_postgres::PostgresStorage::<Job<ChaosJob>>::new(&pool).with_config(config);
    let sink = PgDeadLetters::new(pool);
    let worker = WorkerBuilder::new(format!("{}-{}", args.queue, args.worker))
        .backend(storage)
        .data(args.clone())
        .layer(JobLayer::new(sink, &args.queue))
        .concurrency(args.concurrency)
        .on_event(|_, event| {
            if matches!(event, Event::Start) {
                println!("{READY}");
            }
        })
        .build(handle_apalis);
    worker
        .run_until(async move {
            stopped(stop).await;
            Ok::<(), WorkerError>(())
        })
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args = args();
    let stop = stop_signal(args.max_seconds);
    match args.mode.as_str() {
        "redis" => run_redis(args, stop).await,
        "amqp" => run_amqp(args, stop).await,
        "nats" => run_nats(args, stop).await,
        "apalis" => run_apalis(args, stop).await,
        "apalis-postgres" => run_apalis_postgres(args, stop).await,
        "amqp-runner" => run_amqp_runner(args, stop).await,
        "nats-runner" => run_nats_runner(args, stop).await,
        other => Err(format!("unknown --mode {other:?}").into()),
    }
}
