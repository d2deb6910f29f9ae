//! Nothing lost under faults, on RabbitMQ and NATS JetStream, against the
//! real servers: a job whose handler panics ends dead-lettered with its
//! reason (and the worker keeps running); a job whose worker process is
//! killed with SIGKILL mid-job is redelivered and ends completed, or, when
//! it kills its worker every time, dead-lettered; a dead letter the broker
//! cannot store keeps the job; a long handler keeps its job (NATS progress
//! acks). Each scenario has a control that shows the test can fail.
//!
//! The workers are `broker-worker` child processes; a job asks for its
//! fault in its JSON (`"panic": true`, `"hang": "first" | "always"`,
//! `"sleep_ms"`), and `--announce` makes a worker print
//! `STARTED <id> <attempt> <worker>` when a handler starts, which is when
//! the test kills it.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use context_runtime::jobs::{DeadLetter, RejectionKind};
use context_runtime::{Context, TenantId};
use context_tests::brokers::{unique_name, Report, READY};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

const WORKER: &str = env!("CARGO_BIN_EXE_broker-worker");
const AMQP: &str = "127.0.0.1:5672";
const NATS: &str = "127.0.0.1:4222";
/// The policy's attempts in every scenario.
const ATTEMPTS: u32 = 3;
/// Every wait in a test is bounded by this, so each test ends well under a
/// minute.
const BOUND: Duration = Duration::from_secs(25);

// ---------------------------------------------------------------- workers

/// What a worker process printed.
#[derive(Debug)]
enum Event {
    Ready,
    Started {
        id: u64,
        attempt: u32,
        worker: String,
    },
    Completed(Report),
}

/// Worker processes that can be killed (SIGKILL, by pid) and replaced.
#[derive(Debug)]
struct Pool {
    args: Vec<String>,
    children: HashMap<String, Child>,
    spawned: usize,
    tx: mpsc::UnboundedSender<Event>,
    events: mpsc::UnboundedReceiver<Event>,
    /// Every start seen: (job id, attempt, worker).
    started: Vec<(u64, u32, String)>,
    /// Every completion seen.
    completed: Vec<Report>,
}

impl Pool {
    fn new(args: &[&str]) -> Pool {
        let (tx, events) = mpsc::unbounded_channel();
        Pool {
            args: args.iter().map(ToString::to_string).collect(),
            children: HashMap::new(),
            spawned: 0,
            tx,
            events,
            started: Vec::new(),
            completed: Vec::new(),
        }
    }

    /// Starts one more worker and waits until it consumes.
    async fn spawn(&mut self) -> String {
        let name = format!("w{}", self.spawned);
        self.spawned += 1;
        let mut child = Command::new(WORKER)
            .args(&self.args)
            .args(["--worker", &name, "--announce", "--concurrency", "4"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start a worker process");
        let stdout = child.stdout.take().expect("piped stdout");
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let event = if line == READY {
                    Event::Ready
                } else if let Some(rest) = line.strip_prefix("STARTED ") {
                    let mut parts = rest.split(' ');
                    let mut next = || parts.next().unwrap_or_default().to_owned();
                    let (id, attempt, worker) = (next(), next(), next());
                    Event::Started {
                        id: id.parse().expect("a job id"),
                        attempt: attempt.parse().expect("an attempt"),
                        worker,
                    }
                } else if let Ok(report) = serde_json::from_str::<Report>(&line) {
                    Event::Completed(report)
                } else {
                    eprintln!("worker: {line}");
                    continue;
                };
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
        self.children.insert(name.clone(), child);
        let ready = self.wait_for(|e| matches!(e, Event::Ready)).await;
        assert!(ready.is_some(), "worker {name} did not start consuming");
        name
    }

    /// Reads events until one matches `wanted` (returned) or [`BOUND`]
    /// passes (`None`); every event is recorded on the way.
    async fn wait_for(&mut self, wanted: impl FnMut(&Event) -> bool) -> Option<Event> {
        self.wait_for_within(BOUND, wanted).await
    }

    /// [`Pool::wait_for`], for at most `within`.
    async fn wait_for_within(
        &mut self,
        within: Duration,
        mut wanted: impl FnMut(&Event) -> bool,
    ) -> Option<Event> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = tokio::time::timeout(left, self.events.recv())
                .await
                .ok()
                .flatten()?;
            match &event {
                Event::Started {
                    id,
                    attempt,
                    worker,
                } => self.started.push((*id, *attempt, worker.clone())),
                Event::Completed(report) => self.completed.push(report.clone()),
                Event::Ready => {}
            }
            if wanted(&event) {
                return Some(event);
            }
        }
    }

