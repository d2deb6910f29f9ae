//! The macros as a user sees them: what runs, in which context, and what is
//! refused before any of the body runs.

use std::sync::{Arc, Mutex};

use context_runtime::{
    requires_tenant, with_context, Carrier, CarrierError, Context, TenantId, TenantRequired,
    UserRef,
};
use serde::Deserialize;

#[derive(Debug)]
enum JobError {
    NoTenant(TenantRequired),
    BadCarrier(CarrierError),
}

impl From<TenantRequired> for JobError {
    fn from(e: TenantRequired) -> Self {
        JobError::NoTenant(e)
    }
}

impl From<CarrierError> for JobError {
    fn from(e: CarrierError) -> Self {
        JobError::BadCarrier(e)
    }
}

#[derive(Deserialize)]
struct Job {
    ctx: Option<Carrier>,
    n: u32,
}

fn job(json: &str) -> Job {
    serde_json::from_str(json).expect("a valid job")
}

fn with_tenant(tenant: &str) -> Job {
    job(&format!(r#"{{"ctx":{{"tenantId":"{tenant}"}},"n":1}}"#))
}

fn tenant_str() -> String {
    context_runtime::tenant()
        .map(|t| t.to_string())
        .unwrap_or_default()
}

mod attribute_orders {
    use super::*;

    /// The job numbers whose body ran, per handler. Tests run concurrently,
    /// so each test uses its own job numbers and checks only those.
    static TENANT_FIRST_RAN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    static SCOPE_FIRST_RAN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

    fn ran(n: u32) -> bool {
        TENANT_FIRST_RAN.lock().expect("lock").contains(&n)
            || SCOPE_FIRST_RAN.lock().expect("lock").contains(&n)
    }

    #[requires_tenant]
    #[with_context(from = "job.ctx")]
    async fn tenant_first(job: Job) -> Result<String, JobError> {
        TENANT_FIRST_RAN.lock().expect("lock").push(job.n);
        tokio::task::yield_now().await;
        Ok(format!("{} {}", job.n, tenant_str()))
    }

    #[with_context(from = "job.ctx")]
    #[requires_tenant]
    async fn scope_first(job: Job) -> Result<String, JobError> {
        SCOPE_FIRST_RAN.lock().expect("lock").push(job.n);
        tokio::task::yield_now().await;
        Ok(format!("{} {}", job.n, tenant_str()))
    }

    #[tokio::test]
    async fn both_orders_run_the_body_with_a_tenant() {
        assert_eq!(tenant_first(with_tenant("t1")).await.expect("runs"), "1 t1");
        assert_eq!(scope_first(with_tenant("t2")).await.expect("runs"), "1 t2");
    }

    #[tokio::test]
    async fn both_orders_refuse_a_job_without_a_tenant_and_never_run_the_body() {
        let orphan = || job(r#"{"n":2}"#);
        assert!(matches!(
            tenant_first(orphan()).await,
            Err(JobError::NoTenant(_))
        ));
        assert!(matches!(
            scope_first(orphan()).await,
            Err(JobError::NoTenant(_))
        ));
        let carrier_without_tenant = || job(r#"{"ctx":{},"n":2}"#);
        assert!(matches!(
            tenant_first(carrier_without_tenant()).await,
            Err(JobError::NoTenant(_))
        ));
        assert!(matches!(
            scope_first(carrier_without_tenant()).await,
            Err(JobError::NoTenant(_))
        ));
        assert!(!ran(2), "no body ran");
    }

    #[tokio::test]
    async fn the_callers_tenant_never_stands_in_for_the_jobs() {
        let outer = Context::root().with_tenant(TenantId::new("outer").expect("valid"));
        let orphan = || job(r#"{"ctx":{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736"},"n":3}"#);
        let refused = outer.scope(tenant_first(orphan())).await;
        assert!(matches!(refused, Err(JobError::NoTenant(_))), "{refused:?}");
        let refused = outer.scope(scope_first(orphan())).await;
        assert!(matches!(refused, Err(JobError::NoTenant(_))), "{refused:?}");
        assert!(!ran(3), "no body ran");
        // And the job's own tenant wins over the caller's.
        let seen = outer.scope(scope_first(with_tenant("inner"))).await;
        assert_eq!(seen.expect("runs"), "1 inner");
    }

    #[tokio::test]
    async fn an_invalid_tenant_is_the_carriers_error_and_the_body_never_runs() {
        let bad = || job(r#"{"ctx":{"tenantId":"a;b"},"n":4}"#);
        match tenant_first(bad()).await {
            Err(JobError::BadCarrier(e)) => assert_eq!(e.tenant(), Some("a;b")),
            other => panic!("expected the carrier's error, got {other:?}"),
        }
        assert!(matches!(
            scope_first(bad()).await,
            Err(JobError::BadCarrier(_))
        ));
        assert!(!ran(4), "no body ran");
    }
}

mod derived_payloads {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Deserialize)]
    struct Locale(String);

    #[derive(Deserialize, context_runtime::Carrier)]
    struct InvoiceJob {
        #[carrier(trace)]
        trace_id: Option<String>,
        #[carrier(tenant)]
        tenant_id: Option<String>,
        #[carrier(user)]
        user: Option<UserRef>,
        #[carrier(value)]
        locale: Locale,
        invoice: u64,
    }

    /// The invoices whose body ran (tests run concurrently: each checks its own).
    static RAN: Mutex<Vec<u64>> = Mutex::new(Vec::new());

    #[with_context(from = "job")]
    #[requires_tenant]
    async fn handle(job: InvoiceJob) -> Result<(u64, Context), JobError> {
        RAN.lock().expect("lock").push(job.invoice);
        let cx = context_runtime::current().ok_or(TenantRequired)?;
        Ok((job.invoice, cx))
    }

    #[tokio::test]
    async fn every_marked_field_reaches_the_context() {
        let job: InvoiceJob = serde_json::from_str(
            r#"{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","tenant_id":"t1",
                "user":{"type":"user","id":42},"locale":"fr","invoice":9}"#,
        )
        .expect("valid");
        let (invoice, cx) = handle(job).await.expect("runs");
        assert_eq!(invoice, 9);
        assert_eq!(
            cx.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(cx.tenant().expect("tenant").as_str(), "t1");
        assert_eq!(cx.user().expect("user").to_string(), "user:42");
        assert_eq!(cx.get::<Locale>(), Some(&Locale("fr".into())));
    }

    #[tokio::test]
    async fn an_invalid_tenant_field_is_an_error_before_the_body() {
        let job = InvoiceJob {
            trace_id: None,
            tenant_id: Some("not a tenant".into()),
            user: None,
            locale: Locale("fr".into()),
            invoice: 101,
        };
        match handle(job).await {
            Err(JobError::BadCarrier(e)) => assert_eq!(e.tenant(), Some("not a tenant")),
            other => panic!("expected the carrier's error, got {other:?}"),
        }
        let job = InvoiceJob {
            trace_id: Some("not hex".into()),
            tenant_id: None,
            user: None,
            locale: Locale("fr".into()),
            invoice: 101,
        };
        assert!(matches!(handle(job).await, Err(JobError::NoTenant(_))));
        assert!(!RAN.lock().expect("lock").contains(&101), "no body ran");
    }
}

mod receivers {
    use super::*;

    struct Worker {
        ctx: Context,
        seen: Mutex<Vec<String>>,
    }

    impl Worker {
        #[with_context(from = "self.ctx")]
        #[requires_tenant]
        async fn by_ref(&self) -> Result<String, TenantRequired> {
            tokio::task::yield_now().await;
            let tenant = context_runtime::tenant()?.to_string();
            self.seen.lock().expect("lock").push(tenant.clone());
            Ok(tenant)
        }

        #[with_context(from = "carrier")]
        async fn by_mut(&mut self, carrier: Carrier) -> Result<String, CarrierError> {
            self.ctx = context_runtime::current().expect("in scope");
            Ok(tenant_str())
        }

        #[with_context(from = "self.ctx")]
        async fn by_arc(self: Arc<Self>) -> String {
            tenant_str()
        }

        #[with_context(from = "self.ctx")]
        async fn by_value(self) -> (String, usize) {
            (tenant_str(), self.seen.lock().expect("lock").len())
        }
    }

    #[tokio::test]
    async fn each_receiver_runs_in_the_context_it_names() {
        let ctx = Context::root().with_tenant(TenantId::new("t1").expect("valid"));
        let mut worker = Worker {
            ctx,
            seen: Mutex::new(Vec::new()),
        };
        assert_eq!(worker.by_ref().await.expect("tenant"), "t1");

        let carrier = Carrier::from_json(r#"{"tenantId":"t2"}"#).expect("valid");
        assert_eq!(worker.by_mut(carrier).await.expect("valid"), "t2");
        assert_eq!(worker.ctx.tenant().expect("tenant").as_str(), "t2");

        let shared = Arc::new(Worker {
            ctx: worker.ctx.clone(),
            seen: Mutex::new(Vec::new()),
        });
        assert_eq!(shared.by_arc().await, "t2");
        assert_eq!(worker.by_value().await, ("t2".to_owned(), 1));

        let orphan = Worker {
            ctx: Context::root(),
            seen: Mutex::new(Vec::new()),
        };
        assert_eq!(orphan.by_ref().await, Err(TenantRequired));
        assert!(orphan.seen.lock().expect("lock").is_empty(), "no body ran");
    }
}

mod isolation {
    use super::*;

    #[with_context(from = "job.ctx")]
    #[requires_tenant]
    async fn scoped(job: Job) -> Result<bool, JobError> {
        let expected = context_runtime::tenant()?;
        for _ in 0..20 {
            tokio::task::yield_now().await;
            if context_runtime::tenant()? != expected {
                return Ok(false);
            }
        }
        Ok(job.n == 1)
    }

    /// The control: the same work with the tenant in a process-wide slot, as
    /// an ambient set would keep it.
    static AMBIENT: Mutex<Option<String>> = Mutex::new(None);

    async fn ambient(tenant: String) -> bool {
        *AMBIENT.lock().expect("lock") = Some(tenant.clone());
        for _ in 0..20 {
            tokio::task::yield_now().await;
            if AMBIENT.lock().expect("lock").as_deref() != Some(tenant.as_str()) {
                return false;
            }
        }
        true
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_jobs_each_see_only_their_own_tenant() {
        let jobs: Vec<_> = (0..64)
            .map(|i| tokio::spawn(scoped(with_tenant(&format!("tenant-{i}")))))
            .collect();
        for handle in jobs {
            assert!(
                handle.await.expect("joined").expect("has a tenant"),
                "cross-talk"
            );
        }

        let controls: Vec<_> = (0..64)
            .map(|i| tokio::spawn(ambient(format!("tenant-{i}"))))
            .collect();
        let mut leaked = false;
        for handle in controls {
            leaked |= !handle.await.expect("joined");
        }
        assert!(
            leaked,
            "the control must show cross-talk, or this test proves nothing"
        );
    }
}

mod fresh_contexts {
    use super::*;

    #[with_context(fresh, source = "cron:cleanup")]
    #[requires_tenant]
    async fn cleanup() -> Result<(), TenantRequired> {
        Ok(())
    }

    #[with_context(fresh, source = "cron:report")]
    async fn report() -> Context {
        context_runtime::current().expect("in scope")
    }

    #[tokio::test]
    async fn a_fresh_context_is_a_new_trace_without_the_callers_tenant() {
        let outer = Context::root().with_tenant(TenantId::new("outer").expect("valid"));
        let seen = outer.scope(report()).await;
        assert_ne!(seen.trace_id(), outer.trace_id());
        assert_eq!(seen.source(), Some("cron:report"));
        assert!(seen.tenant().is_none());
        assert_eq!(outer.scope(cleanup()).await, Err(TenantRequired));
    }
}

/// Issue 12: `#[requires_tenant]` renamed with `use … as` was recognised by
/// neither macro, and with `#[with_context]` first the body ran without a
/// tenant. Renamed, in either order, beside other attributes or alone, it
/// refuses a job without one.
mod renamed_requires_tenant {
    use super::*;
    use context_runtime::requires_tenant as needs_tenant;
    use context_runtime::with_context as scoped;

    static RAN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

    fn ran(n: u32) -> bool {
        RAN.lock().expect("lock").contains(&n)
    }

    #[with_context(from = "job.ctx")]
    #[needs_tenant]
    async fn scope_first(job: Job) -> Result<String, JobError> {
        RAN.lock().expect("lock").push(job.n);
        Ok(format!("{} {}", job.n, tenant_str()))
    }

    #[needs_tenant]
    #[with_context(from = "job.ctx")]
    async fn tenant_first(job: Job) -> Result<String, JobError> {
        RAN.lock().expect("lock").push(job.n);
        Ok(format!("{} {}", job.n, tenant_str()))
    }

    #[scoped(from = "job.ctx")]
    #[allow(clippy::unused_async)]
    #[needs_tenant]
    #[inline]
    async fn both_renamed_among_others(job: Job) -> Result<String, JobError> {
        RAN.lock().expect("lock").push(job.n);
        Ok(format!("{} {}", job.n, tenant_str()))
    }

    #[needs_tenant]
    async fn alone(n: u32) -> Result<String, JobError> {
        RAN.lock().expect("lock").push(n);
        Ok(format!("{n} {}", tenant_str()))
    }

    #[tokio::test]
    async fn a_job_without_a_tenant_is_refused_in_either_order() {
        let orphan = |n: u32| job(&format!(r#"{{"ctx":{{}},"n":{n}}}"#));
        let refused = scope_first(orphan(10)).await;
        assert!(matches!(refused, Err(JobError::NoTenant(_))), "{refused:?}");
        let refused = tenant_first(orphan(11)).await;
        assert!(matches!(refused, Err(JobError::NoTenant(_))), "{refused:?}");
        let refused = both_renamed_among_others(orphan(12)).await;
        assert!(matches!(refused, Err(JobError::NoTenant(_))), "{refused:?}");
        let refused = alone(13).await;
        assert!(matches!(refused, Err(JobError::NoTenant(_))), "{refused:?}");
        assert!(!(10..=13).any(ran), "no body ran without a tenant");
    }

    #[tokio::test]
    async fn the_callers_tenant_never_stands_in_for_the_jobs() {
        let outer = Context::root().with_tenant(TenantId::new("outer").expect("valid"));
        let orphan = |n: u32| job(&format!(r#"{{"n":{n}}}"#));
        let refused = outer.scope(scope_first(orphan(20))).await;
        assert!(matches!(refused, Err(JobError::NoTenant(_))), "{refused:?}");
        let refused = outer.scope(tenant_first(orphan(21))).await;
        assert!(matches!(refused, Err(JobError::NoTenant(_))), "{refused:?}");
        assert!(!ran(20) && !ran(21), "no body ran");
        assert_eq!(
            outer
                .scope(alone(22))
                .await
                .expect("runs in the caller's scope"),
            "22 outer"
        );
    }

    #[tokio::test]
    async fn a_job_with_a_tenant_runs_in_its_own_scope() {
        let with = |n: u32| job(&format!(r#"{{"ctx":{{"tenantId":"t{n}"}},"n":{n}}}"#));
        assert_eq!(scope_first(with(30)).await.expect("runs"), "30 t30");
        assert_eq!(tenant_first(with(31)).await.expect("runs"), "31 t31");
        assert_eq!(
            both_renamed_among_others(with(32)).await.expect("runs"),
            "32 t32"
        );
    }
}
