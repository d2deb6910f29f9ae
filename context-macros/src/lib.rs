//! Macros for `context-runtime`. Use them through `context_runtime`, which
//! documents them; this crate is an implementation detail.

use proc_macro::TokenStream;

/// See `context_runtime::with_context`.
#[proc_macro_attribute]
pub fn with_context(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}

/// See `context_runtime::requires_tenant`.
#[proc_macro_attribute]
pub fn requires_tenant(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}

/// See `context_runtime::Carrier`.
#[proc_macro_derive(Carrier, attributes(carrier))]
pub fn derive_carrier(_item: TokenStream) -> TokenStream {
    TokenStream::new()
}
