//! How `#[with_context]` and `#[requires_tenant]` work together, in either
//! order, under any name (`use … as …`), on their own or beside other
//! attributes. This is the one definition both macros use.
//!
//! Each macro starts the body it checked with a marker statement,
//! `__private::checked_body();` (a no-op):
//! - `#[with_context]` puts it first inside its scope;
//! - `#[requires_tenant]` expanding *after* `#[with_context]` looks for the
//!   marker anywhere in the body it is given and puts its tenant check right
//!   after it, so the check runs inside the scope. Without a marker it puts
//!   the check first in the body (a later `#[with_context]` then wraps the
//!   whole body, the check included, in its scope). It never adds nothing;
//! - a macro that finds a marker at the top of the body it wraps does not
//!   check that body again, so an error is reported once.

use proc_macro2::TokenStream;
use quote::quote;
use syn::visit_mut::{self, VisitMut};
use syn::{Attribute, Block, Expr, Stmt};

/// The marker statement, reaching the runtime through `private`.
pub(crate) fn marker(private: &TokenStream) -> TokenStream {
    quote!(#private::checked_body();)
}

/// `item` as written, its body starting with the marker (after an error,
/// so that the body's errors are reported once).
pub(crate) fn marked(mut item: syn::ItemFn, krate: Option<&syn::Path>) -> TokenStream {
    let private = crate::crate_path::private(krate);
    if let Ok(stmt) = syn::parse2(marker(&private)) {
        item.block.stmts.insert(0, stmt);
    }
    quote::ToTokens::into_token_stream(item)
}

/// Whether `stmt` is the marker (whatever path reaches the runtime).
fn is_marker(stmt: &Stmt) -> bool {
    let Stmt::Expr(Expr::Call(call), Some(_)) = stmt else {
        return false;
    };
    let Expr::Path(path) = &*call.func else {
        return false;
    };
    let names: Vec<String> = path
        .path
        .segments
        .iter()
        .rev()
        .take(2)
        .map(|s| s.ident.to_string())
        .collect();
    call.args.is_empty() && names == ["checked_body", "__private"]
}

/// Whether one of our macros already checked `block` (its body as written
/// then is a statement of `block`).
pub(crate) fn already_checked(block: &Block) -> bool {
    block.stmts.iter().any(is_marker)
}

/// Whether a marker is anywhere in `block`.
pub(crate) fn contains_marker(block: &Block) -> bool {
    let mut copy = block.clone();
    let probe: Stmt = syn::parse_quote!((););
    insert_after_marker(&mut copy, &probe)
}

/// Puts `stmt` right after the first marker found in `block` (depth first,
/// in source order); `false` when there is none.
pub(crate) fn insert_after_marker(block: &mut Block, stmt: &Stmt) -> bool {
    struct Insert<'s> {
        stmt: &'s Stmt,
        done: bool,
    }
    impl VisitMut for Insert<'_> {
        fn visit_block_mut(&mut self, block: &mut Block) {
            if self.done {
                return;
            }
            if let Some(at) = block.stmts.iter().position(is_marker) {
                block.stmts.insert(at + 1, self.stmt.clone());
                self.done = true;
                return;
            }
            visit_mut::visit_block_mut(self, block);
        }
        fn visit_expr_mut(&mut self, expr: &mut Expr) {
            if !self.done {
                visit_mut::visit_expr_mut(self, expr);
            }
        }
        fn visit_item_mut(&mut self, _: &mut syn::Item) {}
    }
    let mut insert = Insert { stmt, done: false };
    insert.visit_block_mut(block);
    insert.done
}

/// The body options (`local`, `allow_bare_spawn`) written on a later
/// attribute named `name` on the same function, when it is not renamed: a
/// macro that expands first checks the body for both.
pub(crate) fn later_flags(attrs: &[Attribute], name: &str) -> Vec<String> {
    let mut flags = Vec::new();
    for attr in attrs {
        let is_it = attr
            .path()
            .segments
            .last()
            .is_some_and(|segment| segment.ident == name);
        if !is_it {
            continue;
        }
        if let syn::Meta::List(list) = &attr.meta {
            collect_idents(list.tokens.clone(), &mut flags);
        }
    }
    flags
}

fn collect_idents(tokens: TokenStream, flags: &mut Vec<String>) {
    // Top-level bare keys only: `local`, `allow_bare_spawn`.
    let mut previous_is_separator = true;
    let trees: Vec<_> = tokens.into_iter().collect();
    for (index, tree) in trees.iter().enumerate() {
        match tree {
            proc_macro2::TokenTree::Ident(ident) if previous_is_separator => {
                let next_is_separator = match trees.get(index + 1) {
                    None => true,
                    Some(proc_macro2::TokenTree::Punct(p)) => p.as_char() == ',',
                    Some(_) => false,
                };
                if next_is_separator {
                    flags.push(ident.to_string());
                }
                previous_is_separator = false;
            }
            proc_macro2::TokenTree::Punct(p) if p.as_char() == ',' => previous_is_separator = true,
            _ => previous_is_separator = false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_goes_after_the_marker_inside_the_scope() {
        let mut block: Block = syn::parse_quote!({
            let cx = read();
            ::ctx::__private::scope(cx, async move {
                ::ctx::__private::checked_body();
                body();
            })
            .await
        });
        assert!(!already_checked(&block));
        let check: Stmt = syn::parse_quote!(tenant_check(););
        assert!(insert_after_marker(&mut block, &check));
        let text = quote::ToTokens::to_token_stream(&block).to_string();
        let marker = text.find("checked_body").unwrap();
        let inserted = text.find("tenant_check").unwrap();
        assert!(
            marker < inserted && inserted < text.find("; body ()").unwrap(),
            "{text}"
        );

        let mut plain: Block = syn::parse_quote!({
            body();
        });
        assert!(!insert_after_marker(&mut plain, &check));
        let checked: Block = syn::parse_quote!({
            my::__private::checked_body();
            body();
        });
        assert!(already_checked(&checked));
    }

    #[test]
    fn flags_of_a_later_attribute() {
        let item: syn::ItemFn = syn::parse_quote! {
            #[doc = "x"]
            #[context_runtime::with_context(from = "job.ctx", local, allow_bare_spawn)]
            async fn f(job: Job) {}
        };
        assert_eq!(
            later_flags(&item.attrs, "with_context"),
            ["local", "allow_bare_spawn"]
        );
        assert!(later_flags(&item.attrs, "requires_tenant").is_empty());
    }
}
