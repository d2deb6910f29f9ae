//! Per-tenant fan-out: each tenant's work in a fresh child scope of the
//! caller's context, failures recorded per tenant. Beside it, the control: the
//! hand-written loop that re-binds an ambient tenant per iteration runs a
//! tenant under the previous one as soon as one re-bind is skipped.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use context_runtime::fanout::{self, TenantFailure};
use context_runtime::{Context, TenantId, TraceId};

fn tenants(names: &[&str]) -> Vec<TenantId> {
    names
        .iter()
        .map(|n| TenantId::new(n).expect("valid tenant"))
        .collect()
}

/// What one tenant's work saw: the tenant it was given, then the tenant,
/// trace id and source in scope at each checkpoint.
type Seen = (
    String,
    Vec<(Option<String>, Option<TraceId>, Option<String>)>,
);

fn checkpoint() -> (Option<String>, Option<TraceId>, Option<String>) {
    let cx = context_runtime::current();
    (
        cx.as_ref()
            .and_then(|cx| cx.tenant().map(|t| t.as_str().to_owned())),
        cx.as_ref().map(Context::trace_id),
        cx.as_ref().and_then(|cx| cx.source().map(str::to_owned)),
    )
}

#[tokio::test]
async fn each_tenant_runs_in_its_own_child_of_the_callers_scope() {
    let cron = Context::root().with_source("cron:close-month");
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let results = cron
        .scope(async {
            let results =
                fanout::for_each_tenant(tenants(&["acme", "globex", "initech"]), |tenant| {
                    // Called inside the tenant's scope already.
                    let first = checkpoint();
                    let seen = seen.clone();
                    async move {
                        let mut points = vec![first];
                        for _ in 0..3 {
                            tokio::task::yield_now().await;
                            points.push(checkpoint());
                        }
                        seen.lock()
                            .expect("seen")
                            .push((tenant.as_str().to_owned(), points));
                        match tenant.as_str() {
                            "globex" => Err("ledger locked"),
                            _ => Ok(tenant.as_str().len()),
                        }
                    }
                })
                .await;
            // The caller's scope is as it was: the cron job's, no tenant.
            assert_eq!(
                checkpoint(),
                (None, Some(cron.trace_id()), Some("cron:close-month".into()))
            );
            results
        })
        .await;

    for (tenant, points) in seen.lock().expect("seen").iter() {
        assert_eq!(points.len(), 4);
        for point in points {
            let expected = (
                Some(tenant.clone()),
                Some(cron.trace_id()),
                Some("cron:close-month".to_owned()),
            );
            assert_eq!(point, &expected, "{tenant}");
        }
    }
    let outcomes: Vec<_> = results
        .iter()
        .map(|(t, o)| (t.as_str(), o.clone()))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("acme", Ok(4)),
            ("globex", Err(TenantFailure::Failed("ledger locked"))),
            ("initech", Ok(7)),
        ]
    );
    assert!(!results.is_all_ok());
}

#[tokio::test]
async fn without_a_scope_the_tenants_share_one_fresh_trace() {
    let traces = fanout::for_each_tenant(tenants(&["a", "b"]), |_| async {
        Ok::<_, ()>(context_runtime::trace_id().expect("a scope"))
    })
    .await
    .into_vec();
    assert_eq!(traces[0].1, traces[1].1);
    assert!(context_runtime::current().is_none());
}

thread_local! {
    /// The hand-written loop's "current tenant": one slot, re-bound per tenant.
    static AMBIENT_TENANT: RefCell<Option<TenantId>> = const { RefCell::new(None) };
}

fn ambient_tenant() -> Option<String> {
    AMBIENT_TENANT.with(|slot| slot.borrow().as_ref().map(|t| t.as_str().to_owned()))
}

/// A tenant's work: its settings fail to load for `globex`, and it panics for
/// `initech`; it reports the tenant it ran under.
fn settings_load(tenant: &TenantId) -> Result<(), String> {
    match tenant.as_str() {
        "globex" => Err("settings unavailable".into()),
        _ => Ok(()),
    }
}

