//! Behaviour tests for `context-runtime` live in `tests/`; this library holds
//! what they share.

pub mod brokers;
#[path = "src/chaos.rs"]
pub mod chaos;
#[path = "src/pg_dead_letters.rs"]
pub mod pg_dead_letters;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Whether the server `name` at `addr` (a loopback `ip:port`) accepts
/// connections.
///
/// When it does not, a test says so loudly and returns early (a skip), unless
/// the environment sets `CONTEXT_REQUIRE_SERVICES=1` (as `.ci/run` does):
/// then the missing server fails the test.
///
/// ```no_run
/// if !context_tests::service_available("Redis", "127.0.0.1:6379") {
///     return;
/// }
/// ```
///
/// # Panics
///
/// When the server is unreachable and `CONTEXT_REQUIRE_SERVICES=1`, or when
/// `addr` is not a socket address.
pub fn service_available(name: &str, addr: &str) -> bool {
    let socket: SocketAddr = addr
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {addr:?} is not a socket address: {e}"));
    assert!(
        socket.ip().is_loopback(),
        "{name}: tests only talk to loopback, not {addr}"
    );
    match TcpStream::connect_timeout(&socket, Duration::from_secs(2)) {
        Ok(_) => true,
        Err(e) => {
            let required = std::env::var("CONTEXT_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "{name} at {addr} is unreachable ({e}) and CONTEXT_REQUIRE_SERVICES=1"
            );
            eprintln!(
                "\n!!! SKIPPED: {name} at {addr} is unreachable ({e}); \
                 set CONTEXT_REQUIRE_SERVICES=1 to make this a failure !!!\n"
            );
            false
        }
    }
}
