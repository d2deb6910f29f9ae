//! The values: a [`Context`](context::Context) and what it is made of (trace
//! and span ids, the tenant, the user, and the W3C trace state and baggage it
//! holds, with their text forms).
//!
//! The bottom layer: no thread-locals, no cargo features, no I/O, and no
//! import from any other layer.

pub(crate) mod context;
pub(crate) mod tenant;
pub(crate) mod trace;
pub(crate) mod user;
pub mod w3c;
