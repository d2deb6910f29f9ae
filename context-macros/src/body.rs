//! What both attribute macros do to the body they annotate: check it, and
//! (for an `async fn`) require its future to be `Send`.
//!
//! The `Send` requirement is the type-based guard check: thread-bound guards
//! (`tracing::span::EnteredSpan`, OpenTelemetry's `ContextGuard`, any guard
//! that is `!Send` because it restores a thread-local on drop) make the
//! future `!Send` when alive across an `.await`, whatever the syntax that
//! created or kept them, and rustc names the line where the guard lives.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::Block;

use crate::ctxt::Ctxt;
use crate::{ambient, bare_spawn, respan};

/// The options about the body, shared by both attribute macros.
#[derive(Default, Clone, Copy)]
pub(crate) struct BodyOptions {
    /// `local`: the body's future may be `!Send` (a `LocalSet`, a
    /// single-threaded runtime); the syntactic guard checks still apply.
    pub(crate) local: bool,
    /// `allow_bare_spawn`: `tokio::spawn` and friends are allowed, for work
    /// meant to run without the context.
    pub(crate) allow_bare_spawn: bool,
}

impl BodyOptions {
    /// Adds the flags of another attribute on the same function.
    pub(crate) fn merge_flags(&mut self, flags: &[String]) {
        self.local |= flags.iter().any(|f| f == "local");
        self.allow_bare_spawn |= flags.iter().any(|f| f == "allow_bare_spawn");
    }
}

/// Reports what is wrong with `body` by its syntax; `true` when it is clean.
pub(crate) fn check(body: &Block, options: BodyOptions, cx: &Ctxt) -> bool {
    let before = cx.error_count();
    ambient::check(body, cx);
    if !options.allow_bare_spawn {
        bare_spawn::check(body, cx);
    }
    cx.error_count() == before
}

/// `future` itself, or (unless `local`) passed through
/// `__private::body_must_be_send`, which rustc reports at `at` (the user's
/// `async`) with the line of every `!Send` value held across an `.await`.
pub(crate) fn send_checked(
    private: &TokenStream,
    future: TokenStream,
    at: Span,
    options: BodyOptions,
) -> TokenStream {
    if options.local {
        return future;
    }
    let check = respan::located_at(quote!(#private::body_must_be_send(__context_body)), at);
    quote! {{
        let __context_body = #future;
        #check
    }}
}