    /// Waits until job `id` starts; returns (attempt, worker).
    async fn started(&mut self, id: u64) -> Option<(u32, String)> {
        match self
            .wait_for(|e| matches!(e, Event::Started { id: i, .. } if *i == id))
            .await?
        {
            Event::Started {
                attempt, worker, ..
            } => Some((attempt, worker)),
            _ => None,
        }
    }

    /// Waits until job `id` completes.
    async fn completed(&mut self, id: u64) -> Option<Report> {
        self.completed_within(id, BOUND).await
    }

    /// Waits until job `id` completes, for at most `within`.
    async fn completed_within(&mut self, id: u64, within: Duration) -> Option<Report> {
        match self
            .wait_for_within(within, |e| matches!(e, Event::Completed(r) if r.id == id))
            .await?
        {
            Event::Completed(report) => Some(report),
            _ => None,
        }
    }

    /// How many times job `id` started.
    fn starts(&self, id: u64) -> usize {
        self.started.iter().filter(|(i, _, _)| *i == id).count()
    }

    /// SIGKILLs the worker `name` (by its pid) and reaps it.
    async fn kill(&mut self, name: &str) {
        let mut child = self.children.remove(name).expect("a running worker");
        let pid = child.id().expect("a running worker has a pid");
        child.start_kill().expect("SIGKILL the worker");
        let status = child.wait().await.expect("reap the worker");
        assert!(!status.success(), "worker {name} (pid {pid}) was killed");
    }

