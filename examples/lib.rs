//! Runnable examples of `context-runtime`: see `jobs.rs`; `bench_report.rs`
//! prints the benchmark comparison table.
