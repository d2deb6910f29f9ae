//! Jobs across message brokers: the producer's context is captured once, at
//! enqueue; the consumer checks it before any handler code runs, runs the
//! handler inside it, and dead-letters what it must not run.
//!
//! The pieces every integration shares live here: [`Job`] (a payload with
//! the producer's [`Carrier`]), [`Policy`] (is a tenant required, how many
//! attempts), [`admit`] (the check at the boundary), [`Rejection`] (why a job
//! is not run) and [`DeadLetter`] (the record a dead-letter destination
//! holds). The integrations are thin adapters over the broker's own client:
//!
//! | module | feature | where the context rides | dead letters |
//! | --- | --- | --- | --- |
//! | `redis` | `redis` | a [`Carrier`] in the JSON payload ([`Job`]), on a Redis stream | a Redis stream keeping the original bytes |
//! | `lapin` | `lapin` | `traceparent`, `tracestate`, `baggage` AMQP headers | a dead-letter exchange, with the reason in headers |
//! | `nats` | `nats` | the same, in NATS message headers | a JetStream subject, with the reason in headers |
//! | `apalis` | `apalis` | a [`ContextSource`] job argument ([`Job`], `#[derive(Carrier)]`) | apalis's own dead set on Redis |
//!
//! # The semantics, on every broker
//!
//! - **Captured once.** The producer's context becomes the job's carrier when
//!   the job is enqueued. A retry re-delivers the *original* carrier (same
//!   trace id, same tenant); it is never replaced by the worker's context.
//! - **Checked before running.** A job whose carrier does not parse, names
//!   an invalid tenant or user, or has no tenant while the [`Policy`]
//!   requires one is not run: it goes to the dead-letter destination with
//!   its reason ([`Rejection`]) and the tenant it claimed, if readable.
//! - **Nothing is lost.** Every job ends completed or dead-lettered; a
//!   handler error or panic is retried (after [`Policy::retry_delay`]) up
//!   to [`Policy::max_attempts`], then dead-lettered as
//!   [`RejectionKind::Exhausted`]. A delivery whose worker died counts as an
//!   attempt too.
//! - **At least once.** A job may run again after a crash or a lost
//!   connection: its id ([`Job::id`], [`current_job_id`]) is the same on
//!   every delivery, the key to make side effects idempotent.
//!
//! # Trust
//!
//! Anyone who can write to a queue can claim a tenant, so a [`Policy`]
//! says whose identity it takes ([`Trust`], the same model as the HTTP
//! layer's):
//!
//! - **With a keyring** ([`Policy::keyring`]): only identity signed by one of
//!   its keys, within its maximum age, is taken. An unsigned tenant, a
//!   forged or edited one, an unknown key id or an expired signature is
//!   dead-lettered as [`RejectionKind::UntrustedIdentity`] with its reason,
//!   and the handler never runs. Producers sign with the same keyring
//!   ([`Job::signed`], the Redis queue's `enqueue` with the policy, or a
//!   [`Propagator::keyring`](crate::Propagator::keyring) for headers).
//! - **Without one** (the default): identity is trusted unsigned, as in a
//!   closed system, and the first job that carries one logs a warning, once
//!   per process. Say [`Policy::trust`]`(Trust::Baggage)` to opt in
//!   explicitly (no warning), or `Trust::Nothing` for a queue fed by a third
//!   party (its jobs then have no tenant).
//!
//! An invalid tenant is an error on every wire, never "no tenant".
//!
//! ```
//! use context_runtime::jobs::{admit, Job, Policy, RejectionKind};
//! use context_runtime::{Context, TenantId};
//!
//! let cx = Context::root().with_tenant(TenantId::new("acme")?);
//! let wire = serde_json::to_string(&Job::new(&cx, 42))?;
//!
//! let job: Job<u32> = serde_json::from_str(&wire)?;
//! let admitted = admit(&job, &Policy::new())?;
//! assert_eq!(admitted.trace_id(), cx.trace_id());
//!
//! let orphan: Job<u32> = serde_json::from_str(r#"{"data":7}"#)?;
//! let rejected = admit(&orphan, &Policy::new()).unwrap_err();
//! assert_eq!(rejected.kind(), RejectionKind::TenantRequired);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::convert::Infallible;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
#[cfg(feature = "redis")]
use serde_json::Value;

use crate::model::context::Context;
use crate::propagate::propagator::{warn_unsigned_once, Trust};
use crate::propagate::source::{ContextSource, Untrusted};
use crate::wire::carrier::{Carrier, CarrierError, JobCtx};
use crate::wire::limits::MAX_JOB_PAYLOAD_BYTES;
use crate::wire::signature::{Keyring, UntrustedIdentity};

