//! The options of `#[with_context(…)]` as written: each key at most once,
//! unknown keys and malformed values reported. The rules across options
//! are in `valid.rs`.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Expr, LitStr};

use crate::crate_path;
use crate::ctxt::Ctxt;
use crate::option_slot::OptionSlot;

pub(super) const VALID: &str = "`from`, `fresh`, `source`, `local`, `allow_bare_spawn` or `crate`";

/// The options as written, each at most once.
pub(super) struct Options {
    pub(super) from: OptionSlot<LitStr>,
    pub(super) fresh: OptionSlot<()>,
    pub(super) source: OptionSlot<LitStr>,
    pub(super) local: OptionSlot<()>,
    pub(super) allow_bare_spawn: OptionSlot<()>,
    pub(super) krate: OptionSlot<syn::Path>,
    /// Where `from` and `fresh` were written, in order.
    pub(super) origins: Vec<(&'static str, Span)>,
    /// Whether an option was malformed (it may be the missing origin).
    pub(super) malformed: bool,
}

impl Options {
    /// Parses every option, reporting the malformed ones into `cx`.
    pub(super) fn parse(args: TokenStream, cx: &Ctxt) -> Options {
        let mut options = Options {
            from: OptionSlot::new("from"),
            fresh: OptionSlot::new("fresh"),
            source: OptionSlot::new("source"),
            local: OptionSlot::new("local"),
            allow_bare_spawn: OptionSlot::new("allow_bare_spawn"),
            krate: OptionSlot::new("crate"),
            origins: Vec::new(),
            malformed: false,
        };
        let before = cx.error_count();
        let parser = syn::meta::parser(|meta| {
            let key = meta
                .path
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            let span = meta.path.span();
            let result = match key.as_str() {
                "from" => {
                    options.origins.push(("from", span));
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
                "fresh" => flag(
                    &meta,
                    &mut options.fresh,
                    "write `fresh` alone, and `source = \"…\"` to name where the work comes from",
                )
                .inspect(|()| options.origins.push(("fresh", span))),
                "local" => flag(
                    &meta,
                    &mut options.local,
                    "write `local` alone: the body's future may then be `!Send`",
                ),
                "allow_bare_spawn" => flag(
                    &meta,
                    &mut options.allow_bare_spawn,
                    "write `allow_bare_spawn` alone",
                ),
                _ => {
                    let error = crate::diagnostic::error_on(
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
            cx.record(result);
            Ok(())
        });
        cx.record(parser.parse2(args));
        options.malformed = cx.error_count() > before;
        options
    }
}

/// A key that takes no value.
fn flag(
    meta: &syn::meta::ParseNestedMeta<'_>,
    slot: &mut OptionSlot<()>,
    help: &str,
) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) || meta.input.peek(syn::token::Paren) {
        let name = quote::ToTokens::to_token_stream(&meta.path).to_string();
        let error = meta.error(format!("`{name}` takes no value\n= help: {help}"));
        skip_value(meta)?;
        return Err(error);
    }
    slot.set((), meta.path.span())
}

/// Consumes an unknown option's value so parsing can go on to the next one.
pub(crate) fn skip_value(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|nested| skip_value(&nested))?;
    }
    Ok(())
}
