//! The clippy preset shipped with the crate (`context-runtime/clippy-preset/
//! clippy.toml`): `cargo clippy` on a sample crate that makes each
//! disallowed call once (`tests/clippy-preset`) reports every one of them.
//!
//! The sample crate has its own workspace and a target directory of its own
//! under the build's (a nested cargo cannot share the directory the outer
//! one has locked); after the first run only the sample crate is checked.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the preset must report, as clippy names it, and how many times.
const EXPECTED: [(&str, usize); 16] = [
    ("disallowed method `tracing::Span::enter`", 1),
    ("disallowed method `tracing::Span::entered`", 1),
    ("disallowed method `opentelemetry::Context::attach`", 1),
    ("disallowed method `tracing::subscriber::set_default`", 1),
    ("disallowed method `tracing::dispatcher::set_default`", 1),
    // `tokio::spawn` and `tokio::task::spawn`: one function.
    ("disallowed method `tokio::task::spawn`", 2),
    ("disallowed method `tokio::task::spawn_blocking`", 1),
    ("disallowed method `tokio::task::spawn_local`", 1),
    ("disallowed method `tokio::runtime::Handle::spawn`", 1),
    (
        "disallowed method `tokio::runtime::Handle::spawn_blocking`",
        1,
    ),
    ("disallowed method `tokio::task::JoinSet::spawn`", 1),
    ("disallowed method `std::thread::spawn`", 1),
    ("disallowed type `tracing::span::Entered`", 1),
    ("disallowed type `tracing::span::EnteredSpan`", 1),
    ("disallowed type `opentelemetry::ContextGuard`", 1),
    // The replacement is named.
    ("`context_runtime::thread::spawn`", 1),
];

const TIME_LIMIT: Duration = Duration::from_secs(600);

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository root")
}

fn target_dir() -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repository().join("target"));
    base.join("clippy-preset")
}

#[test]
fn every_lint_of_the_preset_fires_on_the_sample_crate() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut child = Command::new(cargo)
        .args(["clippy", "--offline", "--quiet", "--message-format=short"])
        .arg("--manifest-path")
        .arg(repository().join("tests/clippy-preset/Cargo.toml"))
        .env("CARGO_TARGET_DIR", target_dir())
        .env(
            "CLIPPY_CONF_DIR",
            repository().join("context-runtime/clippy-preset"),
        )
        .env_remove("RUSTFLAGS")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cargo clippy starts");

    // Bounded: read stderr on a thread, wait with a deadline.
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).expect("clippy's output");
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for clippy") {
            break status;
        }
        if started.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            panic!("cargo clippy on the sample crate took more than {TIME_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = reader.join().expect("reader");
    assert!(status.success(), "cargo clippy failed:\n{output}");

    let sample: Vec<&str> = output
        .lines()
        .filter(|line| line.starts_with("src/main.rs:"))
        .collect();
    let mut missing = Vec::new();
    for (lint, times) in EXPECTED {
        let found = sample.iter().filter(|line| line.contains(lint)).count();
        if found != times {
            missing.push(format!("{lint}: {found} of {times}"));
        }
    }
    assert!(
        missing.is_empty(),
        "the preset did not report:\n{}\n\nclippy said:\n{output}",
        missing.join("\n")
    );
}
