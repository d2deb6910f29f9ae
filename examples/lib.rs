//! Runnable examples of `context-runtime`: see `jobs.rs`.
