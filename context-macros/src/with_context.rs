//! `#[with_context(…)]`: runs an `async fn`'s whole body inside a context
//! read at the boundary (or a fresh one).
//!
//! Parse (`attr.rs`), validate (`valid.rs`), expand (`expand.rs`). How it
//! works with `#[requires_tenant]` is in `stack.rs`.

use proc_macro2::TokenStream;
use syn::ItemFn;

use crate::ctxt::Ctxt;
use crate::{body, diagnostic, stack};

pub(crate) use attr::skip_value;

mod attr;
mod expand;
mod from_expr;
mod valid;

/// Parses, validates and expands `#[with_context(args)] item`.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let item: ItemFn = syn::parse2(item).map_err(|_| {
        diagnostic::error_at(
            proc_macro2::Span::call_site(),
            "`#[with_context]` only applies to an `async fn` with a body",
            "put it on the `async fn` whose body should run inside the context",
        )
    })?;

    let cx = Ctxt::new();
    let options = attr::Options::parse(args, &cx);
    let args = valid::check(options, &item.sig, &cx);
    // A body an earlier `#[requires_tenant]` checked is not checked twice.
    let checked = stack::already_checked(&item.block);
    let body = args.as_ref().map(|args| args.body).unwrap_or_default();
    let clean = checked || body::check(&item.block, body, &cx);
    let errors = cx.check().err();

    // On error the item is still emitted (expanded when the options allow),
    // marked as checked so a later `#[requires_tenant]` adds only its check.
    let mut tokens = match args {
        Some(args) => expand::function(&args, item, clean && !checked),
        None => stack::marked(item, None),
    };
    if let Some(errors) = errors {
        tokens.extend(errors.to_compile_error());
    }
    Ok(tokens)
}
