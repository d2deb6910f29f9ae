//! Declarative context scoping for async handlers.
//!
//! A request or job carries an identity: a [`TraceId`], a [`TenantId`] and a
//! [`UserRef`]. Inside one task it is readable anywhere ([`current()`],
//! [`trace_id()`], [`tenant()`]); across every boundary it is carried
//! explicitly and re-established on the other side.
//!
//! ```
//! use context_runtime::{requires_tenant, with_context, Carrier, CarrierError, TenantRequired};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Job { ctx: Option<Carrier>, invoice: u64 }
//!
//! #[derive(Debug)]
//! enum JobError { NoTenant(TenantRequired), BadCarrier(CarrierError) }
//! impl From<TenantRequired> for JobError { fn from(e: TenantRequired) -> Self { JobError::NoTenant(e) } }
//! impl From<CarrierError> for JobError { fn from(e: CarrierError) -> Self { JobError::BadCarrier(e) } }
//!
//! #[with_context(from = "job.ctx")]
//! #[requires_tenant]
//! async fn send_invoice(job: Job) -> Result<String, JobError> {
//!     // The whole body runs inside the job's context; no tenant, no body.
//!     let tenant = context_runtime::tenant()?;
//!     Ok(format!("invoice {} for {tenant}", job.invoice))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let job: Job = serde_json::from_str(
//!     r#"{"ctx":{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","tenantId":"t1"},"invoice":7}"#,
//! ).unwrap();
//! assert_eq!(send_invoice(job).await.unwrap(), "invoice 7 for t1");
//!
//! let orphan: Job = serde_json::from_str(r#"{"invoice":8}"#).unwrap();
//! assert!(matches!(send_invoice(orphan).await, Err(JobError::NoTenant(_))));
//! # }
//! ```
//!
//! # The rules
//!
//! 1. **Run, never enter.** A context is current for exactly one future
//!    ([`Context::scope`]) or closure ([`Context::scope_sync`]). There is no
//!    `enter_with`, no setter and no guard, and the macros reject ambient
//!    sets and guards held across `.await` in annotated bodies.
//! 2. **The boundary is a wall.** [`spawn`], [`spawn_blocking`],
//!    [`thread::spawn`], [`FutureExt`] and [`Context::bind`] capture the
//!    context when called; a [`Carrier`](struct@Carrier) carries it through a queue.
//! 3. **The tenant travels inside the job.** It is never inferred or
//!    defaulted: [`tenant()`] is a `Result`, and `#[requires_tenant]` refuses
//!    to run a body without one.
//!
//! # Cargo features
//!
//! Each integration is a module named after its feature (none is on by
//! default):
//!
//! | feature | module | what it adds |
//! | --- | --- | --- |
//! | `http` | `http` | W3C `traceparent`, `tracestate` and `baggage` in an `http::HeaderMap`, and `HeaderMap` as a [`ContextSource`] |
//! | `tower` | `tower` | `ContextLayer`, a tower layer that scopes every request |
//! | `axum` | `axum` | extractors (`CurrentContext`, `Tenant`), and [`TenantRequired`] as a `400` problem response; turns on `tower` |
//! | `reqwest` | `reqwest` | `RequestBuilderExt`: outgoing calls carry the context |
//! | `uuid` | | `uuid::Uuid` as a `#[carrier(tenant)]` field |
//! | `redis` | `redis` | jobs on a Redis stream with a consumer group (crash recovery, attempts, blocking reads), the carrier in the JSON payload, dead letters in a stream |
//! | `lapin` | `lapin` | RabbitMQ: the W3C fields in AMQP headers, a dead-letter exchange |
//! | `nats` | `nats` | NATS and JetStream (the `async-nats` client): the W3C fields in message headers, a dead-letter subject |
//! | `apalis` | `apalis` | a layer that runs apalis handlers in the job's context and dead-letters what must not run |
//! | `sqlx` | `sqlx` | PostgreSQL transactions that carry the current tenant into row-level security |
//! | `tracing` | `tracing` | every scope runs in a `context` span with `trace_id`, `tenant_id` and `user` |
//! | `opentelemetry` | `opentelemetry` | spans made inside a scope continue its trace; contexts read from OpenTelemetry's |
//! | `opentelemetry_sdk` | `opentelemetry` | an SDK id generator that starts root spans in the scope's trace |
//! | `testing` | `testing` | a cross-talk test kit to point at your own handlers, and helpers to build contexts in tests |
//!
//! Without a feature: [`fanout`] (scheduled work over many tenants, each in
//! its own child scope), [`process`] (child processes), [`w3c`] (the codecs),
//! [`jobs`] (what every broker integration shares), [`Keyring`] (signed
//! identity, see [`Trust`]) and [`limits`] (the input limits every path applies).
//!
//! # Architecture
//!
//! The source is layered; each folder of `src/` is one layer, and a module
//! imports only from the layers below its own, by path (never through the
//! re-exports of `lib.rs`). There are no cycles.
//!
//! | layer | holds | imports |
//! | --- | --- | --- |
//! | `model` | the values: `Context`, the ids, tenant, user, and the W3C trace state and baggage a context holds, with their text forms | nothing |
//! | `scope` | the scoped store and in-process crossings (tasks, threads, callbacks, fan-out); telemetry plugs in through a hook the store calls | `model` |
//! | `wire` | the JSON carrier, the trace-id safety net, signed identity (`Keyring`) and the input limits; no I/O | `model` |
//! | `propagate` | the `Propagator` (identity keys, trust, outbound policy), the W3C field names, `ContextSource`, a child's environment | `model`, `scope`, `wire` |
//! | `jobs` | what every broker shares: the job envelope and its id, the admission and retry policy, rejections, dead letters, the consume pipeline and the worker runner | the above |
//! | `integrations` | one module per cargo feature, named after it | everything above; nothing imports it |
//!
//! The macros' support code (the hidden `__private` module, no API) sits
//! beside `lib.rs`.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The layers, from the ground up (see "Architecture" above). A module
// imports only from the layers below its own, by path.
mod integrations;
pub mod jobs;
mod model;
mod propagate;
mod scope;
mod wire;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use crate::model::context::{Context, ContextBuilder};
pub use crate::model::tenant::{InvalidTenantId, TenantId, TenantRequired, TENANT_ID_MAX_LEN};
pub use crate::model::trace::{InvalidId, SpanId, TraceFlags, TraceId};
pub use crate::model::user::{InvalidUserRef, UserId, UserRef};
pub use crate::model::w3c;
pub use crate::propagate::env as process;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use crate::propagate::propagator::IdentityResolver;
pub use crate::propagate::propagator::{Identity, Outbound, Propagator, Trust};
pub use crate::propagate::source::{ContextSource, Untrusted};
pub use crate::scope::fanout;
pub use crate::scope::store::{current, tenant, trace_id, user, with_current, Scoped};
pub use crate::scope::task::{spawn, spawn_blocking, FutureExt};
pub use crate::scope::thread;
pub use crate::wire::carrier::{Carrier, CarrierError, CARRIER_VERSION};
pub use crate::wire::limits;
pub use crate::wire::signature::{
    Claims, InvalidKey, Keyring, UntrustedIdentity, DEFAULT_MAX_AGE, MAX_KEY_ID_LEN,
    MIN_SECRET_LEN, SIGNATURE_BAGGAGE_KEY,
};