    /// Whether worker `name` still runs.
    fn running(&mut self, name: &str) -> bool {
        self.children
            .get_mut(name)
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Closes every worker's stdin (they stop) and waits for them, killing
    /// any that take longer than a few seconds.
    async fn stop(&mut self) {
        for (_, mut child) in self.children.drain() {
            drop(child.stdin.take());
            if tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .is_err()
            {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
        }
    }
}

/// A good job's producer context.
fn request() -> Context {
    Context::root().with_tenant(TenantId::new("acme").expect("a valid tenant"))
}

/// Polls `read` (bounded) until it returns a dead letter for job `id`.
async fn dead_letter_of<F, Fut>(id: u64, within: Duration, mut read: F) -> Option<DeadLetter>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Vec<DeadLetter>>,
{
    let deadline = Instant::now() + within;
    loop {
        let found = read().await.into_iter().find(|l| job_id(l) == Some(id));
        if found.is_some() || Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn job_id(letter: &DeadLetter) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_str(&letter.payload).ok()?;
    value.get("id")?.as_u64()
}

// ---------------------------------------------------------------- RabbitMQ

mod rabbitmq {
    use super::*;
    use context_runtime::jobs::{Outcome, Policy};
    use context_runtime::lapin::{self as amqp, ProcessError, Queue};
    use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
    use lapin::types::{AMQPValue, FieldTable, LongString};
    use lapin::{BasicProperties, Channel, Confirmation, Connection};

    fn url() -> String {
        format!("amqp://guest:guest@{AMQP}/%2f")
    }

    /// A connection and a channel in confirm mode, or `None` (skipped).
    async fn connect() -> Option<(Connection, Channel)> {
        if !context_tests::service_available("RabbitMQ", AMQP) {
            return None;
        }
        let conn = Connection::connect(&url(), Default::default())
            .await
            .expect("connect to RabbitMQ");
        let channel = conn.create_channel().await.expect("a channel");
        channel
            .confirm_select(Default::default())
            .await
            .expect("confirms");
        Some((conn, channel))
    }

    fn queue(prefix: &str) -> Queue {
        Queue::new(unique_name(prefix)).with_policy(Policy::new().max_attempts(ATTEMPTS))
    }

    fn pool(queue: &Queue, extra: &[&str]) -> Pool {
        let url = url();
        let attempts = ATTEMPTS.to_string();
        let mut args = vec![
            "--mode",
            "amqp",
            "--url",
            &url,
            "--queue",
            queue.name(),
            "--attempts",
            &attempts,
            "--max-seconds",
            "60",
        ];
        args.extend_from_slice(extra);
        Pool::new(&args)
    }

    async fn publish(channel: &Channel, queue: &Queue, job: serde_json::Value) {
        let body = serde_json::to_vec(&job).expect("json");
        let confirm = request()
            .scope(queue.publish(channel, &body))
            .await
            .expect("publish")
            .await
            .expect("confirmed");
        assert_eq!(confirm, Confirmation::Ack(None), "the job is stored");
    }

    /// The dead letters in the queue's dead-letter queue (a snapshot: read
    /// without acking, then put back by closing the channel).
    async fn dead_letters(conn: &Connection, queue: &Queue) -> Vec<DeadLetter> {
        let channel = conn.create_channel().await.expect("a channel");
        let mut letters = Vec::new();
        while let Some(message) = channel
            .basic_get(
                queue.dead_letter_queue().as_str().into(),
                BasicGetOptions::default(),
            )
            .await
            .expect("basic.get")
        {
            letters.push(amqp::dead_letter(&message.delivery).expect("a dead-letter record"));
        }
        channel.close(200, "snapshot".into()).await.expect("close");
        letters
    }

    async fn clean_up(channel: &Channel, queue: &Queue) {
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

    /// Runs a poisoned job (it panics on every attempt) then a good one
    /// through one worker; returns the dead letter of the poisoned job,
    /// whether the good job completed, and whether the worker still runs.
    async fn panic_scenario(
        conn: &Connection,
        channel: &Channel,
        queue: &Queue,
        extra: &[&str],
    ) -> (Option<DeadLetter>, bool, bool, usize) {
        let mut pool = pool(queue, extra);
        let worker = pool.spawn().await;
        publish(
            channel,
            queue,
            serde_json::json!({ "id": 1, "panic": true }),
        )
        .await;
        let letter = dead_letter_of(1, Duration::from_secs(10), || dead_letters(conn, queue)).await;
        publish(channel, queue, serde_json::json!({ "id": 2 })).await;
        // A worker that still consumes takes it at once.
        let good = pool.running(&worker)
            && pool
                .completed_within(2, Duration::from_secs(10))
                .await
                .is_some();
        let running = pool.running(&worker);
        let starts = pool.starts(1);
        pool.stop().await;
        (letter, good, running, starts)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_handler_is_dead_lettered_with_its_reason_and_the_worker_keeps_running() {
        let Some((conn, channel)) = connect().await else {
            return;
        };
        let queue = queue("ctx-fault-amqp-panic");
        queue.declare(&channel).await.expect("declare");
        let (letter, good, running, starts) = panic_scenario(&conn, &channel, &queue, &[]).await;
        clean_up(&channel, &queue).await;

        let letter = letter.expect("the panicking job is dead-lettered");
        println!("rabbitmq panic: {letter:?}; ran {starts} time(s)");
        assert_eq!(letter.kind, RejectionKind::Exhausted);
        assert!(
            letter.reason.contains("panicked: job 1 is poisoned"),
            "{}",
            letter.reason
        );
        assert_eq!((letter.attempts, starts), (ATTEMPTS, 3));
        assert_eq!(letter.tenant.as_deref(), Some("acme"));
        assert!(
            running && good,
            "the worker keeps running and takes the next job"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn control_a_panic_that_escapes_the_consume_loop_is_never_dead_lettered() {
        let Some((conn, channel)) = connect().await else {
            return;
        };
        let queue = queue("ctx-fault-amqp-panic-control");
        queue.declare(&channel).await.expect("declare");
        let (letter, good, running, _) =
            panic_scenario(&conn, &channel, &queue, &["--panic-escapes"]).await;
        clean_up(&channel, &queue).await;
        assert!(letter.is_none(), "no dead letter without a caught panic");
        // The process may linger (its runtime waits for the blocking stdin
        // reader), but it consumes no more.
        assert!(
            !good,
            "the panic ended the worker's consuming (running: {running})"
        );
    }

    /// Kills whichever worker starts job `id`, replacing it, until the job
    /// is dead-lettered or `kills` kills are done; returns the dead letter
    /// and the attempts the worker saw.
    async fn crash_loop(
        conn: &Connection,
        queue: &Queue,
        pool: &mut Pool,
        id: u64,
        kills: usize,
    ) -> (Option<DeadLetter>, Vec<u32>) {
        let mut attempts = Vec::new();
        for _ in 0..kills {
            let Some((attempt, worker)) = pool.started(id).await else {
                break;
            };
            attempts.push(attempt);
            pool.kill(&worker).await;
            // The broker dead-letters it as the dead worker's channel closes.
            let letter =
                dead_letter_of(id, Duration::from_millis(500), || dead_letters(conn, queue)).await;
            if letter.is_some() {
                return (letter, attempts);
            }
            pool.spawn().await;
        }
        let letter = dead_letter_of(id, Duration::from_secs(2), || dead_letters(conn, queue)).await;
        (letter, attempts)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_killed_mid_job_hands_its_job_on_and_a_job_that_always_kills_it_is_dead_lettered(
    ) {
        let Some((conn, channel)) = connect().await else {
            return;
        };
        let queue = queue("ctx-fault-amqp-kill");
        queue.declare(&channel).await.expect("declare");
        let mut pool = pool(&queue, &[]);
        pool.spawn().await;
        pool.spawn().await;

        // Killed on its first attempt, completed on the second.
        publish(
            &channel,
            &queue,
            serde_json::json!({ "id": 1, "hang": "first" }),
        )
        .await;
        let (attempt, killed) = pool.started(1).await.expect("job 1 starts");
        assert_eq!(attempt, 1);
        pool.kill(&killed).await;
        let report = pool.completed(1).await.expect("job 1 completes");
        assert_eq!(report.attempt, 2, "the crash counts as an attempt");
        assert_ne!(report.worker, killed);

        // Kills its worker on every delivery: the delivery limit dead-letters it.
        publish(
            &channel,
            &queue,
            serde_json::json!({ "id": 2, "hang": "always" }),
        )
        .await;
        let (letter, attempts) = crash_loop(&conn, &queue, &mut pool, 2, 5).await;
        pool.stop().await;
        let left = take(&channel, queue.name(), Duration::ZERO).await;
        clean_up(&channel, &queue).await;

        println!("rabbitmq kill: attempts seen {attempts:?}, dead letter {letter:?}");
        assert_eq!(attempts, [1, 2, 3], "three deliveries, each counted");
        let letter = letter.expect("the job that kills its worker is dead-lettered");
        assert_eq!(letter.kind, RejectionKind::Exhausted);
        assert!(
            letter.reason.contains("delivery limit"),
            "{}",
            letter.reason
        );
        assert_eq!(letter.tenant.as_deref(), Some("acme"));
        assert!(left.is_none(), "nothing waits in the queue");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn control_a_classic_queue_without_a_delivery_limit_crash_loops_forever() {
        let Some((conn, channel)) = connect().await else {
            return;
        };
        let queue = queue("ctx-fault-amqp-kill-control");
        // Declared as before this change: a classic queue with only a
        // dead-letter exchange, so nothing counts the crashes.
        queue.declare(&channel).await.expect("declare");
        channel
            .queue_delete(queue.name().into(), Default::default())
            .await
            .expect("drop the quorum queue");
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(LongString::from(queue.dead_letter_exchange())),
        );
        channel
            .queue_declare(
                queue.name().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                arguments,
            )
            .await
            .expect("a classic queue");
        let mut pool = pool(&queue, &[]);
        pool.spawn().await;
        publish(
            &channel,
            &queue,
            serde_json::json!({ "id": 2, "hang": "always" }),
        )
        .await;
        let (letter, attempts) = crash_loop(&conn, &queue, &mut pool, 2, 5).await;
        pool.stop().await;
        clean_up(&channel, &queue).await;
        assert!(letter.is_none(), "a classic queue never dead-letters it");
        assert_eq!(attempts, [1; 5], "and never counts the crashes");
    }

    /// Takes one delivery from `name` (un-acked), trying for `within`;
    /// `None` when the queue stays empty.
    async fn take(
        channel: &Channel,
        name: &str,
        within: Duration,
    ) -> Option<lapin::message::Delivery> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(message) = channel
                .basic_get(name.into(), BasicGetOptions::default())
                .await
                .expect("basic.get")
            {
                return Some(message.delivery);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn get(channel: &Channel, name: &str) -> lapin::message::Delivery {
        take(channel, name, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("no delivery from {name}"))
    }

    async fn failing(_: lapin::message::Delivery) -> Result<(), String> {
        Err("the handler always fails".into())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_letter_that_cannot_be_stored_keeps_the_job() {
        let Some((conn, channel)) = connect().await else {
            return;
        };
        let queue = Queue::new(unique_name("ctx-fault-amqp-unroutable"))
            .with_policy(Policy::new().max_attempts(2));
        queue.declare(&channel).await.expect("declare");
        // The dead-letter exchange routes nowhere.
        channel
            .queue_delete(
                queue.dead_letter_queue().as_str().into(),
                Default::default(),
            )
            .await
            .expect("drop the dead-letter queue");
        publish(&channel, &queue, serde_json::json!({ "id": 1 })).await;

        let delivery = get(&channel, queue.name()).await;
        let retried = queue.process(&channel, delivery, failing).await;
        assert!(matches!(retried, Ok(Outcome::Retried { attempt: 1, .. })));

        let delivery = get(&channel, queue.name()).await;
        let refused = queue.process(&channel, delivery, failing).await;
        println!("rabbitmq unroutable dead letter: {refused:?}");
        assert!(
            matches!(refused, Err(ProcessError::NotStored { ref reason, .. }) if reason.contains("NO_ROUTE")),
            "{refused:?}"
        );
        // Re-queued: the job is still in its queue, its delivery counted.
        let kept = take(&channel, queue.name(), Duration::from_secs(5)).await;
        let attempt = kept.as_ref().map(amqp::attempt);

        // The dead-letter queue is back: the job ends dead-lettered
        // (past its last attempt, without running again).
        queue.declare(&channel).await.expect("declare again");
        let settled = match kept {
            Some(delivery) => Some(
                queue
                    .process(&channel, delivery, failing)
                    .await
                    .expect("settled"),
            ),
            None => None,
        };
        let letters = dead_letters(&conn, &queue).await;
        let left = take(&channel, queue.name(), Duration::ZERO).await;
        clean_up(&channel, &queue).await;

        assert_eq!(
            attempt,
            Some(3),
            "the job stays in its queue, re-queued once"
        );
        assert!(matches!(settled, Some(Outcome::DeadLettered(_))));
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].payload, r#"{"id":1}"#);
        assert!(left.is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn control_without_mandatory_an_unroutable_dead_letter_is_confirmed_as_stored() {
        let Some((_conn, channel)) = connect().await else {
            return;
        };
        let queue = queue("ctx-fault-amqp-unroutable-control");
        queue.declare(&channel).await.expect("declare");
        channel
            .queue_delete(
                queue.dead_letter_queue().as_str().into(),
                Default::default(),
            )
            .await
            .expect("drop the dead-letter queue");
        let mut confirms = Vec::new();
        for mandatory in [false, true] {
            let confirm = channel
                .basic_publish(
                    queue.dead_letter_exchange().as_str().into(),
                    queue.name().into(),
                    BasicPublishOptions {
                        mandatory,
                        ..Default::default()
                    },
                    b"{}",
                    BasicProperties::default(),
                )
                .await
                .expect("publish")
                .await
                .expect("confirm");
            confirms.push(confirm);
        }
        clean_up(&channel, &queue).await;
        // What the old code took for "stored": a plain ack of a message
        // that went nowhere. Only `mandatory` makes the broker say so.
        assert_eq!(confirms[0], Confirmation::Ack(None));
        assert!(matches!(confirms[1], Confirmation::Ack(Some(_))));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_channel_without_publisher_confirms_is_an_error_and_the_job_stays() {
        let Some((conn, channel)) = connect().await else {
            return;
        };
        let queue = queue("ctx-fault-amqp-noconfirm");
        queue.declare(&channel).await.expect("declare");
        publish(&channel, &queue, serde_json::json!({ "id": 1 })).await;
        let plain = conn.create_channel().await.expect("a channel");
        let delivery = get(&plain, queue.name()).await;
        let result = queue.process(&plain, delivery, failing).await;
        assert!(
            matches!(result, Err(ProcessError::ConfirmsRequired)),
            "{result:?}"
        );
        plain.close(200, "done".into()).await.expect("close");
        let back = take(&channel, queue.name(), Duration::from_secs(5)).await;
        clean_up(&channel, &queue).await;
        assert!(back.is_some(), "the job goes back to its queue");
    }
}

// ---------------------------------------------------------------- NATS

mod nats {
    use super::*;
    use async_nats::jetstream::{self, stream};
    use context_runtime::jobs::Policy;
    use context_runtime::nats::{self as js_jobs, Queue};

    /// The consumer's ack wait in these tests (short, so a killed worker's
    /// job comes back soon).
    const ACK_WAIT: Duration = Duration::from_secs(2);

    struct Setup {
        js: jetstream::Context,
        jobs: Queue,
        stream: String,
        dead_stream: String,
    }

    /// A work-queue stream, a dead-letter stream and a consumer
    /// (`max_deliver` given, or the queue's recommended one), or `None`
    /// (skipped).
    async fn setup(prefix: &str, max_deliver: Option<i64>) -> Option<Setup> {
        if !context_tests::service_available("NATS", NATS) {
            return None;
        }
        let client = async_nats::connect(format!("nats://{NATS}"))
            .await
            .expect("connect to NATS");
        let js = jetstream::new(client);
        let name = unique_name(prefix).replace('-', "_");
        let jobs = Queue::new(format!("{name}.jobs"))
            .with_policy(Policy::new().max_attempts(ATTEMPTS))
            .with_ack_wait(ACK_WAIT);
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
        let mut config = jobs.consumer_config("workers");
        if let Some(max_deliver) = max_deliver {
            config.max_deliver = max_deliver;
        }
        work.create_consumer(config)
            .await
            .expect("the workers' consumer");
        Some(Setup {
            js,
            jobs,
            stream,
            dead_stream,
        })
    }

    impl Setup {
        fn pool(&self, extra: &[&str]) -> Pool {
            let url = format!("nats://{NATS}");
            let attempts = ATTEMPTS.to_string();
            let ack_wait = ACK_WAIT.as_millis().to_string();
            let mut args = vec![
                "--mode",
                "nats",
                "--url",
                &url,
                "--queue",
                self.jobs.subject(),
                "--stream",
                &self.stream,
                "--attempts",
                &attempts,
                "--ack-wait-ms",
                &ack_wait,
                "--max-seconds",
                "60",
            ];
            args.extend_from_slice(extra);
            Pool::new(&args)
        }

        async fn publish(&self, job: serde_json::Value) {
            let body = serde_json::to_vec(&job).expect("json");
            request()
                .scope(self.jobs.publish(&self.js, &body))
                .await
                .expect("publish")
                .await
                .expect("stored");
        }

        async fn dead_letters(&self) -> Vec<DeadLetter> {
            let mut dead = self
                .js
                .get_stream(&self.dead_stream)
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
                letters.push(js_jobs::dead_letter(&message).expect("a dead-letter record"));
            }
            letters
        }

        async fn waiting(&self) -> u64 {
            let mut work = self.js.get_stream(&self.stream).await.expect("the stream");
            work.info().await.expect("stream info").state.messages
        }

        async fn clean_up(self) {
            let _ = self.js.delete_stream(&self.stream).await;
            let _ = self.js.delete_stream(&self.dead_stream).await;
        }
    }

    async fn panic_scenario(
        setup: &Setup,
        extra: &[&str],
    ) -> (Option<DeadLetter>, bool, bool, usize) {
        let mut pool = setup.pool(extra);
        let worker = pool.spawn().await;
        setup
            .publish(serde_json::json!({ "id": 1, "panic": true }))
            .await;
        let letter = dead_letter_of(1, Duration::from_secs(10), || setup.dead_letters()).await;
        setup.publish(serde_json::json!({ "id": 2 })).await;
        // A worker that still consumes takes it at once.
        let good = pool.running(&worker)
            && pool
                .completed_within(2, Duration::from_secs(10))
                .await
                .is_some();
        let running = pool.running(&worker);
        let starts = pool.starts(1);
        pool.stop().await;
        (letter, good, running, starts)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_handler_is_dead_lettered_with_its_reason_and_the_worker_keeps_running() {
        // `max_deliver` equal to the attempts: the last delivery is the
        // last attempt, and it must be dead-lettered, not dropped.
        let Some(setup) = setup("ctx-fault-nats-panic", Some(i64::from(ATTEMPTS))).await else {
            return;
        };
        let (letter, good, running, starts) = panic_scenario(&setup, &[]).await;
        setup.clean_up().await;

        let letter = letter.expect("the panicking job is dead-lettered");
        println!("nats panic: {letter:?}; ran {starts} time(s)");
        assert_eq!(letter.kind, RejectionKind::Exhausted);
        assert!(
            letter.reason.contains("panicked: job 1 is poisoned"),
            "{}",
            letter.reason
        );
        assert_eq!((letter.attempts, starts), (ATTEMPTS, 3));
        assert!(
            running && good,
            "the worker keeps running and takes the next job"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn control_a_panic_that_escapes_the_consume_loop_is_never_dead_lettered() {
        let Some(setup) = setup("ctx-fault-nats-panic-control", None).await else {
            return;
        };
        let (letter, good, running, _) = panic_scenario(&setup, &["--panic-escapes"]).await;
        setup.clean_up().await;
        assert!(letter.is_none(), "no dead letter without a caught panic");
        // The process may linger (its runtime waits for the blocking stdin
        // reader), but it consumes no more.
        assert!(
            !good,
            "the panic ended the worker's consuming (running: {running})"
        );
    }

    /// Kills whichever worker starts job `id`, replacing it, until the job
    /// is dead-lettered or `kills` kills are done.
    async fn crash_loop(
        setup: &Setup,
        pool: &mut Pool,
        id: u64,
        kills: usize,
    ) -> (Option<DeadLetter>, Vec<u32>) {
        let mut attempts = Vec::new();
        for _ in 0..kills {
            let Some((attempt, worker)) = pool.started(id).await else {
                break;
            };
            attempts.push(attempt);
            pool.kill(&worker).await;
            pool.spawn().await;
            if attempts.len() == usize::try_from(ATTEMPTS).expect("small") {
                break;
            }
        }
        // The next delivery (after the ack wait) is past the last attempt.
        let letter = dead_letter_of(id, ACK_WAIT * 4, || setup.dead_letters()).await;
        (letter, attempts)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_killed_mid_job_hands_its_job_on_and_a_job_that_always_kills_it_is_dead_lettered(
    ) {
        let Some(setup) = setup("ctx-fault-nats-kill", None).await else {
            return;
        };
        let mut pool = setup.pool(&[]);
        pool.spawn().await;
        pool.spawn().await;

        setup
            .publish(serde_json::json!({ "id": 1, "hang": "first" }))
            .await;
        let (attempt, killed) = pool.started(1).await.expect("job 1 starts");
        assert_eq!(attempt, 1);
        pool.kill(&killed).await;
        let report = pool.completed(1).await.expect("job 1 completes");
        assert_eq!(report.attempt, 2, "the crash counts as an attempt");
        assert_ne!(report.worker, killed);

        setup
            .publish(serde_json::json!({ "id": 2, "hang": "always" }))
            .await;
        let (letter, attempts) = crash_loop(&setup, &mut pool, 2, 5).await;
        pool.stop().await;
        let left = setup.waiting().await;
        setup.clean_up().await;

        println!("nats kill: attempts seen {attempts:?}, dead letter {letter:?}");
        assert_eq!(attempts, [1, 2, 3], "three deliveries, each counted");
        let letter = letter.expect("the job that kills its worker is dead-lettered");
        assert_eq!(
            (letter.kind, letter.attempts),
            (RejectionKind::Exhausted, 3)
        );
        assert!(
            letter.reason.contains("without an ack"),
            "{}",
            letter.reason
        );
        assert_eq!(letter.tenant.as_deref(), Some("acme"));
        assert_eq!(left, 0, "nothing waits in the work queue");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn control_with_max_deliver_equal_to_the_attempts_a_killed_last_attempt_is_dropped() {
        let Some(setup) = setup("ctx-fault-nats-kill-control", Some(i64::from(ATTEMPTS))).await
        else {
            return;
        };
        let mut pool = setup.pool(&[]);
        pool.spawn().await;
        setup
            .publish(serde_json::json!({ "id": 2, "hang": "always" }))
            .await;
        let (letter, attempts) = crash_loop(&setup, &mut pool, 2, 5).await;
        pool.stop().await;
        let left = setup.waiting().await;
        setup.clean_up().await;
        assert_eq!(attempts, [1, 2, 3]);
        assert!(letter.is_none(), "JetStream stops delivering it");
        assert_eq!(left, 1, "neither completed nor dead-lettered");
    }

    /// A job that runs for 3.5 ack waits on one of two workers: how many
    /// times it started, and whether it completed.
    async fn long_job(setup: &Setup, extra: &[&str]) -> (usize, bool) {
        let mut pool = setup.pool(extra);
        pool.spawn().await;
        pool.spawn().await;
        let sleep = u64::try_from((ACK_WAIT * 7 / 2).as_millis()).expect("small");
        setup
            .publish(serde_json::json!({ "id": 1, "sleep_ms": sleep }))
            .await;
        let completed = pool.completed(1).await.is_some();
        // A duplicate would have started by now; give a late one an ack wait.
        let _ = pool.wait_for_within(ACK_WAIT, |_| false).await;
        let starts = pool.starts(1);
        pool.stop().await;
        (starts, completed)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_handler_running_longer_than_the_ack_wait_keeps_its_job() {
        let Some(setup) = setup("ctx-fault-nats-long", None).await else {
            return;
        };
        let (starts, completed) = long_job(&setup, &[]).await;
        setup.clean_up().await;
        println!("nats long handler: started {starts} time(s)");
        assert!(completed);
        assert_eq!(starts, 1, "progress acks keep the job on its worker");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn control_without_timely_progress_acks_a_long_job_runs_twice() {
        let Some(setup) = setup("ctx-fault-nats-long-control", None).await else {
            return;
        };
        // The workers believe the ack wait is a minute: no progress ack
        // comes within the consumer's two seconds.
        let (starts, completed) = long_job(&setup, &["--ack-wait-ms", "60000"]).await;
        setup.clean_up().await;
        assert!(completed);
        assert!(starts >= 2, "redelivered to a second worker: {starts}");
    }
}
