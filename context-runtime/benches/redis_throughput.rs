//! Throughput through a real broker: 20,000 jobs pushed through Redis and
//! handled, without the context and with it, and the ratio; on a Redis list
//! (`RPUSH` / `LPOP`, the shape of the previous transport) and on a Redis
//! stream with a consumer group (`XADD` / `XREADGROUP` / `XACK` + `XDEL`,
//! the shape of the `redis` feature's transport).
//!
//! ```text
//! cargo bench -p context-runtime --bench redis_throughput
//! ```
//!
//! - *without*: the job is `{invoice, amountCents}`; the worker parses it and
//!   runs a plain `async fn`;
//! - *with*: the producer takes the carrier inside the request's scope
//!   (`current().to_carrier()`), the job carries it, and the worker runs a
//!   `#[with_context(from = "job.ctx")]` + `#[requires_tenant]` handler.
//!
//! On the list each job is one `RPUSH` and one `LPOP` on a loopback
//! connection; on the stream one `XADD`, one `XREADGROUP` and one
//! `XACK` + `XDEL` (in one `MULTI`), acknowledged after the handler. The two variants alternate for several rounds on a list
//! whose name is unique to the run; the median rate of each is printed, and
//! the median of the rounds' ratios (each round's two runs are neighbours in
//! time, so a shared machine's load disturbs the ratio less). It
//! needs Redis on 127.0.0.1:6379, and says so loudly and skips when there is
//! none (it fails instead under `CONTEXT_REQUIRE_SERVICES=1`). Run outside
//! `cargo bench` (by `cargo test --benches`) it makes a short smoke run.

use std::collections::VecDeque;
use std::fmt;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use context_runtime::{
    requires_tenant, with_context, Carrier, CarrierError, Context, TenantId, TenantRequired,
};
use redis::Commands as _;
use serde::{Deserialize, Serialize};

const REDIS: &str = "redis://127.0.0.1:6379/";
const JOBS: u64 = 20_000;
const ROUNDS: usize = 7;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlainJob {
    invoice: u64,
    amount_cents: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContextJob {
    invoice: u64,
    amount_cents: u64,
    ctx: Carrier,
}

enum JobError {
    NoTenant,
    BadCarrier(CarrierError),
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::NoTenant => f.write_str("no tenant"),
            JobError::BadCarrier(e) => write!(f, "{e}"),
        }
    }
}

impl From<TenantRequired> for JobError {
    fn from(_: TenantRequired) -> Self {
        JobError::NoTenant
    }
}

impl From<CarrierError> for JobError {
    fn from(e: CarrierError) -> Self {
        JobError::BadCarrier(e)
    }
}

/// The business work, the same in both variants.
fn bill(invoice: u64, amount_cents: u64) -> u64 {
    invoice.wrapping_mul(31).wrapping_add(amount_cents)
}

async fn handle_plain(job: PlainJob) -> Result<u64, JobError> {
    Ok(bill(job.invoice, job.amount_cents))
}

#[with_context(from = "job.ctx")]
#[requires_tenant]
async fn handle_in_context(job: ContextJob) -> Result<u64, JobError> {
    let tenant = context_runtime::tenant()?;
    Ok(bill(job.invoice, job.amount_cents) + tenant.as_str().len() as u64)
}

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Without,
    With,
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Variant::Without => "without context",
            Variant::With => "with carrier + scope",
        })
    }
}

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Where the jobs wait: the Redis list, a Redis stream with a consumer
/// group, or (to measure the work without the broker) a queue in memory.
enum Queue<'a> {
    Redis {
        con: &'a mut redis::Connection,
        list: &'a str,
    },
    Stream {
        con: &'a mut redis::Connection,
        stream: &'a str,
    },
    Memory(VecDeque<Vec<u8>>),
}

/// The transports compared.
#[derive(Clone, Copy, PartialEq)]
enum Transport {
    List,
    Stream,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Transport::List => "list",
            Transport::Stream => "stream",
        })
    }
}