#[cfg(feature = "apalis")]
#[cfg_attr(docsrs, doc(cfg(feature = "apalis")))]
pub use crate::integrations::apalis;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use crate::integrations::axum;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use crate::integrations::http;
#[cfg(feature = "lapin")]
#[cfg_attr(docsrs, doc(cfg(feature = "lapin")))]
pub use crate::integrations::lapin;
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub use crate::integrations::nats;
#[cfg(feature = "opentelemetry")]
#[cfg_attr(docsrs, doc(cfg(feature = "opentelemetry")))]
pub use crate::integrations::opentelemetry;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use crate::integrations::redis;
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub use crate::integrations::reqwest;
#[cfg(feature = "sqlx")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlx")))]
pub use crate::integrations::sqlx;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub use crate::integrations::testing;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use crate::integrations::tower;
#[cfg(feature = "tracing")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
pub use crate::integrations::tracing;

/// Runs an `async fn`'s whole body inside a context read at the boundary.
///
/// ```
/// use context_runtime::{with_context, Carrier, CarrierError};
///
/// #[with_context(from = "ctx")]
/// async fn handle(ctx: Carrier) -> Result<String, CarrierError> {
///     Ok(context_runtime::trace_id().unwrap().to_string())
/// }
///
/// #[with_context(fresh, source = "cron:cleanup")]
/// async fn cleanup() -> Option<String> {
///     context_runtime::current()?.source().map(str::to_owned)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let carrier = Carrier::from_json(r#"{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736"}"#).unwrap();
/// assert_eq!(handle(carrier).await.unwrap(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(cleanup().await.as_deref(), Some("cron:cleanup"));
/// # }
/// ```
///
/// # Options
///
/// | option | meaning |
/// | --- | --- |
/// | `from = "expr"` | read the context from `expr`, whose root must be an argument (`job.data.ctx`, `headers`, `self.ctx`) and whose type is a [`ContextSource`] |
/// | `fresh` | start a new root context (scheduled work); excludes `from` |
/// | `source = "…"` | with `fresh`, the context's [`source`](Context::source) |
/// | `crate = "path"` | the path of this crate when renamed in `Cargo.toml` |
/// | `local` | the body's future may be `!Send` (a handler run on a `LocalSet` or a current-thread runtime); see below |
/// | `allow_bare_spawn` | allow `tokio::spawn` and friends in the body, for work meant to run without the context |
///
/// When reading can fail (a [`Carrier`](struct@Carrier) with an invalid tenant), the function
/// must return `Result<_, E>` with `E: From<CarrierError>`; the body does not
/// run and the error is returned.
///
/// # What this expands to (simplified)
///
/// ```text
/// async fn handle(job: Job) -> Result<(), E> {
///     let __context_cx = match ::context_runtime::__private::read(&(job.ctx)) {
///         Ok(cx) => cx,
///         Err(e) => return Err(::core::convert::From::from(e)),
///     };
///     let __context_body = async move {
///         ::context_runtime::__private::checked_body(); // a later #[requires_tenant] checks here
///         /* body */
///     };
///     // the type-based guard check (not with `local`)
///     let __context_body = ::context_runtime::__private::body_must_be_send(__context_body);
///     ::context_runtime::__private::scope(__context_cx, __context_body).await
/// }
/// ```
///
/// # Checked at compile time
///
/// - The body's future must be `Send`: a thread-bound guard
///   (`tracing::span::EnteredSpan`, OpenTelemetry's `ContextGuard`) alive
///   across an `.await` fails to compile whatever its syntax, and rustc
///   names its line. A handler that is `!Send` on purpose says `local`.
/// - `enter_with`, and guards from `.enter()`, `.entered()`, `.attach()`,
///   `Span::enter(&span)`, `Context::attach(cx)`,
///   `tracing::subscriber::set_default` / `tracing::dispatcher::set_default`
///   or a helper named like `enter_for_job`, kept (by `let`, inside
///   `Some(…)`, a tuple or a struct, by a late assignment, or as a `match` /
///   `if let` scrutinee) across an `.await`: they make concurrent tasks see
///   each other's context. These include guards that are `Send`
///   (`tracing::span::Entered`).
/// - `tokio::spawn`, `tokio::task::spawn`, `tokio::task::spawn_blocking` and
///   `std::thread::spawn`: use [`spawn`], [`spawn_blocking`] and
///   [`thread::spawn`], which carry the context, or say `allow_bare_spawn`.
///
/// The crate ships a clippy preset (`clippy-preset/clippy.toml`) with the
/// same rules for code outside annotated bodies.
///
/// ```
/// use std::rc::Rc;
/// use context_runtime::{with_context, Context};
///
/// // `!Send` on purpose: it holds an `Rc` across an `.await`.
/// #[with_context(from = "cx", local)]
/// async fn render(cx: Context, cache: Rc<String>) -> usize {
///     tokio::task::yield_now().await;
///     cache.len()
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(render(Context::root(), Rc::new("abc".into())).await, 3);
/// # }
/// ```
#[doc(inline)]
pub use context_macros::with_context;

