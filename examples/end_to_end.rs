//! End to end: an HTTP request becomes a job, a tenant's row and a traced
//! outgoing call.
//!
//! 1. An axum endpoint, `POST /invoices`, requires a tenant (the
//!    `ContextLayer` resolves it from the request's bearer token; without one
//!    the answer is a `400` problem) and enqueues a job on a Redis stream,
//!    inside the request's context: the job carries its trace id and tenant.
//! 2. The crate's runner (`jobs::Worker`, 4 jobs at a time) consumes the
//!    jobs. The handler runs inside its job's context: it writes a row to
//!    PostgreSQL through a transaction bound to the job's tenant (row-level
//!    security filters and checks every row) and calls an HTTP endpoint with
//!    reqwest, carrying the trace id and the tenant (`traceparent`,
//!    `baggage`).
//! 3. The program checks that each tenant sees only its own rows and that
//!    every outgoing call carried its job's trace id and tenant, prints a
//!    summary, removes what it created, and exits 0.
//!
//! ```text
//! cargo run -p context-examples --features end-to-end --example end_to_end
//! ```
//!
//! It needs Redis and PostgreSQL (`REDIS_URL`, by default
//! `redis://127.0.0.1:6379`; `DATABASE_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test`, a role that may create schemas
//! and roles). Everything it creates has a unique name and is dropped at the
//! end. The HTTP server listens on a free port of 127.0.0.1 and serves both
//! the API and the "billing" service the jobs call.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::str::FromStr as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use context_runtime::jobs::{Job, Outcome, Worker};
use context_runtime::redis::Queue;
use context_runtime::reqwest::RequestBuilderExt as _;
use context_runtime::sqlx as postgres; // `sqlx` would shadow the sqlx crate
use context_runtime::tower::ContextLayer;
use context_runtime::w3c::{Baggage, TraceParent};
use context_runtime::{axum::Tenant, requires_tenant, Context, Identity, Propagator, TenantId};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row as _};

/// The one error type: `?` works on Redis, sqlx, reqwest and the crate's
/// errors alike. The runner needs only `Display` of a handler's error, and
/// `#[requires_tenant]` only `From<TenantRequired>`.
type Error = Box<dyn std::error::Error + Send + Sync>;

/// The job's data. Its context (trace id, tenant) rides beside it in the
/// `Job` envelope, captured at enqueue.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Invoice {
    amount: i64,
}

// ---------------------------------------------------------------------------
// 1. The API: a tenant is required, the job is enqueued in the request's context
// ---------------------------------------------------------------------------

/// What the API answers: the job's id and the trace it belongs to.
#[derive(Debug, Serialize, Deserialize)]
struct Enqueued {
    job_id: String,
    trace_id: String,
    tenant: String,
}

#[derive(Clone)]
struct Api {
    queue: Queue,
    redis: redis::aio::MultiplexedConnection,
}

/// `POST /invoices`: the `Tenant` extractor rejects a request without a
/// tenant with a `400` problem before this body runs. The layer runs the
/// handler inside the request's context, so the job captures it.
async fn create_invoice(
    State(api): State<Api>,
    Tenant(tenant): Tenant,
    Json(invoice): Json<Invoice>,
) -> Result<(StatusCode, Json<Enqueued>), (StatusCode, String)> {
    let mut redis = api.redis.clone();
    let job_id = api
        .queue
        .enqueue(&mut redis, &invoice)
        .await
        .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let trace_id = context_runtime::trace_id().map(|t| t.to_string());
    Ok((
        StatusCode::ACCEPTED,
        Json(Enqueued {
            job_id,
            trace_id: trace_id.unwrap_or_default(),
            tenant: tenant.to_string(),
        }),
    ))
}

