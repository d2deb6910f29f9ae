//! The reusable pieces of the chaos tests (any broker): a TCP proxy whose
//! connections a test can cut, worker processes it can kill with SIGKILL
//! mid-job and restart, and a ledger of what became of every job.
//!
//! A worker process prints [`READY`](crate::brokers::READY) once it
//! consumes, `STARTED <id>` ([`STARTED`]) when a handler starts, and a JSON
//! [`Report`] when a handler completed (before the job is acknowledged, so
//! a kill between the two shows as a duplicate, never as a loss).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};

use crate::brokers::{Report, READY};

/// What a worker prints when a handler starts, followed by the job's id.
pub const STARTED: &str = "STARTED ";

/// A chaos job's data: a [`TestJob`](crate::brokers::TestJob) (same JSON)
/// with planned panics and some work.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChaosJob {
    /// The producer's id for the job.
    pub id: u64,
    /// Fail on the first attempt, succeed on the retry.
    #[serde(default)]
    pub fail_once: bool,
    /// Panic on the first attempt, succeed on the retry.
    #[serde(default)]
    pub panic_once: bool,
    /// Panic on every attempt: the job must end dead-lettered.
    #[serde(default)]
    pub panic_always: bool,
    /// How long the handler works, in milliseconds.
    #[serde(default)]
    pub work_ms: u64,
}

// ------------------------------------------------------------ TCP proxy

