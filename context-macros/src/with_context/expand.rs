//! The rewritten `async fn`: the same signature, a body that reads the
//! context and runs the original body inside its scope.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ItemFn;

use super::valid::{Args, Origin};
use crate::{body, crate_path, respan, return_type, stack};

/// The function with its body wrapped in the scope. The scope holds
/// everything the body holds, including a `#[requires_tenant]` check put
/// there before; the check of a later one goes after the marker.
/// `send_check`: require the body's future to be `Send` (unless `local`).
pub(super) fn function(args: &Args, item: ItemFn, send_check: bool) -> TokenStream {
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

    let fake_return = return_type::fake_return_edge(&sig.output, &block);
    let marker = stack::marker(&private);
    let future = quote! {
        async move {
            #marker
            #fake_return
            #block
        }
    };
    let future = if send_check {
        let at = sig
            .asyncness
            .map_or_else(proc_macro2::Span::call_site, |a| a.span);
        body::send_checked(&private, future, at, args.body)
    } else {
        future
    };

    quote! {
        #(#attrs)*
        #vis #sig {
            let __context_cx = #read;
            #private::scope(__context_cx, #future).await
        }
    }
}
