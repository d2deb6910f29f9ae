//! Macros for `context-runtime`. Use them through `context_runtime`, which
//! documents them; this crate is an implementation detail.
//!
//! Each macro parses its input into a typed model, validates every rule on
//! it, then expands. Every error sits on the smallest wrong token; on error
//! the user's item is still emitted so the rest of the crate keeps compiling.

#![forbid(unsafe_code)]

use proc_macro::TokenStream;

mod ambient;
mod bare_spawn;
mod body;
mod carrier;
mod crate_path;
mod ctxt;
mod diagnostic;
mod option_slot;
mod requires_tenant;
mod respan;
mod return_type;
mod stack;
mod with_context;

/// See `context_runtime::with_context`.
#[proc_macro_attribute]
pub fn with_context(args: TokenStream, item: TokenStream) -> TokenStream {
    diagnostic::or_item(with_context::expand(args.into(), item.clone().into()), item)
}

/// See `context_runtime::requires_tenant`.
#[proc_macro_attribute]
pub fn requires_tenant(args: TokenStream, item: TokenStream) -> TokenStream {
    diagnostic::or_item(
        requires_tenant::expand(args.into(), item.clone().into()),
        item,
    )
}

/// See `context_runtime::Carrier`.
#[proc_macro_derive(Carrier, attributes(carrier))]
pub fn derive_carrier(item: TokenStream) -> TokenStream {
    carrier::derive(item.into()).into()
}
