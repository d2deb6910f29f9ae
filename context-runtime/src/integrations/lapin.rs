//! RabbitMQ through `lapin`: the context in the AMQP message headers
//! `traceparent`, `tracestate` and `baggage` (feature `lapin`).
//!
//! - [`inject`] / [`inject_current_properties`] write the W3C fields into a
//!   message's headers on publish; [`extract`] reads them back, and a
//!   [`Delivery`], its [`BasicProperties`] and a [`FieldTable`] are each a
//!   [`ContextSource`], so `#[with_context(from = "delivery")]` works.
//! - A [`Queue`] is a quorum queue with a delivery limit and a dead-letter
//!   exchange (`name.dead`, bound to the queue `name.dead`).
//!   [`Queue::process`] checks a delivery with the queue's [`Policy`], runs
//!   the handler inside its context (a panic is a failed attempt), then acks
//!   it, re-publishes it for a retry (same body, same headers: the original
//!   carrier, with [`ATTEMPT`] incremented), or publishes it to the
//!   dead-letter exchange with the reason in [`REASON`], [`KIND`], [`TENANT`]:
//!   the [consume pipeline](crate::jobs::pipeline), settled through a
//!   [`Settlement`]. [`Queue::consumer`] is the same for the worker runner
//!   ([`jobs::Worker`](crate::jobs::Worker)).
//!
//! # Delivery guarantees
//!
//! - **A dead worker's job comes back, counted.** A delivery that is never
//!   acked (the worker was killed, its connection cut) goes back to the
//!   quorum queue, which counts it ([`DELIVERY_COUNT`]); [`attempt`] adds
//!   that count. A job whose worker dies on every delivery is dead-lettered
//!   by the broker after [`Policy::attempts`] deliveries (`x-delivery-limit`,
//!   see [`Queue::arguments`]), with the reason `delivery_limit`.
//! - **Copies are stored before the original is acked.** Retries and dead
//!   letters are published `mandatory` on a channel in publisher-confirm
//!   mode (required: [`ProcessError::ConfirmsRequired`] otherwise); a copy
//!   the broker returns or refuses re-queues the original
//!   ([`ProcessError::NotStored`]), and the ack's own result is checked
//!   ([`ProcessError::NotAcked`]).
//! - **At least once.** A job can run again after a crash; handlers must be
//!   idempotent.
//!
//! Identity in these headers is taken as the queue's [`Policy`] says (see
//! [the `jobs` module](crate::jobs#trust)): the tenant and user come from
//! `baggage` members `tenantId` and `userRef`, signed in a `ctx.sig` member
//! when the policy has a keyring (then [`Queue::publish`] signs, and an
//! unsigned or forged identity dead-letters the message), and an invalid
//! one dead-letters the message.
//!
//! ```no_run
//! use context_runtime::lapin::{self as amqp, Queue};
//! use context_runtime::{requires_tenant, CarrierError, TenantRequired};
//! use lapin::message::Delivery;
//!
//! #[derive(Debug)]
//! struct JobError(String);
//! impl std::fmt::Display for JobError {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(&self.0) }
//! }
//! impl From<CarrierError> for JobError { fn from(e: CarrierError) -> Self { JobError(e.to_string()) } }
//! impl From<TenantRequired> for JobError { fn from(e: TenantRequired) -> Self { JobError(e.to_string()) } }
//!
//! // `process` already runs it in the delivery's context: no `#[with_context]`.
//! #[requires_tenant]
//! async fn send_invoice(delivery: Delivery) -> Result<(), JobError> {
//!     println!("{} bytes for {}", delivery.data.len(), context_runtime::tenant()?);
//!     Ok(())
//! }
//!
//! # async fn run(cx: context_runtime::Context) -> Result<(), Box<dyn std::error::Error>> {
//! use futures_util::StreamExt as _;
//! let conn = lapin::Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f", Default::default()).await?;
//! let channel = conn.create_channel().await?;
//! channel.confirm_select(Default::default()).await?; // required: copies are confirmed before the ack
//! let queue = Queue::new("invoices");
//! queue.declare(&channel).await?; // a quorum queue, delivery limit 2 (3 deliveries)
//!
//! // Producer, inside the request's scope: the headers carry its context.
//! cx.scope(queue.publish(&channel, br#"{"invoice":7}"#)).await?.await?;
//!
//! // Consumer.
//! let mut deliveries = channel
//!     .basic_consume(queue.name().into(), "worker".into(), Default::default(), Default::default())
//!     .await?;
//! while let Some(delivery) = deliveries.next().await {
//!     // Err: not settled; the delivery comes back (and is counted).
//!     if let Err(e) = queue.process(&channel, delivery?, send_invoice).await {
//!         eprintln!("{e}");
//!     }
//! }
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use ::lapin::message::Delivery;
use std::time::Duration;

