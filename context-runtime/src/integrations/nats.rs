//! NATS and JetStream through `async-nats`: the context in the message
//! headers `traceparent`, `tracestate` and `baggage` (feature `nats`).
//!
//! - [`inject`] / [`inject_current`] write the W3C fields into a message's
//!   headers; [`extract`] reads them back, and a [`HeaderMap`], a core
//!   [`Message`](async_nats::Message) and a JetStream
//!   [`Message`](jetstream::Message) are each a [`ContextSource`], so
//!   `#[with_context(from = "message")]` works.
//! - A [`Queue`] names a subject and its dead-letter subject (both must
//!   be captured by JetStream streams). [`Queue::process`] checks a
//!   message with the [`Policy`], runs the handler inside its context (a
//!   panic is a failed attempt), then acks it; or naks it, so JetStream
//!   redelivers the *same* message (the original carrier) and counts the
//!   attempt; or publishes it to the dead-letter subject with the reason in
//!   [`REASON`], [`KIND`], [`TENANT`], and terminates it: the [consume
//!   pipeline](crate::jobs::pipeline), settled through a [`Settlement`].
//!   [`Queue::consumer`] is the same for the worker runner
//!   ([`jobs::Worker`](crate::jobs::Worker)).
//!
//! Identity in these headers is taken as the queue's [`Policy`] says (see
//! [the `jobs` module](crate::jobs#trust)): with a keyring, [`Queue::publish`]
//! signs it and an unsigned or forged one is dead-lettered.
//!
//! # Delivery guarantees
//!
//! - **Attempts are JetStream's delivery count** ([`attempt`]): a handler
//!   error, a panic, a worker killed mid-job and a cut connection all count.
//! - **The last attempt is dead-lettered, never dropped.** A failure on
//!   attempt [`Policy::attempts`] is dead-lettered; a delivery past it (the
//!   workers of the earlier ones died) is dead-lettered without running.
//!   For that one extra delivery the consumer needs `max_deliver` of at
//!   least [`Policy::attempts`] + 1, or none (−1): [`Queue::consumer_config`]
//!   sets it. With `max_deliver` ≤ attempts, JetStream stops delivering a
//!   job whose worker died on its last delivery.
//! - **A long handler keeps its job.** While the handler runs, the message
//!   gets a progress ack (`AckKind::Progress`) every third of
//!   [`Queue::ack_wait`], so JetStream does not hand it to a second worker.
//!   Keep [`Queue::ack_wait`] equal to the consumer's `ack_wait` (default
//!   30 s on both sides).
//! - **Settlements are confirmed.** Acks, naks and terminations wait for the
//!   server's reply (double ack); the dead letter is stored (JetStream's
//!   publish ack) before the original is terminated.
//! - **At least once.** A job can run again after a crash or a lost ack;
//!   handlers must be idempotent.
//!
//! ```no_run
//! use async_nats::jetstream::{self, stream};
//! use context_runtime::nats::Queue;
//! use context_runtime::{requires_tenant, CarrierError, TenantRequired};
//!
//! #[derive(Debug)]
//! struct JobError(String);
//! impl std::fmt::Display for JobError {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(&self.0) }
//! }
//! impl From<CarrierError> for JobError { fn from(e: CarrierError) -> Self { JobError(e.to_string()) } }
//! impl From<TenantRequired> for JobError { fn from(e: TenantRequired) -> Self { JobError(e.to_string()) } }
//!
//! // `process` already runs it in the message's context: no `#[with_context]`.
//! #[requires_tenant]
//! async fn send_invoice(message: jetstream::Message) -> Result<(), JobError> {
//!     println!("{} bytes for {}", message.payload.len(), context_runtime::tenant()?);
//!     Ok(())
//! }
//!
//! # async fn run(cx: context_runtime::Context) -> Result<(), async_nats::Error> {
//! use futures_util::StreamExt as _;
//! let js = jetstream::new(async_nats::connect("nats://127.0.0.1:4222").await?);
//! let jobs = Queue::new("invoices.jobs"); // dead letters: "invoices.jobs.dead"
//! let stream = js
//!     .get_or_create_stream(stream::Config {
//!         name: "INVOICES".into(),
//!         subjects: vec!["invoices.>".into()],
//!         ..Default::default()
//!     })
//!     .await?;
//!
//! // Producer, inside the request's scope: the headers carry its context.
//! cx.scope(jobs.publish(&js, br#"{"invoice":7}"#)).await?.await?;
//!
//! // Consumer.
//! // ack_wait 30 s, max_deliver: the policy's attempts + 1.
//! let consumer = stream
//!     .get_or_create_consumer("workers", jobs.consumer_config("workers"))
//!     .await?;
//! let mut messages = consumer.messages().await?;
//! while let Some(message) = messages.next().await {
//!     // Err: not settled; the message comes back after its ack wait.
//!     if let Err(e) = jobs.process(&js, message?, send_invoice).await {
//!         eprintln!("{e}");
//!     }
//! }
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::time::Duration;