#[cfg(any(feature = "redis", feature = "lapin", feature = "nats"))]
pub mod pipeline;
#[cfg(any(
    feature = "redis",
    feature = "lapin",
    feature = "nats",
    feature = "apalis"
))]
mod run;
#[cfg(any(feature = "redis", feature = "lapin", feature = "nats"))]
mod runner;

#[cfg(any(feature = "redis", feature = "lapin", feature = "nats"))]
pub use runner::{Handled, Stopped, Transport, Worker};

/// A job payload with the producer's context and its id:
/// `{"ctx": <carrier>, "data": <T>, "id": "<32 hex>"}`.
///
/// [`Job::current`] captures the current context once, when the job is made,
/// and gives the job a random 128-bit id ([`Job::id`]) that stays the same
/// on every retry and redelivery: the key to make a handler idempotent.
/// The carrier is kept as written and checked only when the job is read
/// ([`ContextSource`]), so a job whose carrier is broken still parses and
/// can be dead-lettered with its reason.
///
/// ```
/// use context_runtime::jobs::Job;
/// use context_runtime::{with_context, requires_tenant, CarrierError, Context, TenantId, TenantRequired};
///
/// #[derive(Debug)]
/// enum JobError { Carrier(CarrierError), NoTenant(TenantRequired) }
/// impl From<CarrierError> for JobError { fn from(e: CarrierError) -> Self { JobError::Carrier(e) } }
/// impl From<TenantRequired> for JobError { fn from(e: TenantRequired) -> Self { JobError::NoTenant(e) } }
///
/// #[with_context(from = "job")]
/// #[requires_tenant]
/// async fn send_invoice(job: Job<u64>) -> Result<String, JobError> {
///     Ok(format!("invoice {} for {}", job.data, context_runtime::tenant()?))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let request = Context::root().with_tenant(TenantId::new("acme")?);
/// let job = request.scope(async { Job::current(7) }).await;
/// assert_eq!(send_invoice(job).await.unwrap(), "invoice 7 for acme");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Job<T> {
    /// The carrier as written (checked when the job is read): read
    /// straight into a [`Carrier`] when it is a carrier object, kept as
    /// JSON otherwise, and written back as it came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ctx: Option<JobCtx>,
    /// The delivery attempt, 1 for the first; set by the integration on
    /// the consumer side, never by the producer.
    #[serde(skip, default = "first_attempt")]
    attempt: u32,
    /// The job's own data.
    pub data: T,
    /// The job's id, made at enqueue; empty when the producer gave none
    /// (an integration then uses the broker's message id).
    #[serde(default, skip_serializing_if = "IdText::is_empty")]
    id: IdText,
}

/// A job id's text: kept inline when it is short (a generated id, 32 hex
/// digits, always is), so reading a job allocates nothing for it.
#[derive(Clone, PartialEq, Eq)]
enum IdText {
    /// Up to [`IdText::INLINE`] bytes of UTF-8, then zeros.
    Inline { len: u8, bytes: Inline },
    /// A longer id.
    Heap(String),
}

/// An inline id's bytes, aligned so that checking they are UTF-8 runs a
/// word at a time.
#[derive(Clone, PartialEq, Eq)]
#[repr(align(16))]
struct Inline([u8; IdText::INLINE]);

impl IdText {
    const INLINE: usize = 32;

    fn new(text: &str) -> IdText {
        match <[u8; IdText::INLINE]>::try_from(text.as_bytes()) {
            // The common case, a generated id: exactly 32 bytes.
            Ok(bytes) => IdText::Inline {
                len: IdText::INLINE as u8,
                bytes: Inline(bytes),
            },
            Err(_) if text.len() < IdText::INLINE => {
                let mut bytes = [0; IdText::INLINE];
                bytes[..text.len()].copy_from_slice(text.as_bytes());
                IdText::Inline {
                    len: text.len() as u8,
                    bytes: Inline(bytes),
                }
            }
            Err(_) => IdText::Heap(text.to_owned()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Made from a `&str` cut at its end: always UTF-8.
            IdText::Inline { len, bytes } => {
                std::str::from_utf8(&bytes.0[..usize::from(*len)]).unwrap_or_default()
            }
            IdText::Heap(text) => text,
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, IdText::Inline { len: 0, .. })
    }
}

impl Default for IdText {
    fn default() -> Self {
        IdText::Inline {
            len: 0,
            bytes: Inline([0; IdText::INLINE]),
        }
    }
}

impl From<String> for IdText {
    fn from(text: String) -> Self {
        if text.len() <= IdText::INLINE {
            IdText::new(&text)
        } else {
            IdText::Heap(text)
        }
    }
}

impl fmt::Debug for IdText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_str().fmt(f)
    }
}

impl Serialize for IdText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for IdText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl serde::de::Visitor<'_> for IdVisitor {
            type Value = IdText;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<IdText, E> {
                Ok(IdText::new(v))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<IdText, E> {
                Ok(IdText::from(v))
            }
        }
        deserializer.deserialize_str(IdVisitor)
    }
}

