//! Jobs on a Redis stream with a consumer group, the producer's
//! [`Carrier`](struct@crate::Carrier) in the JSON payload (feature `redis`).
//!
//! A [`Queue`] is a stream (`name`) read by a consumer group (`workers` by
//! default), and a dead-letter stream (`name:dead`). A job is one stream
//! entry whose field `job` holds the [`Job`] JSON, `{"ctx": <carrier>,
//! "data": <T>, "id": "<job id>"}`, so any language's `XADD` can produce it.
//!
//! - [`Queue::enqueue`] captures the current context into the job, once,
//!   and gives it a job id (`XADD`).
//! - [`Queue::consumer`] joins the consumer group; a [`Worker`] runs a
//!   handler over its jobs: `XREADGROUP … BLOCK` (no polling), the handler
//!   inside the job's context with its panics caught, then `XACK` (and
//!   `XDEL`) on success.
//! - **Crash recovery** is the engine's: a job stays in the group's pending
//!   entries list until it is acknowledged, and a job whose consumer has not
//!   touched it for the [visibility timeout](Queue::visibility_timeout)
//!   (30 s by default) is taken over by another consumer (`XAUTOCLAIM`). A
//!   handler that runs longer renews its lease every third of it.
//! - **Attempts** are the pending entries list's delivery count, so a
//!   delivery whose worker died or panicked counts; a job delivered more
//!   than [`Policy::attempts`] times is dead-lettered without running again.
//! - **Retries** leave the job pending and set its idle time so that it is
//!   taken again after [`Policy::retry_delay`] (at most the visibility
//!   timeout): the same entry, so the same bytes, carrier and job id.
//! - **Dead letters** are entries of `name:dead`: the original bytes exactly
//!   (field `job`, non-UTF-8 too) beside the reason, kind, tenant, trace id
//!   and attempts. Writing the dead letter and acknowledging the job is one
//!   script: when the dead letter cannot be written, the job is not
//!   acknowledged. [`Queue::redrive`] moves dead letters back as new
//!   entries (a fresh attempt count, the same job id).
//!
//! The handler already runs in the job's context: do not scope it again
//! with `#[with_context(from = "job")]`.
//!
//! ```no_run
//! use context_runtime::jobs::{Job, Outcome, Worker};
//! use context_runtime::redis::Queue;
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Invoice { number: u64 }
//!
//! async fn send_invoice(job: Job<Invoice>) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//!     let tenant = context_runtime::tenant()?;
//!     // `job.id()` is the same on every delivery: use it as an idempotency key.
//!     println!("invoice {} for {tenant} (job {})", job.data.number, job.id());
//!     Ok(())
//! }
//!
//! # async fn run(cx: context_runtime::Context) -> Result<(), Box<dyn std::error::Error>> {
//! let client = redis::Client::open("redis://127.0.0.1:6379")?;
//! let queue = Queue::new("invoices");
//!
//! // Producer, inside the request's scope: the context is captured here.
//! let mut conn = client.get_multiplexed_async_connection().await?;
//! cx.scope(queue.enqueue(&mut conn, &Invoice { number: 7 })).await?;
//!
//! // Worker: 8 jobs at a time, until Ctrl-C (then in-flight jobs finish).
//! Worker::new(queue.consumer(client).await?, send_invoice)
//!     .concurrency(8)
//!     .on_outcome(|handled| {
//!         if let Ok(Outcome::DeadLettered(letter)) = &handled.outcome {
//!             eprintln!("dead letter: {}", letter.reason);
//!         }
//!     })
//!     .run(async { tokio::signal::ctrl_c().await.unwrap_or_default() })
//!     .await;
//! # Ok(())
//! # }
//! ```

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::{Client, RedisError, RedisResult, Value};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::jobs::pipeline::{Delivery, Settle};
use crate::jobs::{DeadLetter, Job, Policy, Rejection, RejectionKind, Transport};

#[cfg(doc)]
use crate::jobs::Worker;

/// The stream field that holds a job's JSON (and a dead letter's original
/// bytes).
pub const JOB_FIELD: &str = "job";

/// A job queue on a Redis stream: its name, consumer group, [`Policy`] and
/// visibility timeout.
#[derive(Debug, Clone)]
pub struct Queue {
    name: String,
    group: String,
    policy: Policy,
    visibility: Duration,
}

