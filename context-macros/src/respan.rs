//! Moving generated tokens to where the user should look.

use proc_macro2::{Group, Span, TokenStream, TokenTree};

/// Gives every token the location of `at`, keeping the expansion's name
/// resolution and its "generated" mark, so errors about the tokens point at
/// the user's code while lints still treat them as generated.
pub(crate) fn located_at(tokens: TokenStream, at: Span) -> TokenStream {
    let span = Span::call_site().located_at(at);
    set_span(tokens, span)
}

fn set_span(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            if let TokenTree::Group(group) = &tree {
                let mut inner = Group::new(group.delimiter(), set_span(group.stream(), span));
                inner.set_span(span);
                tree = TokenTree::Group(inner);
            } else {
                tree.set_span(span);
            }
            tree
        })
        .collect()
}