fn first_attempt() -> u32 {
    1
}

/// A new job id: 128 random bits as 32 lowercase hex digits.
pub(crate) fn new_job_id() -> String {
    format!("{:032x}", fastrand::u128(..))
}

/// The id of the job whose handler is running (the [`Job::id`] its
/// integration passed to the pipeline), inside the handler's scope.
///
/// ```
/// assert_eq!(context_runtime::jobs::current_job_id(), None); // not in a job
/// ```
pub fn current_job_id() -> Option<String> {
    crate::scope::store::with_current(|cx| cx?.get::<JobId>().map(|id| id.0.clone()))
}

/// The job id a pipeline puts in the handler's context.
#[derive(Debug, Clone)]
pub(crate) struct JobId(pub(crate) String);

impl<T> Job<T> {
    /// A job carrying `cx`.
    pub fn new(cx: &Context, data: T) -> Job<T> {
        Job {
            ctx: Some(cx.to_carrier().into()),
            attempt: 1,
            data,
            id: new_job_id().into(),
        }
    }

    /// A job carrying the current context, or no context at all outside
    /// any scope (a consumer that requires a tenant then dead-letters it).
    pub fn current(data: T) -> Job<T> {
        let ctx = crate::scope::store::with_current(|cx| cx.map(|cx| cx.to_carrier()));
        Job {
            ctx: ctx.map(JobCtx::from),
            attempt: 1,
            data,
            id: new_job_id().into(),
        }
    }

    /// The same job with `id` as its id (for example a business key, so
    /// that enqueueing the same work twice is recognisable).
    pub fn with_id(mut self, id: impl Into<String>) -> Job<T> {
        self.id = IdText::from(id.into());
        self
    }

    /// The job's id: the same on every retry and redelivery. Empty only for
    /// a job whose producer gave none, read outside an integration (the
    /// integrations fill in the broker's message id).
    pub fn id(&self) -> &str {
        self.id.as_str()
    }

    #[cfg(feature = "redis")]
    pub(crate) fn set_id(&mut self, id: String) {
        self.id = id.into();
    }

    /// The producer's carrier: `Ok(None)` when the job has none, an error
    /// when it is not a carrier object.
    ///
    /// # Errors
    ///
    /// [`CarrierError::Malformed`] when `ctx` is not a carrier object.
    pub fn carrier(&self) -> Result<Option<Carrier>, CarrierError> {
        Ok(self.carrier_ref()?.map(std::borrow::Cow::into_owned))
    }

    /// The producer's carrier, borrowed when the job holds it parsed.
    fn carrier_ref(&self) -> Result<Option<std::borrow::Cow<'_, Carrier>>, CarrierError> {
        match &self.ctx {
            None => Ok(None),
            Some(ctx) => ctx.carrier(),
        }
    }

    /// The job with its carrier's identity signed by `keyring` (covering the
    /// job id, once the envelope has one). A job without a carrier is left
    /// as it is.
    ///
    /// ```
    /// use context_runtime::jobs::{admit, Job, Policy, RejectionKind};
    /// use context_runtime::{Context, Keyring, TenantId};
    ///
    /// let keyring = Keyring::new("k1", &[5u8; 32])?;
    /// let policy = Policy::new().keyring(keyring.clone());
    /// let cx = Context::root().with_tenant(TenantId::new("acme")?);
    ///
    /// let signed = Job::new(&cx, 1).signed(&keyring);
    /// assert!(admit(&signed, &policy).is_ok());
    ///
    /// let unsigned = Job::new(&cx, 1);
    /// assert_eq!(admit(&unsigned, &policy).unwrap_err().kind(), RejectionKind::UntrustedIdentity);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn signed(mut self, keyring: &Keyring) -> Job<T> {
        let job_id = (!self.id.is_empty()).then(|| self.id.as_str());
        if let Some(ctx) = &mut self.ctx {
            ctx.sign(keyring, job_id);
        }
        self
    }

    /// The id a signature covers: the job's [`id`](Job::id), when it has
    /// one (a job written by another producer may not).
    fn job_id(&self) -> Option<&str> {
        (!self.id.is_empty()).then(|| self.id.as_str())
    }

    /// The delivery attempt on the consumer side: 1 the first time, 2 on
    /// the first retry, and so on.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    #[cfg(any(feature = "redis", feature = "lapin", feature = "nats"))]
    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // the runner's tests use it
    pub(crate) fn set_attempt(&mut self, attempt: u32) {
        self.attempt = attempt;
    }

    /// The job's data.
    pub fn into_data(self) -> T {
        self.data
    }

    /// The trace id the carrier names, as written, for dead-letter records.
    #[cfg(feature = "redis")]
    pub(crate) fn claimed_trace_id(&self) -> Option<String> {
        Some(self.ctx.as_ref()?.claimed_trace_id()?.to_owned())
    }
}