use ::async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use ::async_nats::jetstream::{self, context::PublishAckFuture, AckKind};
use ::async_nats::HeaderMap;

use futures_core::Stream as _;

use crate::jobs::pipeline::{self, Settle};
use crate::jobs::Transport;
use crate::jobs::{DeadLetter, Outcome, Policy, RejectionKind};
use crate::model::context::Context;
use crate::model::trace::SpanId;
use crate::propagate::fields;
use crate::propagate::propagator::Trust;
use crate::propagate::propagator::{claimed_trace_id, Propagator, Wire};
use crate::propagate::source::{ContextSource, Untrusted};
use crate::wire::carrier::CarrierError;

/// The header with the W3C `traceparent`.
pub const TRACEPARENT: &str = fields::TRACEPARENT;
/// The header with the W3C `tracestate`.
pub const TRACESTATE: &str = fields::TRACESTATE;
/// The header with the W3C `baggage` (and in it, the tenant and user).
pub const BAGGAGE: &str = fields::BAGGAGE;
/// On a dead letter: why it was not run, for people.
pub const REASON: &str = "Context-Dead-Letter-Reason";
/// On a dead letter: the [`RejectionKind`].
pub const KIND: &str = "Context-Dead-Letter-Kind";
/// On a dead letter: the tenant (valid, or the invalid one claimed).
pub const TENANT: &str = "Context-Dead-Letter-Tenant";
/// On a dead letter: the subject it was consumed from.
pub const SUBJECT: &str = "Context-Dead-Letter-Subject";
/// On a dead letter: how many times a handler ran.
pub const ATTEMPTS: &str = "Context-Dead-Letter-Attempts";

/// The propagator for NATS headers: the default keys, identity in baggage
/// trusted unsigned (the producer is your own system), source `"nats"`. It
/// serves [`extract`], [`inject`] and `#[with_context(from = …)]`;
/// [`Queue::process`] takes identity as the queue's [`Policy`] says instead.
pub fn propagator() -> &'static Propagator {
    Propagator::for_wire(Wire::Nats)
}

/// Writes `cx` into `headers`: `traceparent` (same trace, a new parent id
/// for this message), `tracestate` and `baggage` with the tenant and user,
/// replacing any already there.
pub fn inject(cx: &Context, headers: &mut HeaderMap) {
    inject_using(cx, headers, propagator());
}

/// Like [`inject`] with an explicit [`Propagator`].
pub fn inject_using(cx: &Context, headers: &mut HeaderMap, propagator: &Propagator) {
    let (parent, state, baggage) = propagator.outgoing_fields(cx, SpanId::random());
    let mut kept: HeaderMap = headers
        .iter()
        .filter(|(name, _)| ![TRACEPARENT, TRACESTATE, BAGGAGE].contains(&name.as_ref()))
        .flat_map(|(name, values)| values.iter().map(|v| (name.clone(), v.clone())))
        .collect();
    kept.insert(TRACEPARENT, parent.as_str());
    if let Some(state) = state {
        kept.insert(TRACESTATE, state.as_str());
    }
    if let Some(baggage) = baggage {
        kept.insert(BAGGAGE, baggage.as_str());
    }
    *headers = kept;
}

/// Writes the current context into `headers` (as [`inject`]); unchanged
/// outside any scope.
pub fn inject_current(headers: &mut HeaderMap) {
    crate::scope::store::with_current(|cx| {
        if let Some(cx) = cx {
            inject(cx, headers);
        }
    });
}

/// Reads the context from a message's headers, strictly: a `traceparent`
/// that does not parse, or an invalid tenant or user in `baggage`, is an
/// error; a missing `traceparent` gets a fresh trace id (with the
/// safety-net warning).
///
/// # Errors
///
/// [`CarrierError::Malformed`], [`CarrierError::InvalidTenant`] or
/// [`CarrierError::InvalidUser`].
pub fn extract(headers: &HeaderMap) -> Result<Context, CarrierError> {
    extract_using(headers, propagator())
}

