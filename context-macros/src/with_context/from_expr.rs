//! The `from = "…"` expression and its root, which must be an argument.

use syn::{Expr, FnArg, LitStr, Signature};

use crate::diagnostic;

/// Parses `lit` as an expression whose root is one of `sig`'s arguments.
pub(super) fn parse(lit: &LitStr, sig: &Signature) -> syn::Result<Expr> {
    let expr: Expr = lit.parse().map_err(|error| {
        diagnostic::error_on(
            lit,
            &format!("`from` must be an expression: {error}"),
            "name an argument or a path into one, like `from = \"job.data.ctx\"` or `from = \"self.ctx\"`",
        )
    })?;
    let arguments = argument_names(sig);
    let listed = if arguments.is_empty() {
        "this function has no arguments; start a new context with `fresh` instead".to_owned()
    } else {
        format!("the arguments are {}", list(&arguments))
    };
    match root(&expr) {
        Some(root) if arguments.contains(&root) => Ok(expr),
        Some(root) => Err(diagnostic::error_on(
            lit,
            &format!(
                "`from` must start with an argument of this function, and `{root}` is not one"
            ),
            &listed,
        )),
        None => Err(diagnostic::error_on(
            lit,
            "`from` must start with an argument of this function",
            &listed,
        )),
    }
}

/// The leftmost name of `job.data.ctx`, `&job.ctx`, `job.ctx()`, `self.ctx`…
pub(super) fn root(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Path(path) if path.qself.is_none() => {
            let ident = path.path.get_ident()?;
            Some(ident.to_string())
        }
        Expr::Field(field) => root(&field.base),
        Expr::MethodCall(call) => root(&call.receiver),
        Expr::Reference(reference) => root(&reference.expr),
        Expr::Paren(paren) => root(&paren.expr),
        Expr::Group(group) => root(&group.expr),
        Expr::Index(index) => root(&index.expr),
        Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Deref(_),
            expr,
            ..
        }) => root(expr),
        _ => None,
    }
}

/// Every name the arguments bind, `self` first.
pub(super) fn argument_names(sig: &Signature) -> Vec<String> {
    let mut names = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(_) => names.push("self".to_owned()),
            FnArg::Typed(typed) => {
                let mut idents = Vec::new();
                crate::ambient::bindings(&typed.pat, &mut idents);
                names.extend(idents.into_iter().map(ToString::to_string));
            }
        }
    }
    names
}

fn list(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_of(expr: &str) -> Option<String> {
        root(&syn::parse_str(expr).unwrap())
    }

    #[test]
    fn the_root_is_the_leftmost_name() {
        assert_eq!(root_of("job.data.ctx").as_deref(), Some("job"));
        assert_eq!(root_of("self.ctx").as_deref(), Some("self"));
        assert_eq!(root_of("job.ctx()").as_deref(), Some("job"));
        assert_eq!(root_of("&job.ctx").as_deref(), Some("job"));
        assert_eq!(root_of("(*job).headers[0]").as_deref(), Some("job"));
        assert_eq!(root_of("headers").as_deref(), Some("headers"));
        assert_eq!(root_of("crate::CTX"), None);
        assert_eq!(root_of("make()"), None);
        assert_eq!(root_of("\"ctx\""), None);
    }

    #[test]
    fn argument_names_include_self_and_pattern_bindings() {
        let sig: Signature =
            syn::parse_str("async fn f(&self, mut job: Job, (a, b): (u8, u8), Wrap(w): Wrap)")
                .unwrap();
        assert_eq!(argument_names(&sig), ["self", "job", "a", "b", "w"]);
    }

    #[test]
    fn a_root_that_is_not_an_argument_names_the_arguments() {
        let sig: Signature = syn::parse_str("async fn f(job: Job, n: u8)").unwrap();
        let lit: LitStr = syn::parse_str("\"ctx.carrier\"").unwrap();
        let error = parse(&lit, &sig).unwrap_err().to_string();
        assert!(error.contains("`ctx` is not one"), "{error}");
        assert!(error.contains("the arguments are `job` and `n`"), "{error}");
        let lit: LitStr = syn::parse_str("\"job.ctx\"").unwrap();
        assert!(parse(&lit, &sig).is_ok());
        let lit: LitStr = syn::parse_str("\"job.\"").unwrap();
        assert!(parse(&lit, &sig)
            .unwrap_err()
            .to_string()
            .contains("must be an expression"));
    }
}
