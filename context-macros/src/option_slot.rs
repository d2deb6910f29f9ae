//! One macro option, set at most once.

use proc_macro2::Span;

use crate::diagnostic;

/// Holds one option's value; a second occurrence is an error on the second one.
pub(crate) struct OptionSlot<T> {
    name: &'static str,
    value: Option<(T, Span)>,
}

impl<T> OptionSlot<T> {
    pub(crate) fn new(name: &'static str) -> Self {
        OptionSlot { name, value: None }
    }

    /// Records the option given at `span` (its key), unless it was given before.
    pub(crate) fn set(&mut self, value: T, span: Span) -> syn::Result<()> {
        if self.value.is_some() {
            let name = self.name;
            return Err(diagnostic::error_at(
                span,
                &format!("`{name}` is given more than once"),
                &format!("remove this `{name}`"),
            ));
        }
        self.value = Some((value, span));
        Ok(())
    }

    pub(crate) fn get(&self) -> Option<&T> {
        self.value.as_ref().map(|(value, _)| value)
    }

    /// Where the option's key was written.
    pub(crate) fn span(&self) -> Option<Span> {
        self.value.as_ref().map(|&(_, span)| span)
    }

    pub(crate) fn take(self) -> Option<T> {
        self.value.map(|(value, _)| value)
    }
}
