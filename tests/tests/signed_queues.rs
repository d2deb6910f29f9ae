//! A forged tenant published straight to each broker is dead-lettered as
//! `untrusted_identity` by a queue whose policy has a keyring, and its
//! handler never runs; the producer that shares the keyring gets through.
//! A control runs the same forged job through a queue without a keyring and
//! shows the handler would have run as the forged tenant.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use context_runtime::jobs::{Job, Outcome, Policy, RejectionKind};
use context_runtime::{Context, Keyring, TenantId};
use context_tests::brokers::unique_name;

const REDIS: &str = "127.0.0.1:6379";
const AMQP: &str = "127.0.0.1:5672";
const NATS: &str = "127.0.0.1:4222";

fn keyring() -> Keyring {
    Keyring::new("k1", b"signed-queues-test-secret-32-byt").expect("a valid key")
}

fn tenant_cx(tenant: &str) -> Context {
    Context::root().with_tenant(TenantId::new(tenant).expect("valid"))
}

/// The tenants the handler ran for.
#[derive(Clone, Default)]
struct Ran(Arc<Mutex<Vec<String>>>);

impl Ran {
    fn record(&self) {
        let tenant = context_runtime::tenant().map(|t| t.to_string());
        self.0
            .lock()
            .expect("not poisoned")
            .push(tenant.unwrap_or_default());
    }

    fn tenants(&self) -> Vec<String> {
        self.0.lock().expect("not poisoned").clone()
    }
}