/// Who a bearer token belongs to. A stand-in for your authentication (a
/// verified JWT's claims, a session): the tenant comes from what the server
/// verified, never from a header the client may set at will.
fn identity_from_token(headers: &HeaderMap, _extensions: &Extensions) -> Identity {
    const TOKENS: [(&str, &str); 2] = [("token-of-acme", "acme"), ("token-of-globex", "globex")];
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let tenant = TOKENS
        .iter()
        .find(|(known, _)| Some(*known) == token)
        .and_then(|(_, tenant)| TenantId::new(*tenant).ok());
    Identity { tenant, user: None }
}

// ---------------------------------------------------------------------------
// 2. The worker: a row under row-level security, an outgoing call
// ---------------------------------------------------------------------------

/// What the handler needs besides its job.
#[derive(Clone)]
struct Deps {
    /// Connected as the application's role, which row-level security binds.
    pool: PgPool,
    http: reqwest::Client,
    billing_url: String,
}

/// What a finished job reports.
#[derive(Debug)]
struct Recorded {
    job_id: String,
    tenant: String,
    trace_id: String,
}

/// The job handler. The runner already runs it inside the job's context
/// (read from the job's carrier and checked by the queue's policy), so it
/// has no `#[with_context]`; `#[requires_tenant]` states in the signature
/// that it never runs without a tenant.
#[requires_tenant]
async fn record_invoice(deps: Deps, job: Job<Invoice>) -> Result<Recorded, Error> {
    let tenant = context_runtime::tenant()?;
    let trace_id = context_runtime::trace_id()
        .map(|t| t.to_string())
        .unwrap_or_default();

    // A transaction bound to the job's tenant: the insert names no tenant,
    // the column's default and the policy's `with check` use the bound one.
    // The job id is the idempotency key: a redelivered job writes no second row.
    let mut tx = postgres::begin(&deps.pool).await?;
    sqlx::query(
        "insert into invoices (job_id, trace_id, amount) values ($1, $2, $3)
         on conflict (job_id) do nothing",
    )
    .bind(job.id())
    .bind(&trace_id)
    .bind(job.data.amount)
    .execute(&mut *tx)
    .await?;

    // The outgoing call carries the trace id (a new parent id) and the tenant.
    deps.http
        .post(&deps.billing_url)
        .inject_current()
        .header("idempotency-key", job.id())
        .json(&job.data)
        .send()
        .await?
        .error_for_status()?;

    // The row and the call, or (on an error above) neither row nor ack: the
    // job is retried with the same id.
    tx.commit().await?;
    println!(
        "  worker: job {} tenant={tenant} trace={trace_id} attempt={}: row written, billing called",
        job.id(),
        job.attempt()
    );
    Ok(Recorded {
        job_id: job.id().to_owned(),
        tenant: tenant.to_string(),
        trace_id,
    })
}

// ---------------------------------------------------------------------------
// The "billing" service the jobs call: it records what it received
// ---------------------------------------------------------------------------

/// One call to the billing service, as it arrived.
#[derive(Debug, Clone)]
struct BillingCall {
    idempotency_key: String,
    traceparent: Option<String>,
    baggage: Option<String>,
}

type Calls = Arc<Mutex<Vec<BillingCall>>>;

async fn billing(State(calls): State<Calls>, headers: HeaderMap) -> StatusCode {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let call = BillingCall {
        idempotency_key: text("idempotency-key").unwrap_or_default(),
        traceparent: text("traceparent"),
        baggage: text("baggage"),
    };
    calls.lock().expect("not poisoned").push(call);
    StatusCode::NO_CONTENT
}

// ---------------------------------------------------------------------------
// 3. The run: servers, schema, requests, worker, checks, cleanup
// ---------------------------------------------------------------------------

/// Where the servers are.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    redis_url: String,
    database_url: String,
}

impl Default for Config {
    /// Redis and PostgreSQL on this machine.
    fn default() -> Self {
        Config {
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            database_url: "postgres://postgres@127.0.0.1:5432/test".to_owned(),
        }
    }
}

impl Config {
    /// The defaults, overridden by `REDIS_URL` and `DATABASE_URL`.
    fn from_env() -> Config {
        let default = Config::default();
        Config {
            redis_url: std::env::var("REDIS_URL").unwrap_or(default.redis_url),
            database_url: std::env::var("DATABASE_URL").unwrap_or(default.database_url),
        }
    }
}

