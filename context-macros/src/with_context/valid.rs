//! The rules across the options of `#[with_context]`, and between them and
//! the function they annotate.

use proc_macro2::Span;
use syn::{Expr, LitStr, Signature};

use super::attr::Options;
use super::from_expr;
use crate::body::BodyOptions;
use crate::ctxt::Ctxt;

/// Where the context comes from.
pub(super) enum Origin {
    /// `from = "…"`: read from an expression rooted at an argument.
    From { expr: Expr, lit: LitStr },
    /// `fresh`, with an optional `source = "…"`.
    Fresh { source: Option<LitStr> },
}

/// The checked options.
pub(super) struct Args {
    pub(super) origin: Origin,
    pub(super) body: BodyOptions,
    pub(super) krate: Option<syn::Path>,
}

/// Checks every rule, reporting each broken one into `cx`; `None` when one is.
pub(super) fn check(options: Options, sig: &Signature, cx: &Ctxt) -> Option<Args> {
    let before = cx.error_count();
    if sig.asyncness.is_none() {
        cx.error_on(
            sig.fn_token,
            "`#[with_context]` needs an `async fn`",
            "make it `async fn`, or run sync code inside a context with `cx.scope_sync(|| …)`",
        );
    }

    // A malformed option may be the missing `from` or `fresh`: no knock-on error.
    match options.origins.as_slice() {
        [] if !options.malformed => cx.error_at(
            Span::call_site(),
            "`#[with_context]` needs to know where the context comes from",
            "read it from an argument with `#[with_context(from = \"job.ctx\")]`, or start a new one with `#[with_context(fresh)]`",
        ),
        [(first, _), rest @ ..] => {
            // The second of the two keys (a repeated key is reported as
            // given more than once).
            if let Some(&(_, second)) = rest.iter().find(|(key, _)| key != first) {
                cx.error_at(
                    second,
                    "`from` and `fresh` cannot be used together",
                    "keep `from = \"…\"` to continue the caller's context, or `fresh` to start a new one",
                );
            }
        }
        _ => {}
    }
    if let (Some(source), None) = (options.source.span(), options.fresh.span()) {
        cx.error_at(
            source,
            "`source` only applies to a `fresh` context",
            "add `fresh`, or remove `source`: a context read `from` an argument keeps its own",
        );
    }

    let from = options.from.get().and_then(|lit| {
        cx.record(from_expr::parse(lit, sig))
            .map(|expr| (expr, lit.clone()))
    });

    if cx.error_count() > before || options.malformed {
        return None;
    }
    let origin = match from {
        Some((expr, lit)) => Origin::From { expr, lit },
        None => Origin::Fresh {
            source: options.source.take(),
        },
    };
    Some(Args {
        origin,
        body: BodyOptions {
            local: options.local.get().is_some(),
            allow_bare_spawn: options.allow_bare_spawn.get().is_some(),
        },
        krate: options.krate.take(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(args: &str) -> Vec<String> {
        let sig: Signature = syn::parse_str("async fn f(job: Job)").unwrap();
        let cx = Ctxt::new();
        let options = Options::parse(args.parse().unwrap(), &cx);
        let _ = check(options, &sig, &cx);
        match cx.check() {
            Ok(()) => Vec::new(),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn valid_options() {
        assert!(errors(r#"from = "job.ctx""#).is_empty());
        assert!(errors(r#"fresh, source = "cron:x", crate = "ctxrt""#).is_empty());
        assert!(errors("fresh").is_empty());
        assert!(errors(r#"from = "job.ctx", local, allow_bare_spawn"#).is_empty());
    }

    #[test]
    fn every_independent_mistake_is_reported() {
        let found = errors(r#"from = "job", tenant = "t", from = "job", fresh"#);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].starts_with("unknown option `tenant`"), "{found:?}");
        assert!(
            found[0].contains("`from`, `fresh`, `source`, `local`, `allow_bare_spawn` or `crate`")
        );
        assert!(
            found[1].starts_with("`from` is given more than once"),
            "{found:?}"
        );
        assert!(found[2].starts_with("`from` and `fresh` cannot be used together"));
    }

    #[test]
    fn an_origin_is_required_and_source_needs_fresh() {
        assert!(errors("")[0].contains("where the context comes from"));
        assert!(errors(r#"from = "job", source = "x""#)[0].contains("only applies to a `fresh`"));
        assert!(errors("fresh = true")[0].contains("`fresh` takes no value"));
        assert!(errors("local = true")[0].contains("`local` takes no value"));
        assert_eq!(errors("from").len(), 1, "no knock-on error");
    }
}
