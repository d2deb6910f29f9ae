//! Rejects spawns that would run without the context: `tokio::spawn` and
//! friends start a task (or thread) with nothing current, so the work
//! silently loses its trace id and tenant.
//!
//! Recognised by path, as written; a call through a `use` of the bare
//! function is left to the clippy preset (`clippy.toml`), which resolves
//! paths.

use syn::visit::{self, Visit};
use syn::{Block, Expr};

use crate::ctxt::Ctxt;

/// Spawn paths (without a leading `::`) and what to call instead.
const BARE_SPAWNS: [(&[&str], &str); 6] = [
    (&["tokio", "spawn"], "context_runtime::spawn"),
    (&["tokio", "task", "spawn"], "context_runtime::spawn"),
    (&["task", "spawn"], "context_runtime::spawn"),
    (
        &["tokio", "task", "spawn_blocking"],
        "context_runtime::spawn_blocking",
    ),
    (
        &["task", "spawn_blocking"],
        "context_runtime::spawn_blocking",
    ),
    (
        &["std", "thread", "spawn"],
        "context_runtime::thread::spawn",
    ),
];

/// Reports every bare spawn in `body`.
pub(crate) fn check(body: &Block, cx: &Ctxt) {
    BareSpawns { cx }.visit_block(body);
}

struct BareSpawns<'c> {
    cx: &'c Ctxt,
}

impl<'ast> Visit<'ast> for BareSpawns<'_> {
    fn visit_item(&mut self, _: &'ast syn::Item) {
        // A nested item is not part of this body.
    }

    fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
        if let Expr::Path(path) = &*call.func {
            let segments: Vec<String> = path
                .path
                .segments
                .iter()
                .map(|s| s.ident.to_string())
                .collect();
            if let Some((_, instead)) = BARE_SPAWNS
                .iter()
                .find(|(bare, _)| segments.iter().map(String::as_str).eq(bare.iter().copied()))
            {
                let written = segments.join("::");
                self.cx.error_on(
                    &path.path,
                    &format!("`{written}` runs its work without the current context"),
                    &format!(
                        "call `{instead}`, which carries the context into the new task; for work meant to run without it, add `allow_bare_spawn` to the attribute"
                    ),
                );
            }
        }
        visit::visit_expr_call(self, call);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        use syn::punctuated::Punctuated;
        if let Ok(exprs) = mac.parse_body_with(Punctuated::<Expr, syn::Token![,]>::parse_terminated)
        {
            for expr in &exprs {
                self.visit_expr(expr);
            }
        }
    }
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
    fn every_bare_spawn_names_its_replacement() {
        for (call, instead) in [
            ("tokio::spawn(f)", "`context_runtime::spawn`"),
            ("::tokio::task::spawn(f)", "`context_runtime::spawn`"),
            (
                "tokio::task::spawn_blocking(f)",
                "`context_runtime::spawn_blocking`",
            ),
            (
                "task::spawn_blocking(f)",
                "`context_runtime::spawn_blocking`",
            ),
            ("std::thread::spawn(f)", "`context_runtime::thread::spawn`"),
        ] {
            let found = errors(&format!("{{ let h = {call}; }}"));
            assert_eq!(found.len(), 1, "{call}");
            assert!(found[0].contains(instead), "{found:?}");
        }
        assert_eq!(
            errors("{ let f = async { tokio::spawn(g) }; assert!(tokio::spawn(h).is_ok()); }")
                .len(),
            2
        );
    }

    #[test]
    fn the_safe_spawns_and_nested_items_pass() {
        assert!(errors("{ context_runtime::spawn(f); context_runtime::thread::spawn(g); spawn(h); thread::spawn(i); }").is_empty());
        assert!(errors("{ fn nested() { tokio::spawn(f); } }").is_empty());
    }
}