/// Like [`extract`] with an explicit [`Propagator`] (for example one that
/// does not trust identity, for subjects fed by third parties).
///
/// # Errors
///
/// As [`extract`].
pub fn extract_using(
    headers: &HeaderMap,
    propagator: &Propagator,
) -> Result<Context, CarrierError> {
    let all = |name: &str| headers.get_all(name).map(|v| Some(v.as_str()));
    propagator.extract_fields_checked(all(TRACEPARENT), all(TRACESTATE), all(BAGGAGE))
}

fn extract_optional(headers: Option<&HeaderMap>) -> Result<Context, CarrierError> {
    match headers {
        Some(headers) => extract(headers),
        None => extract(&HeaderMap::new()),
    }
}

/// The headers read with the NATS [`propagator`] under `trust` (a queue's policy).
fn extract_trusted(
    headers: Option<&HeaderMap>,
    trust: &Trust,
) -> Result<Context, Untrusted<CarrierError>> {
    let propagator = propagator().clone().trust(trust.clone());
    let empty = HeaderMap::new();
    extract_using(headers.unwrap_or(&empty), &propagator).map_err(|e| match e {
        CarrierError::UntrustedIdentity(e) => Untrusted::Identity(e),
        e => Untrusted::Read(e),
    })
}

/// Headers read strictly with the NATS [`propagator`] (see [`extract`]).
impl ContextSource for HeaderMap {
    type Error = CarrierError;

    fn to_context(&self) -> Result<Context, CarrierError> {
        extract(self)
    }

    fn to_trusted_context(
        &self,
        trust: &Trust,
        _job_id: Option<&str>,
    ) -> Result<Context, Untrusted<CarrierError>> {
        extract_trusted(Some(self), trust)
    }
}

/// The message's headers (none: a fresh trace and no tenant).
impl ContextSource for ::async_nats::Message {
    type Error = CarrierError;

    fn to_context(&self) -> Result<Context, CarrierError> {
        extract_optional(self.headers.as_ref())
    }

    fn to_trusted_context(
        &self,
        trust: &Trust,
        _job_id: Option<&str>,
    ) -> Result<Context, Untrusted<CarrierError>> {
        extract_trusted(self.headers.as_ref(), trust)
    }
}

/// The message's headers, so a handler can say `#[with_context(from = "message")]`.
impl ContextSource for jetstream::Message {
    type Error = CarrierError;

    fn to_context(&self) -> Result<Context, CarrierError> {
        extract_optional(self.headers.as_ref())
    }

    fn to_trusted_context(
        &self,
        trust: &Trust,
        _job_id: Option<&str>,
    ) -> Result<Context, Untrusted<CarrierError>> {
        extract_trusted(self.headers.as_ref(), trust)
    }
}

/// The delivery attempt JetStream counts (the consumer's delivery count in
/// the message's info): 1 the first time; every redelivery counts, after a
/// nak as after an ack wait that ran out (a worker killed, a connection
/// cut).
pub fn attempt(message: &jetstream::Message) -> u32 {
    message
        .info()
        .ok()
        .and_then(|info| u32::try_from(info.delivered).ok())
        .unwrap_or(1)
        .max(1)
}

/// Publishes `payload` to `subject` with the current context in its
/// headers. Await the returned future for JetStream's ack.
///
/// # Errors
///
/// A publish error.
pub async fn publish(
    js: &jetstream::Context,
    subject: impl Into<String>,
    payload: &[u8],
) -> Result<PublishAckFuture, jetstream::context::PublishError> {
    let mut headers = HeaderMap::new();
    inject_current(&mut headers);
    js.publish_with_headers(subject.into(), headers, payload.to_vec().into())
        .await
}

/// Reads the dead-letter record of a message from a dead-letter subject:
/// the headers [`Queue::process`] wrote, and the original payload.
/// `None` when the message has no [`KIND`] header.
pub fn dead_letter(message: &::async_nats::Message) -> Option<DeadLetter> {
    let headers = message.headers.as_ref()?;
    let string = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
    let kind = RejectionKind::parse(headers.get(KIND)?.as_str())?;
    let trace_id = claimed_trace_id(headers.get(TRACEPARENT).map(|t| t.as_str()));
    Some(DeadLetter {
        queue: string(SUBJECT).unwrap_or_default(),
        kind,
        reason: string(REASON).unwrap_or_default(),
        tenant: string(TENANT),
        trace_id,
        attempts: string(ATTEMPTS).and_then(|a| a.parse().ok()).unwrap_or(0),
        payload: String::from_utf8_lossy(&message.payload).into_owned(),
    })
}