impl<T: fmt::Debug> fmt::Debug for Job<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("ctx", &self.ctx)
            .field("attempt", &self.attempt)
            .field("id", &self.id)
            .field("data", &self.data)
            .finish()
    }
}

/// A job without a carrier is read like `Option<Carrier>::None`: a fresh
/// trace (with the safety-net warning) and no tenant.
impl<T> ContextSource for Job<T> {
    type Error = CarrierError;

    fn to_context(&self) -> Result<Context, CarrierError> {
        match self.carrier_ref()? {
            Some(carrier) => Context::from_carrier(&carrier),
            None => None::<Carrier>.to_context(),
        }
    }

    fn to_trusted_context(
        &self,
        trust: &Trust,
        job_id: Option<&str>,
    ) -> Result<Context, Untrusted<CarrierError>> {
        // The job's own id, unless the caller gave one: only a signature
        // covers it.
        let job_id = match trust {
            Trust::Signed(_) => job_id.or_else(|| self.job_id()),
            _ => job_id,
        };
        match self.carrier_ref().map_err(Untrusted::Read)? {
            Some(carrier) => carrier.to_trusted_context(trust, job_id),
            None => None::<Carrier>.to_trusted_context(trust, job_id),
        }
    }
}

/// Signs the carrier in a job's `ctx` (a JSON object) in place; anything
/// else is left as it is.
#[cfg(feature = "redis")]
fn sign_ctx(ctx: &mut Option<Value>, keyring: &Keyring, job_id: Option<&str>) {
    let Some(value) = ctx.as_mut() else { return };
    let Ok(carrier) = Carrier::deserialize(&*value) else {
        return;
    };
    let Ok(cx) = Context::from_carrier(&carrier) else {
        return;
    };
    if let Value::Object(fields) = value {
        fields.insert(
            "sig".into(),
            Value::String(keyring.sign(&cx.claims(job_id))),
        );
    }
}

/// Signs the job in a serialized payload (`{"ctx": …, "data": …}`) with the
/// policy's keyring, if it has one and the carrier is not signed yet.
#[cfg(feature = "redis")]
pub(crate) fn seal_payload(policy: &Policy, payload: &mut Value) {
    let Some(keyring) = policy.signing_keyring() else {
        return;
    };
    let Value::Object(job) = payload else { return };
    let mut ctx = job.remove("ctx");
    if ctx.as_ref().and_then(|c| c.get("sig")).is_none() {
        let job_id = job.get("id").and_then(Value::as_str).map(str::to_owned);
        sign_ctx(&mut ctx, keyring, job_id.as_deref());
    }
    if let Some(ctx) = ctx {
        job.insert("ctx".into(), ctx);
    }
}

/// Checks a job payload's size against
/// [`MAX_JOB_PAYLOAD_BYTES`], before it is parsed.
///
/// # Errors
///
/// [`Rejection::Unreadable`] for a payload over the limit.
pub fn check_payload_size(payload: &[u8]) -> Result<(), Rejection> {
    if payload.len() > MAX_JOB_PAYLOAD_BYTES {
        return Err(Rejection::Unreadable {
            reason: format!(
                "the payload has {} bytes, over the limit of {MAX_JOB_PAYLOAD_BYTES}",
                payload.len()
            ),
        });
    }
    Ok(())
}

/// What a consumer accepts: whose identity it trusts ([`Trust`]), whether a
/// job needs a tenant, how many times a failing handler runs before the job
/// is dead-lettered, and how long a failed job waits before it runs again.
///
/// Retries back off exponentially with jitter: after attempt `n` fails,
/// the job waits `base × 2^(n-1)`, at most `max`, less a random part of up
/// to `jitter` of it (so jobs that failed together do not come back
/// together). The default is 3 attempts, 1 s → 60 s, jitter 0.25.
///
/// ```
/// use std::time::Duration;
/// use context_runtime::jobs::Policy;
///
/// let policy = Policy::new()
///     .max_attempts(5)
///     .backoff(Duration::from_millis(500), Duration::from_secs(30))
///     .jitter(0.0);
/// assert_eq!(policy.retry_delay(1), Duration::from_millis(500));
/// assert_eq!(policy.retry_delay(3), Duration::from_secs(2));
/// assert_eq!(policy.retry_delay(20), Duration::from_secs(30));
/// ```
#[derive(Debug, Clone)]
pub struct Policy {
    tenant_required: bool,
    max_attempts: u32,
    /// `None`: the default, unsigned identity trusted with a warning.
    trust: Option<Trust>,
    backoff_base: Duration,
    backoff_max: Duration,
    /// The jitter as a fraction of the delay, in thousandths.
    jitter_permille: u16,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::new()
    }
}

