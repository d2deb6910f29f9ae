//! Tenant data on the real PostgreSQL: row-level security fed by the tenant
//! in scope (`context_runtime::sqlx`).
//!
//! Each test makes its own schema and its own login role (unique names), so
//! tests and runs never share state; both are dropped when the test ends,
//! also on failure. The application connects as that role, which neither
//! owns the table nor is a superuser: policies do not apply to owners and
//! superusers. Every test carries a control that shows what it checks can
//! fail: the owner sees every tenant's rows with the same unfiltered query, a
//! session-level binding does leak into the next user of a connection, an
//! ambient tenant does cross jobs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use context_runtime::sqlx::{self as postgres, TenantTransaction};
use context_runtime::{
    fanout, requires_tenant, with_context, Carrier, CarrierError, Context, TenantId, TenantRequired,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection as _, PgPool, Row as _};

const ADDR: &str = "127.0.0.1:5432";

/// The seeded rows: tenant, number of invoices.
const SEED: [(&str, i64); 3] = [("acme", 3), ("globex", 2), ("initech", 4)];

fn tenant(name: &str) -> TenantId {
    TenantId::new(name).expect("valid tenant")
}

fn tenant_cx(name: &str) -> Context {
    Context::root().with_tenant(tenant(name))
}

fn admin_options() -> PgConnectOptions {
    PgConnectOptions::new()
        .host("127.0.0.1")
        .port(5432)
        .username("postgres")
        .database("test")
}

/// One test's schema, role and pools.
struct Database {
    schema: String,
    role: String,
    /// The owner (a superuser): row-level security does not apply to it.
    admin: PgPool,
}

impl Database {
    /// Creates the schema, the role, the table with its policies and the
    /// seed rows; `None` (a loud skip) when PostgreSQL is unreachable.
    async fn create() -> Option<Database> {
        if !context_tests::service_available("PostgreSQL", ADDR) {
            return None;
        }
        let suffix = format!("{:016x}", fastrand::u64(..));
        let schema = format!("ctx_rls_{suffix}");
        let role = format!("ctx_app_{suffix}");
        let admin = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(admin_options())
            .await
            .expect("connect as postgres");
        let db = Database {
            schema,
            role,
            admin,
        };
        let (s, r) = (&db.schema, &db.role);
        let setup = [
            format!("create schema {s}"),
            format!(
                "create table {s}.invoices (
                    id bigserial primary key,
                    tenant_id text not null default current_setting('app.current_tenant', true),
                    amount bigint not null,
                    status text not null default 'open'
                )"
            ),
            format!("alter table {s}.invoices enable row level security"),
            format!(
                "create policy tenant_isolation on {s}.invoices
                    using (tenant_id = current_setting('app.current_tenant', true))
                    with check (tenant_id = current_setting('app.current_tenant', true))"
            ),
            format!("create role {r} login"),
            format!("grant usage on schema {s} to {r}"),
            format!("grant select, insert, update, delete on {s}.invoices to {r}"),
            format!("grant usage on sequence {s}.invoices_id_seq to {r}"),
        ];
        for statement in setup {
            sqlx::query(&statement)
                .execute(&db.admin)
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
        for (tenant, count) in SEED {
            for i in 0..count {
                sqlx::query(&format!(
                    "insert into {s}.invoices (tenant_id, amount) values ($1, $2)"
                ))
                .bind(tenant)
                .bind(100 * (i + 1))
                .execute(&db.admin)
                .await
                .expect("seed");
            }
        }
        Some(db)
    }

    /// How the application connects: as the non-owner role, to this schema.
    fn app_options(&self) -> PgConnectOptions {
        admin_options()
            .username(&self.role)
            .options([("search_path", self.schema.as_str())])
    }

    async fn app_pool(&self, max_connections: u32) -> PgPool {
        PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(self.app_options())
            .await
            .expect("connect as the application role")
    }

    /// What the owner sees for `tenant`: (rows, open rows, sum of amounts).
    async fn owner_view(&self, tenant: &str) -> (i64, i64, i64) {
        let row = sqlx::query(&format!(
            "select count(*), count(*) filter (where status = 'open'), coalesce(sum(amount), 0)::bigint
             from {}.invoices where tenant_id = $1",
            self.schema
        ))
        .bind(tenant)
        .fetch_one(&self.admin)
        .await
        .expect("owner query");
        (row.get(0), row.get(1), row.get(2))
    }

    async fn owner_total_rows(&self) -> i64 {
        sqlx::query_scalar(&format!("select count(*) from {}.invoices", self.schema))
            .fetch_one(&self.admin)
            .await
            .expect("owner count")
    }
}

