//! `#[requires_tenant]`: the body does not run without a tenant in the
//! current context; the function returns `Err(TenantRequired.into())` first.

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{ItemFn, ReturnType, Stmt};

use crate::body::BodyOptions;
use crate::ctxt::Ctxt;
use crate::option_slot::OptionSlot;
use crate::{body, crate_path, diagnostic, respan, return_type, stack};

/// The checked options of one `#[requires_tenant]`.
pub(crate) struct TenantCheck {
    krate: Option<syn::Path>,
    body: BodyOptions,
    /// The error type `E` of `Result<_, E>`, where a missing
    /// `From<TenantRequired>` is reported.
    error_span: Span,
}

/// Parses, validates and expands `#[requires_tenant(args)] item`.
///
/// The check is always added: after the marker of a `#[with_context]` that
/// expanded first (inside its scope), else first in the body, which a later
/// `#[with_context]` wraps whole in its scope (see `stack.rs`).
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut item: ItemFn = syn::parse2(item).map_err(|_| {
        diagnostic::error_at(
            Span::call_site(),
            "`#[requires_tenant]` only applies to a function with a body",
            "put it on the function whose body needs a tenant",
        )
    })?;
    let cx = Ctxt::new();
    let check = parse(args, &item, &cx);
    let statement = match &check {
        Some(check) => Some(syn::parse2::<Stmt>(check.statement())?),
        None => None,
    };

    let scoped = match &statement {
        Some(statement) => stack::insert_after_marker(&mut item.block, statement),
        None => stack::contains_marker(&item.block),
    };
    if scoped {
        // A `#[with_context]` expanded first: it checked the body, and the
        // tenant check now sits first inside its scope.
        let mut tokens = item.into_token_stream();
        if let Err(errors) = cx.check() {
            tokens.extend(errors.to_compile_error());
        }
        return Ok(tokens);
    }

    let mut options = check.as_ref().map(|c| c.body).unwrap_or_default();
    options.merge_flags(&stack::later_flags(&item.attrs, "with_context"));
    let clean = body::check(&item.block, options, &cx);
    let errors = cx.check().err();
    let mut tokens = match (check, statement) {
        (Some(check), Some(statement)) => {
            let private = crate_path::private(check.krate.as_ref());
            let marker = stack::marker(&private);
            let block = &item.block;
            let body = match item.sig.asyncness {
                Some(asyncness) if clean => {
                    let fake_return = return_type::fake_return_edge(&item.sig.output, block);
                    let future = body::send_checked(
                        &private,
                        quote!(async move { #fake_return #block }),
                        asyncness.span,
                        options,
                    );
                    quote!(#future.await)
                }
                _ => quote!(#block),
            };
            item.block = syn::parse2(quote!({
                #marker
                #statement
                #body
            }))?;
            item.into_token_stream()
        }
        _ => stack::marked(item, None),
    };
    if let Some(errors) = errors {
        tokens.extend(errors.to_compile_error());
    }
    Ok(tokens)
}

/// Parses the options and checks the function returns a `Result`.
fn parse(args: TokenStream, item: &ItemFn, cx: &Ctxt) -> Option<TenantCheck> {
    let before = cx.error_count();
    let mut krate = OptionSlot::new("crate");
    let mut local = OptionSlot::new("local");
    let mut allow_bare_spawn = OptionSlot::new("allow_bare_spawn");
    let parser = syn::meta::parser(|meta| {
        let span = meta.path.span();
        let result = if meta.path.is_ident("crate") {
            let lit = meta.value()?.parse()?;
            crate_path::parse(&lit).and_then(|path| krate.set(path, span))
        } else if meta.path.is_ident("local") && bare(&meta) {
            local.set((), span)
        } else if meta.path.is_ident("allow_bare_spawn") && bare(&meta) {
            allow_bare_spawn.set((), span)
        } else {
            let error = diagnostic::error_on(
                &meta.path,
                &format!(
                    "unknown option `{}` for `#[requires_tenant]`",
                    meta.path.to_token_stream().to_string().replace(' ', "")
                ),
                "the options are `local`, `allow_bare_spawn` and `crate = \"…\"`; write `#[requires_tenant]` alone otherwise",
            );
            crate::with_context::skip_value(&meta)?;
            Err(error)
        };
        cx.record(result);
        Ok(())
    });
    cx.record(parser.parse2(args));
    if !return_type::is_result(&item.sig.output) {
        let message = "`#[requires_tenant]` needs a function that returns `Result<_, E>` with `E: From<TenantRequired>`";
        let help = "return a `Result` whose error type can hold `context_runtime::TenantRequired`";
        match &item.sig.output {
            ReturnType::Type(_, ty) => cx.error_on(ty, message, help),
            ReturnType::Default => cx.error_on(&item.sig, message, help),
        }
    }
    if cx.error_count() > before {
        return None;
    }
    Some(TenantCheck {
        krate: krate.take(),
        body: BodyOptions {
            local: local.get().is_some(),
            allow_bare_spawn: allow_bare_spawn.get().is_some(),
        },
        error_span: error_type_span(&item.sig.output),
    })
}

/// Whether the key has no value.
fn bare(meta: &syn::meta::ParseNestedMeta<'_>) -> bool {
    meta.input.is_empty() || meta.input.peek(syn::Token![,])
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
    /// `if let Err(e) = require_tenant() { return Err(From::from(e)); }`.
    fn statement(&self) -> TokenStream {
        let private = crate_path::private(self.krate.as_ref());
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