/// Jobs on a JetStream subject, with a dead-letter subject and the
/// [`Policy`] its consumers apply.
#[derive(Debug, Clone)]
pub struct Queue {
    subject: String,
    dead_letter_subject: String,
    policy: Policy,
    ack_wait: Duration,
}

/// JetStream's default `ack_wait`.
const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);

impl Queue {
    /// Jobs on `subject`, dead letters on `subject.dead`, with the default
    /// [`Policy`]: a tenant is required, 3 attempts.
    pub fn new(subject: impl Into<String>) -> Queue {
        let subject = subject.into();
        Queue {
            dead_letter_subject: format!("{subject}.dead"),
            subject,
            policy: Policy::new(),
            ack_wait: DEFAULT_ACK_WAIT,
        }
    }

    /// The consumer's `ack_wait` (default 30 s, JetStream's default): a
    /// running handler's message gets a progress ack every third of it.
    /// Keep it equal to the consumer's own `ack_wait`.
    pub fn with_ack_wait(mut self, ack_wait: Duration) -> Queue {
        self.ack_wait = ack_wait.max(Duration::from_millis(3));
        self
    }

    /// The `ack_wait` progress acks are paced for.
    pub fn ack_wait(&self) -> Duration {
        self.ack_wait
    }

    /// A pull consumer's configuration for this queue: durable as
    /// `durable`, filtered on [`Queue::subject`], explicit acks,
    /// [`Queue::ack_wait`], and `max_deliver` = [`Policy::attempts`] + 1
    /// (the delivery after the last attempt dead-letters a job whose worker
    /// died on it, see [the guarantees](self#delivery-guarantees)).
    ///
    /// ```
    /// use context_runtime::jobs::Policy;
    /// use context_runtime::nats::Queue;
    ///
    /// let jobs = Queue::new("invoices.jobs").with_policy(Policy::new().max_attempts(5));
    /// let config = jobs.consumer_config("workers");
    /// assert_eq!((config.max_deliver, config.ack_wait.as_secs()), (6, 30));
    /// ```
    pub fn consumer_config(&self, durable: &str) -> pull::Config {
        pull::Config {
            durable_name: Some(durable.to_owned()),
            filter_subject: self.subject.clone(),
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            max_deliver: i64::from(self.policy.attempts()) + 1,
            ..pull::Config::default()
        }
    }

    /// Dead letters go to `subject` instead.
    pub fn with_dead_letter_subject(mut self, subject: impl Into<String>) -> Queue {
        self.dead_letter_subject = subject.into();
        self
    }

    /// The policy consumers apply.
    pub fn with_policy(mut self, policy: Policy) -> Queue {
        self.policy = policy;
        self
    }

    /// The jobs' subject.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The dead letters' subject.
    pub fn dead_letter_subject(&self) -> &str {
        &self.dead_letter_subject
    }

    /// Publishes `payload` as a job, with the current context in its headers.
    ///
    /// # Errors
    ///
    /// A publish error.
    pub async fn publish(
        &self,
        js: &jetstream::Context,
        payload: &[u8],
    ) -> Result<PublishAckFuture, jetstream::context::PublishError> {
        // With a keyring in the policy, the identity leaves signed.
        let Some(keyring) = self.policy.signing_keyring() else {
            return publish(js, self.subject.clone(), payload).await;
        };
        let signing = propagator().clone().sign_with(keyring.clone());
        let mut headers = HeaderMap::new();
        if let Some(cx) = crate::scope::store::current() {
            inject_using(&cx, &mut headers, &signing);
        }
        js.publish_with_headers(self.subject.clone(), headers, payload.to_vec().into())
            .await
    }

    /// Handles one message to the end: checked against the policy,
    /// `handler` run inside the message's context (a panic is a failed
    /// attempt, `panicked: <message>`; a progress ack every third of
    /// [`Queue::ack_wait`] while it runs), then acked; or naked for
    /// redelivery of the same message after the policy's back-off; or, on
    /// the last attempt and once JetStream has stored its copy on the
    /// dead-letter subject, terminated. A delivery past the last attempt (the workers of the
    /// earlier ones died) is dead-lettered without running. Every
    /// settlement waits for the server's confirmation.
    ///
    /// # Errors
    ///
    /// A NATS error; the message is then redelivered after its ack wait.
    pub async fn process<F, Fut, R, E>(
        &self,
        js: &jetstream::Context,
        message: jetstream::Message,
        handler: F,
    ) -> Result<Outcome<R>, ::async_nats::Error>
    where
        F: FnOnce(jetstream::Message) -> Fut,
        Fut: Future<Output = Result<R, E>>,
        E: fmt::Display,
    {
        let delivery = self.delivery(js, message);
        pipeline::process(&self.subject, &self.policy, delivery, handler).await
    }

