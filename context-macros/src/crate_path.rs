//! The `crate = "…"` option: where `context_runtime` is, when renamed.

use proc_macro2::TokenStream;
use quote::quote;
use syn::LitStr;

use crate::diagnostic;

/// Parses the value of `crate = "…"` as a path.
pub(crate) fn parse(lit: &LitStr) -> syn::Result<syn::Path> {
    lit.parse_with(syn::Path::parse_mod_style).map_err(|_| {
        diagnostic::error_on(
            lit,
            &format!("`crate` must be a path, not {:?}", lit.value()),
            "name the crate as your code does, like `crate = \"context_runtime\"` or `crate = \"my_deps::context_runtime\"`",
        )
    })
}

/// The path of the runtime's `__private` module the expansion reaches.
pub(crate) fn private(krate: Option<&syn::Path>) -> TokenStream {
    match krate {
        Some(path) => quote!(#path::__private),
        None => quote!(::context_runtime::__private),
    }
}