/// A TCP proxy on 127.0.0.1 to one upstream server: every connection made
/// to [`addr`](TcpProxy::addr) is relayed to the upstream until
/// [`cut`](TcpProxy::cut) closes it (both sides). New connections are
/// accepted after a cut, as after a network blip. The upstream server is
/// never touched.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    live: Arc<Mutex<Vec<AbortHandle>>>,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    /// Starts a proxy to `upstream` on a free loopback port.
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<TcpProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let live: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let registry = Arc::clone(&live);
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let relay = tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                let mut live = registry.lock().expect("not poisoned");
                live.retain(|h| !h.is_finished());
                live.push(relay.abort_handle());
            }
        });
        Ok(TcpProxy { addr, live, accept })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every connection relayed now; returns how many.
    pub fn cut(&self) -> usize {
        let mut live = self.live.lock().expect("not poisoned");
        let open = live.iter().filter(|h| !h.is_finished()).count();
        for handle in live.drain(..) {
            handle.abort();
        }
        open
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

// ------------------------------------------------------------ worker processes

/// A line a worker printed.
#[derive(Debug, Clone)]
pub enum Line {
    /// It consumes.
    Ready,
    /// A handler started job `id`.
    Started(u64),
    /// A handler completed a job.
    Report(Report),
}

struct Slot {
    child: Option<Child>,
    generation: u32,
    args: Vec<String>,
    last_started: Option<Instant>,
}

/// Worker processes in numbered slots, each restartable: the test kills
/// them by pid with SIGKILL and starts them again.
pub struct Fleet {
    exe: String,
    common: Vec<String>,
    slots: Vec<Slot>,
    tx: mpsc::UnboundedSender<(usize, Line)>,
    rx: mpsc::UnboundedReceiver<(usize, Line)>,
    /// How many workers printed READY, over all starts.
    pub ready: usize,
    /// Kills so far, with the pid and the jobs started but not completed
    /// by that process at the time.
    pub kills: Vec<(u32, usize)>,
    /// Worker processes started again after they exited on their own.
    pub revived: usize,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("slots", &self.slots.len())
            .field("ready", &self.ready)
            .field("kills", &self.kills)
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// A fleet of `exe` processes, each started with `common` arguments.
    pub fn new(exe: &str, common: &[String]) -> Fleet {
        let (tx, rx) = mpsc::unbounded_channel();
        Fleet {
            exe: exe.to_owned(),
            common: common.to_vec(),
            slots: Vec::new(),
            tx,
            rx,
            ready: 0,
            kills: Vec::new(),
            revived: 0,
        }
    }

    /// Adds a slot whose process gets `args` besides the common ones, and
    /// starts it; returns the slot.
    pub fn add(&mut self, args: &[String]) -> usize {
        self.slots.push(Slot {
            child: None,
            generation: 0,
            args: args.to_vec(),
            last_started: None,
        });
        let slot = self.slots.len() - 1;
        self.start(slot);
        slot
    }

    /// Starts slot `slot`'s process (again), as worker `w<slot>.<generation>`.
    ///
    /// # Panics
    ///
    /// When the process cannot be started.
    pub fn start(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        s.generation += 1;
        let mut child = Command::new(&self.exe)
            .args(&self.common)
            .args(&s.args)
            .arg("--worker")
            .arg(format!("w{slot}.{}", s.generation))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // The workers' own logs, when asked for (`CHAOS_WORKER_LOGS=1`).
            .stderr(if std::env::var_os("CHAOS_WORKER_LOGS").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true)
            .spawn()
            .expect("start a worker process");
        let stdout = child.stdout.take().expect("piped stdout");
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let parsed = if line == READY {
                    Some(Line::Ready)
                } else if let Some(id) = line.strip_prefix(STARTED) {
                    id.parse().ok().map(Line::Started)
                } else {
                    serde_json::from_str::<Report>(&line).ok().map(Line::Report)
                };
                if let Some(parsed) = parsed {
                    let _ = tx.send((slot, parsed));
                }
            }
        });
        s.child = Some(child);
        s.last_started = None;
    }

    /// The slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are no slots.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Moves what the workers printed into `ledger`, for at most `wait`
    /// (returns earlier when `wait` is zero and nothing is queued).
    pub async fn pump(&mut self, ledger: &mut Ledger, wait: Duration) {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = if left.is_zero() {
                self.rx.try_recv().ok()
            } else {
                tokio::time::timeout(left, self.rx.recv())
                    .await
                    .ok()
                    .flatten()
            };
            let Some((slot, line)) = next else {
                return;
            };
            match line {
                Line::Ready => self.ready += 1,
                Line::Started(id) => {
                    self.slots[slot].last_started = Some(Instant::now());
                    ledger.started(slot, id);
                }
                Line::Report(report) => ledger.completed(slot, report),
            }
        }
    }

    /// Waits (at most `limit`) until `count` workers in all have printed
    /// READY since the fleet started; returns whether they did.
    pub async fn wait_ready(&mut self, ledger: &mut Ledger, count: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.ready < count {
            if Instant::now() >= deadline {
                return false;
            }
            self.pump(ledger, Duration::from_millis(20)).await;
        }
        true
    }

    /// Waits (at most `limit`) until slot `slot`'s process is mid-job (a
    /// handler started there within the last 15 ms), then kills it with
    /// SIGKILL by its pid and waits for it to die. Returns its pid.
    ///
    /// # Panics
    ///
    /// When the slot has no process.
    pub async fn kill_mid_job(&mut self, slot: usize, ledger: &mut Ledger, limit: Duration) -> u32 {
        let deadline = Instant::now() + limit;
        loop {
            self.pump(ledger, Duration::ZERO).await;
            let recent = self.slots[slot]
                .last_started
                .is_some_and(|t| t.elapsed() < Duration::from_millis(15));
            if recent || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut child = self.slots[slot].child.take().expect("a running worker");
        let pid = child.id().expect("a running worker has a pid");
        // SIGKILL (tokio's kill is SIGKILL on Unix), to this pid only.
        child.start_kill().expect("kill the worker");
        let _ = child.wait().await;
        let in_flight = ledger.in_flight(slot);
        ledger.forget_in_flight(slot);
        self.kills.push((pid, in_flight));
        pid
    }

    /// Starts again every worker process that exited on its own (as a
    /// supervisor would); returns how many.
    pub fn revive(&mut self) -> usize {
        let exited: Vec<usize> = self
            .slots
            .iter_mut()
            .enumerate()
            .filter_map(|(n, slot)| {
                let child = slot.child.as_mut()?;
                matches!(child.try_wait(), Ok(Some(_))).then_some(n)
            })
            .collect();
        for &slot in &exited {
            self.start(slot);
        }
        self.revived += exited.len();
        exited.len()
    }

    /// Closes every worker's stdin (a graceful shutdown), waits for them
    /// (at most `limit` each, then SIGKILL), and drains their last lines.
    pub async fn stop(&mut self, ledger: &mut Ledger, limit: Duration) {
        for slot in &mut self.slots {
            if let Some(child) = &mut slot.child {
                drop(child.stdin.take());
            }
        }
        for slot in &mut self.slots {
            if let Some(mut child) = slot.child.take() {
                if tokio::time::timeout(limit, child.wait()).await.is_err() {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                }
            }
        }
        self.pump(ledger, Duration::from_millis(300)).await;
    }
}

// ------------------------------------------------------------ ledger

/// What a job is expected to end as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Completed, by a handler that saw this trace id and tenant.
    Completed {
        /// The producer's trace id.
        trace_id: String,
        /// The producer's tenant.
        tenant: String,
    },
    /// Dead-lettered with this kind (`"tenant_required"`, `"exhausted"`…)
    /// and a reason containing `reason`.
    DeadLettered {
        /// The dead letter's kind.
        kind: String,
        /// Text the reason must contain.
        reason: String,
    },
}

/// Every job the producer enqueued, and what became of it.
#[derive(Debug, Default)]
pub struct Ledger {
    expected: BTreeMap<u64, Expect>,
    completions: BTreeMap<u64, Vec<Report>>,
    dead: BTreeMap<u64, Vec<(String, String)>>,
    in_flight: HashMap<usize, BTreeSet<u64>>,
}

