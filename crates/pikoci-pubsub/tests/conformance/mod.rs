//! The conformance suite every transport runs: the promises of `pikoci_core::broker::Broker`,
//! checked the same way against each implementation.
//!
//! A test target supplies a [`Harness`] and expands [`conformance_tests!`]; transports with a
//! server also run [`reconnect_after_restart`] against a dedicated server they can restart.

// Each test target uses the part of the suite its transports need.
#![allow(dead_code, unreachable_pub)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use pikoci_core::ErrorKind;
use pikoci_core::broker::{Broker, Delivery, Subscription};

pub use crate::servers::Restartable;

/// How long a test waits for one delivery (a Kafka group join alone can take 20 s).
pub const RECEIVE_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a consumer must stay silent to show nothing more is coming.
pub const QUIET: Duration = Duration::from_secs(2);

/// Opens clients of the broker under test.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A new client, as another process would open.
    async fn connect(&self) -> Arc<dyn Broker>;
}

/// Expands to one `#[tokio::test]` per conformance test, each with a harness from `$harness`.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        $crate::conformance_tests!(@each $harness;
            publish_then_consume,
            competing_consumers_each_get_a_share,
            every_group_gets_every_message,
            nack_redelivers,
            unacked_delivery_goes_to_the_next_consumer,
            sole_consumer_resumes_after_a_predecessor,
            one_mebibyte_message,
            invalid_names_are_rejected,
            closed_broker_refuses_work,
        );
    };
    (@each $harness:expr; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let harness = $harness;
                $crate::conformance::$test(&harness).await;
            }
        )*
    };
}

/// A topic and group names no other run uses.
pub fn names(test: &str) -> (String, String) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    (
        format!("pikoci.it.{test}.{}", &id[..12]),
        format!("g-{}", &id[..12]),
    )
}

/// The next delivery, failing the test after [`RECEIVE_TIMEOUT`].
pub async fn next(sub: &mut Subscription, what: &str) -> Delivery {
    match tokio::time::timeout(RECEIVE_TIMEOUT, sub.next()).await {
        Ok(Some(Ok(delivery))) => delivery,
        Ok(Some(Err(err))) => panic!("subscription failed while waiting for {what}: {err:?}"),
        Ok(None) => panic!("subscription ended while waiting for {what}"),
        Err(_) => panic!("no delivery within {RECEIVE_TIMEOUT:?} while waiting for {what}"),
    }
}

/// The next delivery that is not a redelivery of one of `earlier` (those are acked and skipped).
pub async fn next_skipping(sub: &mut Subscription, what: &str, earlier: &[&str]) -> Delivery {
    loop {
        let delivery = next(sub, what).await;
        if !earlier.contains(&text(&delivery).as_str()) {
            return delivery;
        }
        delivery.ack().await.expect("ack a redelivery");
    }
}

/// Fails if `sub` delivers anything within [`QUIET`].
pub async fn assert_quiet(sub: &mut Subscription, why: &str) {
    if let Ok(Some(item)) = tokio::time::timeout(QUIET, sub.next()).await {
        let payload = item.map(|d| String::from_utf8_lossy(d.payload()).into_owned());
        panic!("unexpected delivery ({why}): {payload:?}");
    }
}

async fn publish(broker: &dyn Broker, topic: &str, payload: impl Into<Vec<u8>>) {
    broker
        .publish(topic, payload.into())
        .await
        .expect("publish");
}

fn text(delivery: &Delivery) -> String {
    String::from_utf8(delivery.payload().to_vec()).expect("utf-8 payload")
}

/// Messages published after `subscribe` returned arrive, in order, and acked ones do not return.
pub async fn publish_then_consume(harness: &dyn Harness) {
    let broker = harness.connect().await;
    let (topic, group) = names("basic");
    let mut sub = broker.subscribe(&topic, &group).await.expect("subscribe");
    assert_eq!((sub.topic(), sub.group()), (topic.as_str(), group.as_str()));
    for n in 0..3 {
        publish(&*broker, &topic, format!("m{n}")).await;
    }
    for n in 0..3 {
        let delivery = next(&mut sub, "a published message").await;
        assert_eq!(text(&delivery), format!("m{n}"));
        delivery.ack().await.expect("ack");
    }
    // Acked messages are not redelivered: the next delivery is a new message.
    publish(&*broker, &topic, "last").await;
    let delivery = next(&mut sub, "the last message").await;
    assert_eq!(text(&delivery), "last");
    delivery.ack().await.expect("ack");
}

