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

use crate::model::context::Context;
use crate::model::trace::SpanId;
use crate::propagate::fields;
use crate::propagate::propagator::{Propagator, Trust, Wire};
use crate::wire::carrier::CarrierError;
use crate::wire::limits::MAX_FIELD_BYTES;

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
/// parent process set the environment, the identity in `BAGGAGE` is trusted
/// unsigned (with a warning, once per process, when one arrives).
fn process_propagator() -> &'static Propagator {
    Propagator::for_wire(Wire::Process)
}

/// The context the parent process handed over in `TRACEPARENT`, `TRACESTATE`
/// and `BAGGAGE`: its trace, a new one when absent or invalid, and the tenant
/// and user from `BAGGAGE` (trusted: the parent chose this environment).
/// Its [`source`](Context::source) is `"process"`.
///
/// A parent that signs (`inject_using` with a
/// [`Propagator::keyring`]) is read with [`try_from_env_using`] and the
/// same keyring.
pub fn from_env() -> Context {
    let cx = from_env_using(process_propagator());
    if cx.tenant().is_some() || cx.user().is_some() {
        crate::propagate::propagator::warn_unsigned_once("process");
    }
    cx
}

/// Like [`from_env`] with an explicit [`Propagator`]. A variable longer than
/// [`MAX_FIELD_BYTES`](crate::limits::MAX_FIELD_BYTES) is ignored; an
/// identity that is refused is logged and left out.
pub fn from_env_using(propagator: &Propagator) -> Context {
    let (parent, state, baggage) = vars();
    fn text(v: &Option<std::ffi::OsString>) -> Option<Option<&str>> {
        let v = v.as_deref().filter(|v| v.len() <= MAX_FIELD_BYTES)?;
        Some(v.to_str())
    }
    propagator.extract_fields(text(&parent), text(&state), text(&baggage), |_| None)
}

/// Like [`from_env_using`], refusing what the propagator does not trust.
///
/// ```
/// use context_runtime::{process, Context, Keyring, Propagator, TenantId};
///
/// let keyring = Keyring::new("k1", &[3u8; 32])?;
/// let signed = Propagator::new().keyring(keyring);
/// // In the child of a parent that did `inject_using(&cx, &signed)`:
/// let cx = process::try_from_env_using(&signed)?;
/// # let _ = cx;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// [`CarrierError::TooLarge`] for a variable longer than
/// [`MAX_FIELD_BYTES`](crate::limits::MAX_FIELD_BYTES),
/// [`CarrierError::Malformed`] for one that is not Unicode, and the
/// identity errors of [`Propagator::try_extract_values`].
pub fn try_from_env_using(propagator: &Propagator) -> Result<Context, CarrierError> {
    read_env(propagator).inspect_err(|error| {
        // One line, with the trace id the parent named (or a fresh one).
        let parent = std::env::var(TRACEPARENT).ok();
        let cx = propagator
            .clone()
            .trust(Trust::Nothing)
            .try_extract_values(parent.as_deref().filter(|p| p.len() <= 64), None, None)
            .unwrap_or_else(|_| Context::root());
        crate::propagate::propagator::log_refused(&cx, "process", error);
    })
}

fn read_env(propagator: &Propagator) -> Result<Context, CarrierError> {
    let (parent, state, baggage) = vars();
    let mut texts = [None, None, None];
    for ((name, value), slot) in [
        (TRACEPARENT, &parent),
        (TRACESTATE, &state),
        (BAGGAGE, &baggage),
    ]
    .into_iter()
    .zip(&mut texts)
    {
        let Some(value) = value else { continue };
        if value.len() > MAX_FIELD_BYTES {
            return Err(CarrierError::TooLarge {
                what: name,
                limit: MAX_FIELD_BYTES,
            });
        }
        *slot = Some(value.to_str().ok_or_else(|| CarrierError::Malformed {
            reason: format!("`{name}` is not Unicode"),
        })?);
    }
    let [parent, state, baggage] = texts;
    let cx = propagator.try_extract_values(parent, state, baggage)?;
    if matches!(propagator.trust_policy(), Trust::Baggage)
        && (cx.tenant().is_some() || cx.user().is_some())
    {
        crate::propagate::propagator::warn_unsigned_once("process");
    }
    Ok(cx)
}

fn vars() -> (
    Option<std::ffi::OsString>,
    Option<std::ffi::OsString>,
    Option<std::ffi::OsString>,
) {
    let var = |name: &str| std::env::var_os(name);
    (var(TRACEPARENT), var(TRACESTATE), var(BAGGAGE))
}