impl Queue {
    /// The queue on the stream `name` (dead letters in `name:dead`), read by
    /// the consumer group `workers`, with the default [`Policy`] (a tenant
    /// is required, 3 attempts, 1 s → 60 s back-off) and a 30 s visibility
    /// timeout.
    pub fn new(name: impl Into<String>) -> Queue {
        Queue {
            name: name.into(),
            group: "workers".to_owned(),
            policy: Policy::new(),
            visibility: Duration::from_secs(30),
        }
    }

    /// The policy consumers of this queue apply.
    pub fn with_policy(mut self, policy: Policy) -> Queue {
        self.policy = policy;
        self
    }

    /// The consumer group (one group shares the jobs; each group gets
    /// every job).
    pub fn with_group(mut self, group: impl Into<String>) -> Queue {
        self.group = group.into();
        self
    }

    /// How long a delivered job may go without a sign of life from its
    /// consumer before another consumer takes it over (at least 100 ms).
    /// A running handler renews its lease every third of it, so this is
    /// how long a dead worker's jobs wait, not a limit on handlers.
    pub fn visibility_timeout(mut self, timeout: Duration) -> Queue {
        self.visibility = timeout.max(Duration::from_millis(100));
        self
    }

    /// The stream of jobs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The policy consumers apply.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The stream of dead letters (`name:dead`).
    pub fn dead_letter_stream(&self) -> String {
        format!("{}:dead", self.name)
    }

    /// Enqueues `data` with the current context (no context outside a
    /// scope: a consumer that requires a tenant dead-letters such a job);
    /// returns the new job's id.
    ///
    /// # Errors
    ///
    /// A Redis error.
    pub async fn enqueue<T: Serialize>(
        &self,
        conn: &mut impl ConnectionLike,
        data: &T,
    ) -> RedisResult<String> {
        self.enqueue_job(conn, &Job::current(data)).await
    }

    /// Enqueues a job made beforehand (with [`Job::new`] or
    /// [`Job::current`]); returns its id. When the queue's [`Policy`] has a
    /// keyring, an unsigned carrier is signed with it (covering the job id).
    ///
    /// # Errors
    ///
    /// A Redis error, or a payload that does not serialize to JSON.
    pub async fn enqueue_job<T: Serialize>(
        &self,
        conn: &mut impl ConnectionLike,
        job: &Job<T>,
    ) -> RedisResult<String> {
        let payload = match self.policy.signing_keyring() {
            None => serde_json::to_vec(job).map_err(json_error)?,
            Some(_) => {
                // With a keyring in the policy, the identity leaves signed.
                let mut payload = serde_json::to_value(job).map_err(json_error)?;
                crate::jobs::seal_payload(&self.policy, &mut payload);
                serde_json::to_vec(&payload).map_err(json_error)?
            }
        };
        let entry: String = ::redis::cmd("XADD")
            .arg(&self.name)
            .arg("*")
            .arg(JOB_FIELD)
            .arg(payload)
            .query_async(conn)
            .await?;
        Ok(if job.id().is_empty() {
            entry
        } else {
            job.id().to_owned()
        })
    }

    /// Joins the consumer group (creating it, and the stream, when missing)
    /// as a new consumer, for a [`Worker`]. `client` opens the consumer's
    /// connections: one for its blocking reads, one for settling jobs
    /// (both re-opened when lost).
    ///
    /// # Errors
    ///
    /// A Redis error while creating the group.
    pub async fn consumer<T>(&self, client: Client) -> RedisResult<Consumer<T>> {
        let mut conn = client.get_multiplexed_async_connection().await?;
        let created = ::redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.name)
            .arg(&self.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async::<()>(&mut conn)
            .await;
        match created {
            Err(e) if e.code() != Some("BUSYGROUP") => return Err(e),
            _ => {}
        }
        let name = format!("{}-{:016x}", std::process::id(), fastrand::u64(..));
        Ok(Consumer {
            shared: Arc::new(Shared {
                queue: self.clone(),
                consumer: name,
                client,
                conn: Mutex::new(Some(conn)),
            }),
            fetch: None,
            next_claim: Instant::now(),
            claim_cursor: "0-0".to_owned(),
            _job: PhantomData,
        })
    }

    /// The dead letters of this queue, oldest first (their `payload` is the
    /// original bytes as text, with bytes that are not UTF-8 replaced; see
    /// [`Queue::dead_jobs`] for the bytes).
    ///
    /// # Errors
    ///
    /// A Redis error.
    pub async fn dead_letters(
        &self,
        conn: &mut impl ConnectionLike,
    ) -> RedisResult<Vec<DeadLetter>> {
        Ok(self
            .dead_jobs(conn)
            .await?
            .into_iter()
            .map(|dead| dead.letter)
            .collect())
    }