impl Queue<'_> {
    fn clear(&mut self) -> BenchResult<()> {
        match self {
            Queue::Redis { con, list } => {
                let _: usize = con.del(*list)?;
            }
            Queue::Stream { con, stream } => {
                let _: usize = con.del(*stream)?;
                redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(*stream)
                    .arg("workers")
                    .arg("$")
                    .arg("MKSTREAM")
                    .query::<()>(con)?;
            }
            Queue::Memory(queue) => queue.clear(),
        }
        Ok(())
    }

    fn push(&mut self, payload: Vec<u8>) -> BenchResult<()> {
        match self {
            Queue::Redis { con, list } => {
                let _: usize = con.rpush(*list, payload)?;
            }
            Queue::Stream { con, stream } => {
                redis::cmd("XADD")
                    .arg(*stream)
                    .arg("*")
                    .arg("job")
                    .arg(payload)
                    .query::<()>(con)?;
            }
            Queue::Memory(queue) => queue.push_back(payload),
        }
        Ok(())
    }

    /// The next job: its entry id (on a stream) and its payload.
    fn pop(&mut self) -> BenchResult<Option<(Option<String>, Vec<u8>)>> {
        Ok(match self {
            Queue::Redis { con, list } => con
                .lpop::<_, Option<Vec<u8>>>(*list, None)?
                .map(|p| (None, p)),
            Queue::Stream { con, stream } => {
                // [[stream, [[id, [field, value]]]]]
                type Reply = Option<Vec<(String, Vec<(String, Vec<(String, Vec<u8>)>)>)>>;
                let reply: Reply = redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg("workers")
                    .arg("bench")
                    .arg("COUNT")
                    .arg(1)
                    .arg("STREAMS")
                    .arg(*stream)
                    .arg(">")
                    .query(con)?;
                reply
                    .and_then(|streams| streams.into_iter().next())
                    .and_then(|(_, entries)| entries.into_iter().next())
                    .and_then(|(id, fields)| {
                        let payload = fields.into_iter().next()?.1;
                        Some((Some(id), payload))
                    })
            }
            Queue::Memory(queue) => queue.pop_front().map(|p| (None, p)),
        })
    }

    /// Acknowledges a handled job (on a stream: `XACK` and `XDEL` in one `MULTI`).
    fn ack(&mut self, id: Option<String>) -> BenchResult<()> {
        if let (Queue::Stream { con, stream }, Some(id)) = (self, id) {
            redis::pipe()
                .atomic()
                .cmd("XACK")
                .arg(*stream)
                .arg("workers")
                .arg(&id)
                .ignore()
                .cmd("XDEL")
                .arg(*stream)
                .arg(&id)
                .ignore()
                .query::<()>(con)?;
        }
        Ok(())
    }

    /// Jobs left behind, after the list is removed.
    fn finish(&mut self) -> BenchResult<usize> {
        match self {
            Queue::Redis { con, list } => {
                let left: usize = con.llen(*list)?;
                let _: usize = con.del(*list)?;
                Ok(left)
            }
            Queue::Stream { con, stream } => {
                let left: usize = redis::cmd("XLEN").arg(*stream).query(con)?;
                let _: usize = con.del(*stream)?;
                Ok(left)
            }
            Queue::Memory(queue) => Ok(queue.len()),
        }
    }
}

/// Pushes `jobs` jobs through `queue` and handles them; returns the elapsed time.
fn run(
    queue: &mut Queue<'_>,
    runtime: &tokio::runtime::Runtime,
    variant: Variant,
    jobs: u64,
) -> BenchResult<Duration> {
    let tenants: Vec<Context> = ["acme", "globex", "initech"]
        .into_iter()
        .map(|t| Context::root().with_tenant(TenantId::new(t).expect("valid")))
        .collect();
    queue.clear()?;
    let start = Instant::now();

    // Producer: one request scope per job, one RPUSH per job.
    for invoice in 0..jobs {
        let amount_cents = invoice * 100;
        let payload = match variant {
            Variant::Without => serde_json::to_vec(&PlainJob {
                invoice,
                amount_cents,
            })?,
            Variant::With => {
                let request = &tenants[(invoice % 3) as usize];
                request.scope_sync(|| {
                    let ctx = context_runtime::current()
                        .expect("inside the request's scope")
                        .to_carrier();
                    serde_json::to_vec(&ContextJob {
                        invoice,
                        amount_cents,
                        ctx,
                    })
                })?
            }
        };
        queue.push(payload)?;
    }
    match queue {
        // Left behind only if this run dies before its `DEL` below.
        Queue::Redis { con, list: key } | Queue::Stream { con, stream: key } => {
            let _: bool = con.expire(*key, 600)?;
        }
        Queue::Memory(_) => {}
    }

    // Worker: one LPOP (or XREADGROUP) per job, the handler, the ack.
    let mut checksum = 0u64;
    runtime.block_on(async {
        for _ in 0..jobs {
            let (id, payload) = queue
                .pop()?
                .ok_or("the queue ran dry before every job was handled")?;
            let handled = match variant {
                Variant::Without => handle_plain(serde_json::from_slice(&payload)?).await,
                Variant::With => handle_in_context(serde_json::from_slice(&payload)?).await,
            };
            let value = handled.map_err(|e| format!("a job failed: {e}"))?;
            queue.ack(id)?;
            checksum = checksum.wrapping_add(value);
        }
        BenchResult::Ok(())
    })?;
    let elapsed = start.elapsed();
    std::hint::black_box(checksum);

    let left = queue.finish()?;
    if left != 0 {
        return Err(format!("{left} jobs were left in the list").into());
    }
    Ok(elapsed)
}

fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; anything else (`cargo test --benches`)
    // gets a short smoke run.
    let full = std::env::args().any(|arg| arg == "--bench");
    let (jobs, rounds) = if full { (JOBS, ROUNDS) } else { (200, 1) };

    let connection = redis::Client::open(REDIS)
        .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)));
    let mut con = match connection {
        Ok(con) => con,
        Err(e) => {
            let required = std::env::var("CONTEXT_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
            eprintln!("==================================================================");
            eprintln!(
                "{} redis_throughput: Redis is unreachable at 127.0.0.1:6379 ({e}).",
                if required { "FAILED" } else { "SKIPPED" }
            );
            eprintln!("Start a Redis server there and run this benchmark again.");
            eprintln!("==================================================================");
            return if required {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let list = format!("context-runtime:bench:{}:{nanos}:jobs", std::process::id());

    println!(
        "redis_throughput: {jobs} jobs per run through {list:?}, {rounds} rounds per variant, alternating"
    );
    // Per transport: the median rates without and with the context, and the
    // median of the rounds' ratios.
    let mut results = Vec::new();
    for transport in [Transport::List, Transport::Stream] {
        let mut rates = [Vec::new(), Vec::new()];
        for round in 0..rounds {
            for (i, variant) in [Variant::Without, Variant::With].into_iter().enumerate() {
                let mut queue = match transport {
                    Transport::List => Queue::Redis {
                        con: &mut con,
                        list: &list,
                    },
                    Transport::Stream => Queue::Stream {
                        con: &mut con,
                        stream: &list,
                    },
                };
                match run(&mut queue, &runtime, variant, jobs) {
                    Ok(elapsed) => {
                        let rate = jobs as f64 / elapsed.as_secs_f64();
                        println!(
                            "  {transport:<6} round {}: {variant:<22} {rate:>9.0} jobs/s ({elapsed:.2?})",
                            round + 1
                        );
                        rates[i].push(rate);
                    }
                    Err(e) => {
                        let _: Result<usize, _> = con.del(&list);
                        eprintln!("redis_throughput: {transport}, {variant}: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
        }
        // Each round's two runs are neighbours in time: their ratio is less
        // exposed to the load of a shared machine than the rates themselves.
        let ratios: Vec<f64> = rates[1]
            .iter()
            .zip(&rates[0])
            .map(|(with, without)| with / without)
            .collect();
        let ratio = median(ratios);
        let [without, with] = rates.map(median);
        results.push((transport, without, with, ratio));
    }
    for (transport, without, with, ratio) in &results {
        println!("{transport:<6} without context:      {without:>9.0} jobs/s (median of {rounds})");
        println!("{transport:<6} with carrier + scope: {with:>9.0} jobs/s (median of {rounds})");
        println!(
            "{transport:<6} ratio (median of the rounds' ratios): {ratio:.3} of the rate without context; \
             the context costs {:.1}% (target: under 3%)",
            (1.0 / ratio - 1.0) * 100.0
        );
    }
    // The new transport's rate without context, for the share below.
    let without = results[1].1;
    println!(
        "the stream (consumer group, acknowledged) runs at {:.2}× the list's rate with the context",
        results[1].2 / results[0].2
    );
    // The same jobs through a queue in memory: what the context itself
    // costs per job, without the broker.
    let mut per_job = [0.0; 2];
    for (i, variant) in [Variant::Without, Variant::With].into_iter().enumerate() {
        let mut samples = Vec::new();
        for _ in 0..rounds {
            let mut queue = Queue::Memory(VecDeque::new());
            match run(&mut queue, &runtime, variant, jobs) {
                Ok(elapsed) => samples.push(elapsed.as_secs_f64() * 1e6 / jobs as f64),
                Err(e) => {
                    eprintln!("redis_throughput: in memory, {variant}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        per_job[i] = median(samples);
    }
    println!(
        "without the broker (a queue in memory): {:.2} µs per job without context, {:.2} µs with; \
         the context's own work is {:.2} µs per job, {:.1}% of a job through the Redis stream here",
        per_job[0],
        per_job[1],
        per_job[1] - per_job[0],
        (per_job[1] - per_job[0]) * without / 1e4
    );
    ExitCode::SUCCESS
}
