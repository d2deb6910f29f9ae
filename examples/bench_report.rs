//! The comparison report: runs the criterion benchmarks of `context-runtime`
//! with short times, then prints one table of this library against its
//! baselines (a bare `tokio::task_local!`, OpenTelemetry, plain `serde_json`,
//! a hand-scoped handler), with the ratio and the target of each row.
//!
//! ```text
//! cargo run --example bench-report                       # run, then print the table
//! cargo run --example bench-report -- --measurement-time 5 read/
//! cargo run --example bench-report -- --table-only       # the table of the last run
//! ```
//!
//! Arguments are passed to criterion (a filter, `--warm-up-time`,
//! `--measurement-time`); the defaults are 1 s of warm-up and 2 s of
//! measurement per benchmark. Times are criterion's median per iteration, and
//! every ratio compares two benchmarks of the same run: on a shared machine,
//! compare ratios, not times across runs.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::SystemTime;

use serde_json::Value;

/// The criterion benchmarks of `context-runtime` that the report runs.
const BENCHES: [&str; 4] = ["scope", "w3c", "carrier", "handler"];

/// The name under which each group benchmarks this library.
const OURS: &str = "context-runtime";

/// What a row must show, as the ratio of this library's time to the baseline's.
#[derive(Clone, Copy)]
enum Target {
    /// At most this many times the baseline's time.
    AtMost(f64),
    /// At least this many times faster than the baseline.
    FasterBy(f64),
}

impl Target {
    fn met(self, ratio: f64) -> bool {
        match self {
            Target::AtMost(max) => ratio <= max,
            Target::FasterBy(times) => ratio * times <= 1.0,
        }
    }

    fn describe(self) -> String {
        match self {
            Target::AtMost(max) => format!("≤ {max}×"),
            Target::FasterBy(times) => format!("≥ {times}× faster"),
        }
    }
}

/// The targets, by group and baseline (issue 6). Rows without one are shown
/// for information.
fn target(group: &str, baseline: &str) -> Option<Target> {
    let target = match (group, baseline) {
        (g, "task_local") if g.starts_with("read/") => Target::AtMost(1.5),
        (g, "opentelemetry") if g.starts_with("read/") => Target::FasterBy(8.0),
        ("poll/scoped_future", "task_local") => Target::AtMost(1.2),
        ("spawn/with_propagation", "task_local") => Target::AtMost(1.1),
        ("traceparent/parse", "opentelemetry") => Target::FasterBy(10.0),
        ("traceparent/format", "opentelemetry") => Target::FasterBy(5.0),
        (g, "opentelemetry") if g.starts_with("baggage/parse/") => Target::FasterBy(4.0),
        ("carrier/round_trip", "serde_json") => Target::AtMost(1.1),
        ("handler/with_context_requires_tenant", "hand-scoped") => Target::AtMost(1.05),
        _ => return None,
    };
    Some(target)
}

/// One benchmark's result: its median time per iteration, in nanoseconds.
struct Measured {
    group: String,
    function: String,
    median_ns: f64,
}

fn main() -> ExitCode {
    let mut table_only = false;
    let mut criterion_args: Vec<OsString> = Vec::new();
    for arg in std::env::args_os().skip(1) {
        if arg == "--table-only" {
            table_only = true;
        } else {
            criterion_args.push(arg);
        }
    }
    match run(table_only, criterion_args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bench-report: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(table_only: bool, mut criterion_args: Vec<OsString>) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let criterion_dir = target_directory(&cargo)?.join("criterion");

    let since = if table_only {
        None
    } else {
        for (flag, default) in [("--warm-up-time", "1"), ("--measurement-time", "2")] {
            if !criterion_args.iter().any(|arg| arg == flag) {
                criterion_args.extend([flag.into(), default.into()]);
            }
        }
        let started = SystemTime::now();
        let mut bench = Command::new(&cargo);
        bench.args(["bench", "-p", "context-runtime"]);
        for name in BENCHES {
            bench.args(["--bench", name]);
        }
        bench.arg("--").args(&criterion_args);
        let status = bench
            .status()
            .map_err(|e| format!("cannot run `cargo bench`: {e}"))?;
        if !status.success() {
            return Err(format!("`cargo bench` failed ({status})"));
        }
        Some(started)
    };

    let mut measured = Vec::new();
    collect(&criterion_dir, since, &mut measured)?;
    if measured.is_empty() {
        return Err(format!(
            "no benchmark results under {}{}",
            criterion_dir.display(),
            if table_only {
                "; run without `--table-only` first"
            } else {
                ""
            }
        ));
    }
    print!("{}", table(&measured));
    Ok(())
}

/// Where cargo builds this workspace (it honours `CARGO_TARGET_DIR`).
fn target_directory(cargo: &OsString) -> Result<PathBuf, String> {
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .map_err(|e| format!("cannot run `cargo metadata`: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`cargo metadata` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let metadata: Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("`cargo metadata` printed no JSON: {e}"))?;
    metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| "`cargo metadata` names no target directory".to_owned())
}

/// Reads every `new/benchmark.json` and its `new/estimates.json` below `dir`,
/// keeping those written since `since` (all of them when `None`).
fn collect(dir: &Path, since: Option<SystemTime>, out: &mut Vec<Measured>) -> Result<(), String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|name| name == "new") {
            if let Some(result) = read_result(&path, since)? {
                out.push(result);
            }
        } else {
            collect(&path, since, out)?;
        }
    }
    Ok(())
}