/// What the run found.
#[derive(Debug)]
pub(crate) struct Summary {
    /// Rows per tenant, as each tenant sees the table (no `where` clause).
    pub(crate) rows_seen: BTreeMap<String, usize>,
    /// Rows in the table, as its owner sees it (row-level security does not
    /// apply to the owner).
    pub(crate) rows_total: usize,
    /// Jobs completed by the runner.
    pub(crate) completed: usize,
    /// Outgoing calls that carried their job's trace id and tenant.
    pub(crate) traced_calls: usize,
    /// The status of the request without a tenant.
    pub(crate) rejected_status: u16,
    /// Dead letters (none expected).
    pub(crate) dead_letters: usize,
}

/// The requests the program sends: bearer token (none: no tenant), amount.
const REQUESTS: [(Option<&str>, i64); 6] = [
    (Some("token-of-acme"), 100),
    (Some("token-of-globex"), 200),
    (Some("token-of-acme"), 300),
    (None, 400),
    (Some("token-of-globex"), 500),
    (Some("token-of-acme"), 600),
];

/// Runs the whole flow against the servers of `config`, and removes what it
/// created whatever the outcome.
///
/// # Errors
///
/// A server that cannot be reached, or a check that failed (with what it
/// found).
pub(crate) async fn run(config: Config) -> Result<Summary, Error> {
    let servers = Servers::connect(&config).await?;
    let suffix = format!("{:016x}", fastrand::u64(..));
    let fixture = Fixture {
        schema: format!("ctx_e2e_{suffix}"),
        role: format!("ctx_e2e_app_{suffix}"),
        queue: Queue::new(format!("ctx-e2e-invoices-{suffix}")),
    };
    let result = match fixture.create(&servers).await {
        Ok(()) => flow(&servers, &fixture).await,
        Err(e) => Err(e),
    };
    fixture.drop(&servers).await;
    result
}

/// The connections the program administers with.
struct Servers {
    redis: redis::Client,
    redis_conn: redis::aio::MultiplexedConnection,
    /// The database's administrator (owner of the table; a superuser).
    admin: PgPool,
    postgres: PgConnectOptions,
}

impl Servers {
    async fn connect(config: &Config) -> Result<Servers, Error> {
        const WAIT: Duration = Duration::from_secs(5);
        let unreachable = |server: &str, url: &str, e: &dyn std::fmt::Display| -> Error {
            format!(
                "{server} is not reachable at {url}: {e} (start it, or set {})",
                match server {
                    "Redis" => "REDIS_URL",
                    _ => "DATABASE_URL",
                }
            )
            .into()
        };
        let redis = redis::Client::open(config.redis_url.as_str())
            .map_err(|e| unreachable("Redis", &config.redis_url, &e))?;
        let redis_conn =
            match tokio::time::timeout(WAIT, redis.get_multiplexed_async_connection()).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => return Err(unreachable("Redis", &config.redis_url, &e)),
                Err(_) => return Err(unreachable("Redis", &config.redis_url, &"timed out")),
            };
        let postgres = PgConnectOptions::from_str(&config.database_url)
            .map_err(|e| unreachable("PostgreSQL", &config.database_url, &e))?;
        let admin = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(WAIT)
            .connect_with(postgres.clone())
            .await
            .map_err(|e| unreachable("PostgreSQL", &config.database_url, &e))?;
        Ok(Servers {
            redis,
            redis_conn,
            admin,
            postgres,
        })
    }
}

/// What one run creates, under unique names.
struct Fixture {
    schema: String,
    role: String,
    queue: Queue,
}