/// The ledger's verdict.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Jobs enqueued.
    pub jobs: usize,
    /// Jobs completed at least once.
    pub completed: usize,
    /// Jobs dead-lettered.
    pub dead_lettered: usize,
    /// Jobs neither completed nor dead-lettered.
    pub lost: usize,
    /// A few of the lost ids.
    pub lost_ids: Vec<u64>,
    /// Jobs that completed more than once (at-least-once redelivery).
    pub duplicates: usize,
    /// Completions beyond the first, over all jobs.
    pub extra_runs: usize,
    /// Completions whose handler saw another trace id or tenant.
    pub mismatches: usize,
    /// Jobs with more than one dead letter (a dead letter written, then the
    /// worker killed before the broker recorded it: at least once).
    pub dead_duplicates: usize,
    /// Jobs that ended otherwise than expected (completed instead of
    /// dead-lettered, wrong kind, a reason without the expected text).
    pub unexpected: Vec<String>,
}

impl Ledger {
    /// Records that job `id` was enqueued and should end as `expect`.
    pub fn expect(&mut self, id: u64, expect: Expect) {
        self.expected.insert(id, expect);
    }

    /// Records a handler start on slot `slot`.
    pub fn started(&mut self, slot: usize, id: u64) {
        self.in_flight.entry(slot).or_default().insert(id);
    }

    /// Records a completion reported by slot `slot`.
    pub fn completed(&mut self, slot: usize, report: Report) {
        if let Some(set) = self.in_flight.get_mut(&slot) {
            set.remove(&report.id);
        }
        self.completions.entry(report.id).or_default().push(report);
    }

    /// Jobs started on `slot` and not completed there.
    pub fn in_flight(&self, slot: usize) -> usize {
        self.in_flight.get(&slot).map_or(0, BTreeSet::len)
    }

    /// Forgets what `slot` had in flight (its process is gone).
    pub fn forget_in_flight(&mut self, slot: usize) {
        self.in_flight.remove(&slot);
    }

    /// Records the dead letters found, as `(job id, kind, reason)`.
    pub fn dead_letters(&mut self, letters: impl IntoIterator<Item = (u64, String, String)>) {
        self.dead.clear();
        for (id, kind, reason) in letters {
            self.dead.entry(id).or_default().push((kind, reason));
        }
    }

    /// Whether every job ended (completed or dead-lettered).
    pub fn settled(&self) -> bool {
        self.expected
            .keys()
            .all(|id| self.completions.contains_key(id) || self.dead.contains_key(id))
    }

    /// How many jobs completed or were dead-lettered.
    pub fn ended(&self) -> usize {
        self.expected
            .keys()
            .filter(|id| self.completions.contains_key(id) || self.dead.contains_key(id))
            .count()
    }

    /// The verdict.
    pub fn verdict(&self) -> Verdict {
        let mut v = Verdict {
            jobs: self.expected.len(),
            ..Verdict::default()
        };
        for (id, expect) in &self.expected {
            let runs = self.completions.get(id).map_or(&[][..], Vec::as_slice);
            let dead = self.dead.get(id).map_or(&[][..], Vec::as_slice);
            if !runs.is_empty() {
                v.completed += 1;
            }
            if !dead.is_empty() {
                v.dead_lettered += 1;
            }
            if runs.is_empty() && dead.is_empty() {
                v.lost += 1;
                if v.lost_ids.len() < 10 {
                    v.lost_ids.push(*id);
                }
            }
            if runs.len() > 1 {
                v.duplicates += 1;
                v.extra_runs += runs.len() - 1;
            }
            if dead.len() > 1 {
                v.dead_duplicates += 1;
            }
            match expect {
                Expect::Completed { trace_id, tenant } => {
                    v.mismatches += runs
                        .iter()
                        .filter(|r| &r.trace_id != trace_id || &r.tenant != tenant)
                        .count();
                    // A good job may be dead-lettered only when its workers
                    // kept dying under it (each kill counts as an attempt).
                    let crash_looped = dead.iter().all(|(_, r)| r.contains("stopped mid-job"));
                    if runs.is_empty() && !dead.is_empty() && !crash_looped {
                        v.unexpected
                            .push(format!("good job {id} dead-lettered: {dead:?}"));
                    }
                }
                Expect::DeadLettered { kind, reason } => {
                    if !runs.is_empty() {
                        v.unexpected.push(format!("poisoned job {id} completed"));
                    }
                    // The expected reason; or, for an exhausted job, that
                    // its worker stopped mid-job: the result of its last
                    // attempt was lost with the worker (killed, or its
                    // connection cut, before the dead letter was stored),
                    // and the delivery past the last attempt says so.
                    for (k, r) in dead {
                        let expected = k == kind && r.contains(reason.as_str());
                        let crash_looped =
                            k == kind && kind == "exhausted" && r.contains("stopped mid-job");
                        if !expected && !crash_looped {
                            v.unexpected.push(format!(
                                "job {id}: dead letter {k} ({r}), expected {kind} with {reason:?}"
                            ));
                        }
                    }
                }
            }
        }
        v
    }
}
