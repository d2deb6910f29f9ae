//! Rejects ambient sets and guards held across `.await` in annotated bodies,
//! by their syntax.
//!
//! The type check (the body's future must be `Send`, see `body.rs`) catches
//! every thread-bound guard whatever its syntax; this walk is kept for the
//! clearer messages, and for what the type check cannot see:
//! - `enter_with`-style calls, which make a context current beyond the extent
//!   of one future;
//! - guards that are `Send` (`tracing::span::Entered`, the `DefaultGuard` of
//!   `tracing::subscriber::set_default`) alive at a later `.await`: bound with
//!   `let` (also inside `Some(…)`, a tuple, a struct, an array or `vec![…]`),
//!   assigned to a declared variable, moved into something that keeps it
//!   (`guards.push(span.enter())`), kept by a `match` / `if let` / `while let`
//!   scrutinee, or made as a temporary of a statement that awaits
//!   (`work(&span.enter()).await`), whether called as a method
//!   (`span.enter()`), as a path (`Span::enter(&span)`), or through a helper
//!   whose name says so (`enter_for_job(&span)`);
//! - a guard passed to `mem::forget` or `ManuallyDrop::new`, which is never
//!   dropped.
//!
//! The walk descends into closures and async blocks, not into nested items,
//! which are not part of the annotated body.

use proc_macro2::{TokenStream, TokenTree};
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{Block, Expr, Ident, Pat, Stmt, Token};

use crate::ctxt::Ctxt;

/// Methods and functions whose result is a guard that keeps something
/// current while alive.
const GUARD_NAMES: [&str; 4] = ["enter", "attach", "entered", "set_default"];

/// Words in a helper's name that say it returns such a guard (`enter_for_job`).
const GUARD_WORDS: [&str; 2] = ["enter", "entered"];

/// Macros that await internally without spelling `.await`.
const AWAITING_MACROS: [&str; 5] = ["join", "try_join", "select", "select_biased", "pending"];

/// Reports every ambient set and every guard held across `.await` in `body`.
pub(crate) fn check(body: &Block, cx: &Ctxt) {
    Ambient { cx }.visit_block(body);
}

struct Ambient<'c> {
    cx: &'c Ctxt,
}

/// A call that returns a guard: the name to point at and how to show it.
struct GuardCall {
    ident: Ident,
    shown: String,
}

impl Ambient<'_> {
    fn enter_with(&self, ident: &Ident) {
        self.cx.error_on(
            ident,
            "`enter_with` makes a context current beyond this task and leaks it into concurrent work",
            "run the work inside a scope: `cx.scope(async { … }).await` or `cx.scope_sync(|| …)`",
        );
    }

    fn held_across_await(&self, guard: &GuardCall) {
        let GuardCall { ident, shown } = guard;
        if *ident == "set_default" {
            self.cx.error_on(
                ident,
                &format!(
                    "the guard of `{shown}` held across `.await` makes this subscriber the default for other tasks polled on the same thread"
                ),
                "use `tracing::subscriber::with_default(subscriber, || …)` around sync code, or `fut.with_subscriber(subscriber)` (`tracing::instrument::WithSubscriber`) for a future",
            );
        } else {
            self.cx.error_on(
                ident,
                &format!(
                    "a guard from `{shown}` held across `.await` leaks this context into other tasks polled on the same thread"
                ),
                "use `.instrument(span)` / `cx.scope(fut)` / `fut.in_context(cx)` instead, or drop the guard before the `.await`",
            );
        }
    }

    /// Guards bound by a statement of `stmts` and still alive at a later
    /// `.await`, and guards made as temporaries of a statement that awaits
    /// (`work(&span.enter()).await`: the temporary lives to the `;`).
    fn guards(&self, stmts: &[Stmt]) {
        for stmt in stmts {
            let expr = match stmt {
                Stmt::Expr(expr, _) => Some(expr),
                Stmt::Local(local) => local.init.as_ref().map(|init| &*init.expr),
                _ => None,
            };
            if let Some(guard) = expr.and_then(temporary_guard) {
                if awaits(stmt) {
                    self.held_across_await(&guard);
                }
            }
        }
        for (index, stmt) in stmts.iter().enumerate() {
            let (guard, names) = match stmt {
                Stmt::Local(local) => {
                    let Some(guard) = local.init.as_ref().and_then(|init| kept_guard(&init.expr))
                    else {
                        continue;
                    };
                    let mut names = Vec::new();
                    bindings(&local.pat, &mut names);
                    if names.is_empty() {
                        // `let _ = x.enter();` drops the guard at once.
                        continue;
                    }
                    (guard, names)
                }
                // `g = span.enter();` after `let g;`
                Stmt::Expr(Expr::Assign(assign), _) => {
                    let Some(guard) = kept_guard(&assign.right) else {
                        continue;
                    };
                    let names = match &*assign.left {
                        Expr::Path(path) => path.path.get_ident().into_iter().collect(),
                        _ => Vec::new(),
                    };
                    (guard, names)
                }
                // `guards.push(span.enter());`: moved somewhere that keeps it.
                Stmt::Expr(expr, _) => match moved_guard(expr) {
                    Some(guard) => (guard, Vec::new()),
                    None => continue,
                },
                _ => continue,
            };
            for later in &stmts[index + 1..] {
                if drops_one_of(later, &names) {
                    break;
                }
                if awaits(later) {
                    self.held_across_await(&guard);
                    break;
                }
            }
        }
    }

    /// A guard in the scrutinee of `match`, `if let` or `while let` lives
    /// until the end of the whole expression.
    fn scrutinee(&self, scrutinee: &Expr, bodies_await: bool) {
        if bodies_await {
            if let Some(guard) = any_guard(scrutinee) {
                self.held_across_await(&guard);
            }
        }
    }
}

