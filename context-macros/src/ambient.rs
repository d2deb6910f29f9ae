//! Rejects ambient sets and guards held across `.await` in annotated bodies.
//!
//! Two patterns make one task's context visible to others:
//! - `enter_with`-style calls, which make a context current beyond the extent
//!   of one future;
//! - a guard (`.enter()`, `.attach()`, `.entered()`) bound with `let` and still
//!   alive at a later `.await` of the same block: while the task is suspended,
//!   other tasks polled on the same thread run under it.
//!
//! The walk descends into closures and async blocks, not into nested items,
//! which are not part of the annotated body.

use proc_macro2::{TokenStream, TokenTree};
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{Block, Expr, Ident, Pat, Stmt, Token};

use crate::diagnostic;

/// Methods whose result is a guard that keeps something current while alive.
const GUARD_METHODS: [&str; 3] = ["enter", "attach", "entered"];

/// Macros that await internally without spelling `.await`.
const AWAITING_MACROS: [&str; 5] = ["join", "try_join", "select", "select_biased", "pending"];

/// Every ambient set and every guard held across `.await` in `body`, as one error.
pub(crate) fn check(body: &Block) -> syn::Result<()> {
    let mut walker = Ambient { errors: Vec::new() };
    walker.visit_block(body);
    diagnostic::combine(walker.errors)
}

struct Ambient {
    errors: Vec<syn::Error>,
}

impl Ambient {
    fn enter_with(&mut self, ident: &Ident) {
        self.errors.push(diagnostic::error_on(
            ident,
            "`enter_with` makes a context current beyond this task and leaks it into concurrent work",
            "run the work inside a scope: `cx.scope(async { … }).await` or `cx.scope_sync(|| …)`",
        ));
    }

