//! Wire formats without I/O: the JSON [`Carrier`](carrier::Carrier) a
//! context travels in through a queue, the trace-id safety net for
//! carriers that arrive without a valid trace id, the signed identity
//! ([`signature`]) and the input [`limits`].
//!
//! Imports only [`model`](crate::model).

pub(crate) mod carrier;
pub mod limits;
pub(crate) mod signature;