impl Policy {
    /// A tenant is required; a handler runs at most 3 times; retries wait
    /// 1 s, 2 s, 4 s… up to 60 s, less up to a quarter at random.
    pub fn new() -> Policy {
        Policy {
            tenant_required: true,
            max_attempts: 3,
            trust: None,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            jitter_permille: 250,
        }
    }

    /// Whose identity jobs may carry (see [the module docs](self#trust)).
    pub fn trust(mut self, trust: Trust) -> Policy {
        self.trust = Some(trust);
        self
    }

    /// Only identity signed by a key of `keyring` is taken; unsigned,
    /// forged or expired identity is dead-lettered as
    /// [`RejectionKind::UntrustedIdentity`]. Producers that take this
    /// policy (the Redis queue's `enqueue`, the RabbitMQ and NATS queues'
    /// `publish`) sign with it.
    pub fn keyring(self, keyring: Keyring) -> Policy {
        self.trust(Trust::Signed(keyring))
    }

    /// The trust this policy applies: the one given, or by default
    /// [`Trust::Baggage`] (unsigned identity, with a warning once).
    pub fn trust_policy(&self) -> &Trust {
        const DEFAULT: &Trust = &Trust::Baggage;
        self.trust.as_ref().unwrap_or(DEFAULT)
    }

    /// The keyring producers sign with, when the policy has one.
    pub fn signing_keyring(&self) -> Option<&Keyring> {
        match &self.trust {
            Some(Trust::Signed(keyring)) => Some(keyring),
            _ => None,
        }
    }

    /// Retries wait `base` after the first failure, twice as long after
    /// each further one, and never more than `max` (`max` is raised to
    /// `base` when smaller).
    pub fn backoff(mut self, base: Duration, max: Duration) -> Policy {
        self.backoff_base = base;
        self.backoff_max = max.max(base);
        self
    }

    /// The random part taken off each retry delay, as a fraction of it
    /// (clamped to `0.0..=1.0`; `0.0` for exact delays).
    pub fn jitter(mut self, fraction: f64) -> Policy {
        let permille = (fraction.clamp(0.0, 1.0) * 1000.0).round();
        // In 0..=1000 after the clamp: the conversion is exact.
        self.jitter_permille = permille as u16;
        self
    }

    /// How long a job waits before it runs again after its attempt
    /// `failed_attempt` (1 for the first) failed.
    pub fn retry_delay(&self, failed_attempt: u32) -> Duration {
        let doublings = failed_attempt.saturating_sub(1).min(32);
        let delay = self
            .backoff_base
            .checked_mul(1u32 << doublings.min(31))
            .unwrap_or(self.backoff_max)
            .min(self.backoff_max);
        if self.jitter_permille == 0 {
            return delay;
        }
        let fraction = f64::from(self.jitter_permille) / 1000.0 * fastrand::f64();
        delay.saturating_sub(delay.mul_f64(fraction))
    }

    /// Jobs without a tenant run too (jobs that are not tenant work).
    pub fn tenant_optional(mut self) -> Policy {
        self.tenant_required = false;
        self
    }

    /// How many times a failing handler runs (at least 1) before its job
    /// is dead-lettered.
    pub fn max_attempts(mut self, attempts: u32) -> Policy {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Whether a job without a tenant is rejected.
    pub fn requires_tenant(&self) -> bool {
        self.tenant_required
    }

    /// The most times a handler runs for one job.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// What becomes of a handler error on `attempt`: `None` to retry,
    /// or the rejection that dead-letters the job.
    #[cfg(any(
        feature = "redis",
        feature = "lapin",
        feature = "nats",
        feature = "apalis"
    ))]
    pub(crate) fn after_failure(&self, attempt: u32, error: String) -> Option<Rejection> {
        (attempt >= self.max_attempts).then_some(Rejection::Exhausted {
            attempts: attempt,
            error,
        })
    }
}

/// Checks a job at the boundary: reads its context from `source` and
/// applies `policy`. The handler runs only with the `Ok` context.
///
/// # Errors
///
/// The [`Rejection`] to dead-letter the job with: a carrier that does not
/// parse or names an invalid identity, or no tenant where one is required.
///
/// Every rejection logs one line (target `context_runtime::jobs`) with the
/// claimed trace id, the kind and the reason.
pub fn admit<S>(source: &S, policy: &Policy) -> Result<Context, Rejection>
where
    S: ContextSource + ?Sized,
    S::Error: Into<Rejection>,
{
    admit_job(source, policy, None)
}

