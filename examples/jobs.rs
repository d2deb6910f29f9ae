//! The demo: jobs for three tenants cross an in-process queue as JSON, a pool
//! of 8 workers runs them with `#[with_context]` + `#[requires_tenant]`, and a
//! job enqueued without a tenant is dead-lettered with its reason.
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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use context_runtime::{
    requires_tenant, with_context, Carrier, CarrierError, Context, TenantId, TenantRequired,
    UserRef,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Mutex, Semaphore};

/// A job as it travels: the business fields plus the producer's context.
#[derive(Serialize, Deserialize)]
struct InvoiceJob {
    id: u32,
    invoice: u32,
    /// The carrier, taken once at enqueue (like nestjs-context's `__ctx`).
    ctx: Carrier,
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

/// The job handler: the whole body runs inside the job's context; without a
/// tenant the body does not run at all.
#[with_context(from = "job.ctx")]
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

async fn produce(queue: mpsc::Sender<String>) -> Stamped {
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
            let wire = serde_json::to_string(&job).expect("a job serializes");
            queue.send(wire).await.expect("the queue is open");
        }
    }
    // A producer that forgot its tenant: the job must not run.
    id += 1;
    let orphan = Context::root();
    let wire = serde_json::to_string(&InvoiceJob {
        id,
        invoice: 1000 + id,
        ctx: orphan.to_carrier(),
    })
    .expect("a job serializes");
    stamped.insert(id, (orphan.trace_id().to_string(), None));
    queue.send(wire).await.expect("the queue is open");
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

/// The default demo: an in-process queue, no server needed.
async fn in_process() {
    const CONCURRENCY: usize = 8;
    println!("== context-runtime demo: an in-process queue, {CONCURRENCY} workers ==");
    let (tx, mut rx) = mpsc::channel::<String>(64);
    let producer = tokio::spawn(produce(tx));

    let done = Arc::new(Mutex::new(Vec::<Done>::new()));
    let dead = Arc::new(Mutex::new(Vec::<(u32, String)>::new()));
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    let mut workers = Vec::new();
    // The worker loop has no context of its own: each job brings its own.
    while let Some(wire) = rx.recv().await {
        let permit = slots.clone().acquire_owned().await.expect("open");
        let (done, dead) = (done.clone(), dead.clone());
        workers.push(tokio::spawn(async move {
            let _permit = permit;
            let job: InvoiceJob = match serde_json::from_str(&wire) {
                Ok(job) => job,
                Err(e) => {
                    dead.lock().await.push((0, format!("unreadable job: {e}")));
                    return;
                }
            };
            let id = job.id;
            match handle(job).await {
                Ok(result) => done.lock().await.push(result),
                Err(e) => {
                    println!("  job {id} dead-lettered: {e}");
                    dead.lock().await.push((id, e.to_string()));
                }
            }
        }));
    }
    for worker in workers {
        worker.await.expect("a worker task");
    }
    let stamped = producer.await.expect("the producer");

    let done = done.lock().await;
    let dead = dead.lock().await;
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
