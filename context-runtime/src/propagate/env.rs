//! Crossing into child processes: the context travels in the environment
//! variables OpenTelemetry uses for that, `TRACEPARENT`, `TRACESTATE` and
//! `BAGGAGE`.
//!
//! ```no_run
//! use std::process::Command;
//! use context_runtime::process::CommandExt as _;
//!
//! # fn main() -> std::io::Result<()> {
//! let cx = context_runtime::Context::root();
//! let status = Command::new("worker").inject(&cx).status()?;
//! // In the child: `let cx = context_runtime::process::from_env();`
//! # let _ = status;
//! # Ok(())
//! # }
//! ```

use std::ffi::OsStr;

use crate::model::context::Context;
use crate::model::trace::SpanId;
use crate::propagate::fields;
use crate::propagate::propagator::{Propagator, Wire};

/// The environment variable with the W3C `traceparent`.
pub const TRACEPARENT: &str = fields::ENV_TRACEPARENT;
/// The environment variable with the W3C `tracestate`.
pub const TRACESTATE: &str = fields::ENV_TRACESTATE;
/// The environment variable with the W3C `baggage`.
pub const BAGGAGE: &str = fields::ENV_BAGGAGE;

/// Starts child processes inside a context.
pub trait CommandExt {
    /// Sets `TRACEPARENT` (same trace, a new parent id for this launch),
    /// `TRACESTATE` and `BAGGAGE` (with the tenant and user) for the child,
    /// and removes stale ones inherited from this process.
    fn inject(&mut self, cx: &Context) -> &mut Self;

    /// Like [`inject`](CommandExt::inject) with an explicit
    /// [`Propagator`] (baggage keys, which identity fields leave).
    fn inject_using(&mut self, cx: &Context, propagator: &Propagator) -> &mut Self;

    /// Like [`inject`](CommandExt::inject) with the current context; outside
    /// any scope, removes stale fields inherited from this process.
    fn inject_current(&mut self) -> &mut Self;
}

fn env_fields(cx: &Context, propagator: &Propagator) -> [(&'static str, Option<String>); 3] {
    let (parent, state, baggage) = propagator.outgoing_fields(cx, SpanId::random());
    [
        (TRACEPARENT, Some(parent)),
        (TRACESTATE, state),
        (BAGGAGE, baggage),
    ]
}

macro_rules! command_ext {
    ($command:ty) => {
        impl CommandExt for $command {
            fn inject(&mut self, cx: &Context) -> &mut Self {
                self.inject_using(cx, process_propagator())
            }

            fn inject_current(&mut self) -> &mut Self {
                match crate::scope::store::current() {
                    Some(cx) => self.inject(&cx),
                    None => {
                        for name in [TRACEPARENT, TRACESTATE, BAGGAGE] {
                            self.env_remove(name);
                        }
                        self
                    }
                }
            }

            fn inject_using(&mut self, cx: &Context, propagator: &Propagator) -> &mut Self {
                for (name, value) in env_fields(cx, propagator) {
                    match value {
                        Some(value) => self.env(name, value),
                        None => self.env_remove(name),
                    };
                }
                self
            }
        }
    };
}

command_ext!(std::process::Command);
command_ext!(tokio::process::Command);

/// The propagator for the environment: the default keys, and since the
/// parent process set the environment, the identity in `BAGGAGE` is trusted.
fn process_propagator() -> &'static Propagator {
    Propagator::for_wire(Wire::Process)
}

/// The context the parent process handed over in `TRACEPARENT`, `TRACESTATE`
/// and `BAGGAGE`: its trace, a new one when absent or invalid, and the tenant
/// and user from `BAGGAGE` (trusted: the parent chose this environment).
/// Its [`source`](Context::source) is `"process"`.
pub fn from_env() -> Context {
    from_env_using(process_propagator())
}

/// Like [`from_env`] with an explicit [`Propagator`].
pub fn from_env_using(propagator: &Propagator) -> Context {
    let var = |name: &str| std::env::var_os(name);
    let (parent, state, baggage) = (var(TRACEPARENT), var(TRACESTATE), var(BAGGAGE));
    fn text(v: &Option<std::ffi::OsString>) -> Option<Option<&str>> {
        v.as_deref().map(OsStr::to_str)
    }
    propagator.extract_fields(text(&parent), text(&state), text(&baggage), |_| None)
}
