//! `#[with_context(…)]`: runs an `async fn`'s whole body inside a context
//! read at the boundary (or a fresh one).

use proc_macro2::TokenStream;
use syn::ItemFn;

use crate::{ambient, diagnostic, requires_tenant};

mod attr;
mod expand;
mod from_expr;

/// Parses, validates and expands `#[with_context(args)] item`.
///
/// The check of a later `#[requires_tenant]` on the same function is placed
/// inside the new scope, so the tenant is checked there whatever the
/// attribute order.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let item: ItemFn = syn::parse2(item).map_err(|_| {
        diagnostic::error_at(
            proc_macro2::Span::call_site(),
            "`#[with_context]` only applies to an `async fn` with a body",
            "put it on the `async fn` whose body should run inside the context",
        )
    })?;

    let (options, errors) = attr::Options::parse(args);
    let tenant = requires_tenant::later(&item);
    let checked = attr::validate(options, errors, &item.sig);

    let args = match checked {
        Ok(args) => args,
        Err(mut error) => {
            // The item is emitted as written; a valid `#[requires_tenant]` on
            // it reports the body's ambient errors itself.
            if !matches!(tenant, Some(Ok(_))) {
                if let Err(ambient) = ambient::check(&item.block) {
                    error.combine(ambient);
                }
            }
            return Err(error);
        }
    };

    let ambient = ambient::check(&item.block).err();
    let mut expanded = expand::function(&args, item, tenant);
    if let Some(ambient) = ambient {
        expanded.extend(ambient.to_compile_error());
    }
    Ok(expanded)
}
