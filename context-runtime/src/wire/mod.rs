//! Wire formats without I/O: the JSON [`Carrier`](carrier::Carrier) a
//! context travels in through a queue, and the trace-id safety net for
//! carriers that arrive without a valid trace id.
//!
//! Imports only [`model`](crate::model).

pub(crate) mod carrier;