use ::lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use ::lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use ::lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use ::lapin::{Confirmation, PublisherConfirm};
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
/// The delivery attempt of a re-published message (absent on the first).
pub const ATTEMPT: &str = "x-context-attempt";
/// The header a quorum queue sets on every delivery: how many times the
/// message was delivered before without being acked (0 the first time).
/// Returns count: a nack with re-queue, and a consumer that died or lost
/// its connection holding the message.
pub const DELIVERY_COUNT: &str = "x-delivery-count";
/// On a dead letter: why it was not run, for people.
pub const REASON: &str = "x-dead-letter-reason";
/// On a dead letter: the [`RejectionKind`].
pub const KIND: &str = "x-dead-letter-kind";
/// On a dead letter: the tenant (valid, or the invalid one claimed).
pub const TENANT: &str = "x-dead-letter-tenant";
/// On a dead letter: the queue it was consumed from.
pub const QUEUE: &str = "x-dead-letter-queue";
/// On a dead letter: how many times a handler ran.
pub const ATTEMPTS: &str = "x-dead-letter-attempts";

/// The propagator for AMQP headers: the default keys, identity in baggage
/// trusted unsigned (the producer is your own system), source `"amqp"`. It
/// serves [`extract`], [`inject`] and `#[with_context(from = …)]`;
/// [`Queue::process`] takes identity as the queue's [`Policy`] says instead.
pub fn propagator() -> &'static Propagator {
    Propagator::for_wire(Wire::Amqp)
}

/// Writes `cx` into `headers`: `traceparent` (same trace, a new parent id
/// for this message), `tracestate` and `baggage` with the tenant and user,
/// replacing any already there.
pub fn inject(cx: &Context, headers: &mut FieldTable) {
    inject_using(cx, headers, propagator());
}

/// Like [`inject`] with an explicit [`Propagator`] (baggage keys, which
/// identity fields leave).
pub fn inject_using(cx: &Context, headers: &mut FieldTable, propagator: &Propagator) {
    let (parent, state, baggage) = propagator.outgoing_fields(cx, SpanId::random());
    let mut fields: BTreeMap<ShortString, AMQPValue> = headers
        .inner()
        .iter()
        .filter(|(k, _)| ![TRACEPARENT, TRACESTATE, BAGGAGE].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (name, value) in [
        (TRACEPARENT, Some(parent)),
        (TRACESTATE, state),
        (BAGGAGE, baggage),
    ] {
        if let Some(value) = value {
            fields.insert(name.into(), AMQPValue::LongString(LongString::from(value)));
        }
    }
    *headers = FieldTable::from(fields);
}

/// Writes the current context into `headers` (as [`inject`]); unchanged
/// outside any scope.
pub fn inject_current(headers: &mut FieldTable) {
    crate::scope::store::with_current(|cx| {
        if let Some(cx) = cx {
            inject(cx, headers);
        }
    });
}

/// `properties` with `cx` in their headers (other headers are kept).
pub fn inject_properties(cx: &Context, properties: BasicProperties) -> BasicProperties {
    let mut headers = properties.headers().clone().unwrap_or_default();
    inject(cx, &mut headers);
    properties.with_headers(headers)
}

/// `properties` with the current context in their headers; unchanged
/// outside any scope.
pub fn inject_current_properties(properties: BasicProperties) -> BasicProperties {
    match crate::scope::store::current() {
        Some(cx) => inject_properties(&cx, properties),
        None => properties,
    }
}

/// Reads the context from a message's headers, strictly: a `traceparent`
/// that does not parse, or an invalid tenant or user in `baggage`, is an
/// error (the message is not trustworthy); a missing `traceparent` gets a
/// fresh trace id (with the safety-net warning).
///
/// # Errors
///
/// [`CarrierError::Malformed`], [`CarrierError::InvalidTenant`] or
/// [`CarrierError::InvalidUser`].
pub fn extract(headers: &FieldTable) -> Result<Context, CarrierError> {
    extract_using(headers, propagator())
}

/// Like [`extract`] with an explicit [`Propagator`] (for example one that
/// does not trust identity, for queues fed by third parties).
///
/// # Errors
///
/// As [`extract`].
pub fn extract_using(
    headers: &FieldTable,
    propagator: &Propagator,
) -> Result<Context, CarrierError> {
    let field = |name: &str| headers.inner().get(name).map(text);
    propagator.extract_fields_checked(field(TRACEPARENT), field(TRACESTATE), field(BAGGAGE))
}

/// A header's text: a long or short string that is UTF-8.
fn text(value: &AMQPValue) -> Option<&str> {
    match value {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        _ => None,
    }
}

fn header<'a>(properties: &'a BasicProperties, name: &str) -> Option<&'a AMQPValue> {
    properties.headers().as_ref()?.inner().get(name)
}

/// Headers read strictly with the AMQP [`propagator`] (see [`extract`]).
impl ContextSource for FieldTable {
    type Error = CarrierError;

    fn to_context(&self) -> Result<Context, CarrierError> {
        extract(self)
    }

    fn to_trusted_context(
        &self,
        trust: &Trust,
        _job_id: Option<&str>,
    ) -> Result<Context, Untrusted<CarrierError>> {
        extract_using(self, &propagator().clone().trust(trust.clone())).map_err(|e| match e {
            CarrierError::UntrustedIdentity(e) => Untrusted::Identity(e),
            e => Untrusted::Read(e),
        })
    }
}