/// N messages to a group of three consumers: each message reaches exactly one of them.
pub async fn competing_consumers_each_get_a_share(harness: &dyn Harness) {
    const N: usize = 30;
    let (topic, group) = names("compete");
    let brokers = [
        harness.connect().await,
        harness.connect().await,
        harness.connect().await,
    ];
    // Joined together, so the group settles once instead of rebalancing three times.
    let subs = futures::future::join_all(brokers.iter().map(|b| b.subscribe(&topic, &group))).await;
    let mut subs: Vec<Subscription> = subs.into_iter().map(|s| s.expect("subscribe")).collect();
    for n in 0..N {
        publish(&*brokers[0], &topic, format!("m{n}")).await;
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let deadline = tokio::time::Instant::now() + RECEIVE_TIMEOUT;
    while seen.len() < N {
        let pending = subs.iter_mut().map(|s| Box::pin(s.next()));
        let (item, _, _) = tokio::time::timeout_at(deadline, futures::future::select_all(pending))
            .await
            .unwrap_or_else(|_| panic!("only {} of {N} messages arrived", seen.len()));
        let delivery = item.expect("subscription ended").expect("delivery");
        *seen.entry(text(&delivery)).or_default() += 1;
        delivery.ack().await.expect("ack");
    }
    for sub in &mut subs {
        assert_quiet(sub, "every message was acked once").await;
    }
    let duplicated: Vec<_> = seen.iter().filter(|(_, count)| **count > 1).collect();
    assert!(
        duplicated.is_empty(),
        "delivered more than once: {duplicated:?}"
    );
    let expected: HashSet<String> = (0..N).map(|n| format!("m{n}")).collect();
    assert_eq!(seen.keys().cloned().collect::<HashSet<_>>(), expected);
}

/// Two groups on one topic each get every message.
pub async fn every_group_gets_every_message(harness: &dyn Harness) {
    let broker = harness.connect().await;
    let (topic, group) = names("fanout");
    let other = format!("{group}-b");
    let (a, b) = futures::join!(
        broker.subscribe(&topic, &group),
        broker.subscribe(&topic, &other)
    );
    let mut subs = [a.expect("subscribe a"), b.expect("subscribe b")];
    for n in 0..5 {
        publish(&*broker, &topic, format!("m{n}")).await;
    }
    for sub in &mut subs {
        for n in 0..5 {
            let delivery = next(sub, "a fanned-out message").await;
            assert_eq!(text(&delivery), format!("m{n}"), "group {}", sub.group());
            delivery.ack().await.expect("ack");
        }
    }
}

/// A nacked message comes back.
pub async fn nack_redelivers(harness: &dyn Harness) {
    let broker = harness.connect().await;
    let (topic, group) = names("nack");
    let mut sub = broker.subscribe(&topic, &group).await.expect("subscribe");
    publish(&*broker, &topic, "again").await;
    let first = next(&mut sub, "the message").await;
    assert_eq!(text(&first), "again");
    first.nack().await.expect("nack");
    let second = next(&mut sub, "the nacked message").await;
    assert_eq!(text(&second), "again");
    second.ack().await.expect("ack");
}

/// A consumer that goes away without acking: its delivery reaches the next member of the group.
pub async fn unacked_delivery_goes_to_the_next_consumer(harness: &dyn Harness) {
    let (topic, group) = names("redeliver");
    let first_client = harness.connect().await;
    let mut first = first_client
        .subscribe(&topic, &group)
        .await
        .expect("subscribe");
    publish(&*first_client, &topic, "unacked").await;
    let delivery = next(&mut first, "the message").await;
    assert_eq!(text(&delivery), "unacked");
    // The consumer "dies": its delivery, subscription and client go without an ack.
    drop((delivery, first, first_client));
    let second_client = harness.connect().await;
    let mut second = second_client
        .subscribe(&topic, &group)
        .await
        .expect("subscribe again");
    let again = next(&mut second, "the redelivered message").await;
    assert_eq!(text(&again), "unacked");
    again.ack().await.expect("ack");
}

/// `subscribe_sole` (a worker's inbox): a restarted sole consumer gets what its predecessor did
/// not ack, and not what it acked.
pub async fn sole_consumer_resumes_after_a_predecessor(harness: &dyn Harness) {
    let (topic, group) = names("sole");
    let first_client = harness.connect().await;
    let mut first = first_client
        .subscribe_sole(&topic, &group)
        .await
        .expect("subscribe_sole");
    publish(&*first_client, &topic, "done").await;
    publish(&*first_client, &topic, "left").await;
    let done = next(&mut first, "the first message").await;
    assert_eq!(text(&done), "done");
    done.ack().await.expect("ack");
    let left = next(&mut first, "the second message").await;
    assert_eq!(text(&left), "left");
    drop((left, first, first_client));
    let second_client = harness.connect().await;
    let mut second = second_client
        .subscribe_sole(&topic, &group)
        .await
        .expect("subscribe_sole again");
    let again = next(&mut second, "the unacked message").await;
    assert_eq!(
        text(&again),
        "left",
        "the acked message is not redelivered first"
    );
    again.ack().await.expect("ack");
}

/// A 1 MiB message arrives whole.
pub async fn one_mebibyte_message(harness: &dyn Harness) {
    let broker = harness.connect().await;
    let (topic, group) = names("large");
    let mut sub = broker.subscribe(&topic, &group).await.expect("subscribe");
    let payload: Vec<u8> = (0..1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    broker
        .publish(&topic, payload.clone())
        .await
        .expect("publish 1 MiB");
    let delivery = next(&mut sub, "the large message").await;
    assert_eq!(delivery.payload().len(), payload.len());
    assert!(
        delivery.payload() == payload.as_slice(),
        "payload changed in transit"
    );
    delivery.ack().await.expect("ack");
}

/// Names no transport could use are refused before reaching the broker.
pub async fn invalid_names_are_rejected(harness: &dyn Harness) {
    let broker = harness.connect().await;
    let err = broker
        .publish("bad topic", b"x".to_vec())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let err = broker
        .subscribe("pikoci.ok", "bad.group")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}

/// After `close`, subscriptions end and publishes fail as unavailable.
pub async fn closed_broker_refuses_work(harness: &dyn Harness) {
    let broker = harness.connect().await;
    let (topic, group) = names("close");
    let mut sub = broker.subscribe(&topic, &group).await.expect("subscribe");
    broker.close().await.expect("close");
    let ended = tokio::time::timeout(RECEIVE_TIMEOUT, sub.next()).await;
    assert!(
        matches!(ended, Ok(None | Some(Err(_)))),
        "subscription did not end: {ended:?}"
    );
    let err = broker.publish(&topic, b"x".to_vec()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}

/// The server goes away and comes back: the subscription carries on without being renewed, a
/// publish made during the outage completes once it is back, and a message kept for a group
/// with no consumer survives.
pub async fn reconnect_after_restart(server: &mut dyn Restartable, broker: Arc<dyn Broker>) {
    let (topic, group) = names("restart");
    let idle_group = format!("{group}-idle");
    drop(
        broker
            .subscribe(&topic, &idle_group)
            .await
            .expect("create the idle group"),
    );
    let mut sub = broker.subscribe(&topic, &group).await.expect("subscribe");
    publish(&*broker, &topic, "before").await;
    let before = next(&mut sub, "the message before the restart").await;
    assert_eq!(text(&before), "before");
    before.ack().await.expect("ack before the restart");

    server.stop().await;
    let publisher = Arc::clone(&broker);
    let during_topic = topic.clone();
    let during =
        tokio::spawn(async move { publisher.publish(&during_topic, b"during".to_vec()).await });
    server.start().await;
    during
        .await
        .expect("publish task")
        .expect("a publish during the outage completes once the server is back");

    // A server killed right after an ack may not have recorded it: at-least-once allows the
    // earlier message to come again, and nothing else.
    let received = next_skipping(
        &mut sub,
        "the message published during the outage",
        &["before"],
    )
    .await;
    assert_eq!(text(&received), "during");
    received.ack().await.expect("ack after the restart");
    publish(&*broker, &topic, "after").await;
    let after = next_skipping(
        &mut sub,
        "the message after the restart",
        &["before", "during"],
    )
    .await;
    assert_eq!(text(&after), "after");
    after.ack().await.expect("ack");

    let mut idle = broker
        .subscribe(&topic, &idle_group)
        .await
        .expect("subscribe the idle group");
    for expected in ["before", "during", "after"] {
        let kept = next(&mut idle, "a message kept for the idle group").await;
        assert_eq!(text(&kept), expected);
        kept.ack().await.expect("ack");
    }
}