    /// The dead letters of this queue with their entry ids and the original
    /// bytes exactly, oldest first.
    ///
    /// # Errors
    ///
    /// A Redis error.
    pub async fn dead_jobs(&self, conn: &mut impl ConnectionLike) -> RedisResult<Vec<DeadJob>> {
        let reply: Value = ::redis::cmd("XRANGE")
            .arg(self.dead_letter_stream())
            .arg("-")
            .arg("+")
            .query_async(conn)
            .await?;
        Ok(entries(&reply)
            .into_iter()
            .map(|(id, fields)| dead_job(&self.name, id, &fields))
            .collect())
    }

    /// Moves every dead letter back into the queue as a new entry with its
    /// original bytes (so a fresh attempt count, and the same job id);
    /// returns how many moved. Each move is atomic.
    ///
    /// # Errors
    ///
    /// A Redis error; the dead letters not yet moved stay.
    pub async fn redrive(&self, conn: &mut impl ConnectionLike) -> RedisResult<usize> {
        const BATCH: usize = 100;
        let mut moved = 0;
        let mut start = "-".to_owned();
        loop {
            let (n, scanned, last): (usize, usize, String) = ::redis::cmd("EVAL")
                .arg(REDRIVE)
                .arg(2)
                .arg(&self.name)
                .arg(self.dead_letter_stream())
                .arg(&start)
                .arg(BATCH)
                .query_async(conn)
                .await?;
            moved += n;
            if scanned < BATCH {
                return Ok(moved);
            }
            start = format!("({last}");
        }
    }
}

/// A dead letter on Redis: its entry in the dead-letter stream, the
/// record, and the job's original bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadJob {
    /// The entry's id in the dead-letter stream.
    pub entry_id: String,
    /// The record (reason, kind, tenant, trace id, attempts).
    pub letter: DeadLetter,
    /// The job's id, when it had one.
    pub job_id: Option<String>,
    /// The original bytes, exactly as enqueued.
    pub job: Vec<u8>,
}

/// One consumer of a [`Queue`]'s group: the [`Transport`] a [`Worker`]
/// runs on. Made by [`Queue::consumer`].
pub struct Consumer<T> {
    shared: Arc<Shared>,
    /// The connection of the blocking reads (a blocking command holds a
    /// connection, so it gets its own).
    fetch: Option<MultiplexedConnection>,
    next_claim: Instant,
    claim_cursor: String,
    _job: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("queue", &self.shared.queue)
            .field("consumer", &self.shared.consumer)
            .finish_non_exhaustive()
    }
}

impl<T> Consumer<T> {
    /// This consumer's name in the group.
    pub fn name(&self) -> &str {
        &self.shared.consumer
    }

    /// How often the pending entries list is scanned for jobs to take over.
    fn claim_every(&self) -> Duration {
        (self.shared.queue.visibility / 4).clamp(Duration::from_millis(100), Duration::from_secs(2))
    }

    async fn fetch_conn(&mut self, wait: Duration) -> RedisResult<&mut MultiplexedConnection> {
        if self.fetch.is_none() {
            let mut conn = self
                .shared
                .client
                .get_multiplexed_async_connection()
                .await?;
            conn.set_response_timeout(wait + Duration::from_secs(5));
            self.fetch = Some(conn);
        }
        Ok(self.fetch.as_mut().expect("set above"))
    }
}

