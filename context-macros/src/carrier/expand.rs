//! The `ContextSource` impl of a payload.

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{DeriveInput, Generics, Type};

use super::ast::{Input, Role};
use crate::{crate_path, respan};

/// `impl ContextSource for Payload`, reading each marked field.
pub(super) fn source_impl(input: &Input<'_>) -> TokenStream {
    let private = crate_path::private(input.krate.as_ref());
    let ident = input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let mut predicates: Vec<TokenStream> = where_clause
        .map(|clause| clause.predicates.iter().map(|p| quote!(#p)).collect())
        .unwrap_or_default();

    // A payload whose tenant field cannot be invalid (a `TenantId`) cannot
    // fail: its error is the tenant field's (`Infallible`), and a handler
    // reading it need not return a `Result`. The trace never fails (the
    // safety net gives a fresh one).
    let tenant = input
        .fields
        .iter()
        .find(|f| f.roles.first().map(|r| r.0) == Some(Role::Tenant));
    let error = match tenant.map(|field| field.ty) {
        None => quote!(::core::convert::Infallible),
        Some(ty) if mentions_type_param(ty, input.generics) => {
            quote!(<#ty as #private::TenantField>::Error)
        }
        Some(ty) if is_tenant_id(ty) => quote!(::core::convert::Infallible),
        Some(_) => quote!(#private::CarrierError),
    };

    let mut calls = Vec::new();
    for role in [Role::Trace, Role::Tenant, Role::User, Role::Value] {
        for field in input
            .fields
            .iter()
            .filter(|f| f.roles.first().map(|r| r.0) == Some(role))
        {
            let name = field.ident;
            let ty = field.ty;
            // Errors about the field's type land on it; the tokens stay
            // marked as generated.
            let (call, bound) = match role {
                Role::Trace => (
                    quote!(.trace(#private::TraceField::read_trace(&self.#name))),
                    quote!(#private::TraceField),
                ),
                Role::Tenant => (
                    quote!(.tenant(#private::TenantField::read_tenant(&self.#name)?)),
                    quote!(#private::TenantField),
                ),
                Role::User => (
                    quote!(.user(#private::UserField::read_user(&self.#name))),
                    quote!(#private::UserField),
                ),
                Role::Value => (
                    quote!(.value(::core::clone::Clone::clone(&self.#name))),
                    quote!(
                        ::core::clone::Clone
                            + ::core::marker::Send
                            + ::core::marker::Sync
                            + 'static
                    ),
                ),
            };
            calls.push(respan::located_at(call, ty.span()));
            if mentions_type_param(ty, input.generics) {
                predicates.push(quote!(#ty: #bound));
            }
        }
    }

    quote! {
        const _: () = {
            #[automatically_derived]
            impl #impl_generics #private::ContextSource for #ident #ty_generics
            where
                #(#predicates,)*
            {
                type Error = #error;

                fn to_context(
                    &self,
                ) -> ::core::result::Result<#private::Context, Self::Error> {
                    ::core::result::Result::Ok(#private::Derived::new() #(#calls)* .build())
                }
            }
        };
    }
}

/// After an error: an impl with the right shape, so uses of the payload as
/// a source do not add errors of their own.
pub(super) fn fallback(input: &DeriveInput) -> TokenStream {
    let private = crate_path::private(None);
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #impl_generics #private::ContextSource for #ident #ty_generics #where_clause {
                type Error = #private::CarrierError;

                fn to_context(
                    &self,
                ) -> ::core::result::Result<#private::Context, #private::CarrierError> {
                    ::core::unreachable!()
                }
            }
        };
    }
}

/// Whether `ty` is `TenantId` or `Option<TenantId>` (by the last segment).
fn is_tenant_id(ty: &Type) -> bool {
    let Type::Path(path) = ty else {
        return false;
    };
    let Some(last) = path.path.segments.last() else {
        return false;
    };
    if last.ident == "TenantId" {
        return true;
    }
    match &last.arguments {
        syn::PathArguments::AngleBracketed(args) if last.ident == "Option" => {
            matches!(args.args.first(), Some(syn::GenericArgument::Type(inner)) if is_tenant_id(inner))
        }
        _ => false,
    }
}

/// Whether `ty` names one of the struct's type parameters.
fn mentions_type_param(ty: &Type, generics: &Generics) -> bool {
    struct Find<'g> {
        params: Vec<&'g syn::Ident>,
        found: bool,
    }
    impl<'ast> Visit<'ast> for Find<'_> {
        fn visit_path(&mut self, path: &'ast syn::Path) {
            if let Some(first) = path.segments.first() {
                if self.params.iter().any(|p| first.ident == **p) {
                    self.found = true;
                }
            }
            syn::visit::visit_path(self, path);
        }
    }
    let params: Vec<&syn::Ident> = generics.type_params().map(|p| &p.ident).collect();
    if params.is_empty() {
        return false;
    }
    let mut find = Find {
        params,
        found: false,
    };
    find.visit_type(ty);
    find.found
}
