//! W3C Trace Context and W3C Baggage.
//!
//! [`Baggage`] is the application's key/value baggage that a [`Context`](crate::Context)
//! carries and that crosses every boundary with it.

mod baggage;

pub use baggage::{Baggage, BaggageMember, BaggageProperty};
