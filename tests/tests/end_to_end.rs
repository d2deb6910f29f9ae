//! The end-to-end example (`examples/end_to_end.rs`) against the real Redis
//! and PostgreSQL: requests for two tenants and one without a tenant, the
//! runner's jobs writing under row-level security and calling out over HTTP.
//!
//! The example checks everything itself and returns an error on the first
//! check that fails; this test runs it and asserts its summary. Its control
//! is inside the summary: the table's owner, to whom the policies do not
//! apply, sees every row with the same unfiltered query that shows each
//! tenant only its own.

#[allow(dead_code)] // the example's `main`
#[path = "../../examples/end_to_end.rs"]
mod end_to_end;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_becomes_a_job_a_tenant_row_and_a_traced_call() {
    if !context_tests::service_available("Redis", "127.0.0.1:6379")
        || !context_tests::service_available("PostgreSQL", "127.0.0.1:5432")
    {
        return;
    }
    let summary = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        end_to_end::run(end_to_end::Config::default()),
    )
    .await
    .expect("the flow ends within a minute")
    .unwrap_or_else(|e| panic!("the end-to-end flow failed: {e}"));

    // Three jobs for acme, two for globex; the request without a tenant is
    // refused before anything is enqueued.
    assert_eq!(summary.completed, 5);
    assert_eq!(summary.rows_seen.get("acme"), Some(&3));
    assert_eq!(summary.rows_seen.get("globex"), Some(&2));
    assert_eq!(summary.rows_total, 5, "the owner sees every tenant's rows");
    assert_eq!(summary.traced_calls, 5);
    assert_eq!(summary.rejected_status, 400);
    assert_eq!(summary.dead_letters, 0);
}
