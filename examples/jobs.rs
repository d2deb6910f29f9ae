//! The demo: jobs for three tenants cross an in-process queue as JSON, the
//! crate's runner (`jobs::Worker`, the same one every broker uses) runs them 8
//! at a time, each inside its job's context, and a job enqueued without a
//! tenant is dead-lettered with its reason. The in-process queue is a
//! `jobs::Transport` of a few lines: how any other broker plugs in.
//!
//! ```text
//! cargo run --example jobs
//! ```
//!
//! With `--broker URL` the same demo runs over a real broker, with three
//! worker processes (this program, started again with `--work`):
//!
//! ```text
//! cargo run --example jobs -- --broker redis://127.0.0.1:6379
//! cargo run --example jobs -- --broker amqp://guest:guest@127.0.0.1:5672/%2f
//! cargo run --example jobs -- --broker nats://127.0.0.1:4222
//! ```

mod broker_demo;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use context_runtime::jobs::pipeline::{Delivery, Settle};
use context_runtime::jobs::{DeadLetter, Outcome, Policy, Rejection, Transport, Worker};
use context_runtime::{
    requires_tenant, Carrier, CarrierError, Context, ContextSource, TenantId, TenantRequired,
    UserRef,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Notify};

/// A job as it travels: the business fields plus the producer's context.
#[derive(Serialize, Deserialize)]
struct InvoiceJob {
    id: u32,
    invoice: u32,
    /// The carrier, taken once at enqueue (like nestjs-context's `__ctx`).
    ctx: Carrier,
}

/// The runner reads the job's context from its carrier.
impl ContextSource for InvoiceJob {
    type Error = CarrierError;

    fn to_context(&self) -> Result<Context, CarrierError> {
        self.ctx.to_context()
    }
}

/// What a job can fail with.
#[derive(Debug)]
enum JobError {
    NoTenant(TenantRequired),
    BadCarrier(CarrierError),
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobError::NoTenant(e) => e.fmt(f),
            JobError::BadCarrier(e) => e.fmt(f),
        }
    }
}

impl From<TenantRequired> for JobError {
    fn from(e: TenantRequired) -> Self {
        JobError::NoTenant(e)
    }
}

impl From<CarrierError> for JobError {
    fn from(e: CarrierError) -> Self {
        JobError::BadCarrier(e)
    }
}

/// What a finished job reports back.
#[derive(Serialize, Deserialize)]
struct Done {
    id: u32,
    trace_id: String,
    tenant: String,
}

/// One log line, with the current trace id and tenant read from the scope.
fn log(step: &str) {
    let (trace, tenant) = context_runtime::with_current(|cx| match cx {
        Some(cx) => (
            cx.trace_id().to_string(),
            cx.tenant().map_or("-", TenantId::as_str).to_owned(),
        ),
        None => ("-".into(), "-".into()),
    });
    println!("  trace={trace} tenant={tenant:<8} {step}");
}

/// Business code three calls deep: no context parameter anywhere.
async fn render_pdf(invoice: u32) -> String {
    tokio::time::sleep(Duration::from_millis(u64::from(invoice % 7))).await;
    log(&format!("rendered invoice #{invoice}"));
    format!("invoice-{invoice}.pdf")
}

/// The job handler: the runner runs it inside the job's context (so no
/// `#[with_context]` here); without a tenant it does not run at all (the
/// runner's policy, and `#[requires_tenant]` says so in the signature).
#[requires_tenant]
async fn handle(job: InvoiceJob) -> Result<Done, JobError> {
    run_invoice(job.id, job.invoice).await
}

