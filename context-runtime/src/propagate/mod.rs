//! Propagation: how a context crosses a wire and whom to trust on the way in.
//! The [`Propagator`](propagator::Propagator) (identity keys, trust,
//! outbound policy), the W3C field names every wire uses ([`fields`]),
//! [`ContextSource`](source::ContextSource) (what a context can be read
//! from), and a child process's environment ([`env`]).
//!
//! Imports [`model`](crate::model), [`scope`](crate::scope) and
//! [`wire`](crate::wire).

pub mod env;
pub(crate) mod fields;
pub(crate) mod propagator;
pub(crate) mod source;
