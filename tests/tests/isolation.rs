//! Concurrency isolation, through the crate's own cross-talk test kit
//! (`context_runtime::testing`): 1,200 jobs over three tenants on a
//! multi-thread runtime, each yielding at random points and checking at
//! every checkpoint that it still sees its own trace id and tenant. Beside
//! it, the kit's control: the same jobs through an ambient, `enter_with`-style
//! handler *do* cross-talk, which shows the check catches the bug it guards
//! against.

use context_runtime::testing::{self, CrossTalk, TestJob};
use context_runtime::{requires_tenant, with_context, Carrier, CarrierError, TenantRequired};

const JOBS: usize = 1_200;

#[derive(Debug)]
enum JobError {
    Tenant,
    Carrier,
}

impl From<TenantRequired> for JobError {
    fn from(_: TenantRequired) -> Self {
        JobError::Tenant
    }
}

impl From<CarrierError> for JobError {
    fn from(_: CarrierError) -> Self {
        JobError::Carrier
    }
}

/// A payload as a worker receives it: the carrier travelled as JSON.
struct Job {
    ctx: Carrier,
    kit: TestJob,
}

fn kit() -> CrossTalk {
    CrossTalk::new()
        .jobs(JOBS)
        .tenants(["acme", "globex", "initech"].map(testing::tenant_id))
        .concurrency(256)
        .worker_threads(4)
}

/// The safe path: the handler is annotated, the body runs inside the job's scope.
#[with_context(from = "job.ctx")]
#[requires_tenant]
async fn scoped_handler(job: Job) -> Result<(), JobError> {
    for _ in 0..6 {
        testing::checkpoint();
        testing::pause().await;
    }
    // A task spawned from inside the job carries the same identity.
    let kit = job.kit.clone();
    context_runtime::spawn(async move { kit.checkpoint() })
        .await
        .expect("spawned task");
    Ok(())
}

fn through_the_wire(job: &TestJob) -> Carrier {
    let json = serde_json::to_string(&job.carrier()).expect("carrier to json");
    serde_json::from_str(&json).expect("carrier from json")
}

#[test]
fn concurrent_jobs_only_ever_see_their_own_context() {
    let report = kit().run_checked(|kit| async move {
        let job = Job {
            ctx: through_the_wire(&kit),
            kit,
        };
        scoped_handler(job).await.expect("every job has a tenant");
    });
    assert_eq!(report.checkpoints, JOBS * 7, "every checkpoint ran");
    report.assert_clean();
}

#[test]
fn control_an_ambient_setter_does_cross_talk() {
    let report = kit().control();
    assert_eq!(report.checkpoints, JOBS * 4, "every checkpoint ran");
    assert!(
        !report.mismatches.is_empty(),
        "the ambient control produced no mismatch: the isolation test could not catch cross-talk"
    );
}

#[test]
fn a_handler_that_drops_its_context_is_reported() {
    // A job handled outside any scope (the mistake `#[with_context]`
    // prevents): every checkpoint is a mismatch.
    let report = kit()
        .jobs(50)
        .run(|_kit| async move { testing::checkpoint() });
    assert_eq!(report.mismatches.len(), 50);
    assert!(!report.is_clean());
}
