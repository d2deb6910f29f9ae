//! What can be seen of a function's return type from its syntax.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{ReturnType, Type};

/// Whether the return type is syntactically a `Result` (`Result<T, E>`,
/// `io::Result<T>`, `anyhow::Result<T>`…): the last segment of its path.
pub(crate) fn is_result(output: &ReturnType) -> bool {
    match output {
        ReturnType::Default => false,
        ReturnType::Type(_, ty) => is_result_type(ty),
    }
}

fn is_result_type(ty: &Type) -> bool {
    match ty {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "Result"),
        Type::Paren(paren) => is_result_type(&paren.elem),
        Type::Group(group) => is_result_type(&group.elem),
        _ => false,
    }
}

/// Whether the type can be written in a `let` (it has no `impl Trait`).
pub(crate) fn is_nameable(ty: &Type) -> bool {
    struct FindImpl(bool);
    impl<'ast> Visit<'ast> for FindImpl {
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.0 = true;
        }
        fn visit_type_infer(&mut self, _: &'ast syn::TypeInfer) {
            self.0 = true;
        }
    }
    let mut finder = FindImpl(false);
    finder.visit_type(ty);
    !finder.0
}

/// An unreachable `return` of the declared type, so an async block wrapping
/// the body infers the function's return type: `?` converts into it, and a
/// mismatch points at the user's signature. Empty when the type cannot be
/// named.
pub(crate) fn fake_return_edge(output: &ReturnType, block: &syn::Block) -> TokenStream {
    let (ty, span) = match output {
        ReturnType::Type(_, ty) if is_nameable(ty) => (ty.to_token_stream(), ty.span()),
        ReturnType::Type(..) => return TokenStream::new(),
        ReturnType::Default => (quote!(()), block.brace_token.span.open()),
    };
    quote_spanned! {span=>
        #[allow(
            unknown_lints,
            unreachable_code,
            clippy::diverging_sub_expression,
            clippy::empty_loop,
            clippy::let_unit_value,
            clippy::let_with_type_underscore,
            clippy::needless_return,
            clippy::unreachable
        )]
        if false {
            let __context_fake_return: #ty = loop {};
            return __context_fake_return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(ty: &str) -> ReturnType {
        syn::parse_str::<syn::Signature>(&format!("fn f() -> {ty}"))
            .unwrap()
            .output
    }

    #[test]
    fn results_are_recognised_by_their_last_segment() {
        for ty in [
            "Result<(), E>",
            "anyhow::Result<u8>",
            "std::io::Result<()>",
            "(Result<(), E>)",
        ] {
            assert!(is_result(&output(ty)), "{ty}");
        }
        for ty in [
            "Option<u8>",
            "()",
            "impl Future<Output = Result<(), E>>",
            "Results",
        ] {
            assert!(!is_result(&output(ty)), "{ty}");
        }
        assert!(!is_result(&ReturnType::Default));
    }

    #[test]
    fn impl_trait_is_not_nameable() {
        let ty = |s: &str| syn::parse_str::<Type>(s).unwrap();
        assert!(is_nameable(&ty("Result<&'a str, Box<dyn Error>>")));
        assert!(!is_nameable(&ty("impl Display")));
        assert!(!is_nameable(&ty("Result<impl Display, E>")));
    }
}
