//! The payload as the derive sees it: its fields and their roles.

use proc_macro2::Span;
use syn::{Data, DeriveInput, Fields, Generics, Ident, Type};

use syn::spanned::Spanned;

use crate::ctxt::Ctxt;
use crate::option_slot::OptionSlot;
use crate::{crate_path, diagnostic};

/// What a marked field brings to the context.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Trace,
    Tenant,
    User,
    Value,
}

impl Role {
    fn from_key(key: &str) -> Option<Role> {
        match key {
            "trace" => Some(Role::Trace),
            "tenant" => Some(Role::Tenant),
            "user" => Some(Role::User),
            "value" => Some(Role::Value),
            _ => None,
        }
    }

    pub(super) fn key(self) -> &'static str {
        match self {
            Role::Trace => "trace",
            Role::Tenant => "tenant",
            Role::User => "user",
            Role::Value => "value",
        }
    }
}

pub(super) struct Input<'a> {
    pub(super) ident: &'a Ident,
    pub(super) generics: &'a Generics,
    pub(super) fields: Vec<Field<'a>>,
    pub(super) krate: Option<syn::Path>,
}

pub(super) struct Field<'a> {
    pub(super) ident: &'a Ident,
    pub(super) ty: &'a Type,
    /// Every role written on the field, with the span of its key.
    pub(super) roles: Vec<(Role, Span)>,
}

impl<'a> Input<'a> {
    /// Reads the struct and its `#[carrier(…)]` attributes, reporting
    /// malformed ones into `cx`. `None` (with an error) for a payload that is
    /// not a struct with named fields.
    pub(super) fn from_syn(input: &'a DeriveInput, cx: &Ctxt) -> Option<Input<'a>> {
        let help = "derive it on a struct, and mark the fields that carry the context with `#[carrier(trace)]`, `#[carrier(tenant)]`, `#[carrier(user)]` or `#[carrier(value)]`";
        let message = "`#[derive(Carrier)]` is only for structs with named fields";
        let named = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => named,
                Fields::Unnamed(unnamed) => {
                    cx.error_on(unnamed, message, help);
                    return None;
                }
                Fields::Unit => {
                    cx.error_on(&input.ident, message, help);
                    return None;
                }
            },
            Data::Enum(data) => {
                cx.error_on(data.enum_token, message, help);
                return None;
            }
            Data::Union(data) => {
                cx.error_on(data.union_token, message, help);
                return None;
            }
        };

        let krate = container_options(input, cx);
        let mut fields = Vec::new();
        for field in &named.named {
            let Some(ident) = &field.ident else { continue };
            fields.push(Field {
                ident,
                ty: &field.ty,
                roles: field_roles(&field.attrs, cx),
            });
        }
        let model = Input {
            ident: &input.ident,
            generics: &input.generics,
            fields,
            krate,
        };
        Some(model)
    }
}

/// `#[carrier(crate = "…")]` on the struct.
fn container_options(input: &DeriveInput, cx: &Ctxt) -> Option<syn::Path> {
    let mut krate = OptionSlot::new("crate");
    for attr in input
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("carrier"))
    {
        let result = attr.parse_nested_meta(|meta| {
            let span = meta.path.span();
            if meta.path.is_ident("crate") {
                let lit = meta.value()?.parse()?;
                cx.record(crate_path::parse(&lit).and_then(|path| krate.set(path, span)));
                return Ok(());
            }
            let key = key_of(&meta.path);
            let error = match Role::from_key(&key) {
                Some(role) => diagnostic::error_on(
                    &meta.path,
                    &format!("`{key}` marks a field, not the struct"),
                    &format!("put `#[carrier({})]` on the field that holds it", role.key()),
                ),
                None => diagnostic::error_on(
                    &meta.path,
                    &format!("unknown `carrier` option `{key}` on a struct"),
                    "the only option on the struct is `crate = \"…\"`; fields take `trace`, `tenant`, `user` or `value`",
                ),
            };
            Err(error)
        });
        cx.record(result);
    }
    krate.take()
}

/// The roles in a field's `#[carrier(…)]` attributes.
fn field_roles(attrs: &[syn::Attribute], cx: &Ctxt) -> Vec<(Role, Span)> {
    let mut roles = Vec::new();
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("carrier")) {
        let result = attr.parse_nested_meta(|meta| {
            let key = key_of(&meta.path);
            let Some(role) = Role::from_key(&key) else {
                return Err(diagnostic::error_on(
                    &meta.path,
                    &format!("unknown `carrier` field attribute `{key}`"),
                    "a field is marked `trace`, `tenant`, `user` or `value` (and the struct takes `crate = \"…\"`)",
                ));
            };
            if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
                return Err(meta.error(format!(
                    "`{key}` takes no value\n= help: write `#[carrier({key})]`"
                )));
            }
            roles.push((role, meta.path.span()));
            Ok(())
        });
        cx.record(result);
    }
    roles
}

fn key_of(path: &syn::Path) -> String {
    quote::ToTokens::to_token_stream(path)
        .to_string()
        .replace(' ', "")
}
