//! `#[requires_tenant]`: the body does not run without a tenant in the
//! current context; the function returns `Err(TenantRequired.into())` first.

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::parse::Parser;
use syn::{Attribute, ItemFn, ReturnType};

use syn::spanned::Spanned;

use crate::option_slot::OptionSlot;
use crate::{ambient, crate_path, diagnostic, respan, return_type};

/// The checked options of one `#[requires_tenant]`.
pub(crate) struct TenantCheck {
    krate: Option<syn::Path>,
    /// The error type `E` of `Result<_, E>`, where a missing
    /// `From<TenantRequired>` is reported.
    error_span: Span,
}

/// Parses, validates and expands `#[requires_tenant(args)] item`.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut item: ItemFn = syn::parse2(item).map_err(|_| {
        diagnostic::error_at(
            Span::call_site(),
            "`#[requires_tenant]` only applies to a function with a body",
            "put it on the function whose body needs a tenant",
        )
    })?;
    let check = parse(args, &item)?;
    if already_scoped(&item.block) {
        return Ok(item.into_token_stream());
    }

    // A later `#[with_context]` reads the context, wraps this body (the check
    // included) in its scope, and checks the body for ambient sets itself.
    let later_scope = item.attrs.iter().any(|attr| is_attr(attr, "with_context"));
    let ambient = if later_scope {
        None
    } else {
        ambient::check(&item.block).err()
    };

    item.block
        .stmts
        .insert(0, syn::parse2(check.statement(None))?);
    let mut expanded = item.into_token_stream();
    if let Some(ambient) = ambient {
        expanded.extend(ambient.to_compile_error());
    }
    Ok(expanded)
}

/// Parses the options and checks the function returns a `Result`.
fn parse(args: TokenStream, item: &ItemFn) -> syn::Result<TenantCheck> {
    let mut errors = Vec::new();
    let mut krate = OptionSlot::new("crate");
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") {
            let span = meta.path.span();
            let lit = meta.value()?.parse()?;
            if let Err(error) = crate_path::parse(&lit).and_then(|path| krate.set(path, span)) {
                errors.push(error);
            }
            Ok(())
        } else {
            Err(diagnostic::error_on(
                &meta.path,
                &format!(
                    "unknown option `{}` for `#[requires_tenant]`",
                    meta.path.to_token_stream().to_string().replace(' ', "")
                ),
                "the only option is `crate = \"…\"`; write `#[requires_tenant]` alone otherwise",
            ))
        }
    });
    if let Err(error) = parser.parse2(args) {
        errors.push(error);
    }
    if !return_type::is_result(&item.sig.output) {
        let message = "`#[requires_tenant]` needs a function that returns `Result<_, E>` with `E: From<TenantRequired>`";
        let help = "return a `Result` whose error type can hold `context_runtime::TenantRequired`";
        errors.push(match &item.sig.output {
            ReturnType::Type(_, ty) => diagnostic::error_on(ty, message, help),
            ReturnType::Default => diagnostic::error_on(&item.sig, message, help),
        });
    }
    diagnostic::combine(errors)?;
    Ok(TenantCheck {
        krate: krate.take(),
        error_span: error_type_span(&item.sig.output),
    })
}

/// The span of `E` in `-> Result<T, E>`, or of the whole return type.
fn error_type_span(output: &ReturnType) -> Span {
    let ReturnType::Type(_, ty) = output else {
        return Span::call_site();
    };
    if let syn::Type::Path(path) = &**ty {
        if let Some(syn::PathArguments::AngleBracketed(args)) =
            path.path.segments.last().map(|segment| &segment.arguments)
        {
            let mut types = args.args.iter().filter_map(|arg| match arg {
                syn::GenericArgument::Type(ty) => Some(ty),
                _ => None,
            });
            if let (Some(_), Some(error)) = (types.next(), types.next()) {
                return error.span();
            }
        }
    }
    ty.span()
}

impl TenantCheck {
    /// `if let Err(e) = require_tenant() { return Err(From::from(e)); }`,
    /// reaching the runtime through this attribute's `crate`, else `krate`.
    pub(crate) fn statement(&self, krate: Option<&syn::Path>) -> TokenStream {
        let private = crate_path::private(self.krate.as_ref().or(krate));
        let convert = respan::located_at(
            quote!(::core::convert::From::from(__context_err)),
            self.error_span,
        );
        quote! {
            if let ::core::result::Result::Err(__context_err) = #private::require_tenant() {
                return ::core::result::Result::Err(#convert);
            }
        }
    }
}

/// The check of a `#[requires_tenant]` written after `#[with_context]`, which
/// places it inside its scope itself.
///
/// The attribute stays on the item (so its path is used as written): when it
/// expands it finds the body already scoped and leaves it as it is. An
/// invalid one reports its own errors then; the result is `Some(Err(_))`.
pub(crate) fn later(item: &ItemFn) -> Option<syn::Result<TenantCheck>> {
    let attr = item
        .attrs
        .iter()
        .find(|attr| is_attr(attr, "requires_tenant"))?;
    let args = match &attr.meta {
        syn::Meta::Path(_) => Ok(TokenStream::new()),
        syn::Meta::List(list) => Ok(list.tokens.clone()),
        syn::Meta::NameValue(meta) => {
            Err(syn::Error::new_spanned(meta, "malformed `requires_tenant`"))
        }
    };
    Some(args.and_then(|args| parse(args, item)))
}

/// Whether `block` is a body that `#[with_context]` already wrapped, with the
/// tenant check inside its scope (it starts with `let __context_cx = …;`).
fn already_scoped(block: &syn::Block) -> bool {
    match block.stmts.first() {
        Some(syn::Stmt::Local(local)) => {
            matches!(&local.pat, syn::Pat::Ident(pat) if pat.ident == "__context_cx")
        }
        _ => false,
    }
}

/// Whether `attr` is the attribute macro `name` (by the last segment of its path).
fn is_attr(attr: &Attribute, name: &str) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == name)
}
