//! Errors in rustc's voice: a short lowercase message and a `help:` line.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::ToTokens;

/// An error on `tokens` with a hint of what to write instead.
pub(crate) fn error_on(tokens: impl ToTokens, message: &str, help: &str) -> syn::Error {
    syn::Error::new_spanned(tokens, with_help(message, help))
}

/// An error at `span` with a hint of what to write instead.
pub(crate) fn error_at(span: Span, message: &str, help: &str) -> syn::Error {
    syn::Error::new(span, with_help(message, help))
}

fn with_help(message: &str, help: &str) -> String {
    format!("{message}\n= help: {help}")
}

/// Folds independent errors into one, so all of them are reported at once.
pub(crate) fn combine(errors: impl IntoIterator<Item = syn::Error>) -> syn::Result<()> {
    let mut errors = errors.into_iter();
    match errors.next() {
        None => Ok(()),
        Some(mut first) => {
            first.extend(errors);
            Err(first)
        }
    }
}

/// The expansion, or the error beside the user's item as written, so the rest
/// of the crate (and the IDE) keeps seeing the item.
pub(crate) fn or_item(
    result: syn::Result<proc_macro2::TokenStream>,
    item: TokenStream,
) -> TokenStream {
    match result {
        Ok(expanded) => expanded.into(),
        Err(error) => {
            let mut tokens = error.to_compile_error();
            tokens.extend(proc_macro2::TokenStream::from(item));
            tokens.into()
        }
    }
}
