//! A handler annotated with `#[with_context]` and `#[requires_tenant]`, side
//! by side with the same handler scoped by hand.
//!
//! The job carries its [`Context`] (reading it is an `Arc` clone), so what is
//! measured is what the macros add: the read, the scope, the tenant check and
//! the body's reads. Each call is polled by hand with a no-op waker.

use std::hint::black_box;

use context_runtime::{requires_tenant, with_context, Context, TenantId, TenantRequired};
use criterion::{criterion_group, criterion_main, Criterion};

mod by_hand;

struct Job {
    cx: Context,
    invoice: u64,
}

#[with_context(from = "job.cx")]
#[requires_tenant]
async fn annotated(job: Job) -> Result<u64, TenantRequired> {
    let tenant = context_runtime::tenant()?;
    Ok(job.invoice + tenant.as_str().len() as u64)
}

async fn scoped_by_hand(job: Job) -> Result<u64, TenantRequired> {
    job.cx.require_tenant()?;
    job.cx
        .scope(async move {
            let tenant = context_runtime::tenant()?;
            Ok(job.invoice + tenant.as_str().len() as u64)
        })
        .await
}

fn handler(c: &mut Criterion) {
    let cx = Context::root().with_tenant(TenantId::new("acme").expect("valid"));
    let waker = by_hand::noop_waker();
    let job = || Job {
        cx: cx.clone(),
        invoice: 7,
    };
    assert_eq!(by_hand::ready(annotated(job()), &waker), Ok(11));
    assert_eq!(by_hand::ready(scoped_by_hand(job()), &waker), Ok(11));

    let mut group = c.benchmark_group("handler/with_context_requires_tenant");
    group.bench_function("context-runtime", |b| {
        b.iter(|| black_box(by_hand::ready(annotated(black_box(job())), &waker)));
    });
    group.bench_function("hand-scoped", |b| {
        b.iter(|| black_box(by_hand::ready(scoped_by_hand(black_box(job())), &waker)));
    });
    group.finish();
}

criterion_group!(benches, handler);
criterion_main!(benches);