/// The properties' headers (none: a fresh trace and no tenant).
impl ContextSource for BasicProperties {
    type Error = CarrierError;

    fn to_context(&self) -> Result<Context, CarrierError> {
        match self.headers() {
            Some(headers) => extract(headers),
            None => extract(&FieldTable::default()),
        }
    }

    fn to_trusted_context(
        &self,
        trust: &Trust,
        job_id: Option<&str>,
    ) -> Result<Context, Untrusted<CarrierError>> {
        match self.headers() {
            Some(headers) => headers.to_trusted_context(trust, job_id),
            None => FieldTable::default().to_trusted_context(trust, job_id),
        }
    }
}

/// The delivery's headers, so a handler can say `#[with_context(from = "delivery")]`.
impl ContextSource for Delivery {
    type Error = CarrierError;

    fn to_context(&self) -> Result<Context, CarrierError> {
        self.properties.to_context()
    }

    fn to_trusted_context(
        &self,
        trust: &Trust,
        job_id: Option<&str>,
    ) -> Result<Context, Untrusted<CarrierError>> {
        self.properties.to_trusted_context(trust, job_id)
    }
}

/// The delivery attempt: 1 the first time. A retry re-published by
/// [`Queue::process`] carries the next attempt in [`ATTEMPT`]; every
/// delivery of the same message that was not acked (a worker killed, a
/// connection cut) adds one through the quorum queue's [`DELIVERY_COUNT`].
pub fn attempt(delivery: &Delivery) -> u32 {
    attempt_of(&delivery.properties)
}

fn attempt_of(properties: &BasicProperties) -> u32 {
    let base = header(properties, ATTEMPT)
        .and_then(number)
        .unwrap_or(1)
        .max(1);
    let returned = header(properties, DELIVERY_COUNT)
        .and_then(number)
        .unwrap_or(0);
    base.saturating_add(returned)
}

fn number(value: &AMQPValue) -> Option<u32> {
    match value {
        AMQPValue::LongUInt(n) => Some(*n),
        AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
        AMQPValue::LongLongInt(n) => u32::try_from(*n).ok(),
        AMQPValue::ShortUInt(n) => Some(u32::from(*n)),
        AMQPValue::ShortInt(n) => u32::try_from(*n).ok(),
        other => text(other)?.parse().ok(),
    }
}

/// Publishes `payload` with the current context in its headers (added to
/// `properties`' own). Await the returned confirm when the channel has
/// publisher confirms on.
///
/// # Errors
///
/// A `lapin` error.
pub async fn publish(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    payload: &[u8],
    properties: BasicProperties,
) -> ::lapin::Result<PublisherConfirm> {
    publish_using(
        channel,
        exchange,
        routing_key,
        payload,
        properties,
        propagator(),
    )
    .await
}

/// Like [`publish`], with the current context written by `propagator` (for
/// example one that signs the identity, [`Propagator::keyring`]).
///
/// # Errors
///
/// As [`publish`].
pub async fn publish_using(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    payload: &[u8],
    properties: BasicProperties,
    propagator: &Propagator,
) -> ::lapin::Result<PublisherConfirm> {
    let properties = match crate::scope::store::current() {
        Some(cx) => {
            let mut headers = properties.headers().clone().unwrap_or_default();
            inject_using(&cx, &mut headers, propagator);
            properties.with_headers(headers)
        }
        None => properties,
    };
    channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            payload,
            properties,
        )
        .await
}

/// The header the broker writes on a message it dead-lettered itself:
/// why (`delivery_limit` when the quorum queue's delivery limit was
/// reached).
pub const FIRST_DEATH_REASON: &str = "x-first-death-reason";
/// The header the broker writes on a message it dead-lettered itself:
/// the queue it was dead-lettered from.
const FIRST_DEATH_QUEUE: &str = "x-first-death-queue";

/// The reason of a dead letter whose deliveries all ended unsettled.
const NEVER_SETTLED: &str = "every delivery ended without an ack: the worker stopped \
     mid-job (killed, or lost its connection)";

/// Reads the dead-letter record of a message from a dead-letter queue:
/// the headers [`Queue::process`] wrote, and the original body. A message
/// the broker dead-lettered itself because the queue's delivery limit was
/// reached (its workers died on every delivery) reads as
/// [`RejectionKind::Exhausted`] with `attempts` 0 (the broker does not
/// say how many). `None` for any other message.
pub fn dead_letter(delivery: &Delivery) -> Option<DeadLetter> {
    dead_letter_of(&delivery.properties, &delivery.data)
}