/// Like [`admit`], for a job whose id (`job_id`) its signature covers.
///
/// # Errors
///
/// As [`admit`].
pub fn admit_job<S>(source: &S, policy: &Policy, job_id: Option<&str>) -> Result<Context, Rejection>
where
    S: ContextSource + ?Sized,
    S::Error: Into<Rejection>,
{
    let read = source
        .to_trusted_context(policy.trust_policy(), job_id)
        .map_err(|e| match e {
            Untrusted::Read(e) => e.into(),
            Untrusted::Identity(e) => Rejection::UntrustedIdentity(e),
        })
        .and_then(|cx| {
            if policy.tenant_required && cx.tenant().is_none() {
                return Err(Rejection::TenantRequired);
            }
            Ok(cx)
        });
    match &read {
        Ok(cx) => {
            if policy.trust.is_none() && (cx.tenant().is_some() || cx.user().is_some()) {
                warn_unsigned_once("jobs");
            }
        }
        Err(rejection) => {
            // The trace id the job names, when it can be read at all.
            let trace_id = source.to_context().ok().map(|cx| cx.trace_id().to_string());
            tracing::warn!(
                target: "context_runtime::jobs",
                trace_id = trace_id.as_deref().unwrap_or("-"),
                kind = rejection.kind().as_str(),
                reason = %rejection,
                "job rejected before its handler"
            );
        }
    }
    read
}

/// What kind of [`Rejection`] dead-lettered a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RejectionKind {
    /// The payload is not a job of the expected shape.
    Unreadable,
    /// The carrier does not parse, or names an invalid tenant or user.
    InvalidCarrier,
    /// No tenant, and the policy requires one (`"tenant_required"`).
    #[serde(rename = "tenant_required")]
    TenantRequired,
    /// The handler failed on every allowed attempt.
    Exhausted,
    /// The identity is not trusted: unsigned where the policy requires a
    /// signature, forged, signed with an unknown key, or expired
    /// (`"untrusted_identity"`).
    UntrustedIdentity,
}

impl RejectionKind {
    /// The kind's name, as in dead-letter records and headers.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionKind::Unreadable => "unreadable",
            RejectionKind::InvalidCarrier => "invalid_carrier",
            RejectionKind::TenantRequired => "tenant_required",
            RejectionKind::Exhausted => "exhausted",
            RejectionKind::UntrustedIdentity => "untrusted_identity",
        }
    }

    #[cfg(any(feature = "redis", feature = "lapin", feature = "nats"))]
    pub(crate) fn parse(s: &str) -> Option<RejectionKind> {
        [
            RejectionKind::Unreadable,
            RejectionKind::InvalidCarrier,
            RejectionKind::TenantRequired,
            RejectionKind::Exhausted,
            RejectionKind::UntrustedIdentity,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

impl fmt::Display for RejectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a job is dead-lettered instead of run (or run again).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The payload is not a job of the expected shape.
    Unreadable {
        /// What the parser said.
        reason: String,
    },
    /// The carrier does not parse, or names an invalid tenant or user.
    InvalidCarrier(CarrierError),
    /// No tenant, and the policy requires one.
    TenantRequired,
    /// The handler failed on every allowed attempt.
    Exhausted {
        /// How many times it ran.
        attempts: u32,
        /// The last error.
        error: String,
    },
    /// The identity is not trusted (see [`UntrustedIdentity`]).
    UntrustedIdentity(UntrustedIdentity),
}

impl Rejection {
    /// The kind of rejection.
    pub fn kind(&self) -> RejectionKind {
        match self {
            Rejection::Unreadable { .. } => RejectionKind::Unreadable,
            Rejection::InvalidCarrier(_) => RejectionKind::InvalidCarrier,
            Rejection::TenantRequired => RejectionKind::TenantRequired,
            Rejection::Exhausted { .. } => RejectionKind::Exhausted,
            Rejection::UntrustedIdentity(_) => RejectionKind::UntrustedIdentity,
        }
    }

    /// The tenant the job claimed when it was readable but invalid
    /// ([`CarrierError::tenant`]); not validated, for the record only.
    pub fn claimed_tenant(&self) -> Option<&str> {
        match self {
            Rejection::InvalidCarrier(e) => e.tenant(),
            _ => None,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Unreadable { reason } => write!(f, "the job is unreadable: {reason}"),
            Rejection::InvalidCarrier(e) => e.fmt(f),
            Rejection::TenantRequired => f.write_str(
                "the job has no tenant and this queue requires one; \
                 the producer must enqueue it inside a tenant's context",
            ),
            Rejection::Exhausted { attempts, error } => {
                write!(
                    f,
                    "the handler failed {attempts} time(s), last with: {error}"
                )
            }
            Rejection::UntrustedIdentity(e) => {
                write!(f, "the job's identity is not trusted: {e}")
            }
        }
    }
}

impl std::error::Error for Rejection {}

/// The same invalid identity gives the same rejection on every wire: an
/// untrusted identity is [`Rejection::UntrustedIdentity`], whatever read it.
impl From<CarrierError> for Rejection {
    fn from(e: CarrierError) -> Self {
        match e {
            CarrierError::UntrustedIdentity(e) => Rejection::UntrustedIdentity(e),
            e => Rejection::InvalidCarrier(e),
        }
    }
}

impl From<Infallible> for Rejection {
    fn from(e: Infallible) -> Self {
        match e {}
    }
}

/// The record of a dead-lettered job: why, for which tenant (when
/// readable), and the original payload, so it can be inspected and re-driven.
///
/// On Redis it is the JSON of a dead-letter list's items; on RabbitMQ and
/// NATS the original message is kept and these fields ride in its headers.
///
/// ```
/// use context_runtime::jobs::{DeadLetter, Rejection, RejectionKind};
/// use context_runtime::{Carrier, Context};
///
/// let carrier = Carrier::from_json(r#"{"tenantId":"no spaces allowed"}"#)?;
/// let rejection = Rejection::from(Context::from_carrier(&carrier).unwrap_err());
/// let letter = DeadLetter::new("invoices", &rejection, br#"{"data":1}"#);
/// assert_eq!(letter.kind, RejectionKind::InvalidCarrier);
/// assert_eq!(letter.tenant.as_deref(), Some("no spaces allowed"));
/// assert_eq!(letter.payload, r#"{"data":1}"#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DeadLetter {
    /// The queue (or subject) the job was consumed from.
    pub queue: String,
    /// The kind of rejection.
    pub kind: RejectionKind,
    /// The reason, for people.
    pub reason: String,
    /// The tenant: the job's valid tenant, or the invalid one it claimed.
    /// Never run work for it without validating it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The trace id the carrier named, when readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// How many times a handler ran for the job (0 when it never ran).
    #[serde(default)]
    pub attempts: u32,
    /// The original payload (bytes that are not UTF-8 are replaced).
    pub payload: String,
}