impl Fixture {
    /// The schema, the table with its policies, and the application's role.
    async fn create(&self, servers: &Servers) -> Result<(), Error> {
        let (s, r) = (&self.schema, &self.role);
        let statements = [
            format!("create schema {s}"),
            format!(
                "create table {s}.invoices (
                    id        bigserial primary key,
                    tenant_id text   not null default current_setting('app.current_tenant', true),
                    job_id    text   not null unique,
                    trace_id  text   not null,
                    amount    bigint not null
                )"
            ),
            format!("alter table {s}.invoices enable row level security"),
            format!(
                "create policy tenant_isolation on {s}.invoices
                    using      (tenant_id = current_setting('app.current_tenant', true))
                    with check (tenant_id = current_setting('app.current_tenant', true))"
            ),
            // The application's role: not the owner, not a superuser, so the
            // policies apply to it.
            format!("create role {r} login"),
            format!("grant usage on schema {s} to {r}"),
            format!("grant select, insert on {s}.invoices to {r}"),
            format!("grant usage on sequence {s}.invoices_id_seq to {r}"),
        ];
        for statement in statements {
            sqlx::query(&statement)
                .execute(&servers.admin)
                .await
                .map_err(|e| format!("PostgreSQL refused `{statement}`: {e}"))?;
        }
        Ok(())
    }

    /// Removes the schema, the role and the streams (what exists of them).
    async fn drop(&self, servers: &Servers) {
        for statement in [
            format!("drop schema if exists {} cascade", self.schema),
            format!("drop role if exists {}", self.role),
        ] {
            if let Err(e) = sqlx::query(&statement).execute(&servers.admin).await {
                eprintln!("cleanup: `{statement}` failed: {e}");
            }
        }
        let mut conn = servers.redis_conn.clone();
        let deleted: Result<(), _> = redis::cmd("DEL")
            .arg(self.queue.name())
            .arg(self.queue.dead_letter_stream())
            .query_async(&mut conn)
            .await;
        if let Err(e) = deleted {
            eprintln!("cleanup: deleting the streams failed: {e}");
        }
    }
}

async fn flow(servers: &Servers, fixture: &Fixture) -> Result<Summary, Error> {
    // The application connects as its own role, to the run's schema.
    let app_pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(
            servers
                .postgres
                .clone()
                .username(&fixture.role)
                .options([("search_path", fixture.schema.as_str())]),
        )
        .await?;
    let result = requests_and_jobs(servers, fixture, &app_pool).await;
    app_pool.close().await;
    result
}