/// The job's work, inside its context (the broker demo's handlers call it too).
async fn run_invoice(id: u32, invoice: u32) -> Result<Done, JobError> {
    log(&format!("job {id} started"));
    let pdf = render_pdf(invoice).await;
    // A sub-task spawned here carries the same context.
    let mailed = context_runtime::spawn(async move {
        tokio::task::yield_now().await;
        log(&format!("mailed {pdf}"));
    });
    mailed.await.ok();
    let tenant = context_runtime::tenant()?;
    Ok(Done {
        id,
        trace_id: context_runtime::trace_id()
            .map(|t| t.to_string())
            .unwrap_or_default(),
        tenant: tenant.to_string(),
    })
}

/// What the producer stamped on each job, to check the workers against.
type Stamped = BTreeMap<u32, (String, Option<String>)>;

async fn produce(queue: MemoryQueue) -> Stamped {
    let mut stamped = Stamped::new();
    let mut id = 0;
    for tenant in ["acme", "globex", "initech"] {
        for n in 0..4 {
            id += 1;
            // Each "request" has its own context; the producer captures it at enqueue.
            let request = Context::root()
                .with_tenant(TenantId::new(tenant).expect("a valid tenant"))
                .with_user(UserRef::user(100 + n).expect("a valid user"));
            let job = request.scope(async {
                let cx = context_runtime::current().expect("inside the request scope");
                InvoiceJob {
                    id,
                    invoice: 1000 + id,
                    ctx: cx.to_carrier(),
                }
            });
            let job = job.await;
            stamped.insert(
                id,
                (request.trace_id().to_string(), Some(tenant.to_owned())),
            );
            let wire = serde_json::to_vec(&job).expect("a job serializes");
            queue.push(wire, 1);
        }
    }
    // A producer that forgot its tenant: the job must not run.
    id += 1;
    let orphan = Context::root();
    let wire = serde_json::to_vec(&InvoiceJob {
        id,
        invoice: 1000 + id,
        ctx: orphan.to_carrier(),
    })
    .expect("a job serializes");
    stamped.insert(id, (orphan.trace_id().to_string(), None));
    queue.push(wire, 1);
    stamped
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => in_process().await,
        Some("--broker") => match args.get(1) {
            Some(url) => broker_demo::run(url).await,
            None => usage(),
        },
        Some("--work") => broker_demo::work(&args[1..]).await,
        Some(_) => usage(),
    }
}

fn usage() {
    eprintln!("usage: jobs [--broker redis://…|amqp://…|nats://…]");
    std::process::exit(2);
}

/// Jobs waiting in memory: the JSON and the next attempt.
type Waiting = VecDeque<(Vec<u8>, u32)>;

/// The in-process queue: JSON jobs in memory, and a [`Transport`] for the
/// runner. A retry puts the job back with its next attempt.
#[derive(Clone, Default)]
struct MemoryQueue {
    waiting: Arc<std::sync::Mutex<Waiting>>,
    arrived: Arc<Notify>,
}

impl MemoryQueue {
    fn push(&self, payload: Vec<u8>, attempt: u32) {
        self.waiting
            .lock()
            .expect("not poisoned")
            .push_back((payload, attempt));
        self.arrived.notify_one();
    }
}

/// How the runner settles a job of the in-process queue.
struct MemorySettle {
    queue: MemoryQueue,
    payload: Vec<u8>,
    attempt: u32,
}

impl Settle for MemorySettle {
    type Error = std::convert::Infallible;

    async fn ack(&mut self) -> Result<(), Self::Error> {
        Ok(()) // taken off the queue already
    }

    async fn retry(&mut self, delay: Duration) -> Result<(), Self::Error> {
        let (queue, payload, attempt) = (self.queue.clone(), self.payload.clone(), self.attempt);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.push(payload, attempt + 1);
        });
        Ok(())
    }

    async fn dead_letter(&mut self, _letter: &DeadLetter) -> Result<(), Self::Error> {
        Ok(()) // the demo reads dead letters from the outcomes
    }
}

impl Transport for MemoryQueue {
    type Job = InvoiceJob;
    type Settle = MemorySettle;
    type Error = std::convert::Infallible;

    fn queue(&self) -> &str {
        "invoices"
    }