impl DeadLetter {
    /// The record for a job from `queue` with this `payload`, rejected with
    /// `rejection`; the tenant is the one the rejection claims.
    pub fn new(queue: impl Into<String>, rejection: &Rejection, payload: &[u8]) -> DeadLetter {
        let attempts = match rejection {
            Rejection::Exhausted { attempts, .. } => *attempts,
            _ => 0,
        };
        DeadLetter {
            queue: queue.into(),
            kind: rejection.kind(),
            reason: rejection.to_string(),
            tenant: rejection.claimed_tenant().map(str::to_owned),
            trace_id: None,
            attempts,
            payload: String::from_utf8_lossy(payload).into_owned(),
        }
    }

    /// With the tenant (the job's valid tenant, for exhausted jobs).
    pub fn with_tenant(mut self, tenant: Option<String>) -> DeadLetter {
        if tenant.is_some() {
            self.tenant = tenant;
        }
        self
    }

    /// With the trace id the carrier named.
    pub fn with_trace_id(mut self, trace_id: Option<String>) -> DeadLetter {
        if trace_id.is_some() {
            self.trace_id = trace_id;
        }
        self
    }

    /// The record of a job whose handler failed on every attempt, with the
    /// job's (valid) tenant and trace id.
    #[cfg(any(feature = "redis", feature = "lapin", feature = "nats"))]
    pub(crate) fn exhausted(
        queue: &str,
        rejection: &Rejection,
        payload: &[u8],
        cx: &Context,
    ) -> DeadLetter {
        DeadLetter::new(queue, rejection, payload)
            .with_tenant(cx.tenant().map(|t| t.as_str().to_owned()))
            .with_trace_id(Some(cx.trace_id().to_string()))
    }

    /// The record as JSON text.
    pub fn to_json(&self) -> String {
        // Strings and numbers only: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What became of one delivered job.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome<R> {
    /// The handler succeeded; the job is acknowledged.
    Completed(R),
    /// The handler failed and the job will be delivered again, with its
    /// original carrier.
    Retried {
        /// The attempt that failed.
        attempt: u32,
        /// What the handler returned.
        error: String,
    },
    /// The job went to the dead-letter destination.
    DeadLettered(DeadLetter),
}

impl<R> Outcome<R> {
    /// Whether the job is finished (completed or dead-lettered).
    pub fn is_final(&self) -> bool {
        !matches!(self, Outcome::Retried { .. })
    }
}

#[cfg(feature = "apalis")]
pub(crate) use run::catch_panic;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tenant::TenantId;