#[tokio::test]
async fn a_failed_or_panicking_tenant_leaks_nothing_into_the_next() {
    let names = ["acme", "globex", "initech", "umbrella"];

    // The fan-out: every tenant's work runs under that tenant, whatever the
    // previous one did.
    let results = fanout::for_each_tenant(tenants(&names), |tenant| async move {
        let ran_under = context_runtime::tenant()
            .ok()
            .map(|t| t.as_str().to_owned());
        if tenant.as_str() == "initech" {
            // A panic in the middle of a nested scope of another tenant.
            Context::root()
                .with_tenant(TenantId::new("leak").expect("valid"))
                .scope_sync(|| panic!("initech exploded"));
        }
        settings_load(&tenant)?;
        Ok::<_, String>(ran_under)
    })
    .await;
    let outcomes: Vec<_> = results.into_vec();
    assert_eq!(outcomes[0].1, Ok(Some("acme".to_owned())));
    assert_eq!(
        outcomes[1].1,
        Err(TenantFailure::Failed("settings unavailable".to_owned()))
    );
    assert!(
        matches!(&outcomes[2].1, Err(TenantFailure::Panicked(m)) if m == "initech exploded"),
        "{:?}",
        outcomes[2]
    );
    assert_eq!(outcomes[3].1, Ok(Some("umbrella".to_owned())));
    assert!(context_runtime::current().is_none());

    // Control: the hand-written loop that re-binds one ambient tenant per
    // iteration, only once the tenant's settings load. globex's bind is
    // skipped and its work runs under acme: the check above catches that.
    let mut ran_under = Vec::new();
    for tenant in tenants(&names[..2]) {
        if settings_load(&tenant).is_ok() {
            AMBIENT_TENANT.with(|slot| *slot.borrow_mut() = Some(tenant.clone()));
        }
        ran_under.push((tenant.as_str().to_owned(), ambient_tenant()));
    }
    assert_eq!(
        ran_under[1],
        ("globex".to_owned(), Some("acme".to_owned())),
        "the control did not leak"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrently_each_tenant_keeps_its_own_scope() {
    const TENANTS: usize = 60;
    let names: Vec<String> = (0..TENANTS).map(|i| format!("tenant-{i}")).collect();
    let cron = Context::root().with_source("cron:reindex");
    let results = cron
        .scope(fanout::for_each_tenant_concurrently(
            names.iter().map(|n| TenantId::new(n).expect("valid")),
            8,
            |tenant| async move {
                let seed = tenant
                    .as_str()
                    .trim_start_matches("tenant-")
                    .parse()
                    .unwrap_or(0);
                let mut rng = fastrand::Rng::with_seed(seed);
                let mut mismatches = 0;
                for _ in 0..5 {
                    tokio::time::sleep(Duration::from_micros(rng.u64(1..400))).await;
                    if context_runtime::tenant().as_ref() != Ok(&tenant) {
                        mismatches += 1;
                    }
                }
                match tenant.as_str() {
                    "tenant-7" => panic!("tenant-7 exploded"),
                    "tenant-9" => Err("tenant-9 failed"),
                    _ => Ok((mismatches, context_runtime::trace_id())),
                }
            },
        ))
        .await;

    assert_eq!(results.len(), TENANTS);
    // In input order, whatever the completion order.
    let order: Vec<_> = results.iter().map(|(t, _)| t.as_str().to_owned()).collect();
    assert_eq!(order, names);
    for (tenant, (mismatches, trace)) in results.successes() {
        assert_eq!(*mismatches, 0, "{tenant}");
        assert_eq!(*trace, Some(cron.trace_id()), "{tenant}");
    }
    let failures: Vec<_> = results
        .failures()
        .map(|(t, f)| (t.as_str().to_owned(), f.to_string()))
        .collect();
    assert_eq!(
        failures,
        vec![
            (
                "tenant-7".to_owned(),
                "panicked: tenant-7 exploded".to_owned()
            ),
            ("tenant-9".to_owned(), "tenant-9 failed".to_owned()),
        ]
    );
}

/// Tenant A's user does not act inside tenant B's scope, sequentially or
/// concurrently, unless the caller asks for it (the control: with
/// `keep_user` the user is there, so the first assertions can fail).
#[tokio::test]
async fn the_parents_user_stays_out_of_every_tenants_scope_unless_asked() {
    use context_runtime::UserRef;

    let admin = Context::root().with_user(UserRef::user(42).expect("valid"));
    let user_in_scope = |_tenant: TenantId| async move {
        Ok::<_, ()>(context_runtime::user().map(|u| u.to_string()))
    };
    let users = |results: fanout::TenantResults<Option<String>, ()>| {
        results
            .into_vec()
            .into_iter()
            .map(|(_, r)| r.expect("ok"))
            .collect::<Vec<_>>()
    };

    let sequential = admin
        .scope(fanout::for_each_tenant(tenants(&["a", "b"]), user_in_scope))
        .await;
    assert_eq!(users(sequential), [None, None]);
    let concurrent = admin
        .scope(fanout::for_each_tenant_concurrently(
            tenants(&["a", "b", "c"]),
            2,
            user_in_scope,
        ))
        .await;
    assert_eq!(users(concurrent), [None, None, None]);

    let kept = admin
        .scope(fanout::for_each_tenant_concurrently_with(
            fanout::Options::new().keep_user(),
            tenants(&["a", "b"]),
            2,
            user_in_scope,
        ))
        .await;
    assert_eq!(
        users(kept),
        [Some("user:42".into()), Some("user:42".into())]
    );
    // The parent keeps its user.
    assert!(admin.user().is_some());
}
