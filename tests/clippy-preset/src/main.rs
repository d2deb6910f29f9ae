//! Every call the clippy preset disallows, once each, outside any annotated
//! body (where the macros reject them at compile time already).

use std::future::Future;

async fn work() {}

fn job_span() -> tracing::Span {
    tracing::info_span!("job")
}

/// Guards that make something current on this thread.
async fn guards(otel: opentelemetry::Context, dispatch: tracing::Dispatch) {
    let span = job_span();
    let entered: tracing::span::Entered<'_> = span.enter();
    work().await;
    drop(entered);
    let owned: tracing::span::EnteredSpan = job_span().entered();
    drop(owned);
    let attached: opentelemetry::ContextGuard = otel.attach();
    drop(attached);
    let subscriber = tracing::subscriber::set_default(tracing::subscriber::NoSubscriber::default());
    drop(subscriber);
    let dispatcher = tracing::dispatcher::set_default(&dispatch);
    drop(dispatcher);
}

/// Spawns that run their work without the context.
fn spawns(handle: &tokio::runtime::Handle, set: &mut tokio::task::JoinSet<()>) {
    drop(tokio::spawn(work()));
    drop(tokio::task::spawn(work()));
    drop(tokio::task::spawn_blocking(|| ()));
    drop(tokio::task::spawn_local(work()));
    drop(handle.spawn(work()));
    drop(handle.spawn_blocking(|| ()));
    set.spawn(work());
    drop(std::thread::spawn(|| ()));
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut set = tokio::task::JoinSet::new();
    spawns(runtime.handle(), &mut set);
    let not_run: std::pin::Pin<Box<dyn Future<Output = ()>>> = Box::pin(guards(
        opentelemetry::Context::new(),
        tracing::Dispatch::none(),
    ));
    drop(not_run);
}
