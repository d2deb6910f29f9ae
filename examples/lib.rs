//! Runnable examples of `context-runtime`: see `jobs.rs` and `end_to_end.rs`; `bench_report.rs`
//! prints the benchmark comparison table.