fn kinds<R>(outcomes: &[Outcome<R>]) -> Vec<Option<RejectionKind>> {
    outcomes
        .iter()
        .map(|o| match o {
            Outcome::DeadLettered(letter) => Some(letter.kind),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn redis_refuses_forged_tenants() {
    use context_runtime::redis::Queue;

    if !context_tests::service_available("Redis", REDIS) {
        return;
    }
    let client = redis::Client::open(format!("redis://{REDIS}")).expect("a client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis");
    let name = unique_name("ctx-test-signed");
    let signed = Queue::new(name.clone()).with_policy(Policy::new().keyring(keyring()));

    // The producer with the keyring, then three forgeries pushed straight in.
    tenant_cx("acme")
        .scope(signed.enqueue(&mut conn, &1u32))
        .await
        .expect("enqueue");
    let good = serde_json::to_string(&Job::new(&tenant_cx("acme"), 2u32).signed(&keyring()))
        .expect("json");
    let forgeries = [
        serde_json::to_string(&Job::new(&tenant_cx("victim"), 3u32)).expect("json"),
        good.replace("\"acme\"", "\"victim\""),
        serde_json::to_string(
            &Job::new(&tenant_cx("victim"), 4u32)
                .signed(&Keyring::new("k1", b"not-the-real-secret-but-32-bytes").expect("key")),
        )
        .expect("json"),
    ];
    for forged in &forgeries {
        xadd(&mut conn, &name, forged).await;
    }

    let ran = Ran::default();
    let outcomes = drain_redis(&signed, 4, &ran).await;
    assert_eq!(ran.tenants(), ["acme"]);
    let untrusted = Some(RejectionKind::UntrustedIdentity);
    assert_eq!(kinds(&outcomes), [None, untrusted, untrusted, untrusted]);
    let letters = signed.dead_letters(&mut conn).await.expect("read");
    assert_eq!(letters.len(), 3);
    assert!(letters
        .iter()
        .all(|l| l.kind == RejectionKind::UntrustedIdentity));

    // Control: without a keyring, the first forgery would have run as `victim`.
    let open = Queue::new(format!("{name}-open"));
    xadd(&mut conn, open.name(), &forgeries[0]).await;
    let control = Ran::default();
    drain_redis(&open, 1, &control).await;
    assert_eq!(control.tenants(), ["victim"]);

    for key in [
        name.clone(),
        signed.dead_letter_stream(),
        open.name().to_owned(),
        open.dead_letter_stream(),
    ] {
        redis::cmd("DEL")
            .arg(key)
            .query_async::<()>(&mut conn)
            .await
            .expect("clean up");
    }
}

/// Adds a job's JSON to a queue's stream, as any producer's `XADD` would.
async fn xadd(conn: &mut redis::aio::MultiplexedConnection, stream: &str, job: &str) {
    redis::cmd("XADD")
        .arg(stream)
        .arg("*")
        .arg(context_runtime::redis::JOB_FIELD)
        .arg(job)
        .query_async::<()>(conn)
        .await
        .expect("add");
}

/// Runs `expected` deliveries of `queue` through the pipeline, recording
/// the tenant of every handler that runs (bounded: 10 s).
async fn drain_redis(
    queue: &context_runtime::redis::Queue,
    expected: usize,
    ran: &Ran,
) -> Vec<Outcome<()>> {
    use context_runtime::jobs::pipeline::process;
    use context_runtime::jobs::Transport as _;

    let client = redis::Client::open(format!("redis://{REDIS}")).expect("a client");
    let mut consumer = queue.consumer::<u32>(client).await.expect("a consumer");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut outcomes = Vec::new();
    while outcomes.len() < expected {
        assert!(
            Instant::now() < deadline,
            "{expected} deliveries within 10 s"
        );
        for delivery in consumer.receive(expected).await.expect("receive") {
            let ran = ran.clone();
            let outcome = process(
                queue.name(),
                queue.policy(),
                delivery,
                |_job: Job<u32>| async move {
                    ran.record();
                    Ok::<_, String>(())
                },
            )
            .await
            .expect("settled");
            outcomes.push(outcome);
        }
    }
    outcomes
}

#[tokio::test]
async fn rabbitmq_refuses_forged_tenants() {
    use context_runtime::lapin::{self as amqp, Queue};
    use context_runtime::Propagator;
    use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeleteOptions};
    use lapin::types::{AMQPValue, FieldTable, LongString};
    use lapin::BasicProperties;

    if !context_tests::service_available("RabbitMQ", AMQP) {
        return;
    }
    let url = format!("amqp://guest:guest@{AMQP}/%2f");
    let conn = lapin::Connection::connect(&url, Default::default())
        .await
        .expect("connect to RabbitMQ");
    let channel = conn.create_channel().await.expect("a channel");
    channel
        .confirm_select(Default::default())
        .await
        .expect("confirms");
    let name = unique_name("ctx-test-signed-amqp");
    let queue = Queue::new(name.clone()).with_policy(Policy::new().keyring(keyring()));
    queue.declare(&channel).await.expect("declare the queues");

    tenant_cx("acme")
        .scope(queue.publish(&channel, b"1"))
        .await
        .expect("publish")
        .await
        .expect("confirmed");
    let forge = |headers: FieldTable| {
        let channel = channel.clone();
        let name = name.clone();
        async move {
            channel
                .basic_publish(
                    "".into(),
                    name.as_str().into(),
                    BasicPublishOptions::default(),
                    b"forged",
                    BasicProperties::default().with_headers(headers),
                )
                .await
                .expect("publish")
                .await
                .expect("confirmed");
        }
    };
    // Unsigned, and a signed header set with the tenant edited.
    let mut unsigned = FieldTable::default();
    amqp::inject(&tenant_cx("victim"), &mut unsigned);
    forge(unsigned).await;
    let mut replayed = FieldTable::default();
    amqp::inject_using(
        &tenant_cx("acme"),
        &mut replayed,
        &Propagator::new().keyring(keyring()),
    );
    let baggage = match replayed.inner().get("baggage") {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("no baggage: {other:?}"),
    };
    assert!(baggage.contains("ctx.sig="), "{baggage}");
    replayed.insert(
        "baggage".into(),
        AMQPValue::LongString(LongString::from(baggage.replace("acme", "victim"))),
    );
    forge(replayed).await;

    let ran = Ran::default();
    let mut outcomes = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while outcomes.len() < 3 && Instant::now() < deadline {
        let Some(message) = channel
            .basic_get(name.as_str().into(), BasicGetOptions::default())
            .await
            .expect("basic.get")
        else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let ran = ran.clone();
        let outcome = queue
            .process(&channel, message.delivery, |_delivery| async move {
                ran.record();
                Ok::<_, String>(())
            })
            .await
            .expect("process");
        outcomes.push(outcome);
    }
    assert_eq!(ran.tenants(), ["acme"]);
    let untrusted = Some(RejectionKind::UntrustedIdentity);
    assert_eq!(kinds(&outcomes), [None, untrusted, untrusted]);

    let mut letters = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while letters.len() < 2 && Instant::now() < deadline {
        match channel
            .basic_get(
                queue.dead_letter_queue().as_str().into(),
                BasicGetOptions { no_ack: true },
            )
            .await
            .expect("basic.get")
        {
            Some(message) => {
                letters.push(amqp::dead_letter(&message.delivery).expect("a dead-letter record"))
            }
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert_eq!(letters.len(), 2);
    assert!(letters
        .iter()
        .all(|l| l.kind == RejectionKind::UntrustedIdentity));

    for q in [name.clone(), queue.dead_letter_queue()] {
        channel
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
            .expect("clean up");
    }
    channel
        .exchange_delete(
            queue.dead_letter_exchange().as_str().into(),
            Default::default(),
        )
        .await
        .expect("clean up");
}

#[tokio::test]
async fn nats_refuses_forged_tenants() {
    use async_nats::jetstream::{self, consumer, stream};
    use context_runtime::nats::{self, Queue};
    use futures_util::StreamExt as _;

    if !context_tests::service_available("NATS", NATS) {
        return;
    }
    let client = async_nats::connect(format!("nats://{NATS}"))
        .await
        .expect("connect to NATS");
    let js = jetstream::new(client);
    let name = unique_name("ctx-test-signed-nats").replace('-', "_");
    let subject = format!("{name}.jobs");
    let queue = Queue::new(subject.clone()).with_policy(Policy::new().keyring(keyring()));
    let stream_name = name.to_uppercase();
    let dead_stream_name = format!("{stream_name}_DEAD");
    let work = js
        .create_stream(stream::Config {
            name: stream_name.clone(),
            subjects: vec![subject.clone()],
            retention: stream::RetentionPolicy::WorkQueue,
            ..Default::default()
        })
        .await
        .expect("the jobs stream");
    let dead = js
        .create_stream(stream::Config {
            name: dead_stream_name.clone(),
            subjects: vec![queue.dead_letter_subject().to_owned()],
            ..Default::default()
        })
        .await
        .expect("the dead-letter stream");
    let consumer = work
        .create_consumer(consumer::pull::Config {
            durable_name: Some("workers".into()),
            filter_subject: subject.clone(),
            ..Default::default()
        })
        .await
        .expect("the consumer");

    tenant_cx("acme")
        .scope(queue.publish(&js, b"1"))
        .await
        .expect("publish")
        .await
        .expect("stored");
    let mut unsigned = async_nats::HeaderMap::new();
    nats::inject(&tenant_cx("victim"), &mut unsigned);
    let mut replayed = async_nats::HeaderMap::new();
    nats::inject_using(
        &tenant_cx("acme"),
        &mut replayed,
        &context_runtime::Propagator::new().keyring(keyring()),
    );
    let baggage = replayed
        .get("baggage")
        .expect("baggage")
        .as_str()
        .replace("acme", "victim");
    replayed.insert("baggage", baggage.as_str());
    for headers in [unsigned, replayed] {
        js.publish_with_headers(subject.clone(), headers, "forged".into())
            .await
            .expect("publish")
            .await
            .expect("stored");
    }

    let ran = Ran::default();
    let mut outcomes = Vec::new();
    let mut messages = consumer
        .fetch()
        .max_messages(3)
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .expect("fetch");
    while let Some(message) = messages.next().await {
        let message = message.expect("a message");
        let ran = ran.clone();
        let outcome = queue
            .process(&js, message, |_message| async move {
                ran.record();
                Ok::<_, String>(())
            })
            .await
            .expect("process");
        outcomes.push(outcome);
    }
    assert_eq!(ran.tenants(), ["acme"]);
    let untrusted = Some(RejectionKind::UntrustedIdentity);
    assert_eq!(kinds(&outcomes), [None, untrusted, untrusted]);

    let mut dead = dead;
    assert_eq!(dead.info().await.expect("info").state.messages, 2);
    js.delete_stream(&stream_name).await.expect("clean up");
    js.delete_stream(&dead_stream_name).await.expect("clean up");
}