async fn requests_and_jobs(
    servers: &Servers,
    fixture: &Fixture,
    app_pool: &PgPool,
) -> Result<Summary, Error> {
    // The HTTP server: the API behind the context layer, and the billing
    // service beside it (added after the layer, so outside it).
    let calls = Calls::default();
    let api = Api {
        queue: fixture.queue.clone(),
        redis: servers.redis_conn.clone(),
    };
    let edge = Propagator::new().resolve_identity(identity_from_token);
    let app = Router::new()
        .route("/invoices", post(create_invoice))
        .with_state(api)
        .layer(ContextLayer::new(edge))
        .merge(
            Router::new()
                .route("/billing", post(billing))
                .with_state(calls.clone()),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr: SocketAddr = listener.local_addr()?;
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = server_stopped.await;
            })
            .await
    });
    println!(
        "== end to end: API and billing on http://{addr}, queue {} ==",
        fixture.queue.name()
    );

    // The worker: the crate's runner, 4 jobs at a time.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let deps = Deps {
        pool: app_pool.clone(),
        http: http.clone(),
        billing_url: format!("http://{addr}/billing"),
    };
    let consumer = fixture
        .queue
        .consumer::<Invoice>(servers.redis.clone())
        .await?;
    let (outcome_tx, mut outcomes) = tokio::sync::mpsc::unbounded_channel();
    let (stop_worker, worker_stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(
        Worker::new(consumer, move |job| record_invoice(deps.clone(), job))
            .concurrency(4)
            .shutdown_grace(Duration::from_secs(5))
            .on_outcome(move |handled| {
                let _ = outcome_tx.send(handled);
            })
            .run(async {
                let _ = worker_stopped.await;
            }),
    );

    let checked = async {
        // The client: two tenants, and one request without a tenant.
        let mut enqueued = Vec::new();
        let mut rejected_status = 0;
        for (token, amount) in REQUESTS {
            let mut request = http
                .post(format!("http://{addr}/invoices"))
                .json(&Invoice { amount });
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await?;
            let status = response.status();
            match token {
                Some(_) if status == StatusCode::ACCEPTED => {
                    let job: Enqueued = response.json().await?;
                    println!(
                        "  client: {} job {} trace={}",
                        job.tenant, job.job_id, job.trace_id
                    );
                    enqueued.push(job);
                }
                None if status.is_client_error() => {
                    let content_type = response
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let body = response.text().await?;
                    if content_type != "application/problem+json" {
                        return Err(format!(
                            "no tenant: expected a problem response, got {content_type}: {body}"
                        )
                        .into());
                    }
                    println!("  client: without a tenant: {status} {body}");
                    rejected_status = status.as_u16();
                }
                _ => {
                    let body = response.text().await.unwrap_or_default();
                    return Err(format!("POST /invoices answered {status}: {body}").into());
                }
            }
        }

        // Every job ends: completed (or dead-lettered, which fails the run).
        let mut completed = BTreeMap::new();
        let mut dead = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while completed.len() + dead.len() < enqueued.len() {
            let handled = tokio::time::timeout_at(deadline, outcomes.recv())
                .await
                .map_err(|_| {
                    format!(
                        "only {} of {} jobs ended within 15 s",
                        completed.len() + dead.len(),
                        enqueued.len()
                    )
                })?
                .ok_or("the worker stopped")?;
            match handled.outcome {
                Ok(Outcome::Completed(recorded)) => {
                    completed.insert(recorded.job_id.clone(), recorded);
                }
                Ok(Outcome::DeadLettered(letter)) => dead.push(letter.reason),
                Ok(Outcome::Retried { attempt, error }) => {
                    println!(
                        "  worker: job {:?} attempt {attempt} failed: {error}",
                        handled.job_id
                    );
                }
                Ok(_) => {}
                Err(e) => println!("  worker: a job could not be settled: {e}"),
            }
        }
        if !dead.is_empty() {
            return Err(format!("dead letters: {dead:?}").into());
        }
        let calls = calls.lock().expect("not poisoned").clone();
        check(
            servers,
            fixture,
            app_pool,
            &enqueued,
            &completed,
            &calls,
            rejected_status,
        )
        .await
    }
    .await;

    // Stop the worker (it finishes its read in flight) and the server.
    let _ = stop_worker.send(());
    let stopped = worker.await?;
    let _ = stop_server.send(());
    server.await??;
    let mut summary = checked?;
    if stopped.abandoned > 0 {
        return Err(format!("{} jobs were abandoned at shutdown", stopped.abandoned).into());
    }
    let mut conn = servers.redis_conn.clone();
    summary.dead_letters = fixture.queue.dead_letters(&mut conn).await?.len();
    if summary.dead_letters > 0 {
        return Err(format!("{} dead letters on the queue", summary.dead_letters).into());
    }
    Ok(summary)
}