    #[test]
    fn jobs_keep_the_carrier_as_written_and_check_it_when_read() {
        let cx = Context::root().with_tenant(TenantId::new("t1").expect("valid"));
        let wire = serde_json::to_string(&Job::new(&cx, 1)).expect("serialize");
        let job: Job<u32> = serde_json::from_str(&wire).expect("parse");
        assert_eq!(serde_json::to_string(&job).expect("serialize"), wire);
        let read = admit(&job, &Policy::new()).expect("admitted");
        assert_eq!(read.trace_id(), cx.trace_id());

        let broken: Job<u32> =
            serde_json::from_str(r#"{"ctx":"garbage","data":1}"#).expect("still parses");
        let rejection = admit(&broken, &Policy::new()).expect_err("rejected");
        assert_eq!(rejection.kind(), RejectionKind::InvalidCarrier);

        let bad_tenant: Job<u32> =
            serde_json::from_str(r#"{"ctx":{"tenantId":"a b"},"data":1}"#).expect("parses");
        let rejection = admit(&bad_tenant, &Policy::new()).expect_err("rejected");
        assert_eq!(rejection.claimed_tenant(), Some("a b"));

        let orphan: Job<u32> = serde_json::from_str(r#"{"data":1}"#).expect("parses");
        assert_eq!(
            admit(&orphan, &Policy::new()).map(|_| ()),
            Err(Rejection::TenantRequired)
        );
        assert!(admit(&orphan, &Policy::new().tenant_optional()).is_ok());
    }

    /// A job's JSON is what it was when its carrier was kept as a
    /// `serde_json::Value`: the carrier's members sorted by name.
    #[test]
    fn jobs_write_the_json_they_always_wrote() {
        let cx = Context::builder()
            .tenant(TenantId::new("t1").expect("valid"))
            .user(crate::model::user::UserRef::new("svc", "billing").expect("valid"))
            .baggage([("region", "eu"), ("zone", "a")].into_iter().collect())
            .build();
        let keyring = Keyring::new("k1", &[3u8; 32]).expect("a key");
        for job in [Job::new(&cx, 1), Job::new(&cx, 1).signed(&keyring)] {
            let wire = serde_json::to_string(&job).expect("json");
            let mut expected = serde_json::json!({
                "ctx": serde_json::to_value(cx.to_carrier()).expect("json"),
                "data": 1,
                "id": job.id(),
            });
            if let Some(sig) = job
                .carrier()
                .expect("a carrier")
                .and_then(|c| c.signature().map(str::to_owned))
            {
                expected["ctx"]["sig"] = sig.into();
            }
            assert_eq!(wire, expected.to_string());
            assert!(
                wire.starts_with(r#"{"ctx":{"baggage":{"region":"eu","zone":"a"},"#),
                "{wire}"
            );
            let back: Job<u32> = serde_json::from_str(&wire).expect("parse");
            assert_eq!(back, job);
        }
    }

    #[test]
    fn retries_back_off_exponentially_with_jitter_and_a_cap() {
        let policy = Policy::new();
        assert_eq!(policy.attempts(), 3);
        for (attempt, full) in [(1, 1), (2, 2), (3, 4), (7, 60), (40, 60)] {
            let full = Duration::from_secs(full);
            for _ in 0..50 {
                let delay = policy.retry_delay(attempt);
                assert!(
                    delay <= full && delay >= full.mul_f64(0.75),
                    "attempt {attempt}: {delay:?} of {full:?}"
                );
            }
        }
        let exact = policy
            .backoff(Duration::from_millis(10), Duration::from_millis(35))
            .jitter(0.0);
        let delays: Vec<_> = (1..=4).map(|a| exact.retry_delay(a).as_millis()).collect();
        assert_eq!(delays, [10, 20, 35, 35]);
    }

    #[test]
    fn job_ids_are_random_kept_on_the_wire_and_may_be_given() {
        let cx = Context::root();
        let (a, b) = (Job::new(&cx, 1), Job::new(&cx, 1));
        assert_ne!(a.id(), b.id());
        assert!(a.id().len() == 32 && a.id().bytes().all(|c| c.is_ascii_hexdigit()));
        let wire = serde_json::to_string(&a).expect("json");
        let back: Job<u32> = serde_json::from_str(&wire).expect("parse");
        assert_eq!(back.id(), a.id());
        assert_eq!(Job::new(&cx, 1).with_id("order-7").id(), "order-7");
        let foreign: Job<u32> = serde_json::from_str(r#"{"data":1}"#).expect("parse");
        assert_eq!(foreign.id(), "");
    }

    #[test]
    fn a_failing_handler_is_retried_until_the_last_attempt() {
        let policy = Policy::new().max_attempts(2);
        assert_eq!(policy.after_failure(1, "boom".into()), None);
        let rejection = policy.after_failure(2, "boom".into()).expect("exhausted");
        let letter = DeadLetter::new("q", &rejection, b"{}");
        assert_eq!(
            (letter.kind, letter.attempts),
            (RejectionKind::Exhausted, 2)
        );
        let back: DeadLetter = serde_json::from_str(&letter.to_json()).expect("parse");
        assert_eq!(back, letter);
    }
}