fn read_result(dir: &Path, since: Option<SystemTime>) -> Result<Option<Measured>, String> {
    let estimates = dir.join("estimates.json");
    let Ok(modified) = std::fs::metadata(&estimates).and_then(|m| m.modified()) else {
        return Ok(None);
    };
    if since.is_some_and(|since| modified < since) {
        return Ok(None);
    }
    let read = |path: &Path| -> Result<Value, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    };
    let benchmark = read(&dir.join("benchmark.json"))?;
    let estimates = read(&estimates)?;
    let (Some(group), Some(function), Some(median_ns)) = (
        benchmark["group_id"].as_str(),
        benchmark["function_id"].as_str(),
        estimates["median"]["point_estimate"].as_f64(),
    ) else {
        return Ok(None);
    };
    Ok(Some(Measured {
        group: group.to_owned(),
        function: function.to_owned(),
        median_ns,
    }))
}

/// The table, in Markdown, followed by the count of targets met.
fn table(measured: &[Measured]) -> String {
    let mut groups: BTreeMap<&str, BTreeMap<&str, f64>> = BTreeMap::new();
    for m in measured {
        groups
            .entry(&m.group)
            .or_default()
            .insert(&m.function, m.median_ns);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n| benchmark | context-runtime | baseline | ratio | target | |"
    );
    let _ = writeln!(out, "| --- | ---: | --- | ---: | --- | --- |");
    let (mut met, mut targets) = (0, 0);
    // Benchmark files in the order they run, then groups in name order.
    let order = |group: &str| {
        [
            "read/",
            "poll/",
            "spawn/",
            "traceparent/",
            "baggage/",
            "carrier/",
            "handler/",
        ]
        .iter()
        .position(|prefix| group.starts_with(prefix))
        .unwrap_or(usize::MAX)
    };
    let mut names: Vec<&str> = groups.keys().copied().collect();
    names.sort_by_key(|group| (order(group), *group));
    for group in names {
        let functions = &groups[group];
        let Some(&ours) = functions.get(OURS) else {
            continue;
        };
        for (&baseline, &theirs) in functions.iter().filter(|(name, _)| **name != OURS) {
            let ratio = ours / theirs;
            let (goal, verdict) = match target(group, baseline) {
                Some(goal) => {
                    targets += 1;
                    let ok = goal.met(ratio);
                    met += usize::from(ok);
                    (goal.describe(), if ok { "met" } else { "MISSED" })
                }
                None => ("-".to_owned(), ""),
            };
            let _ = writeln!(
                out,
                "| {group} | {} | {baseline} {} | {} | {goal} | {verdict} |",
                duration(ours),
                duration(theirs),
                describe_ratio(ratio),
            );
        }
    }
    let _ = writeln!(
        out,
        "\n{met} of {targets} targets met (ratio = this library's median time / the baseline's; \
         below 1 is faster)."
    );
    out
}

fn describe_ratio(ratio: f64) -> String {
    if ratio < 1.0 {
        format!("{ratio:.3} ({:.1}× faster)", 1.0 / ratio)
    } else {
        format!("{ratio:.3}")
    }
}

fn duration(ns: f64) -> String {
    if ns < 10.0 {
        format!("{ns:.2} ns")
    } else if ns < 1_000.0 {
        format!("{ns:.1} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1_000.0)
    } else {
        format!("{:.2} ms", ns / 1_000_000.0)
    }
}