    /// A [`Consumer`] of this queue for the worker runner
    /// ([`jobs::Worker`](crate::jobs::Worker)), pulling from `consumer` (a
    /// pull consumer configured with [`Queue::consumer_config`]).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), async_nats::Error> {
    /// use async_nats::jetstream;
    /// use context_runtime::jobs::Worker;
    /// use context_runtime::nats::Queue;
    ///
    /// async fn send_invoice(message: jetstream::Message) -> Result<(), std::io::Error> {
    ///     // Already in the message's context: no `#[with_context]` here.
    ///     println!("{} bytes for {}", message.payload.len(), context_runtime::tenant().unwrap());
    ///     Ok(())
    /// }
    ///
    /// let js = jetstream::new(async_nats::connect("nats://127.0.0.1:4222").await?);
    /// let jobs = Queue::new("invoices.jobs");
    /// let pull = js
    ///     .get_stream("INVOICES")
    ///     .await?
    ///     .get_or_create_consumer("workers", jobs.consumer_config("workers"))
    ///     .await?;
    /// Worker::new(jobs.consumer(js, pull), send_invoice)
    ///     .concurrency(8)
    ///     .run(async { tokio::signal::ctrl_c().await.ok(); })
    ///     .await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn consumer(&self, js: jetstream::Context, consumer: PullConsumer) -> Consumer {
        Consumer {
            queue: self.clone(),
            js,
            consumer,
            wait: Duration::from_secs(1),
        }
    }

    /// `message` as the [pipeline](crate::jobs::pipeline) takes it.
    fn delivery(
        &self,
        js: &jetstream::Context,
        message: jetstream::Message,
    ) -> pipeline::Delivery<jetstream::Message, Settlement> {
        let attempt = attempt(&message);
        let headers = message.headers.as_ref();
        let claimed =
            claimed_trace_id(headers.and_then(|h| h.get(TRACEPARENT)).map(|t| t.as_str()));
        let job_id = headers
            .and_then(|h| h.get(MESSAGE_ID))
            .map(|id| id.as_str().to_owned());
        let settle = Settlement {
            js: js.clone(),
            message: message.clone(),
            subject: self.subject.clone(),
            dead_letter_subject: self.dead_letter_subject.clone(),
            progress_every: self.ack_wait / 3,
        };
        let payload = message.payload.to_vec();
        pipeline::Delivery::new(Ok(message), payload, attempt, settle)
            .with_job_id(job_id)
            .with_claimed_trace_id(claimed)
    }
}

/// The header JetStream de-duplicates publishes on; the job's id when set.
const MESSAGE_ID: &str = "Nats-Msg-Id";

/// How one JetStream message is settled (the [`Settle`] adapter of the
/// [pipeline](crate::jobs::pipeline)); every settlement waits for the
/// server's confirmation:
///
/// | settlement | on JetStream |
/// | --- | --- |
/// | ack | a double ack |
/// | retry | a nak with the policy's back-off as its delay (`AckKind::Nak(Some(delay))`): JetStream redelivers the same message and counts the attempt |
/// | dead letter | the message, with [`REASON`], [`KIND`], [`TENANT`], [`SUBJECT`], [`ATTEMPTS`], published to the dead-letter subject and stored (publish ack), then terminated (`AckKind::Term`) |
/// | keep-alive | a progress ack (`AckKind::Progress`) every third of [`Queue::ack_wait`] while the handler runs |
#[derive(Debug)]
pub struct Settlement {
    js: jetstream::Context,
    message: jetstream::Message,
    subject: String,
    dead_letter_subject: String,
    progress_every: Duration,
}

impl Settle for Settlement {
    type Error = ::async_nats::Error;

    async fn ack(&mut self) -> Result<(), ::async_nats::Error> {
        self.message.double_ack().await
    }

    async fn retry(&mut self, delay: Duration) -> Result<(), ::async_nats::Error> {
        // JetStream redelivers this very message (the original carrier).
        self.message
            .double_ack_with(AckKind::Nak(Some(delay)))
            .await
    }