fn dead_letter_of(properties: &BasicProperties, data: &[u8]) -> Option<DeadLetter> {
    let string = |name| header(properties, name).and_then(text).map(str::to_owned);
    let trace_id = claimed_trace_id(header(properties, TRACEPARENT).and_then(text));
    let payload = String::from_utf8_lossy(data).into_owned();
    let Some(kind) = header(properties, KIND)
        .and_then(text)
        .and_then(RejectionKind::parse)
    else {
        if header(properties, FIRST_DEATH_REASON).and_then(text) != Some("delivery_limit") {
            return None;
        }
        let tenant = properties
            .to_context()
            .ok()
            .and_then(|cx| cx.tenant().map(|t| t.as_str().to_owned()));
        return Some(DeadLetter {
            queue: string(FIRST_DEATH_QUEUE).unwrap_or_default(),
            kind: RejectionKind::Exhausted,
            reason: format!("the queue's delivery limit was reached: {NEVER_SETTLED}"),
            tenant,
            trace_id,
            attempts: 0,
            payload,
        });
    };
    Some(DeadLetter {
        queue: string(QUEUE).unwrap_or_default(),
        kind,
        reason: string(REASON).unwrap_or_default(),
        tenant: string(TENANT),
        trace_id,
        attempts: header(properties, ATTEMPTS).and_then(number).unwrap_or(0),
        payload,
    })
}

/// Why [`Queue::process`] could not settle a delivery. The delivery is
/// then never acked, so nothing is lost: the broker delivers it again
/// (and the quorum queue counts that delivery).
#[derive(Debug)]
#[non_exhaustive]
pub enum ProcessError {
    /// The AMQP client failed (for example, the channel or connection closed).
    Amqp(::lapin::Error),
    /// The [`Consumer`]'s deliveries ended (its connection closed); the
    /// next receive connects again.
    ConsumerClosed,
    /// The channel is not in publisher-confirm mode, so a retry or a dead
    /// letter could not be known to be stored: call
    /// `channel.confirm_select(Default::default())` first. The delivery is
    /// left un-acked.
    ConfirmsRequired,
    /// The broker did not store a retry or a dead letter: it returned it
    /// (no queue is bound where it was published, with `mandatory` set) or
    /// refused it. The delivery was re-queued.
    NotStored {
        /// The exchange it was published to (`""`: the default exchange).
        exchange: String,
        /// What the broker said.
        reason: String,
    },
    /// The broker did not take the ack (the delivery's channel closed, or
    /// it was settled before): it will be delivered again.
    NotAcked,
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessError::Amqp(e) => write!(f, "AMQP error: {e}"),
            ProcessError::ConsumerClosed => {
                f.write_str("the consumer's deliveries ended (its connection closed)")
            }
            ProcessError::ConfirmsRequired => f.write_str(
                "the channel is not in publisher-confirm mode; \
                 call `confirm_select` on it before processing deliveries",
            ),
            ProcessError::NotStored { exchange, reason } => write!(
                f,
                "the broker did not store the message published to exchange {exchange:?} \
                 ({reason}); the delivery is re-queued"
            ),
            ProcessError::NotAcked => f.write_str(
                "the broker did not take the ack (the channel closed or the delivery was \
                 already settled); it will be delivered again",
            ),
        }
    }
}

impl std::error::Error for ProcessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProcessError::Amqp(e) => Some(e),
            _ => None,
        }
    }
}

impl From<::lapin::Error> for ProcessError {
    fn from(e: ::lapin::Error) -> Self {
        ProcessError::Amqp(e)
    }
}

/// A RabbitMQ job queue with its dead-letter exchange, and the [`Policy`]
/// its consumers apply.
///
/// The queue is a quorum queue with a delivery limit of
/// [`Policy::attempts`] − 1 returns: a message whose worker dies on every
/// delivery (killed, connection cut: it is never acked) is dead-lettered
/// by the broker itself after [`Policy::attempts`] deliveries. Handler
/// errors and panics are counted by [`Queue::process`], which dead-letters
/// the job with its reason on the last attempt.
#[derive(Debug, Clone)]
pub struct Queue {
    name: String,
    policy: Policy,
}

impl Queue {
    /// The queue `name`, with the default [`Policy`]: a tenant is
    /// required, 3 attempts.
    pub fn new(name: impl Into<String>) -> Queue {
        Queue {
            name: name.into(),
            policy: Policy::new(),
        }
    }

    /// The policy consumers of this queue apply; its
    /// [`attempts`](Policy::attempts) also set the queue's delivery limit
    /// when it is declared.
    pub fn with_policy(mut self, policy: Policy) -> Queue {
        self.policy = policy;
        self
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The dead-letter exchange (fanout), `name.dead`.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dead", self.name)
    }