impl Drop for Database {
    /// Drops the schema and the role on a thread of its own (this may run
    /// while a test unwinds, inside its runtime), first ending the role's
    /// sessions so that no open transaction holds a lock.
    fn drop(&mut self) {
        let (schema, role) = (self.schema.clone(), self.role.clone());
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut conn = sqlx::PgConnection::connect_with(&admin_options())
                    .await
                    .expect("connect for cleanup");
                let statements = [
                    format!(
                        "select pg_terminate_backend(pid) from pg_stat_activity where usename = '{role}'"
                    ),
                    format!("drop schema if exists {schema} cascade"),
                    format!("drop role if exists {role}"),
                ];
                for statement in statements {
                    if let Err(e) = sqlx::query(&statement).execute(&mut conn).await {
                        eprintln!("cleanup: {statement}: {e}");
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// The unfiltered `select *` a careless job would write: the tenant of every
/// row it returns.
async fn all_visible_tenants(conn: &mut sqlx::PgConnection) -> Vec<String> {
    sqlx::query("select * from invoices order by id")
        .fetch_all(conn)
        .await
        .expect("select")
        .iter()
        .map(|row| row.get("tenant_id"))
        .collect()
}

#[derive(Debug)]
enum JobError {
    NoTenant,
    Carrier,
    Db(postgres::Error),
}

impl From<TenantRequired> for JobError {
    fn from(_: TenantRequired) -> Self {
        JobError::NoTenant
    }
}

impl From<CarrierError> for JobError {
    fn from(_: CarrierError) -> Self {
        JobError::Carrier
    }
}

impl From<postgres::Error> for JobError {
    fn from(e: postgres::Error) -> Self {
        JobError::Db(e)
    }
}

impl From<sqlx::Error> for JobError {
    fn from(e: sqlx::Error) -> Self {
        JobError::Db(e.into())
    }
}

struct CloseMonth {
    ctx: Carrier,
}

/// A job handler as the README shows it: no tenant filter anywhere.
#[with_context(from = "job.ctx")]
#[requires_tenant]
async fn close_month(pool: &PgPool, job: CloseMonth) -> Result<(Vec<String>, u64), JobError> {
    let mut tx = postgres::begin(pool).await?;
    let seen = all_visible_tenants(&mut tx).await;
    let closed = sqlx::query("update invoices set status = 'closed'")
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok((seen, closed))
}

#[tokio::test]
async fn a_job_reads_and_updates_only_its_tenants_rows() {
    let Some(db) = Database::create().await else {
        return;
    };
    let pool = db.app_pool(2).await;

    let job = CloseMonth {
        ctx: tenant_cx("acme").to_carrier(),
    };
    let (seen, closed) = close_month(&pool, job).await.expect("job");
    assert_eq!(
        seen,
        vec!["acme"; 3],
        "the unfiltered select saw other tenants"
    );
    assert_eq!(
        closed, 3,
        "the unfiltered update touched other tenants' rows"
    );
    assert_eq!(db.owner_view("acme").await.1, 0, "acme's rows are closed");
    assert_eq!(
        db.owner_view("globex").await.1,
        2,
        "globex's rows are untouched"
    );
    assert_eq!(
        db.owner_view("initech").await.1,
        4,
        "initech's rows are untouched"
    );

    // Control: the same unfiltered select as the owner sees every tenant, so
    // the filtering above is row-level security's, not the data's.
    let mut owner = db.admin.acquire().await.expect("owner connection");
    sqlx::query(&format!("set search_path to {}", db.schema))
        .execute(&mut *owner)
        .await
        .expect("search path");
    let everything = all_visible_tenants(&mut owner).await;
    assert_eq!(everything.len(), 9);
    assert!(everything.iter().any(|t| t == "globex"));
    sqlx::query("reset search_path")
        .execute(&mut *owner)
        .await
        .expect("reset");
    drop(owner);

    // And the application role without a bound tenant sees nothing at all.
    let mut unbound = pool.begin().await.expect("plain transaction");
    assert!(all_visible_tenants(&mut unbound).await.is_empty());
    unbound.rollback().await.expect("rollback");
}

#[tokio::test]
async fn writing_a_row_for_another_tenant_fails() {
    let Some(db) = Database::create().await else {
        return;
    };
    let pool = db.app_pool(1).await;
    let acme = tenant_cx("acme");

    let error = acme
        .scope(async {
            let mut tx = postgres::begin(&pool).await?;
            let result =
                sqlx::query("insert into invoices (tenant_id, amount) values ('globex', 1)")
                    .execute(&mut *tx)
                    .await;
            Ok::<_, postgres::Error>(result.expect_err("an insert for globex under acme"))
        })
        .await
        .expect("begin");
    let code = error
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("42501"), "{error}");

    // Moving one of acme's rows to globex fails the same way.
    let moved = acme
        .scope(async {
            let mut tx = postgres::begin(&pool).await?;
            Ok::<_, postgres::Error>(
                sqlx::query("update invoices set tenant_id = 'globex'")
                    .execute(&mut *tx)
                    .await,
            )
        })
        .await
        .expect("begin");
    assert!(moved.is_err(), "acme's rows moved to globex: {moved:?}");

    // Control: the same insert for its own tenant (here by the column's
    // default, the bound tenant) succeeds, so the failure above is the policy.
    acme.scope(async {
        let mut tx = postgres::begin(&pool).await?;
        sqlx::query("insert into invoices (amount) values (1)")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok::<_, postgres::Error>(())
    })
    .await
    .expect("insert for acme");
    assert_eq!(db.owner_view("acme").await.0, 4);
    assert_eq!(db.owner_view("globex").await.0, 2, "no row reached globex");
}

const JOBS_PER_TENANT: usize = 30;

/// A job's tenant binding: from its own scope, or (the control) from an
/// ambient slot that every job sets on entry.
#[derive(Clone, Copy, PartialEq)]
enum Binding {
    Scope,
    Ambient,
}

#[derive(Default)]
struct Tally {
    checks: AtomicUsize,
    mismatches: AtomicUsize,
}

impl Tally {
    fn check(&self, ok: bool) {
        self.checks.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.mismatches.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn random_pause(rng: &mut fastrand::Rng) {
    for _ in 0..rng.usize(0..3) {
        tokio::task::yield_now().await;
    }
    if rng.bool() {
        tokio::time::sleep(Duration::from_micros(rng.u64(1..500))).await;
    }
}

/// Begins the control's transaction: bound to whatever tenant the ambient slot holds now.
async fn begin_ambient(
    pool: &PgPool,
    ambient: &Mutex<Option<TenantId>>,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let tenant = ambient.lock().expect("slot").clone().expect("a tenant");
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("select set_config('app.current_tenant', $1, true)")
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await
        .expect("bind");
    tx
}

async fn run_jobs(pool: &PgPool, binding: Binding) -> Arc<Tally> {
    let tally = Arc::new(Tally::default());
    let ambient = Arc::new(Mutex::new(None::<TenantId>));
    let jobs = JOBS_PER_TENANT * SEED.len();
    // Every job sets the ambient slot before any job reads it.
    let barrier = Arc::new(tokio::sync::Barrier::new(jobs));
    let mut handles = Vec::new();
    for i in 0..jobs {
        let (name, count) = SEED[i % SEED.len()];
        let cx = tenant_cx(name);
        let (pool, tally, ambient, barrier) = (
            pool.clone(),
            tally.clone(),
            ambient.clone(),
            barrier.clone(),
        );
        let job = async move {
            let mut rng = fastrand::Rng::with_seed(i as u64);
            if binding == Binding::Ambient {
                *ambient.lock().expect("slot") = Some(tenant(name));
            }
            barrier.wait().await;
            random_pause(&mut rng).await;
            let mut tx = match binding {
                Binding::Scope => TxKind::Tenant(postgres::begin(&pool).await.expect("begin")),
                Binding::Ambient => TxKind::Plain(begin_ambient(&pool, &ambient).await),
            };
            random_pause(&mut rng).await;
            // Lock the visible rows in id order first, so that concurrent
            // updates of one tenant's rows queue instead of deadlocking.
            let seen: Vec<String> =
                sqlx::query_scalar("select tenant_id from invoices order by id for update")
                    .fetch_all(tx.conn())
                    .await
                    .expect("select for update");
            tally.check(seen.len() as i64 == count && seen.iter().all(|t| t == name));
            let updated = sqlx::query("update invoices set amount = amount + 1")
                .execute(tx.conn())
                .await
                .expect("update")
                .rows_affected();
            tally.check(updated as i64 == count);
            random_pause(&mut rng).await;
            let seen = all_visible_tenants(tx.conn()).await;
            tally.check(seen.iter().all(|t| t == name));
            tx.commit().await;
        };
        handles.push(cx.scope_sync(|| context_runtime::spawn(job)));
    }
    for handle in handles {
        handle.await.expect("job");
    }
    tally
}

enum TxKind {
    Tenant(TenantTransaction<'static>),
    Plain(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl TxKind {
    fn conn(&mut self) -> &mut sqlx::PgConnection {
        match self {
            TxKind::Tenant(tx) => tx,
            TxKind::Plain(tx) => tx,
        }
    }

    async fn commit(self) {
        match self {
            TxKind::Tenant(tx) => tx.commit().await,
            TxKind::Plain(tx) => tx.commit().await,
        }
        .expect("commit");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_jobs_over_one_pool_never_see_each_others_rows() {
    let Some(db) = Database::create().await else {
        return;
    };
    let pool = db.app_pool(4).await;
    let before: Vec<_> = amount_sums(&db).await;

    let tally = run_jobs(&pool, Binding::Scope).await;
    let checks = tally.checks.load(Ordering::Relaxed);
    let mismatches = tally.mismatches.load(Ordering::Relaxed);
    eprintln!("scoped binding: {checks} checks, {mismatches} mismatches");
    assert_eq!(checks, 3 * JOBS_PER_TENANT * SEED.len());
    assert_eq!(mismatches, 0);
    // Each tenant's amounts grew by exactly its own jobs' updates.
    for ((name, count), before) in SEED.iter().zip(before) {
        let after = db.owner_view(name).await.2;
        assert_eq!(after - before, count * JOBS_PER_TENANT as i64, "{name}");
    }

    // Control: the same jobs with the tenant taken from an ambient slot do
    // run under each other's tenants, so the check above can fail.
    let control = run_jobs(&pool, Binding::Ambient).await;
    let mismatches = control.mismatches.load(Ordering::Relaxed);
    eprintln!("ambient binding (control): {mismatches} mismatches");
    assert!(mismatches > 0, "the control saw no cross-talk");
}

async fn amount_sums(db: &Database) -> Vec<i64> {
    let mut sums = Vec::new();
    for (name, _) in SEED {
        sums.push(db.owner_view(name).await.2);
    }
    sums
}

/// The tenant setting as a connection sees it, and its backend pid.
async fn setting_and_pid(conn: &mut sqlx::PgConnection) -> (Option<String>, i32) {
    let row = sqlx::query("select current_setting('app.current_tenant', true), pg_backend_pid()")
        .fetch_one(conn)
        .await
        .expect("setting");
    (row.get(0), row.get(1))
}

/// What the next user of the pool's only connection sees, outside any scope.
async fn next_user_sees(pool: &PgPool) -> (Vec<String>, Option<String>, i32) {
    let mut conn = pool.acquire().await.expect("acquire");
    let (setting, pid) = setting_and_pid(&mut conn).await;
    (all_visible_tenants(&mut conn).await, setting, pid)
}

#[tokio::test]
async fn a_pooled_connection_reused_afterwards_sees_no_tenant() {
    let Some(db) = Database::create().await else {
        return;
    };
    // One connection: every user below gets the same one.
    let pool = db.app_pool(1).await;
    let acme = tenant_cx("acme");

    // Committed.
    let pid = acme
        .scope(async {
            let mut tx = postgres::begin(&pool).await.expect("begin");
            let (setting, pid) = setting_and_pid(&mut tx).await;
            assert_eq!(setting.as_deref(), Some("acme"));
            tx.commit().await.expect("commit");
            pid
        })
        .await;
    let (rows, setting, reused) = next_user_sees(&pool).await;
    assert_eq!(reused, pid, "the same pooled connection");
    assert!(
        rows.is_empty(),
        "after commit, a user without a tenant saw {rows:?}"
    );
    assert!(setting.unwrap_or_default().is_empty());

    // Rolled back, and dropped without either (a failed or cancelled job).
    acme.scope(async {
        let tx = postgres::begin(&pool).await.expect("begin");
        tx.rollback().await.expect("rollback");
        let mut tx = postgres::begin(&pool).await.expect("begin");
        assert_eq!(all_visible_tenants(&mut tx).await.len(), 3);
        drop(tx);
    })
    .await;
    let (rows, setting, reused) = next_user_sees(&pool).await;
    assert_eq!(reused, pid);
    assert!(rows.is_empty(), "after a dropped transaction, saw {rows:?}");
    assert!(setting.unwrap_or_default().is_empty());

    // The next tenant on the same connection sees its own rows only.
    let seen = tenant_cx("globex")
        .scope(async {
            let mut tx = postgres::begin(&pool).await.expect("begin");
            assert_eq!(setting_and_pid(&mut tx).await.1, pid);
            all_visible_tenants(&mut tx).await
        })
        .await;
    assert_eq!(seen, vec!["globex"; 2]);

    // Control: a session-level binding (`is_local = false`) does outlive its
    // transaction, and the next user of the connection sees acme's rows, so
    // the checks above can fail.
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("select set_config('app.current_tenant', 'acme', false)")
        .execute(&mut *tx)
        .await
        .expect("session-level bind");
    tx.commit().await.expect("commit");
    let (rows, setting, reused) = next_user_sees(&pool).await;
    assert_eq!(reused, pid);
    assert_eq!(setting.as_deref(), Some("acme"));
    assert_eq!(rows, vec!["acme"; 3], "the control leaked nothing");
    pool.close().await;
}

/// A handler that forgot `#[requires_tenant]`: `postgres::begin` still refuses.
#[with_context(from = "job.ctx")]
async fn insert_invoice(pool: &PgPool, job: CloseMonth) -> Result<(), JobError> {
    let mut tx = postgres::begin(pool).await?;
    sqlx::query("insert into invoices (amount) values (1)")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

#[tokio::test]
async fn a_job_without_a_tenant_runs_no_query() {
    let Some(db) = Database::create().await else {
        return;
    };
    // A lazy pool opens its first connection on the first query: its size
    // tells whether anything was sent.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with(db.app_options());
    let orphan = || CloseMonth {
        ctx: Context::root().to_carrier(),
    };

    let result = insert_invoice(&pool, orphan()).await;
    assert!(
        matches!(
            result,
            Err(JobError::Db(postgres::Error::TenantRequired(_)))
        ),
        "{result:?}"
    );
    assert!(matches!(
        close_month(&pool, orphan()).await,
        Err(JobError::NoTenant)
    ));
    assert!(matches!(
        postgres::begin(&pool).await,
        Err(postgres::Error::TenantRequired(_))
    ));
    assert_eq!(
        pool.size(),
        0,
        "a connection was opened for a job without a tenant"
    );
    assert_eq!(db.owner_total_rows().await, 9);

    // Control: with a tenant the same handler does reach the database.
    insert_invoice(
        &pool,
        CloseMonth {
            ctx: tenant_cx("initech").to_carrier(),
        },
    )
    .await
    .expect("insert for initech");
    assert_eq!(pool.size(), 1);
    assert_eq!(db.owner_view("initech").await.0, 5);

    // A connection already inside a transaction is refused too (the tenant
    // would outlive the inner transaction).
    let mut conn = pool.acquire().await.expect("acquire");
    let mut outer = conn.begin().await.expect("begin");
    let nested = tenant_cx("initech")
        .scope(async { postgres::begin_on(&mut outer).await.map(|_| ()) })
        .await;
    assert!(
        matches!(nested, Err(postgres::Error::InTransaction)),
        "{nested:?}"
    );
    outer.rollback().await.expect("rollback");
    let bound = tenant_cx("initech")
        .scope(async {
            let mut tx = postgres::begin_on(&mut conn).await.expect("begin_on");
            all_visible_tenants(&mut tx).await.len()
        })
        .await;
    assert_eq!(bound, 5);
}

#[tokio::test]
async fn a_failing_tenant_in_a_fan_out_leaks_nothing_into_the_next() {
    let Some(db) = Database::create().await else {
        return;
    };
    let pool = db.app_pool(1).await;
    let tenants = SEED.map(|(name, _)| tenant(name));

    let results = Context::root()
        .with_source("cron:close-month")
        .scope(fanout::for_each_tenant(tenants, |tenant| {
            let pool = pool.clone();
            async move {
                let mut tx = postgres::begin(&pool).await?;
                let seen = all_visible_tenants(&mut tx).await;
                sqlx::query("update invoices set status = 'closed'")
                    .execute(&mut *tx)
                    .await?;
                if tenant.as_str() == "globex" {
                    // Fails before its commit: its update must roll back.
                    return Err(JobError::NoTenant);
                }
                tx.commit().await?;
                Ok(seen)
            }
        }))
        .await;

    let outcomes: Vec<_> = results
        .iter()
        .map(|(t, o)| (t.as_str(), o.as_ref().ok().cloned()))
        .collect();
    assert_eq!(outcomes[0], ("acme", Some(vec!["acme".to_owned(); 3])));
    assert_eq!(outcomes[1], ("globex", None));
    assert_eq!(
        outcomes[2],
        ("initech", Some(vec!["initech".to_owned(); 4]))
    );
    assert_eq!(results.failures().count(), 1);
    assert_eq!(db.owner_view("acme").await.1, 0);
    assert_eq!(
        db.owner_view("globex").await.1,
        2,
        "globex's update rolled back"
    );
    assert_eq!(db.owner_view("initech").await.1, 0);
}