impl<T: DeserializeOwned + Send + 'static> Consumer<T> {
    /// Takes over up to `max` jobs idle for the visibility timeout.
    async fn claim(&mut self, max: usize) -> RedisResult<Vec<(String, Fields, u32)>> {
        let shared = Arc::clone(&self.shared);
        let queue = &shared.queue;
        let cursor = self.claim_cursor.clone();
        let conn = self.fetch_conn(Duration::ZERO).await?;
        let reply: Value = ::redis::cmd("EVAL")
            .arg(CLAIM)
            .arg(1)
            .arg(&queue.name)
            .arg(&queue.group)
            .arg(&shared.consumer)
            .arg(millis(queue.visibility))
            .arg(cursor)
            .arg(max)
            .arg(millis(gone_after(queue.visibility)))
            .query_async(conn)
            .await?;
        let Value::Array(parts) = reply else {
            return Ok(Vec::new());
        };
        let mut parts = parts.into_iter();
        self.claim_cursor = parts
            .next()
            .and_then(|c| text(&c))
            .unwrap_or_else(|| "0-0".to_owned());
        let Some(Value::Array(claimed)) = parts.next() else {
            return Ok(Vec::new());
        };
        Ok(claimed
            .iter()
            .filter_map(|entry| {
                let Value::Array(entry) = entry else {
                    return None;
                };
                let id = text(entry.first()?)?;
                let fields = fields(entry.get(1)?);
                let count = match entry.get(2)? {
                    Value::Int(n) => u32::try_from(*n).unwrap_or(u32::MAX),
                    _ => 1,
                };
                Some((id, fields, count))
            })
            .collect())
    }

    fn delivery(&self, id: String, fields: &Fields, attempt: u32) -> Delivery<Job<T>, Settlement> {
        let raw = field(fields, JOB_FIELD).map(<[u8]>::to_vec);
        let job = match &raw {
            None => Err(Rejection::Unreadable {
                reason: format!("the stream entry has no `{JOB_FIELD}` field"),
            }),
            Some(raw) => crate::jobs::check_payload_size(raw).and_then(|()| {
                serde_json::from_slice::<Job<T>>(raw).map_err(|e| Rejection::Unreadable {
                    reason: e.to_string(),
                })
            }),
        };
        let job = job.map(|mut job| {
            job.set_attempt(attempt);
            if job.id().is_empty() {
                job.set_id(id.clone());
            }
            job
        });
        let job_id = Some(match &job {
            Ok(job) => job.id().to_owned(),
            Err(_) => id.clone(),
        });
        let claimed = job.as_ref().ok().and_then(Job::claimed_trace_id);
        let payload = raw.unwrap_or_default();
        let settle = Settlement {
            shared: Arc::clone(&self.shared),
            entry: id,
            payload: payload.clone(),
            job_id: job_id.clone(),
        };
        Delivery::new(job, payload, attempt, settle)
            .with_job_id(job_id)
            .with_claimed_trace_id(claimed)
    }
}

impl<T: DeserializeOwned + Send + 'static> Transport for Consumer<T> {
    type Job = Job<T>;
    type Settle = Settlement;
    type Error = RedisError;

    fn queue(&self) -> &str {
        &self.shared.queue.name
    }

    fn policy(&self) -> &Policy {
        &self.shared.queue.policy
    }

    /// Jobs to take over first (every quarter of the visibility timeout, at
    /// most every 2 s), then new jobs with `XREADGROUP … BLOCK` until the
    /// next such scan.
    async fn receive(&mut self, max: usize) -> RedisResult<Vec<Delivery<Job<T>, Settlement>>> {
        let now = Instant::now();
        if now >= self.next_claim {
            self.next_claim = now + self.claim_every();
            match self.claim(max).await {
                Ok(claimed) if !claimed.is_empty() => {
                    return Ok(claimed
                        .into_iter()
                        .map(|(id, fields, count)| self.delivery(id, &fields, count))
                        .collect());
                }
                Ok(_) => {}
                Err(e) => {
                    self.fetch = None;
                    return Err(e);
                }
            }
        }
        let wait = self
            .next_claim
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(10));
        let shared = Arc::clone(&self.shared);
        let conn = self.fetch_conn(wait).await?;
        let read = ::redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&shared.queue.group)
            .arg(&shared.consumer)
            .arg("COUNT")
            .arg(max)
            .arg("BLOCK")
            .arg(millis(wait))
            .arg("STREAMS")
            .arg(&shared.queue.name)
            .arg(">")
            .query_async::<Value>(conn)
            .await;
        let reply = match read {
            Ok(reply) => reply,
            Err(e) => {
                self.fetch = None;
                return Err(e);
            }
        };
        // [[stream, [[id, [field, value, …]], …]]] or nil after the wait.
        let mut deliveries = Vec::new();
        if let Value::Array(streams) = &reply {
            for stream in streams {
                if let Value::Array(stream) = stream {
                    if let Some(list) = stream.get(1) {
                        for (id, fields) in entries(list) {
                            deliveries.push(self.delivery(id, &fields, 1));
                        }
                    }
                }
            }
        }
        Ok(deliveries)
    }
}

/// What a consumer shares with the settlements of its deliveries.
struct Shared {
    queue: Queue,
    consumer: String,
    client: Client,
    conn: Mutex<Option<MultiplexedConnection>>,
}