    /// The queue bound to the dead-letter exchange, `name.dead`.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead", self.name)
    }

    /// The arguments [`Queue::declare`] declares the queue with:
    ///
    /// | argument | value |
    /// | --- | --- |
    /// | `x-queue-type` | `quorum` |
    /// | `x-delivery-limit` | [`Policy::attempts`] − 1 (deliveries after the first) |
    /// | `x-dead-letter-exchange` | [`Queue::dead_letter_exchange`] |
    /// | `x-dead-letter-strategy` | `at-least-once` (kept until the dead-letter queue has it) |
    /// | `x-overflow` | `reject-publish` (what `at-least-once` requires) |
    ///
    /// RabbitMQ refuses to re-declare a queue with other arguments
    /// (`PRECONDITION_FAILED`): a queue declared before with other
    /// arguments (a classic queue, another limit) needs a new name or a
    /// migration.
    ///
    /// ```
    /// use context_runtime::jobs::Policy;
    /// use context_runtime::lapin::Queue;
    /// use lapin::types::AMQPValue;
    ///
    /// let queue = Queue::new("invoices").with_policy(Policy::new().max_attempts(5));
    /// let arguments = queue.arguments();
    /// assert_eq!(arguments.inner().get("x-delivery-limit"), Some(&AMQPValue::LongInt(4)));
    /// ```
    pub fn arguments(&self) -> FieldTable {
        let text = |s: &str| AMQPValue::LongString(LongString::from(s));
        let limit = i32::try_from(self.policy.attempts().saturating_sub(1)).unwrap_or(i32::MAX);
        let mut arguments = FieldTable::default();
        arguments.insert("x-queue-type".into(), text("quorum"));
        arguments.insert("x-delivery-limit".into(), AMQPValue::LongInt(limit));
        arguments.insert(
            "x-dead-letter-exchange".into(),
            text(&self.dead_letter_exchange()),
        );
        arguments.insert("x-dead-letter-strategy".into(), text("at-least-once"));
        arguments.insert("x-overflow".into(), text("reject-publish"));
        arguments
    }

    /// Declares the dead-letter exchange and queue, and the queue itself:
    /// durable, a quorum queue with the [`Queue::arguments`] (delivery
    /// limit and dead-letter exchange).
    ///
    /// # Errors
    ///
    /// A `lapin` error, for example `PRECONDITION_FAILED` when the queue
    /// exists with other arguments.
    pub async fn declare(&self, channel: &Channel) -> ::lapin::Result<()> {
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        let dlx = self.dead_letter_exchange();
        channel
            .exchange_declare(
                dlx.as_str().into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_declare(
                self.dead_letter_queue().into(),
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_bind(
                self.dead_letter_queue().into(),
                dlx.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_declare(self.name.as_str().into(), durable, self.arguments())
            .await?;
        Ok(())
    }

    /// Publishes `payload` to this queue (through the default exchange),
    /// persistent, with the current context in its headers.
    ///
    /// # Errors
    ///
    /// A `lapin` error.
    pub async fn publish(
        &self,
        channel: &Channel,
        payload: &[u8],
    ) -> ::lapin::Result<PublisherConfirm> {
        let properties = BasicProperties::default().with_delivery_mode(2);
        // With a keyring in the policy, the identity leaves signed.
        let signing = self
            .policy
            .signing_keyring()
            .map(|keyring| propagator().clone().sign_with(keyring.clone()));
        let propagator = signing.as_ref().unwrap_or_else(|| propagator());
        publish_using(channel, "", &self.name, payload, properties, propagator).await
    }

    /// Handles one delivery to the end: checked against the policy,
    /// `handler` run inside the delivery's context (a panic is a failed
    /// attempt, `panicked: <message>`), then acked; or, after the
    /// policy's back-off, re-published with its original headers and the
    /// next [`ATTEMPT`], then acked; or, on
    /// the last attempt, published to the dead-letter exchange with the
    /// reason, then acked. A delivery whose earlier attempts never settled
    /// (its workers died: the quorum queue's [`DELIVERY_COUNT`]) and that
    /// is past the last attempt is dead-lettered without running.
    ///
    /// Retries and dead letters are published `mandatory` and confirmed:
    /// the channel must be in publisher-confirm mode, and the original is
    /// acked only once the broker has stored its copy. A copy that is
    /// returned or refused re-queues the original.
    ///
    /// # Errors
    ///
    /// A [`ProcessError`]; the delivery is not acked, so the broker
    /// delivers it again.
    pub async fn process<F, Fut, R, E>(
        &self,
        channel: &Channel,
        delivery: Delivery,
        handler: F,
    ) -> Result<Outcome<R>, ProcessError>
    where
        F: FnOnce(Delivery) -> Fut,
        Fut: Future<Output = Result<R, E>>,
        E: fmt::Display,
    {
        if !channel.status().confirm() {
            return Err(ProcessError::ConfirmsRequired);
        }
        let delivery = self.delivery(channel, delivery);
        pipeline::process(&self.name, &self.policy, delivery, handler).await
    }

    /// A [`Consumer`] of this queue for the worker runner
    /// ([`jobs::Worker`](crate::jobs::Worker)): it connects to `uri` (and
    /// connects again after the connection is lost), puts its channel in
    /// publisher-confirm mode, and consumes with a prefetch of `prefetch`
    /// deliveries (give it the worker's concurrency). The queue must have
    /// been declared ([`Queue::declare`]).
    ///
    /// ```no_run
    /// # async fn demo() {
    /// use context_runtime::jobs::Worker;
    /// use context_runtime::lapin::Queue;
    /// use lapin::message::Delivery;
    ///
    /// async fn send_invoice(delivery: Delivery) -> Result<(), std::io::Error> {
    ///     // Already in the delivery's context: no `#[with_context]` here.
    ///     println!("{} bytes for {}", delivery.data.len(), context_runtime::tenant().unwrap());
    ///     Ok(())
    /// }
    ///
    /// let consumer = Queue::new("invoices").consumer("amqp://guest:guest@127.0.0.1:5672/%2f", "worker-1", 8);
    /// Worker::new(consumer, send_invoice)
    ///     .concurrency(8)
    ///     .run(async { tokio::signal::ctrl_c().await.ok(); })
    ///     .await;
    /// # }
    /// ```
    pub fn consumer(
        &self,
        uri: impl Into<String>,
        tag: impl Into<String>,
        prefetch: u16,
    ) -> Consumer {
        Consumer {
            queue: self.clone(),
            uri: uri.into(),
            properties: ConnectionProperties::default(),
            tag: tag.into(),
            prefetch: prefetch.max(1),
            wait: Duration::from_secs(1),
            live: None,
        }
    }

    /// `delivery` as the [pipeline](crate::jobs::pipeline) takes it,
    /// settled through `channel`.
    fn delivery(
        &self,
        channel: &Channel,
        delivery: Delivery,
    ) -> pipeline::Delivery<Delivery, Settlement> {
        let attempt = attempt(&delivery);
        let claimed = claimed_trace_id(header(&delivery.properties, TRACEPARENT).and_then(text));
        let job_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.as_str().to_owned());
        let settle = Settlement {
            channel: channel.clone(),
            queue: self.name.clone(),
            data: delivery.data.clone(),
            properties: delivery.properties.clone(),
            acker: delivery.acker.clone(),
            attempt,
        };
        let payload = delivery.data.clone();
        pipeline::Delivery::new(Ok(delivery), payload, attempt, settle)
            .with_job_id(job_id)
            .with_claimed_trace_id(claimed)
    }
}

/// How one RabbitMQ delivery is settled (the [`Settle`] adapter of the
/// [pipeline](crate::jobs::pipeline)):
///
/// | settlement | on RabbitMQ |
/// | --- | --- |
/// | ack | `basic.ack`, its result checked ([`ProcessError::NotAcked`]) |
/// | retry | after the policy's back-off (RabbitMQ has no delayed redelivery: the handler's task sleeps, holding the un-acked delivery), the same body and headers re-published `mandatory` and confirmed with the next [`ATTEMPT`], then the original acked |
/// | dead letter | published `mandatory` and confirmed to the dead-letter exchange with [`REASON`], [`KIND`], [`TENANT`], [`QUEUE`], [`ATTEMPTS`], then the original acked |
///
/// A copy the broker returns or refuses re-queues the original
/// ([`ProcessError::NotStored`]); a channel without publisher confirms is
/// [`ProcessError::ConfirmsRequired`] and leaves the delivery un-acked.
#[derive(Debug)]
pub struct Settlement {
    channel: Channel,
    queue: String,
    data: Vec<u8>,
    properties: BasicProperties,
    acker: ::lapin::Acker,
    attempt: u32,
}

impl Settle for Settlement {
    type Error = ProcessError;

    async fn ack(&mut self) -> Result<(), ProcessError> {
        ack(&self.acker).await
    }

    async fn retry(&mut self, delay: Duration) -> Result<(), ProcessError> {
        // No delayed redelivery in RabbitMQ: wait here (the delivery stays
        // un-acked, so a crash meanwhile still redelivers it), bounded by
        // the policy's maximum back-off.
        tokio::time::sleep(delay).await;
        // The original message, headers and all, with the next attempt;
        // the broker's count starts again on the copy.
        let properties = with_header(
            self.properties.clone(),
            ATTEMPT,
            AMQPValue::LongUInt(self.attempt.saturating_add(1)),
        );
        let properties = without_header(properties, DELIVERY_COUNT);
        store_then_ack(
            &self.channel,
            &self.acker,
            "",
            &self.queue,
            &self.data,
            properties,
        )
        .await
    }

    async fn dead_letter(&mut self, letter: &DeadLetter) -> Result<(), ProcessError> {
        let text = |s: &str| AMQPValue::LongString(LongString::from(s));
        let mut properties = with_header(self.properties.clone(), REASON, text(&letter.reason));
        properties = with_header(properties, KIND, text(letter.kind.as_str()));
        properties = with_header(properties, QUEUE, text(&self.queue));
        properties = with_header(properties, ATTEMPTS, AMQPValue::LongUInt(letter.attempts));
        if let Some(tenant) = &letter.tenant {
            properties = with_header(properties, TENANT, text(tenant));
        }
        let exchange = format!("{}.dead", self.queue);
        store_then_ack(
            &self.channel,
            &self.acker,
            &exchange,
            &self.queue,
            &self.data,
            properties,
        )
        .await
    }
}

/// The consumer of a [`Queue`] the worker runner
/// ([`jobs::Worker`](crate::jobs::Worker)) takes its jobs from (see
/// [`Queue::consumer`]). It owns its connection: when the connection is
/// lost, [`receive`](Transport::receive) fails once and the next call
/// connects again; the deliveries the lost connection held go back to the
/// queue, counted.
pub struct Consumer {
    queue: Queue,
    uri: String,
    properties: ConnectionProperties,
    tag: String,
    prefetch: u16,
    wait: Duration,
    live: Option<Live>,
}

struct Live {
    _connection: Connection,
    channel: Channel,
    deliveries: ::lapin::Consumer,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("queue", &self.queue.name)
            .field("tag", &self.tag)
            .field("prefetch", &self.prefetch)
            .field("connected", &self.live.is_some())
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// With these connection properties instead of the default ones.
    pub fn with_connection_properties(mut self, properties: ConnectionProperties) -> Consumer {
        self.properties = properties;
        self
    }

    /// How long one [`receive`](Transport::receive) waits for a delivery
    /// (default 1 s).
    pub fn with_wait(mut self, wait: Duration) -> Consumer {
        self.wait = wait.max(Duration::from_millis(1));
        self
    }

    async fn connect(&self) -> Result<Live, ProcessError> {
        let connection = Connection::connect(&self.uri, self.properties.clone()).await?;
        let channel = connection.create_channel().await?;
        channel.confirm_select(Default::default()).await?;
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await?;
        let deliveries = channel
            .basic_consume(
                self.queue.name.as_str().into(),
                self.tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(Live {
            _connection: connection,
            channel,
            deliveries,
        })
    }
}

/// The next delivery, if one is ready now.
async fn next_delivery(deliveries: &mut ::lapin::Consumer) -> Option<::lapin::Result<Delivery>> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *deliveries).poll_next(cx)).await
}