impl<'ast> Visit<'ast> for Ambient<'_> {
    fn visit_item(&mut self, _: &'ast syn::Item) {
        // A nested item is not part of this body.
    }

    fn visit_block(&mut self, block: &'ast Block) {
        self.guards(&block.stmts);
        visit::visit_block(self, block);
    }

    fn visit_expr_match(&mut self, expr: &'ast syn::ExprMatch) {
        let awaits = expr.arms.iter().any(|arm| {
            expr_awaits(&arm.body) || arm.guard.as_ref().is_some_and(|(_, g)| expr_awaits(g))
        });
        self.scrutinee(&expr.expr, awaits);
        visit::visit_expr_match(self, expr);
    }

    fn visit_expr_if(&mut self, expr: &'ast syn::ExprIf) {
        if let Expr::Let(condition) = &*expr.cond {
            let awaits = block_awaits(&expr.then_branch)
                || expr
                    .else_branch
                    .as_ref()
                    .is_some_and(|(_, e)| expr_awaits(e));
            self.scrutinee(&condition.expr, awaits);
        }
        visit::visit_expr_if(self, expr);
    }

    fn visit_expr_while(&mut self, expr: &'ast syn::ExprWhile) {
        if let Expr::Let(condition) = &*expr.cond {
            self.scrutinee(&condition.expr, block_awaits(&expr.body));
        }
        visit::visit_expr_while(self, expr);
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
                if last.ident == "forget" || last.ident == "ManuallyDrop" {
                    if let Some(guard) = call.args.iter().find_map(any_guard) {
                        self.cx.error_on(
                            &guard.ident,
                            &format!(
                                "a guard from `{}` that is never dropped keeps this context current on the thread for good",
                                guard.shown
                            ),
                            "let the guard drop, or better run the work in `cx.scope(fut)` / `span.in_scope(|| …)`",
                        );
                    }
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

/// The guard call whose result `value` keeps: the value itself, or the value
/// wrapped in `Some(…)`, a tuple, a struct, an array, a reference or a block.
fn kept_guard(value: &Expr) -> Option<GuardCall> {
    if let Some(guard) = guard_call(value) {
        return Some(guard);
    }
    match value {
        Expr::Paren(paren) => kept_guard(&paren.expr),
        Expr::Group(group) => kept_guard(&group.expr),
        Expr::Reference(reference) => kept_guard(&reference.expr),
        Expr::Tuple(tuple) => tuple.elems.iter().find_map(kept_guard),
        Expr::Array(array) => array.elems.iter().find_map(kept_guard),
        Expr::Struct(strukt) => strukt.fields.iter().find_map(|f| kept_guard(&f.expr)),
        Expr::Block(block) => match block.block.stmts.last() {
            Some(Stmt::Expr(tail, None)) => kept_guard(tail),
            _ => None,
        },
        // `vec![span.enter()]`
        Expr::Macro(mac) => mac
            .mac
            .parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated)
            .ok()?
            .iter()
            .find_map(kept_guard),
        // A tuple struct or variant: `Some(guard)`, `Held(guard)`.
        Expr::Call(call) => {
            let constructor = match &*call.func {
                Expr::Path(path) => path.path.segments.last().is_some_and(|segment| {
                    segment
                        .ident
                        .to_string()
                        .starts_with(|c: char| c.is_ascii_uppercase())
                }),
                _ => false,
            };
            if constructor {
                call.args.iter().find_map(kept_guard)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// A guard passed by value to a call or method (`guards.push(span.enter())`,
/// `slot.replace(span.enter())`), which may keep it; not `drop(…)`.
fn moved_guard(expr: &Expr) -> Option<GuardCall> {
    let args = match expr {
        Expr::MethodCall(call) => &call.args,
        Expr::Call(call) => match &*call.func {
            Expr::Path(path)
                if path
                    .path
                    .segments
                    .last()
                    .is_some_and(|s| s.ident == "drop" || s.ident == "forget") =>
            {
                return None
            }
            _ => &call.args,
        },
        _ => return None,
    };
    args.iter().find_map(kept_guard)
}

/// A guard call among the temporaries of `expr` (which live until the end
/// of its statement): not inside blocks, branches, loops, closures or async
/// blocks, whose own scopes drop them earlier.
fn temporary_guard(expr: &Expr) -> Option<GuardCall> {
    if let Some(guard) = guard_call(expr) {
        return Some(guard);
    }
    match expr {
        Expr::MethodCall(call) => {
            temporary_guard(&call.receiver).or_else(|| call.args.iter().find_map(temporary_guard))
        }
        Expr::Call(call) => call.args.iter().find_map(temporary_guard),
        Expr::Await(inner) => temporary_guard(&inner.base),
        Expr::Try(inner) => temporary_guard(&inner.expr),
        Expr::Reference(inner) => temporary_guard(&inner.expr),
        Expr::Paren(inner) => temporary_guard(&inner.expr),
        Expr::Group(inner) => temporary_guard(&inner.expr),
        Expr::Field(inner) => temporary_guard(&inner.base),
        Expr::Unary(inner) => temporary_guard(&inner.expr),
        Expr::Cast(inner) => temporary_guard(&inner.expr),
        Expr::Tuple(tuple) => tuple.elems.iter().find_map(temporary_guard),
        Expr::Array(array) => array.elems.iter().find_map(temporary_guard),
        Expr::Struct(strukt) => strukt.fields.iter().find_map(|f| temporary_guard(&f.expr)),
        Expr::Assign(assign) => temporary_guard(&assign.right),
        _ => None,
    }
}

/// Any guard call in `expr`, outside closures and async blocks.
fn any_guard(expr: &Expr) -> Option<GuardCall> {
    struct Find(Option<GuardCall>);
    impl<'a> Visit<'a> for Find {
        fn visit_expr(&mut self, expr: &'a Expr) {
            if self.0.is_none() {
                self.0 = guard_call(expr);
                visit::visit_expr(self, expr);
            }
        }
        fn visit_expr_closure(&mut self, _: &'a syn::ExprClosure) {}
        fn visit_expr_async(&mut self, _: &'a syn::ExprAsync) {}
        fn visit_item(&mut self, _: &'a syn::Item) {}
    }
    let mut find = Find(None);
    find.visit_expr(expr);
    find.0
}

/// `span.enter()`, `Span::enter(&span)`, `set_default(&dispatch)`,
/// `enter_for_job(&span)`…
fn guard_call(expr: &Expr) -> Option<GuardCall> {
    match expr {
        Expr::MethodCall(call) if is_guard_name(&call.method) => Some(GuardCall {
            ident: call.method.clone(),
            shown: format!(".{}()", call.method),
        }),
        Expr::Call(call) => {
            let Expr::Path(path) = &*call.func else {
                return None;
            };
            let segments = &path.path.segments;
            let last = segments.last()?;
            if !is_guard_name(&last.ident) {
                return None;
            }
            let shown = match segments.len() {
                0 | 1 => format!("{}(…)", last.ident),
                n => format!("{}::{}(…)", segments[n - 2].ident, last.ident),
            };
            Some(GuardCall {
                ident: last.ident.clone(),
                shown,
            })
        }
        _ => None,
    }
}

fn is_guard_name(ident: &Ident) -> bool {
    let name = ident.to_string();
    GUARD_NAMES.contains(&name.as_str()) || name.split('_').any(|word| GUARD_WORDS.contains(&word))
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

/// Finds an `.await` outside closures and async blocks (which are other
/// futures), or a macro that awaits.
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

/// Whether `stmt` suspends the current future.
fn awaits(stmt: &Stmt) -> bool {
    let mut finder = FindAwait(false);
    finder.visit_stmt(stmt);
    finder.0
}

fn expr_awaits(expr: &Expr) -> bool {
    let mut finder = FindAwait(false);
    finder.visit_expr(expr);
    finder.0
}

fn block_awaits(block: &Block) -> bool {
    block.stmts.iter().any(awaits)
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
        let cx = Ctxt::new();
        check(&block, &cx);
        match cx.check() {
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
    fn every_guard_form_is_rejected() {
        for body in [
            "{ let g = Some(span.enter()); work().await; }",
            "{ let g = (1, span.enter()); work().await; }",
            "{ let h = Held { g: span.enter() }; work().await; }",
            "{ let _g = &span.enter(); work().await; }",
            "{ let _g = tracing::Span::enter(&span); work().await; }",
            "{ let _g = opentelemetry::Context::attach(cx); work().await; }",
            "{ let g; g = span.enter(); work().await; }",
            "{ match span.enter() { _g => work().await } }",
            "{ if let Some(_g) = Some(span.enter()) { work().await; } }",
            "{ let _g = enter_for_job(&span); work().await; }",
            "{ let _g = tracing::subscriber::set_default(s); work().await; }",
            "{ let _g = tracing::dispatcher::set_default(&d); work().await; }",
        ] {
            assert_eq!(errors(body).len(), 1, "{body}");
        }
        let message = &errors("{ let _g = tracing::subscriber::set_default(s); w().await; }")[0];
        assert!(
            message.contains("`subscriber::set_default(…)`"),
            "{message}"
        );
        assert!(message.contains("with_default"), "{message}");
    }

    #[test]
    fn a_guard_made_in_a_statement_that_awaits_is_rejected() {
        assert_eq!(errors("{ work(&span.enter()).await; }").len(), 1);
        assert_eq!(errors("{ let n = hold(span.entered()).await?; }").len(), 1);
        assert_eq!(errors("{ std::mem::forget(span.enter()); }").len(), 1);
        assert!(errors("{ if c { let _ = span.enter(); } else { work().await; } }").is_empty());
        assert!(errors("{ work(span.in_scope(|| 1)).await; }").is_empty());
    }

    #[test]
    fn a_guard_moved_into_something_that_keeps_it_is_rejected() {
        assert_eq!(
            errors("{ let g = vec![span.enter()]; work().await; }").len(),
            1
        );
        assert_eq!(
            errors("{ guards.push(span.enter()); work().await; }").len(),
            1
        );
        assert_eq!(
            errors("{ slot.replace(Some(cx.attach())); work().await; }").len(),
            1
        );
        assert!(errors("{ drop(span.enter()); work().await; }").is_empty());
        assert!(errors("{ guards.push(span.enter()); sync(); }").is_empty());
    }

    #[test]
    fn look_alikes_are_not_guards() {
        assert!(errors("{ let c = compute_center(&shape); work().await; }").is_empty());
        assert!(errors("{ let n = len(span.enter()); work().await; }").is_empty());
        assert!(errors("{ match x { _ => { let _ = span.enter(); work().await } } }").is_empty());
        assert!(errors("{ match span.enter() { _g => sync() } work().await; }").is_empty());
    }

    #[test]
    fn guards_inside_async_blocks_are_checked() {
        assert_eq!(
            errors("{ let f = async { let _g = s.enter(); w().await; }; }").len(),
            1
        );
    }
}