impl Shared {
    /// Runs `cmd` on the settling connection, re-opening it when it is lost
    /// (5 tries over about 1.5 s; every settlement is safe to repeat).
    async fn run<R: ::redis::FromRedisValue>(&self, cmd: &::redis::Cmd) -> RedisResult<R> {
        let mut tries = 0u32;
        loop {
            let conn = self.conn.lock().map(|c| c.clone()).unwrap_or(None);
            let conn = match conn {
                Some(conn) => Ok(conn),
                None => self.client.get_multiplexed_async_connection().await,
            };
            let result = match conn {
                Ok(mut conn) => {
                    let result = cmd.query_async(&mut conn).await;
                    if result.is_ok() {
                        if let Ok(mut slot) = self.conn.lock() {
                            slot.get_or_insert(conn);
                        }
                    }
                    result
                }
                Err(e) => Err(e),
            };
            match result {
                Err(e) if lost_connection(&e) && tries < 4 => {
                    if let Ok(mut slot) = self.conn.lock() {
                        *slot = None;
                    }
                    tokio::time::sleep(Duration::from_millis(100 << tries)).await;
                    tries += 1;
                }
                other => return other,
            }
        }
    }
}

/// How a delivery from a Redis [`Consumer`] is settled.
pub struct Settlement {
    shared: Arc<Shared>,
    entry: String,
    payload: Vec<u8>,
    job_id: Option<String>,
}

impl std::fmt::Debug for Settlement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settlement")
            .field("queue", &self.shared.queue.name)
            .field("entry", &self.entry)
            .finish_non_exhaustive()
    }
}

impl Settle for Settlement {
    type Error = RedisError;

    /// `XACK` and `XDEL`, in one script.
    async fn ack(&mut self) -> RedisResult<()> {
        let queue = &self.shared.queue;
        let mut cmd = ::redis::cmd("EVAL");
        cmd.arg(ACK)
            .arg(1)
            .arg(&queue.name)
            .arg(&queue.group)
            .arg(&self.entry);
        self.shared.run(&cmd).await
    }

    /// Leaves the job pending, with its idle time set so that it is taken
    /// over after `delay` (at most the visibility timeout).
    async fn retry(&mut self, delay: Duration) -> RedisResult<()> {
        let queue = &self.shared.queue;
        let idle = queue.visibility.saturating_sub(delay);
        let mut cmd = ::redis::cmd("XCLAIM");
        cmd.arg(&queue.name)
            .arg(&queue.group)
            .arg(&self.shared.consumer)
            .arg(0)
            .arg(&self.entry)
            .arg("IDLE")
            .arg(millis(idle))
            .arg("JUSTID");
        self.shared.run::<Value>(&cmd).await.map(drop)
    }

    /// The dead letter written and the job acknowledged in one script; if
    /// the write fails the job stays pending. Repeating it is harmless.
    async fn dead_letter(&mut self, letter: &DeadLetter) -> RedisResult<()> {
        let queue = &self.shared.queue;
        let mut cmd = ::redis::cmd("EVAL");
        cmd.arg(DEAD_LETTER)
            .arg(2)
            .arg(&queue.name)
            .arg(queue.dead_letter_stream())
            .arg(&queue.group)
            .arg(&self.entry)
            .arg(JOB_FIELD)
            .arg(&self.payload)
            .arg("queue")
            .arg(&letter.queue)
            .arg("kind")
            .arg(letter.kind.as_str())
            .arg("reason")
            .arg(&letter.reason)
            .arg("attempts")
            .arg(letter.attempts);
        for (name, value) in [
            ("tenant", letter.tenant.as_deref()),
            ("trace_id", letter.trace_id.as_deref()),
            ("job_id", self.job_id.as_deref()),
        ] {
            if let Some(value) = value {
                cmd.arg(name).arg(value);
            }
        }
        self.shared.run::<Value>(&cmd).await.map(drop)
    }

    fn keep_alive_every(&self) -> Option<Duration> {
        Some(self.shared.queue.visibility / 3)
    }

    /// Resets the job's idle time while this consumer still owns it.
    async fn keep_alive(&mut self) -> RedisResult<()> {
        let queue = &self.shared.queue;
        let mut cmd = ::redis::cmd("EVAL");
        cmd.arg(KEEP_ALIVE)
            .arg(1)
            .arg(&queue.name)
            .arg(&queue.group)
            .arg(&self.shared.consumer)
            .arg(&self.entry);
        self.shared.run::<Value>(&cmd).await.map(drop)
    }
}