impl Transport for Consumer {
    type Job = Delivery;
    type Settle = Settlement;
    type Error = ProcessError;

    fn queue(&self) -> &str {
        &self.queue.name
    }

    fn policy(&self) -> &Policy {
        &self.queue.policy
    }

    async fn receive(
        &mut self,
        max: usize,
    ) -> Result<Vec<pipeline::Delivery<Delivery, Settlement>>, ProcessError> {
        if self.live.is_none() {
            self.live = Some(self.connect().await?);
        }
        let Some(live) = self.live.as_mut() else {
            return Ok(Vec::new());
        };
        let mut received = Vec::new();
        let mut wait = self.wait;
        while received.len() < max.max(1) {
            match tokio::time::timeout(wait, next_delivery(&mut live.deliveries)).await {
                Err(_) => break,
                Ok(Some(Ok(delivery))) => received.push(delivery),
                Ok(Some(Err(error))) => {
                    self.live = None;
                    if received.is_empty() {
                        return Err(error.into());
                    }
                    break;
                }
                Ok(None) => {
                    self.live = None;
                    if received.is_empty() {
                        return Err(ProcessError::ConsumerClosed);
                    }
                    break;
                }
            }
            // After the first, only what is already there.
            wait = Duration::ZERO;
        }
        let Some(channel) = self.live.as_ref().map(|live| live.channel.clone()) else {
            // Lost after these came: their settlements fail, and the
            // broker delivers them again.
            return Ok(Vec::new());
        };
        Ok(received
            .into_iter()
            .map(|delivery| self.queue.delivery(&channel, delivery))
            .collect())
    }
}

