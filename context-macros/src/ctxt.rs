//! The error collector every macro reports into.
//!
//! Like serde_derive's `Ctxt`: errors are pushed as they are found, and the
//! collector must be consumed with [`Ctxt::check`]; dropping it unchecked
//! panics, so no error can be lost on the way to the user.

use std::cell::RefCell;
use std::thread;

use proc_macro2::Span;
use quote::ToTokens;

use crate::diagnostic;

/// Collects independent errors, to be reported all at once.
pub(crate) struct Ctxt {
    /// `None` once checked.
    errors: RefCell<Option<Vec<syn::Error>>>,
}

impl Ctxt {
    pub(crate) fn new() -> Self {
        Ctxt {
            errors: RefCell::new(Some(Vec::new())),
        }
    }

    /// An error on `tokens` with a hint of what to write instead.
    pub(crate) fn error_on(&self, tokens: impl ToTokens, message: &str, help: &str) {
        self.push(diagnostic::error_on(tokens, message, help));
    }

    /// An error at `span` with a hint of what to write instead.
    pub(crate) fn error_at(&self, span: Span, message: &str, help: &str) {
        self.push(diagnostic::error_at(span, message, help));
    }

    /// Adds an error (a parse error, or one built elsewhere).
    pub(crate) fn push(&self, error: syn::Error) {
        self.errors
            .borrow_mut()
            .as_mut()
            .expect("the error collector was already checked")
            .push(error);
    }

    /// Adds the error of `result`, if any.
    pub(crate) fn record<T>(&self, result: syn::Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.push(error);
                None
            }
        }
    }

    /// How many errors were reported so far.
    pub(crate) fn error_count(&self) -> usize {
        self.errors.borrow().as_ref().map_or(0, Vec::len)
    }

    /// Consumes the collector: every error found, as one.
    pub(crate) fn check(self) -> syn::Result<()> {
        let errors = self
            .errors
            .borrow_mut()
            .take()
            .expect("the error collector was already checked");
        diagnostic::combine(errors)
    }
}

impl Drop for Ctxt {
    fn drop(&mut self) {
        if !thread::panicking() && self.errors.borrow().is_some() {
            panic!("an error collector was dropped without `check`: its errors would be lost");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_reports_every_error_in_order() {
        let cx = Ctxt::new();
        cx.error_at(Span::call_site(), "first", "a");
        cx.push(syn::Error::new(Span::call_site(), "second"));
        assert_eq!(cx.error_count(), 2);
        let errors: Vec<String> = cx
            .check()
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(errors, ["first\n= help: a", "second"]);
        assert!(Ctxt::new().check().is_ok());
    }

    #[test]
    #[should_panic(expected = "dropped without `check`")]
    fn dropping_unchecked_panics() {
        let cx = Ctxt::new();
        cx.error_at(Span::call_site(), "lost", "never seen");
        drop(cx);
    }
}