/// XAUTOCLAIM, then each claimed entry's delivery count (which XAUTOCLAIM
/// does not return) from the pending entries list. When a scan starts over,
/// consumers gone for ARGV[6] ms with nothing pending are removed from the
/// group (killed workers; a live consumer that is removed is re-created by
/// its next read).
/// KEYS: stream. ARGV: group, consumer, min idle ms, cursor, count, gone ms.
const CLAIM: &str = r"
if ARGV[4] == '0-0' then
  for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
    local info = {}
    for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
    if info['pending'] == 0 and info['idle'] > tonumber(ARGV[6]) and info['name'] ~= ARGV[2] then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    end
  end
end
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local out = {}
for _, e in ipairs(r[2]) do
  if e and e[1] then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
    local n = 1
    if p[1] then n = p[1][4] end
    out[#out + 1] = {e[1], e[2], n}
  end
end
return {r[1], out}
";

/// KEYS: stream. ARGV: group, entry id.
const ACK: &str = r"
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
";

/// Writes the dead letter, then acknowledges and removes the job; a failed
/// write stops the script before the acknowledgement. A job no longer
/// pending was settled already (a repeated call): nothing is written.
/// KEYS: stream, dead-letter stream. ARGV: group, entry id, field/value pairs.
const DEAD_LETTER: &str = r"
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
";

/// Renews the lease (resets the idle time, not the delivery count) while
/// this consumer owns the entry.
/// KEYS: stream. ARGV: group, consumer, entry id.
const KEEP_ALIVE: &str = r"
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if p[1] and p[1][2] == ARGV[2] then
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
  return 1
end
return 0
";

/// Moves up to ARGV[2] dead letters from ARGV[1] on back into the queue,
/// each as a new entry with its original `job` bytes.
/// KEYS: stream, dead-letter stream. Returns {moved, scanned, last id}.
const REDRIVE: &str = r"
local entries = redis.call('XRANGE', KEYS[2], ARGV[1], '+', 'COUNT', ARGV[2])
local moved = 0
local last = ''
for _, e in ipairs(entries) do
  last = e[1]
  local f = e[2]
  for i = 1, #f, 2 do
    if f[i] == 'job' then
      redis.call('XADD', KEYS[1], '*', 'job', f[i + 1])
      redis.call('XDEL', KEYS[2], e[1])
      moved = moved + 1
      break
    end
  end
end
return {moved, #entries, last}
";

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// How long a consumer with nothing pending may stay silent before it is
/// removed from the group: ten visibility timeouts, at least 10 minutes.
fn gone_after(visibility: Duration) -> Duration {
    (visibility * 10).max(Duration::from_secs(600))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn lost_connection(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Some(bytes.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        Value::Int(n) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}

/// A stream entry's `[field, value, …]`.
fn fields(value: &Value) -> Fields {
    let Value::Array(flat) = value else {
        return Vec::new();
    };
    flat.chunks(2)
        .filter_map(|pair| Some((bytes(pair.first()?)?, bytes(pair.get(1)?)?)))
        .collect()
}

fn field<'a>(fields: &'a Fields, name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(f, _)| f == name.as_bytes())
        .map(|(_, v)| v.as_slice())
}

/// The `[[id, [field, value, …]], …]` of a stream reply.
fn entries(value: &Value) -> Vec<(String, Fields)> {
    let Value::Array(list) = value else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|entry| {
            let Value::Array(entry) = entry else {
                return None;
            };
            Some((text(entry.first()?)?, fields(entry.get(1)?)))
        })
        .collect()
}

fn dead_job(queue: &str, entry_id: String, fields: &Fields) -> DeadJob {
    let get = |name: &str| field(fields, name).map(|v| String::from_utf8_lossy(v).into_owned());
    let job = field(fields, JOB_FIELD).unwrap_or_default().to_vec();
    let kind = get("kind")
        .and_then(|k| RejectionKind::parse(&k))
        .unwrap_or(RejectionKind::Unreadable);
    DeadJob {
        entry_id,
        letter: DeadLetter {
            queue: get("queue").unwrap_or_else(|| queue.to_owned()),
            kind,
            reason: get("reason").unwrap_or_default(),
            tenant: get("tenant"),
            trace_id: get("trace_id"),
            attempts: get("attempts").and_then(|a| a.parse().ok()).unwrap_or(0),
            payload: String::from_utf8_lossy(&job).into_owned(),
        },
        job_id: get("job_id"),
        job,
    }
}

fn json_error(e: serde_json::Error) -> RedisError {
    RedisError::from(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
