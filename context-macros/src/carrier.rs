//! `#[derive(Carrier)]`: a job payload whose marked fields make it a
//! `ContextSource`.
//!
//! A non-`Option` `#[carrier(tenant)]` field makes the tenant *required by
//! the type*: a payload without one does not deserialize, so no code is
//! needed at run time to refuse it.

use proc_macro2::TokenStream;
use syn::DeriveInput;

use crate::ctxt::Ctxt;

mod ast;
mod expand;
mod valid;

/// Parses, validates and expands the derive; on error, the errors and a
/// fallback impl, so one mistake gives one message.
pub(crate) fn derive(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(error) => return error.to_compile_error(),
    };
    let cx = Ctxt::new();
    let model = ast::Input::from_syn(&input, &cx);
    if let Some(model) = &model {
        valid::check(model, &cx);
    }
    match (cx.check(), model) {
        (Ok(()), Some(model)) => expand::source_impl(&model),
        (result, _) => {
            let mut tokens = result
                .err()
                .map(|e| e.to_compile_error())
                .unwrap_or_default();
            tokens.extend(expand::fallback(&input));
            tokens
        }
    }
}
