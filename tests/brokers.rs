//! What the broker tests and their worker processes share: the job data,
//! the report a worker prints for each job it completed, and a harness that
//! starts worker processes and checks their reports against what the
//! producer stamped.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// The line a worker prints once it consumes.
pub const READY: &str = "READY";

/// The tenants the tests spread their jobs over.
pub const TENANTS: [&str; 3] = ["acme", "globex", "initech"];

/// A test job's data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestJob {
    /// The producer's id for the job.
    pub id: u64,
    /// Fail on the first attempt, succeed on the retry.
    #[serde(default)]
    pub fail_once: bool,
}

/// What a worker prints (one JSON line) for each job it completed, read
/// inside the handler's scope.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The job's id.
    pub id: u64,
    /// `context_runtime::trace_id()` inside the handler.
    pub trace_id: String,
    /// `context_runtime::tenant()` inside the handler.
    pub tenant: String,
    /// The delivery attempt that completed.
    pub attempt: u32,
    /// The worker process.
    pub worker: String,
}

/// A name no other test run uses.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// What the producer stamped on a job: its trace id and tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// The trace id the producer's context had.
    pub trace_id: String,
    /// The tenant.
    pub tenant: String,
    /// Whether the job fails once.
    pub fail_once: bool,
}

/// Running worker processes and the reports they print.
#[derive(Debug)]
pub struct Workers {
    children: Vec<Child>,
    reports: mpsc::UnboundedReceiver<Option<Report>>,
    ready: usize,
    /// Every report so far, by job id (a job reported twice appears twice).
    pub seen: BTreeMap<u64, Vec<Report>>,
}

impl Workers {
    /// Starts `count` worker processes (`exe`) with `args` and
    /// `--worker <n>`; each reports completed jobs on stdout.
    ///
    /// # Panics
    ///
    /// When a worker cannot be started.
    pub fn spawn(exe: &str, count: usize, args: &[String]) -> Workers {
        let (tx, reports) = mpsc::unbounded_channel();
        let mut children = Vec::new();
        for n in 0..count {
            let mut child = Command::new(exe)
                .args(args)
                .arg("--worker")
                .arg(format!("w{n}"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .expect("start a worker process");
            let stdout = child.stdout.take().expect("piped stdout");
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line == READY {
                        let _ = tx.send(None);
                        continue;
                    }
                    match serde_json::from_str::<Report>(&line) {
                        Ok(report) => {
                            let _ = tx.send(Some(report));
                        }
                        Err(_) => eprintln!("worker: {line}"),
                    }
                }
            });
            children.push(child);
        }
        Workers {
            children,
            reports,
            ready: 0,
            seen: BTreeMap::new(),
        }
    }

    /// Waits until every worker has printed [`READY`] (connected and
    /// consuming), so that all of them take part; at most `limit`.
    ///
    /// # Panics
    ///
    /// When a worker is not ready in time.
    pub async fn wait_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.ready < self.children.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.reports.recv()).await {
                Ok(Some(report)) => self.record(report),
                Ok(None) | Err(_) => panic!(
                    "{} of {} workers ready after {limit:?}",
                    self.ready,
                    self.children.len()
                ),
            }
        }
    }

    fn record(&mut self, report: Option<Report>) {
        match report {
            Some(report) => self.seen.entry(report.id).or_default().push(report),
            None => self.ready += 1,
        }
    }

    /// Collects reports until `done()` says so or `limit` passes; returns
    /// whether `done()` did.
    pub async fn collect_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&BTreeMap<u64, Vec<Report>>) -> bool,
    ) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if done(&self.seen) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match tokio::time::timeout(left.min(Duration::from_millis(250)), self.reports.recv())
                .await
            {
                Ok(Some(report)) => self.record(report),
                Ok(None) => return done(&self.seen),
                Err(_) => {}
            }
        }
    }

    /// Closes the workers' stdin (they finish what they hold and exit),
    /// waits for them (killing any that take longer than 20 s), and drains
    /// their last reports.
    pub async fn stop(&mut self) {
        for child in &mut self.children {
            drop(child.stdin.take());
        }
        for child in &mut self.children {
            match tokio::time::timeout(Duration::from_secs(20), child.wait()).await {
                Ok(status) => {
                    let status = status.expect("wait for a worker");
                    assert!(status.success(), "a worker exited with {status}");
                }
                Err(_) => {
                    let _ = child.kill().await;
                    panic!("a worker did not stop within 20 s of its stdin closing");
                }
            }
        }
        while let Ok(Some(report)) =
            tokio::time::timeout(Duration::from_millis(200), self.reports.recv()).await
        {
            self.record(report);
        }
    }
}

/// What the reports say against what was stamped.
#[derive(Debug, Default)]
pub struct Tally {
    /// Jobs completed (distinct ids).
    pub completed: usize,
    /// Jobs completed more than once.
    pub duplicates: usize,
    /// Reports whose trace id or tenant differ from the stamp.
    pub mismatches: usize,
    /// Completed jobs per tenant.
    pub per_tenant: BTreeMap<String, usize>,
    /// Worker processes that completed at least one job.
    pub workers: usize,
    /// Fail-once jobs completed on their second attempt with their stamp.
    pub retried_ok: usize,
    /// Reports for ids that were never stamped as good jobs.
    pub unexpected: usize,
}

/// Compares the reports with the stamps.
pub fn tally(stamps: &HashMap<u64, Stamp>, seen: &BTreeMap<u64, Vec<Report>>) -> Tally {
    let mut tally = Tally::default();
    let mut workers = std::collections::BTreeSet::new();
    for (id, reports) in seen {
        let Some(stamp) = stamps.get(id) else {
            tally.unexpected += reports.len();
            continue;
        };
        tally.completed += 1;
        if reports.len() > 1 {
            tally.duplicates += 1;
        }
        for report in reports {
            workers.insert(report.worker.clone());
            if report.trace_id != stamp.trace_id || report.tenant != stamp.tenant {
                tally.mismatches += 1;
            }
        }
        let report = &reports[0];
        *tally.per_tenant.entry(report.tenant.clone()).or_default() += 1;
        if stamp.fail_once && report.attempt == 2 && report.trace_id == stamp.trace_id {
            tally.retried_ok += 1;
        }
    }
    tally.workers = workers.len();
    tally
}
