//! The rewritten `async fn`: the same signature, a body that reads the
//! context and runs the original body inside its scope.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{ItemFn, ReturnType};

use super::attr::{Args, Origin};
use crate::requires_tenant::TenantCheck;
use crate::{crate_path, respan, return_type};

/// The function with its body wrapped; `tenant` is a later `#[requires_tenant]`
/// to check at the top of the scoped body.
pub(super) fn function(
    args: &Args,
    item: ItemFn,
    tenant: Option<syn::Result<TenantCheck>>,
) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = item;
    let private = crate_path::private(args.krate.as_ref());

    let read = match &args.origin {
        Origin::From { expr, lit } => {
            // Errors about the expression's type land on the user's string,
            // while the tokens stay marked as generated (no lints for them).
            let read = if return_type::is_result(&sig.output) {
                quote! {
                    match #private::read(&(#expr)) {
                        ::core::result::Result::Ok(__context_cx) => __context_cx,
                        ::core::result::Result::Err(__context_err) => {
                            use #private::{ConvertError as _, NeverError as _};
                            return ::core::result::Result::Err(
                                (&__context_err).__context_error_kind().into_error(__context_err),
                            );
                        }
                    }
                }
            } else {
                quote! {
                    #private::infallible(#private::read(&(#expr)))
                }
            };
            respan::located_at(read, lit.span())
        }
        Origin::Fresh {
            source: Some(source),
        } => quote!(#private::fresh(::core::option::Option::Some(#source))),
        Origin::Fresh { source: None } => quote!(#private::fresh(::core::option::Option::None)),
    };

    let fake_return = fake_return_edge(&sig.output, &block);
    let tenant_check = match tenant {
        Some(Ok(check)) => check.statement(args.krate.as_ref()),
        _ => TokenStream::new(),
    };

    quote! {
        #(#attrs)*
        #vis #sig {
            let __context_cx = #read;
            #private::scope(__context_cx, async move {
                #fake_return
                #tenant_check
                #block
            })
            .await
        }
    }
}

/// An unreachable `return` of the declared type, so the inner async block
/// infers the function's return type: `?` converts into it, and a mismatch
/// points at the user's signature. Skipped when the type cannot be named.
fn fake_return_edge(output: &ReturnType, block: &syn::Block) -> TokenStream {
    let (ty, span) = match output {
        ReturnType::Type(_, ty) if return_type::is_nameable(ty) => {
            (ty.to_token_stream(), ty.span())
        }
        ReturnType::Type(..) => return TokenStream::new(),
        ReturnType::Default => (quote!(()), block.brace_token.span.open()),
    };
    quote_spanned! {span=>
        #[allow(
            unknown_lints,
            unreachable_code,
            clippy::diverging_sub_expression,
            clippy::empty_loop,
            clippy::let_unit_value,
            clippy::let_with_type_underscore,
            clippy::needless_return,
            clippy::unreachable
        )]
        if false {
            let __context_fake_return: #ty = loop {};
            return __context_fake_return;
        }
    }
}