fn with_header(properties: BasicProperties, name: &str, value: AMQPValue) -> BasicProperties {
    let mut headers = properties.headers().clone().unwrap_or_default();
    headers.insert(name.into(), value);
    properties.with_headers(headers)
}

fn without_header(properties: BasicProperties, name: &str) -> BasicProperties {
    let Some(headers) = properties.headers().clone() else {
        return properties;
    };
    let kept: BTreeMap<ShortString, AMQPValue> = headers
        .inner()
        .iter()
        .filter(|(k, _)| k.as_str() != name)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    properties.with_headers(FieldTable::from(kept))
}

/// Publishes `mandatory` and waits for the broker's confirm: `Ok` only
/// when the broker stored the message (acked, and not returned).
async fn forward(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    data: &[u8],
    properties: BasicProperties,
) -> Result<(), ProcessError> {
    if !channel.status().confirm() {
        return Err(ProcessError::ConfirmsRequired);
    }
    let mandatory = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    let confirm = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            mandatory,
            data,
            properties,
        )
        .await?
        .await?;
    let not_stored = |reason: String| ProcessError::NotStored {
        exchange: exchange.to_owned(),
        reason,
    };
    match confirm {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => Err(not_stored(
            format!("returned: {} {}", returned.reply_code, returned.reply_text),
        )),
        Confirmation::Nack(None) => Err(not_stored("nacked".to_owned())),
        Confirmation::NotRequested => Err(ProcessError::ConfirmsRequired),
    }
}

/// Acks the delivery once its copy is stored; re-queues it when the broker
/// did not store the copy.
async fn store_then_ack(
    channel: &Channel,
    acker: &::lapin::Acker,
    exchange: &str,
    routing_key: &str,
    data: &[u8],
    properties: BasicProperties,
) -> Result<(), ProcessError> {
    match forward(channel, exchange, routing_key, data, properties).await {
        Ok(()) => ack(acker).await,
        Err(not_stored @ ProcessError::NotStored { .. }) => {
            acker
                .nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                })
                .await?;
            Err(not_stored)
        }
        Err(other) => Err(other),
    }
}

