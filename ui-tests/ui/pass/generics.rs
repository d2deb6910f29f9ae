// Generics, a where-clause, `impl Trait` arguments, a generic source and a
// lifetime in the return type.

use std::fmt::Display;

use context_runtime::{with_context, Carrier, CarrierError, Context, ContextSource};

#[with_context(from = "source")]
async fn describe<S, T>(source: S, item: T, label: impl Display + Send) -> Result<String, S::Error>
where
    S: ContextSource,
    T: Display + Send,
{
    Ok(format!(
        "{label} {item} {}",
        context_runtime::tenant().is_ok()
    ))
}

#[with_context(from = "cx")]
async fn first_word<'a>(cx: &Context, text: &'a str) -> &'a str {
    assert!(context_runtime::current().unwrap().ptr_eq(cx));
    text.split(' ').next().unwrap_or(text)
}

// A return type that cannot be named gets no fake return edge.
#[with_context(fresh, source = "opaque")]
async fn opaque() -> impl Display {
    context_runtime::current()
        .unwrap()
        .source()
        .unwrap()
        .to_owned()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let carrier = Carrier::from_json(r#"{"tenantId":"t1"}"#).unwrap();
    assert_eq!(describe(carrier, 3, "item").await.unwrap(), "item 3 true");
    let error: CarrierError = describe(Carrier::from_json(r#"{"tenantId":""}"#).unwrap(), 3, "x")
        .await
        .unwrap_err();
    assert!(error.tenant().is_some());
    assert_eq!(
        describe(Context::root(), "a", 'b').await.unwrap(),
        "b a false"
    );
    assert_eq!(first_word(&Context::root(), "hello world").await, "hello");
    assert_eq!(opaque().await.to_string(), "opaque");
}