    fn policy(&self) -> &Policy {
        static POLICY: std::sync::OnceLock<Policy> = std::sync::OnceLock::new();
        POLICY.get_or_init(Policy::new)
    }

    async fn receive(
        &mut self,
        max: usize,
    ) -> Result<Vec<Delivery<InvoiceJob, MemorySettle>>, Self::Error> {
        let taken: Vec<_> = {
            let mut waiting = self.waiting.lock().expect("not poisoned");
            let n = max.min(waiting.len());
            waiting.drain(..n).collect()
        };
        if taken.is_empty() {
            // The queue's "blocking read": wait for a push, briefly.
            let _ = tokio::time::timeout(Duration::from_millis(200), self.arrived.notified()).await;
        }
        Ok(taken
            .into_iter()
            .map(|(payload, attempt)| {
                let job = serde_json::from_slice::<InvoiceJob>(&payload).map_err(|e| {
                    Rejection::Unreadable {
                        reason: e.to_string(),
                    }
                });
                let settle = MemorySettle {
                    queue: self.clone(),
                    payload: payload.clone(),
                    attempt,
                };
                Delivery::new(job, payload, attempt, settle)
            })
            .collect())
    }
}

/// The default demo: an in-process queue, no server needed.
async fn in_process() {
    const CONCURRENCY: usize = 8;
    println!("== context-runtime demo: an in-process queue, the runner with {CONCURRENCY} jobs at a time ==");
    let queue = MemoryQueue::default();
    let stamped = produce(queue.clone()).await;

    // The runner: each job in its own context; every outcome comes back here.
    let (tx, mut outcomes) = mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(
        Worker::new(queue, handle)
            .concurrency(CONCURRENCY)
            .on_outcome(move |handled| {
                let _ = tx.send(handled.outcome);
            })
            .run(async {
                let _ = stopped.await;
            }),
    );
    let mut done = Vec::new();
    let mut dead = Vec::new();
    while done.len() + dead.len() < stamped.len() {
        match outcomes.recv().await.expect("the worker runs") {
            Ok(Outcome::Completed(result)) => done.push(result),
            Ok(Outcome::DeadLettered(letter)) => {
                let job: Option<InvoiceJob> = serde_json::from_str(&letter.payload).ok();
                let id = job.map_or(0, |job| job.id);
                println!("  job {id} dead-lettered: {}", letter.reason);
                dead.push((id, letter.reason));
            }
            Ok(_) => {}
            Err(e) => println!("  a job could not be settled: {e}"),
        }
    }
    let _ = stop.send(());
    worker.await.expect("the runner stops");
    summarize(&stamped, &done, &dead);
}

/// The table at the end: jobs per tenant, mismatches, dead letters, lost.
fn summarize(stamped: &Stamped, done: &[Done], dead: &[(u32, String)]) {
    let mut per_tenant = BTreeMap::<&str, usize>::new();
    let mut mismatches = 0;
    for job in done {
        *per_tenant.entry(job.tenant.as_str()).or_default() += 1;
        let (trace, tenant) = &stamped[&job.id];
        if *trace != job.trace_id || tenant.as_deref() != Some(job.tenant.as_str()) {
            mismatches += 1;
        }
    }

    println!();
    println!("== summary ==");
    println!("{:<12} {:>5}", "tenant", "jobs");
    for (tenant, jobs) in &per_tenant {
        println!("{tenant:<12} {jobs:>5}");
    }
    println!("{:<12} {:>5}", "mismatches", mismatches);
    println!("{:<12} {:>5}", "dead letters", dead.len());
    for (id, reason) in dead {
        println!("  job {id}: {reason}");
    }
    let lost = stamped.len() - done.len() - dead.len();
    println!("{:<12} {:>5}", "lost", lost);
    assert_eq!(mismatches, 0, "a job ran under another job's identity");
    assert_eq!(lost, 0, "every job is either done or dead-lettered");
}
