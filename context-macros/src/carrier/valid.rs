//! The rules across fields: one role per field, one field per identity role.

use super::ast::{Input, Role};
use crate::ctxt::Ctxt;
use crate::diagnostic;

/// Checks every rule, reporting every broken one into `cx`.
pub(super) fn check(input: &Input<'_>, cx: &Ctxt) {
    let malformed = cx.error_count() > 0;
    let mut seen: Vec<(Role, &syn::Ident)> = Vec::new();
    for field in &input.fields {
        let Some(&(first, _)) = field.roles.first() else {
            continue;
        };
        for &(role, span) in &field.roles[1..] {
            let message = if role == first {
                format!(
                    "`#[carrier({})]` is given more than once on `{}`",
                    role.key(),
                    field.ident
                )
            } else {
                format!(
                    "field `{}` is already `#[carrier({})]`; a field has one role",
                    field.ident,
                    first.key()
                )
            };
            cx.push(diagnostic::error_at(
                span,
                &message,
                &format!("remove `{}`", role.key()),
            ));
        }
        let (role, span) = field.roles[0];
        if role == Role::Value {
            continue;
        }
        match seen.iter().find(|(r, _)| *r == role) {
            Some((_, earlier)) => cx.push(diagnostic::error_at(
                span,
                &format!(
                    "only one field can be `#[carrier({})]`, and `{earlier}` already is",
                    role.key()
                ),
                &format!(
                    "remove `#[carrier({})]` from one of `{earlier}` and `{}`",
                    role.key(),
                    field.ident
                ),
            )),
            None => seen.push((role, field.ident)),
        }
    }
    if !malformed && input.fields.iter().all(|field| field.roles.is_empty()) {
        cx.push(diagnostic::error_on(
            input.ident,
            "`#[derive(Carrier)]` needs at least one marked field",
            "mark the fields that carry the context with `#[carrier(trace)]`, `#[carrier(tenant)]`, `#[carrier(user)]` or `#[carrier(value)]`",
        ));
    }
}