    async fn dead_letter(&mut self, letter: &DeadLetter) -> Result<(), ::async_nats::Error> {
        let mut headers = self.message.headers.clone().unwrap_or_default();
        headers.insert(REASON, one_line(&letter.reason).as_str());
        headers.insert(KIND, letter.kind.as_str());
        headers.insert(SUBJECT, self.subject.as_str());
        headers.insert(ATTEMPTS, letter.attempts.to_string().as_str());
        if let Some(tenant) = &letter.tenant {
            headers.insert(TENANT, one_line(tenant).as_str());
        }
        self.js
            .publish_with_headers(
                self.dead_letter_subject.clone(),
                headers,
                self.message.payload.clone(),
            )
            .await?
            .await?;
        self.message.double_ack_with(AckKind::Term).await
    }

    fn keep_alive_every(&self) -> Option<Duration> {
        Some(self.progress_every)
    }

    async fn keep_alive(&mut self) -> Result<(), ::async_nats::Error> {
        // Still running: JetStream restarts the ack wait.
        self.message.ack_with(AckKind::Progress).await
    }
}

/// The consumer of a [`Queue`] the worker runner
/// ([`jobs::Worker`](crate::jobs::Worker)) takes its jobs from (see
/// [`Queue::consumer`]): each [`receive`](Transport::receive) is one pull
/// request that waits up to a second. The client reconnects by itself
/// after a lost connection; messages held meanwhile come back after
/// their ack wait, counted.
pub struct Consumer {
    queue: Queue,
    js: jetstream::Context,
    consumer: PullConsumer,
    wait: Duration,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("subject", &self.queue.subject)
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// How long one pull request waits for messages (default 1 s, at
    /// least 100 ms).
    pub fn with_wait(mut self, wait: Duration) -> Consumer {
        self.wait = wait.max(Duration::from_millis(100));
        self
    }
}

impl Transport for Consumer {
    type Job = jetstream::Message;
    type Settle = Settlement;
    type Error = ::async_nats::Error;

    fn queue(&self) -> &str {
        &self.queue.subject
    }

    fn policy(&self) -> &Policy {
        &self.queue.policy
    }

    async fn receive(
        &mut self,
        max: usize,
    ) -> Result<Vec<pipeline::Delivery<jetstream::Message, Settlement>>, ::async_nats::Error> {
        let mut batch = self
            .consumer
            .batch()
            .max_messages(max.max(1))
            .expires(self.wait)
            .messages()
            .await?;
        let mut received = Vec::new();
        // The batch ends when `max` came or the pull request expired (the
        // deadline only guards a server that never says so).
        let deadline = tokio::time::Instant::now() + self.wait * 3;
        loop {
            let next = std::future::poll_fn(|cx| std::pin::Pin::new(&mut batch).poll_next(cx));
            match tokio::time::timeout_at(deadline, next).await {
                Err(_) | Ok(None) => break,
                Ok(Some(Ok(message))) => received.push(message),
                Ok(Some(Err(error))) => {
                    if received.is_empty() {
                        return Err(error);
                    }
                    break;
                }
            }
        }
        Ok(received
            .into_iter()
            .map(|message| self.queue.delivery(&self.js, message))
            .collect())
    }
}

/// Header values are one line.
fn one_line(value: &str) -> String {
    value.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tenant::TenantId;

    #[test]
    fn headers_round_trip_and_broken_ones_are_errors() {
        let cx = Context::root().with_tenant(TenantId::new("acme").expect("valid"));
        let mut headers = HeaderMap::new();
        headers.insert("x-other", "kept");
        headers.insert(TRACESTATE, "stale=1");
        inject(&cx, &mut headers);
        let read = extract(&headers).expect("valid");
        assert_eq!(read.trace_id(), cx.trace_id());
        assert_eq!(read.tenant().map(TenantId::as_str), Some("acme"));
        assert_eq!(read.source(), Some("nats"));
        assert!(headers.get(TRACESTATE).is_none());
        assert_eq!(headers.get("x-other").map(|v| v.as_str()), Some("kept"));

        let mut broken = HeaderMap::new();
        broken.insert(TRACEPARENT, "garbage");
        assert!(matches!(
            extract(&broken),
            Err(CarrierError::Malformed { .. })
        ));
        let mut bad_tenant = HeaderMap::new();
        bad_tenant.insert(BAGGAGE, "tenantId=a%3Bb");
        assert_eq!(
            extract(&bad_tenant).expect_err("invalid").tenant(),
            Some("a;b")
        );
    }
}