/// Acks, checking that the broker took it.
async fn ack(acker: &::lapin::Acker) -> Result<(), ProcessError> {
    if acker.ack(BasicAckOptions::default()).await? {
        Ok(())
    } else {
        Err(ProcessError::NotAcked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tenant::TenantId;

    fn headers(pairs: &[(&str, &str)]) -> FieldTable {
        let mut table = FieldTable::default();
        for (k, v) in pairs {
            table.insert((*k).into(), AMQPValue::LongString(LongString::from(*v)));
        }
        table
    }

    #[test]
    fn headers_round_trip_with_a_new_parent_and_the_trusted_tenant() {
        let cx = Context::root().with_tenant(TenantId::new("acme").expect("valid"));
        let mut table = headers(&[("x-other", "kept")]);
        inject(&cx, &mut table);
        let read = extract(&table).expect("valid");
        assert_eq!(read.trace_id(), cx.trace_id());
        assert_eq!(read.tenant().map(TenantId::as_str), Some("acme"));
        assert_eq!(read.source(), Some("amqp"));
        assert!(table.contains_key("x-other"));
    }

    #[test]
    fn broken_fields_are_errors_not_a_silent_new_trace_or_no_tenant() {
        let bad_parent = headers(&[("traceparent", "garbage"), ("baggage", "tenantId=acme")]);
        assert!(matches!(
            extract(&bad_parent),
            Err(CarrierError::Malformed { .. })
        ));
        let bad_tenant = headers(&[("baggage", "tenantId=a%3Bb")]);
        let err = extract(&bad_tenant).expect_err("invalid tenant");
        assert_eq!(err.tenant(), Some("a;b"));
        let mut not_text = FieldTable::default();
        not_text.insert("traceparent".into(), AMQPValue::LongUInt(7));
        assert!(matches!(
            extract(&not_text),
            Err(CarrierError::Malformed { .. })
        ));
        // No identity trusted: the same tenant is dropped, not an error.
        let outside = Propagator::new();
        assert!(extract_using(&bad_tenant, &outside)
            .expect("ok")
            .tenant()
            .is_none());
    }

    #[test]
    fn attempts_count_retries_and_deliveries_that_never_settled() {
        let properties = |pairs: &[(&str, AMQPValue)]| {
            let mut table = FieldTable::default();
            for (k, v) in pairs {
                table.insert((*k).into(), v.clone());
            }
            BasicProperties::default().with_headers(table)
        };
        assert_eq!(attempt_of(&BasicProperties::default()), 1);
        assert_eq!(
            attempt_of(&properties(&[(DELIVERY_COUNT, AMQPValue::LongLongInt(0))])),
            1
        );
        // Two deliveries died before this one.
        assert_eq!(
            attempt_of(&properties(&[(DELIVERY_COUNT, AMQPValue::LongLongInt(2))])),
            3
        );
        // A retry's copy, delivered once before.
        let retried = properties(&[
            (ATTEMPT, AMQPValue::LongUInt(2)),
            (DELIVERY_COUNT, AMQPValue::LongLongInt(1)),
        ]);
        assert_eq!(attempt_of(&retried), 3);
        let copy = without_header(retried, DELIVERY_COUNT);
        assert_eq!(attempt_of(&copy), 2);
    }

    #[test]
    fn the_queue_is_a_quorum_queue_with_a_delivery_limit_from_the_policy() {
        let queue = Queue::new("jobs").with_policy(Policy::new().max_attempts(3));
        let arguments = queue.arguments();
        let get = |k: &str| arguments.inner().get(k).cloned();
        let text = |s: &str| Some(AMQPValue::LongString(LongString::from(s)));
        assert_eq!(get("x-queue-type"), text("quorum"));
        assert_eq!(get("x-delivery-limit"), Some(AMQPValue::LongInt(2)));
        assert_eq!(get("x-dead-letter-exchange"), text("jobs.dead"));
        assert_eq!(get("x-dead-letter-strategy"), text("at-least-once"));
        let once = Queue::new("once").with_policy(Policy::new().max_attempts(1));
        assert_eq!(
            once.arguments().inner().get("x-delivery-limit"),
            Some(&AMQPValue::LongInt(0))
        );
    }

    #[test]
    fn a_message_the_broker_dead_lettered_at_the_delivery_limit_reads_as_exhausted() {
        let cx = Context::root().with_tenant(TenantId::new("acme").expect("valid"));
        let mut table = FieldTable::default();
        inject(&cx, &mut table);
        let text = |s: &str| AMQPValue::LongString(LongString::from(s));
        table.insert(FIRST_DEATH_REASON.into(), text("delivery_limit"));
        table.insert(FIRST_DEATH_QUEUE.into(), text("jobs"));
        let properties = BasicProperties::default().with_headers(table.clone());
        let letter = dead_letter_of(&properties, b"{}").expect("a dead letter");
        assert_eq!(letter.kind, RejectionKind::Exhausted);
        assert_eq!(letter.queue, "jobs");
        assert_eq!(letter.tenant.as_deref(), Some("acme"));
        assert_eq!(letter.trace_id, Some(cx.trace_id().to_string()));
        assert!(letter.reason.contains("delivery limit"));
        // Expired, or any message without a record: not ours to read.
        table.insert(FIRST_DEATH_REASON.into(), text("expired"));
        let expired = BasicProperties::default().with_headers(table);
        assert_eq!(dead_letter_of(&expired, b"{}"), None);
    }
}