/// The checks: each tenant sees only its rows, the owner sees them all, no
/// tenant means no query, and every outgoing call carried its job's trace id
/// and tenant.
async fn check(
    servers: &Servers,
    fixture: &Fixture,
    app_pool: &PgPool,
    enqueued: &[Enqueued],
    completed: &BTreeMap<String, Recorded>,
    calls: &[BillingCall],
    rejected_status: u16,
) -> Result<Summary, Error> {
    for job in enqueued {
        let recorded = completed
            .get(&job.job_id)
            .ok_or_else(|| format!("job {} did not complete", job.job_id))?;
        if recorded.trace_id != job.trace_id || recorded.tenant != job.tenant {
            return Err(format!(
                "job {} ran as trace {} tenant {}, enqueued as trace {} tenant {}",
                job.job_id, recorded.trace_id, recorded.tenant, job.trace_id, job.tenant
            )
            .into());
        }
    }

    // Each tenant reads the whole table, without a `where` clause.
    let mut rows_seen = BTreeMap::new();
    for tenant in ["acme", "globex"] {
        let cx = Context::root().with_tenant(TenantId::new(tenant)?);
        let rows = cx
            .scope(async {
                let mut tx = postgres::begin(app_pool).await?;
                let rows = sqlx::query("select tenant_id, job_id, trace_id from invoices")
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, Error>(rows)
            })
            .await?;
        let expected: Vec<&Enqueued> = enqueued.iter().filter(|j| j.tenant == tenant).collect();
        for row in &rows {
            let (row_tenant, job_id, trace_id): (String, String, String) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            let ours = expected
                .iter()
                .any(|j| j.job_id == job_id && j.trace_id == trace_id);
            if row_tenant != tenant || !ours {
                return Err(format!(
                    "{tenant} sees a row that is not its own: {row_tenant} {job_id}"
                )
                .into());
            }
        }
        if rows.len() != expected.len() {
            return Err(format!(
                "{tenant} sees {} rows, it has {}",
                rows.len(),
                expected.len()
            )
            .into());
        }
        rows_seen.insert(tenant.to_owned(), rows.len());
    }
    // The control: the owner, to whom the policies do not apply, sees them all.
    let rows_total: i64 =
        sqlx::query_scalar(&format!("select count(*) from {}.invoices", fixture.schema))
            .fetch_one(&servers.admin)
            .await?;
    let rows_total = usize::try_from(rows_total)?;
    if rows_total != enqueued.len() {
        return Err(format!(
            "the table holds {rows_total} rows, {} jobs ran",
            enqueued.len()
        )
        .into());
    }
    // Without a tenant in scope there is no transaction at all.
    match postgres::begin(app_pool).await {
        Err(postgres::Error::TenantRequired(_)) => {}
        Err(e) => return Err(e.into()),
        Ok(_) => return Err("a transaction began without a tenant".into()),
    }

    // Every outgoing call carried its job's trace id and tenant.
    let mut traced_calls = 0;
    for job in enqueued {
        let call = calls
            .iter()
            .find(|c| c.idempotency_key == job.job_id)
            .ok_or_else(|| format!("job {} made no billing call", job.job_id))?;
        let trace_id = call
            .traceparent
            .as_deref()
            .and_then(|v| TraceParent::from_str(v).ok())
            .map(|p| p.trace_id().to_string());
        let tenant = call
            .baggage
            .as_deref()
            .and_then(|v| Baggage::from_str(v).ok())
            .and_then(|b| b.get("tenantId").map(str::to_owned));
        if trace_id.as_deref() != Some(job.trace_id.as_str())
            || tenant.as_deref() != Some(job.tenant.as_str())
        {
            return Err(format!(
                "job {} (trace {}, tenant {}) called billing with traceparent {:?}, baggage {:?}",
                job.job_id, job.trace_id, job.tenant, call.traceparent, call.baggage
            )
            .into());
        }
        traced_calls += 1;
    }

    Ok(Summary {
        rows_seen,
        rows_total,
        completed: completed.len(),
        traced_calls,
        rejected_status,
        dead_letters: 0,
    })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Config::from_env()).await {
        Ok(summary) => {
            println!();
            println!("== summary ==");
            println!("{:<28} {:>5}", "jobs completed", summary.completed);
            for (tenant, rows) in &summary.rows_seen {
                println!("{:<28} {:>5}", format!("rows {tenant} sees"), rows);
            }
            println!("{:<28} {:>5}", "rows the owner sees", summary.rows_total);
            println!(
                "{:<28} {:>5}",
                "calls with the job's trace", summary.traced_calls
            );
            println!(
                "{:<28} {:>5}",
                "status without a tenant", summary.rejected_status
            );
            println!("{:<28} {:>5}", "dead letters", summary.dead_letters);
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("end_to_end failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