    fn guards(&mut self, stmts: &[Stmt]) {
        for (index, stmt) in stmts.iter().enumerate() {
            let Stmt::Local(local) = stmt else { continue };
            let Some(method) = local
                .init
                .as_ref()
                .and_then(|init| guard_method(&init.expr))
            else {
                continue;
            };
            let mut names = Vec::new();
            bindings(&local.pat, &mut names);
            if names.is_empty() {
                // `let _ = x.enter();` drops the guard at once.
                continue;
            }
            for later in &stmts[index + 1..] {
                if drops_one_of(later, &names) {
                    break;
                }
                if awaits(later) {
                    self.errors.push(diagnostic::error_on(
                        method,
                        &format!(
                            "a guard from `.{method}()` held across `.await` leaks this context into other tasks polled on the same thread"
                        ),
                        "use `.instrument(span)` / `cx.scope(fut)` instead, or drop the guard before the `.await`",
                    ));
                    break;
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Ambient {
    fn visit_item(&mut self, _: &'ast syn::Item) {
        // A nested item is not part of this body.
    }

    fn visit_block(&mut self, block: &'ast Block) {
        self.guards(&block.stmts);
        visit::visit_block(self, block);
    }

    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        if call.method == "enter_with" {
            self.enter_with(&call.method);
        }
        visit::visit_expr_method_call(self, call);
    }

    fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
        if let Expr::Path(path) = &*call.func {
            if let Some(last) = path.path.segments.last() {
                if last.ident == "enter_with" {
                    self.enter_with(&last.ident);
                }
            }
        }
        visit::visit_expr_call(self, call);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        // Look inside macros whose input is a list of expressions
        // (`assert!`, `format!`, `vec!`…); others are opaque.
        if let Ok(exprs) = mac.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated) {
            for expr in &exprs {
                self.visit_expr(expr);
            }
        }
    }
}

/// The guard method when `init` is a call of one (`span.enter()`).
fn guard_method(init: &Expr) -> Option<&Ident> {
    match init {
        Expr::Paren(paren) => guard_method(&paren.expr),
        Expr::Group(group) => guard_method(&group.expr),
        Expr::MethodCall(call) if GUARD_METHODS.iter().any(|m| call.method == m) => {
            Some(&call.method)
        }
        _ => None,
    }
}

/// The names a pattern binds (a `let`, or a function argument).
pub(crate) fn bindings<'a>(pat: &'a Pat, names: &mut Vec<&'a Ident>) {
    match pat {
        Pat::Ident(ident) => {
            names.push(&ident.ident);
            if let Some((_, sub)) = &ident.subpat {
                bindings(sub, names);
            }
        }
        Pat::Type(typed) => bindings(&typed.pat, names),
        Pat::Paren(paren) => bindings(&paren.pat, names),
        Pat::Reference(reference) => bindings(&reference.pat, names),
        Pat::Tuple(tuple) => tuple.elems.iter().for_each(|p| bindings(p, names)),
        Pat::TupleStruct(tuple) => tuple.elems.iter().for_each(|p| bindings(p, names)),
        Pat::Struct(strukt) => strukt.fields.iter().for_each(|f| bindings(&f.pat, names)),
        Pat::Slice(slice) => slice.elems.iter().for_each(|p| bindings(p, names)),
        _ => {}
    }
}

/// Whether `stmt` is `drop(name);` (or `mem::drop(name);`) for one of `names`.
fn drops_one_of(stmt: &Stmt, names: &[&Ident]) -> bool {
    let Stmt::Expr(Expr::Call(call), _) = stmt else {
        return false;
    };
    let Expr::Path(func) = &*call.func else {
        return false;
    };
    if func.path.segments.last().is_none_or(|s| s.ident != "drop") || call.args.len() != 1 {
        return false;
    }
    match &call.args[0] {
        Expr::Path(arg) => arg.path.get_ident().is_some_and(|arg| names.contains(&arg)),
        _ => false,
    }
}

/// Whether `stmt` suspends the current future: an `.await` in it, outside
/// closures and async blocks (which are other futures), or a macro that awaits.
fn awaits(stmt: &Stmt) -> bool {
    struct FindAwait(bool);
    impl<'ast> Visit<'ast> for FindAwait {
        fn visit_expr_await(&mut self, _: &'ast syn::ExprAwait) {
            self.0 = true;
        }
        fn visit_expr_closure(&mut self, _: &'ast syn::ExprClosure) {}
        fn visit_expr_async(&mut self, _: &'ast syn::ExprAsync) {}
        fn visit_item(&mut self, _: &'ast syn::Item) {}
        fn visit_macro(&mut self, mac: &'ast syn::Macro) {
            let awaiting = mac
                .path
                .segments
                .last()
                .is_some_and(|s| AWAITING_MACROS.iter().any(|m| s.ident == m));
            if awaiting || mentions_await(&mac.tokens) {
                self.0 = true;
            }
        }
    }
    let mut finder = FindAwait(false);
    finder.visit_stmt(stmt);
    finder.0
}

fn mentions_await(tokens: &TokenStream) -> bool {
    tokens.clone().into_iter().any(|tree| match tree {
        TokenTree::Ident(ident) => ident == "await",
        TokenTree::Group(group) => mentions_await(&group.stream()),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(body: &str) -> Vec<String> {
        let block: Block = syn::parse_str(body).unwrap();
        match check(&block) {
            Ok(()) => Vec::new(),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn enter_with_is_rejected_as_method_and_path_call() {
        assert_eq!(
            errors("{ cx.enter_with(); Context::enter_with(cx); }").len(),
            2
        );
        assert_eq!(
            errors("{ let f = || { assert!(x.enter_with()); }; }").len(),
            1
        );
        assert!(errors("{ fn nested() { cx.enter_with(); } }").is_empty());
    }

    #[test]
    fn a_guard_is_rejected_only_when_alive_at_a_later_await() {
        assert_eq!(errors("{ let _g = span.enter(); work().await; }").len(), 1);
        assert_eq!(
            errors("{ let g = cx.attach(); if x { work().await; } }").len(),
            1
        );
        assert_eq!(
            errors("{ let s = span.entered(); tokio::join!(a, b); }").len(),
            1
        );
        assert!(errors("{ let _ = span.enter(); work().await; }").is_empty());
        assert!(errors("{ let g = span.enter(); drop(g); work().await; }").is_empty());
        assert!(errors("{ { let _g = span.enter(); sync(); } work().await; }").is_empty());
        assert!(errors("{ let _g = span.enter(); tokio::spawn(async { w().await }); }").is_empty());
        assert!(errors("{ work().await; let _g = span.enter(); sync(); }").is_empty());
    }

    #[test]
    fn guards_inside_async_blocks_are_checked() {
        assert_eq!(
            errors("{ let f = async { let _g = s.enter(); w().await; }; }").len(),
            1
        );
    }
}
