//! RabbitMQ through `lapin`: the context in the AMQP message headers
//! `traceparent`, `tracestate` and `baggage` (feature `lapin`).
//!
//! - [`inject`] / [`inject_current_properties`] write the W3C fields into a
//!   message's headers on publish; [`extract`] reads them back, and a
//!   [`Delivery`], its [`BasicProperties`] and a [`FieldTable`] are each a
//!   [`ContextSource`], so `#[with_context(from = "delivery")]` works.
//! - A [`Queue`] is a queue with a dead-letter exchange (`name.dead`, bound
//!   to the queue `name.dead`). [`Queue::process`] checks a delivery with
//!   the queue's [`Policy`], runs the handler inside its context, then acks
//!   it, re-publishes it for a retry (same body, same headers: the original
//!   carrier, with [`ATTEMPT`] incremented), or publishes it to the
//!   dead-letter exchange with the reason in [`REASON`], [`KIND`], [`TENANT`].
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
//! use context_runtime::{with_context, requires_tenant, CarrierError, TenantRequired};
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
//! #[with_context(from = "delivery")]
//! #[requires_tenant]
//! async fn send_invoice(delivery: Delivery) -> Result<(), JobError> {
//!     println!("{} bytes for {}", delivery.data.len(), context_runtime::tenant()?);
//!     Ok(())
//! }
//!
//! # async fn run(cx: context_runtime::Context) -> lapin::Result<()> {
//! use futures_util::StreamExt as _;
//! let conn = lapin::Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f", Default::default()).await?;
//! let channel = conn.create_channel().await?;
//! channel.confirm_select(Default::default()).await?; // re-publishes are confirmed before the ack
//! let queue = Queue::new("invoices");
//! queue.declare(&channel).await?;
//!
//! // Producer, inside the request's scope: the headers carry its context.
//! cx.scope(queue.publish(&channel, br#"{"invoice":7}"#)).await?.await?;
//!
//! // Consumer.
//! let mut deliveries = channel
//!     .basic_consume(queue.name().into(), "worker".into(), Default::default(), Default::default())
//!     .await?;
//! while let Some(delivery) = deliveries.next().await {
//!     queue.process(&channel, delivery?, send_invoice).await?;
//! }
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use ::lapin::message::Delivery;
use ::lapin::options::{
    BasicAckOptions, BasicNackOptions, BasicPublishOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use ::lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use ::lapin::{BasicProperties, Channel, ExchangeKind};
use ::lapin::{Confirmation, PublisherConfirm};

use crate::jobs::{admit, run_in, DeadLetter, Outcome, Policy, RejectionKind};
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
/// trusted (the producer is your own system), source `"amqp"`.
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

/// The delivery attempt: 1 the first time, then the [`ATTEMPT`] header a
/// retry wrote.
pub fn attempt(delivery: &Delivery) -> u32 {
    header(&delivery.properties, ATTEMPT)
        .and_then(number)
        .unwrap_or(1)
        .max(1)
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

/// Reads the dead-letter record of a message from a dead-letter queue:
/// the headers [`Queue::process`] wrote, and the original body. `None`
/// when the message has no [`KIND`] header.
pub fn dead_letter(delivery: &Delivery) -> Option<DeadLetter> {
    let properties = &delivery.properties;
    let kind = RejectionKind::parse(header(properties, KIND).and_then(text)?)?;
    let string = |name| header(properties, name).and_then(text).map(str::to_owned);
    let trace_id = claimed_trace_id(header(properties, TRACEPARENT).and_then(text));
    Some(DeadLetter {
        queue: string(QUEUE).unwrap_or_default(),
        kind,
        reason: string(REASON).unwrap_or_default(),
        tenant: string(TENANT),
        trace_id,
        attempts: header(properties, ATTEMPTS).and_then(number).unwrap_or(0),
        payload: String::from_utf8_lossy(&delivery.data).into_owned(),
    })
}

/// A RabbitMQ job queue with its dead-letter exchange, and the [`Policy`]
/// its consumers apply.
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

    /// The policy consumers of this queue apply.
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

    /// Declares the dead-letter exchange and queue, and the queue itself
    /// (durable) with `x-dead-letter-exchange` set, so messages RabbitMQ
    /// itself rejects (expired, too long) land there too.
    ///
    /// # Errors
    ///
    /// A `lapin` error, for example when the queue exists with other arguments.
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
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(LongString::from(dlx)),
        );
        channel
            .queue_declare(self.name.as_str().into(), durable, arguments)
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
    /// `handler` run inside the delivery's context, then acked; or
    /// re-published with its original headers and the next [`ATTEMPT`]
    /// (then acked); or published to the dead-letter exchange with the
    /// reason (then acked). With publisher confirms on, the ack waits for
    /// the broker's confirm; a refused re-publish leaves the delivery
    /// un-acked and re-queued, so nothing is lost.
    ///
    /// # Errors
    ///
    /// A `lapin` error; the delivery is then redelivered by the broker.
    pub async fn process<F, Fut, R, E>(
        &self,
        channel: &Channel,
        delivery: Delivery,
        handler: F,
    ) -> ::lapin::Result<Outcome<R>>
    where
        F: FnOnce(Delivery) -> Fut,
        Fut: Future<Output = Result<R, E>>,
        E: fmt::Display,
    {
        let attempt = attempt(&delivery);
        let cx = match admit(&delivery, &self.policy) {
            Ok(cx) => cx,
            Err(rejection) => {
                let letter = DeadLetter::new(&self.name, &rejection, &delivery.data).with_trace_id(
                    claimed_trace_id(header(&delivery.properties, TRACEPARENT).and_then(text)),
                );
                let (data, properties, acker) =
                    (delivery.data, delivery.properties, delivery.acker);
                return self
                    .dead_letter(channel, &data, properties, &acker, letter, attempt)
                    .await;
            }
        };

        let (data, properties, acker) = (
            delivery.data.clone(),
            delivery.properties.clone(),
            delivery.acker.clone(),
        );
        match run_in(&cx, handler(delivery)).await {
            Ok(done) => {
                acker.ack(BasicAckOptions::default()).await?;
                Ok(Outcome::Completed(done))
            }
            Err(error) => match self.policy.after_failure(attempt, error.clone()) {
                Some(rejection) => {
                    let letter = DeadLetter::exhausted(&self.name, &rejection, &data, &cx);
                    self.dead_letter(channel, &data, properties, &acker, letter, attempt)
                        .await
                }
                None => {
                    // The original message, headers and all, with the next attempt.
                    let properties =
                        with_header(properties, ATTEMPT, AMQPValue::LongUInt(attempt + 1));
                    let stored = forward(channel, "", &self.name, &data, properties).await?;
                    settle(&acker, stored).await?;
                    Ok(Outcome::Retried { attempt, error })
                }
            },
        }
    }

    async fn dead_letter<R>(
        &self,
        channel: &Channel,
        data: &[u8],
        properties: BasicProperties,
        acker: &::lapin::Acker,
        letter: DeadLetter,
        attempt: u32,
    ) -> ::lapin::Result<Outcome<R>> {
        let text = |s: &str| AMQPValue::LongString(LongString::from(s));
        let mut properties = with_header(properties, REASON, text(&letter.reason));
        properties = with_header(properties, KIND, text(letter.kind.as_str()));
        properties = with_header(properties, QUEUE, text(&self.name));
        properties = with_header(properties, ATTEMPTS, AMQPValue::LongUInt(letter.attempts));
        if let Some(tenant) = &letter.tenant {
            properties = with_header(properties, TENANT, text(tenant));
        }
        let exchange = self.dead_letter_exchange();
        let stored = forward(channel, &exchange, &self.name, data, properties).await?;
        settle(acker, stored).await?;
        if stored {
            Ok(Outcome::DeadLettered(letter))
        } else {
            Ok(Outcome::Retried {
                attempt,
                error: "the broker refused the dead letter; the delivery is re-queued".into(),
            })
        }
    }
}

fn with_header(properties: BasicProperties, name: &str, value: AMQPValue) -> BasicProperties {
    let mut headers = properties.headers().clone().unwrap_or_default();
    headers.insert(name.into(), value);
    properties.with_headers(headers)
}

/// Publishes and waits for the confirm: whether the broker took the message.
async fn forward(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    data: &[u8],
    properties: BasicProperties,
) -> ::lapin::Result<bool> {
    let confirm = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            data,
            properties,
        )
        .await?
        .await?;
    Ok(!matches!(confirm, Confirmation::Nack(_)))
}

/// Acks the delivery once its copy is stored, or re-queues it.
async fn settle(acker: &::lapin::Acker, stored: bool) -> ::lapin::Result<()> {
    if stored {
        acker.ack(BasicAckOptions::default()).await?;
    } else {
        acker
            .nack(BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            })
            .await?;
    }
    Ok(())
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
}
