//! The options of `#[with_context(…)]`: parsed, then checked against the
//! function they annotate.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::{Expr, LitStr, Signature};

use super::from_expr;
use syn::spanned::Spanned;

use crate::option_slot::OptionSlot;
use crate::{crate_path, diagnostic};

const VALID: &str = "`from`, `fresh`, `source` or `crate`";

/// The options as written, each at most once.
pub(super) struct Options {
    from: OptionSlot<LitStr>,
    fresh: OptionSlot<()>,
    source: OptionSlot<LitStr>,
    krate: OptionSlot<syn::Path>,
    /// The key of the second of `from` and `fresh`, when both are given.
    conflict: Option<Span>,
}

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
    pub(super) krate: Option<syn::Path>,
}

impl Options {
    /// Parses every option; the malformed ones are returned as errors, to be
    /// reported with those of [`validate`].
    pub(super) fn parse(args: TokenStream) -> (Options, Vec<syn::Error>) {
        let mut options = Options {
            from: OptionSlot::new("from"),
            fresh: OptionSlot::new("fresh"),
            source: OptionSlot::new("source"),
            krate: OptionSlot::new("crate"),
            conflict: None,
        };
        let mut errors = Vec::new();
        let parser = syn::meta::parser(|meta| {
            let key = meta
                .path
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            let span = meta.path.span();
            let result = match key.as_str() {
                "from" => {
                    if options.fresh.get().is_some() {
                        options.conflict.get_or_insert(span);
                    }
                    meta.value()?
                        .parse()
                        .and_then(|lit| options.from.set(lit, span))
                }
                "source" => meta
                    .value()?
                    .parse()
                    .and_then(|lit| options.source.set(lit, span)),
                "crate" => meta
                    .value()?
                    .parse()
                    .and_then(|lit| crate_path::parse(&lit))
                    .and_then(|path| options.krate.set(path, span)),
                "fresh" => {
                    if meta.input.peek(syn::Token![=]) || meta.input.peek(syn::token::Paren) {
                        let error = meta.error("`fresh` takes no value\n= help: write `fresh` alone, and `source = \"…\"` to name where the work comes from");
                        skip_value(&meta)?;
                        Err(error)
                    } else {
                        if options.from.get().is_some() {
                            options.conflict.get_or_insert(span);
                        }
                        options.fresh.set((), span)
                    }
                }
                _ => {
                    let error = diagnostic::error_on(
                        &meta.path,
                        &format!(
                            "unknown option `{}` for `#[with_context]`",
                            quote::ToTokens::to_token_stream(&meta.path)
                                .to_string()
                                .replace(' ', "")
                        ),
                        &format!("the options are {VALID}"),
                    );
                    skip_value(&meta)?;
                    Err(error)
                }
            };
            if let Err(error) = result {
                errors.push(error);
            }
            Ok(())
        });
        if let Err(error) = parser.parse2(args) {
            errors.push(error);
        }
        (options, errors)
    }
}

/// Consumes an unknown option's value so parsing can go on to the next one.
fn skip_value(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|nested| skip_value(&nested))?;
    }
    Ok(())
}

/// Checks the options together, and `from` against the function's arguments.
pub(super) fn validate(
    options: Options,
    mut errors: Vec<syn::Error>,
    sig: &Signature,
) -> syn::Result<Args> {
    if sig.asyncness.is_none() {
        errors.push(diagnostic::error_on(
            sig.fn_token,
            "`#[with_context]` needs an `async fn`",
            "make it `async fn`, or run sync code inside a context with `cx.scope_sync(|| …)`",
        ));
    }

    // A malformed option may be the missing `from` or `fresh`: no knock-on error.
    let malformed = !errors.is_empty();
    let fresh_span = options.fresh.span();
    match (options.from.span(), fresh_span, options.conflict) {
        (None, None, _) if !malformed => errors.push(diagnostic::error_at(
            Span::call_site(),
            "`#[with_context]` needs to know where the context comes from",
            "read it from an argument with `#[with_context(from = \"job.ctx\")]`, or start a new one with `#[with_context(fresh)]`",
        )),
        (_, _, Some(second)) => {
            errors.push(diagnostic::error_at(
                second,
                "`from` and `fresh` cannot be used together",
                "keep `from = \"…\"` to continue the caller's context, or `fresh` to start a new one",
            ));
        }
        _ => {}
    }
    if let (Some(source), None) = (options.source.span(), fresh_span) {
        errors.push(diagnostic::error_at(
            source,
            "`source` only applies to a `fresh` context",
            "add `fresh`, or remove `source`: a context read `from` an argument keeps its own",
        ));
    }

    let from = options
        .from
        .get()
        .map(|lit| (from_expr::parse(lit, sig), lit.clone()));
    let mut origin = None;
    match from {
        Some((Ok(expr), lit)) => origin = Some(Origin::From { expr, lit }),
        Some((Err(error), _)) => errors.push(error),
        None => {}
    }

    diagnostic::combine(errors)?;
    let origin = match origin {
        Some(origin) => origin,
        None => Origin::Fresh {
            source: options.source.take(),
        },
    };
    Ok(Args {
        origin,
        krate: options.krate.take(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(args: &str) -> Vec<String> {
        let sig: Signature = syn::parse_str("async fn f(job: Job)").unwrap();
        let (options, errors) = Options::parse(args.parse().unwrap());
        let checked = validate(options, errors, &sig);
        match checked {
            Ok(_) => Vec::new(),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn valid_options() {
        assert!(errors(r#"from = "job.ctx""#).is_empty());
        assert!(errors(r#"fresh, source = "cron:x", crate = "ctxrt""#).is_empty());
        assert!(errors("fresh").is_empty());
    }

    #[test]
    fn every_independent_mistake_is_reported() {
        let found = errors(r#"from = "job", tenant = "t", from = "job", fresh"#);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].starts_with("unknown option `tenant`"), "{found:?}");
        assert!(found[0].contains("`from`, `fresh`, `source` or `crate`"));
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
        assert_eq!(errors("from").len(), 1, "no knock-on error");
    }
}