/// Refuses to run the body without a tenant in the current context.
///
/// The function must return `Result<_, E>` with `E: From<TenantRequired>`; it
/// returns `Err(TenantRequired.into())` before any of its code runs. It works
/// inside an existing scope and together with `#[with_context]`, in either
/// order, renamed with `use … as` and beside other attributes: the tenant is
/// always checked inside the scope `#[with_context]` establishes, never
/// skipped. Its body is checked like `#[with_context]`'s (options `local`
/// and `allow_bare_spawn`, and `crate = "path"`); with both attributes, the
/// first one checks the body, so put the options there.
///
/// ```
/// use context_runtime::{requires_tenant, Context, TenantId, TenantRequired};
///
/// #[requires_tenant]
/// async fn bill() -> Result<String, TenantRequired> {
///     Ok(format!("billing {}", context_runtime::tenant()?))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(bill().await, Err(TenantRequired));
/// let cx = Context::root().with_tenant(TenantId::new("t1").unwrap());
/// assert_eq!(cx.scope(bill()).await.unwrap(), "billing t1");
/// # }
/// ```
#[doc(inline)]
pub use context_macros::requires_tenant;

/// Makes a job payload a [`ContextSource`] from its marked fields.
///
/// | field attribute | field types | becomes |
/// | --- | --- | --- |
/// | `#[carrier(trace)]` | `TraceId`, `String`, or an `Option` of them | the trace id (a fresh one, with the safety-net warning, when missing or invalid) |
/// | `#[carrier(tenant)]` | `TenantId`, `String`, `uuid::Uuid` (feature `uuid`), or an `Option` of them | the tenant; an invalid one is a [`CarrierError`]; a non-`Option` field makes it required by the type |
/// | `#[carrier(user)]` | `UserRef`, `Option<UserRef>` | the user |
/// | `#[carrier(value)]` | any `Clone + Send + Sync + 'static` type | a process-local value, read with [`Context::get`] |
///
/// On the struct, `#[carrier(crate = "path")]` names this crate when renamed.
///
/// ```
/// use context_runtime::{Carrier, ContextSource, TenantId};
/// use serde::Deserialize;
///
/// #[derive(Clone, Debug, PartialEq, Deserialize)]
/// struct Locale(String);
///
/// #[derive(Deserialize, Carrier)]
/// struct InvoiceJob {
///     #[carrier(trace)]
///     trace_id: Option<String>,
///     #[carrier(tenant)]
///     tenant_id: TenantId,
///     #[carrier(value)]
///     locale: Locale,
///     invoice: u64,
/// }
///
/// let job: InvoiceJob = serde_json::from_str(
///     r#"{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","tenant_id":"t1","locale":"fr","invoice":1}"#,
/// )?;
/// let cx = job.to_context()?;
/// assert_eq!(cx.tenant().unwrap().as_str(), "t1");
/// assert_eq!(cx.get::<Locale>(), Some(&Locale("fr".into())));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(inline)]
pub use context_macros::Carrier;
