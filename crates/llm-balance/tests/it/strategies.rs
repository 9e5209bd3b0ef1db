//! Each strategy's order over many calls.

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt;
use llm_balance::{RouteOptions, RouterConfig, StrategyKind};
use llm_core::{ChatProvider, ErrorKind, FailWhen, MockConfig, MockProvider};

use crate::support::{answers, deployment, failing, healthy, request, router, slow, with};

fn config(strategy: StrategyKind) -> RouterConfig {
    RouterConfig {
        strategy,
        ..RouterConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn round_robin_is_an_exact_smooth_weighted_sequence() {
    let (a, b, c) = (healthy("a"), healthy("b"), healthy("c"));
    let even = router(
        vec![
            deployment(&a, "m"),
            deployment(&b, "m"),
            deployment(&c, "m"),
        ],
        config(StrategyKind::RoundRobin),
    );
    assert_eq!(
        answers(&even, "m", 7).await,
        ["a", "b", "c", "a", "b", "c", "a"]
    );

    let weighted = router(
        vec![
            with(&a, "m", |c| c.weight = 5),
            deployment(&b, "m"),
            deployment(&c, "m"),
        ],
        config(StrategyKind::RoundRobin),
    );
    assert_eq!(
        answers(&weighted, "m", 14).await,
        [
            "a", "a", "b", "a", "c", "a", "a", "a", "a", "b", "a", "c", "a", "a"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn weighted_random_follows_the_weights_for_a_fixed_seed() {
    let (a, b) = (healthy("a"), healthy("b"));
    let router = router(
        vec![
            with(&a, "m", |c| c.weight = 1),
            with(&b, "m", |c| c.weight = 3),
        ],
        config(StrategyKind::Random),
    );
    let picks = answers(&router, "m", 4000).await;
    let share_b = picks.iter().filter(|p| *p == "b").count() as f64 / 4000.0;
    assert!((0.72..=0.78).contains(&share_b), "b got {share_b}");
    // The same seed gives the same sequence.
    let again = crate::support::router(
        vec![
            with(&a, "m", |c| c.weight = 1),
            with(&b, "m", |c| c.weight = 3),
        ],
        config(StrategyKind::Weighted),
    );
    assert_eq!(answers(&again, "m", 4000).await, picks);
}

#[tokio::test(start_paused = true)]
async fn first_available_follows_priority_and_skips_the_dead() {
    let primary = failing(
        "primary",
        ErrorKind::Authentication,
        FailWhen::FirstCalls(1),
    );
    let standby = healthy("standby");
    let last = healthy("last");
    let router = router(
        vec![
            with(&last, "m", |c| c.priority = 9),
            with(&standby, "m", |c| c.priority = 1),
            with(&primary, "m", |c| c.priority = 0),
        ],
        config(StrategyKind::FirstAvailable),
    );
    // The primary's key is rejected once: it cools down for long, the standby serves.
    assert_eq!(
        answers(&router, "m", 3).await,
        ["standby", "standby", "standby"]
    );
    assert_eq!((primary.calls(), last.calls()), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn least_busy_avoids_the_deployment_holding_open_streams() {
    let busy_mock = Arc::new(MockProvider::new(
        "busy",
        MockConfig {
            model: "busy".into(),
            chunk_delay: Duration::from_secs(1),
            ..MockConfig::default()
        },
    ));
    let idle = healthy("idle");
    let router = router(
        vec![deployment(&busy_mock, "m"), deployment(&idle, "m")],
        config(StrategyKind::LeastBusy),
    );
    // Open two long streams; the tie-break sends the first to `busy`, the second to `idle`.
    let first = router.stream(&request("m")).await.unwrap();
    let status = router.status();
    assert_eq!(status.iter().map(|s| s.in_flight).sum::<u32>(), 1);
    let busy_index = status.iter().position(|s| s.in_flight == 1).unwrap();
    // Every further call goes to the one with nothing in flight.
    let other = if busy_index == 0 { "idle" } else { "busy" };
    for _ in 0..5 {
        assert_eq!(router.chat(&request("m")).await.unwrap().model, other);
    }
    drop(first);
    assert_eq!(
        router.status().iter().map(|s| s.in_flight).sum::<u32>(),
        0,
        "dropping a stream releases it"
    );
}

#[tokio::test(start_paused = true)]
async fn latency_prefers_the_fast_deployment() {
    let fast = slow("fast", Duration::from_millis(20));
    let sluggish = slow("slow", Duration::from_millis(400));
    let router = router(
        vec![deployment(&fast, "m"), deployment(&sluggish, "m")],
        config(StrategyKind::Latency),
    );
    // Both get explored at first (no sample costs nothing), then the fast one wins.
    let picks = answers(&router, "m", 200).await;
    let fast_share = picks.iter().filter(|p| *p == "fast").count();
    assert!(fast_share >= 190, "fast served {fast_share} of 200");
    assert!(sluggish.calls() >= 1, "the slow one was measured");
    let status = router.status();
    assert!(status[0].latency_ewma_ms.unwrap() < status[1].latency_ewma_ms.unwrap());
}

#[tokio::test(start_paused = true)]
async fn strategy_can_be_overridden_per_request() {
    let (a, b) = (healthy("a"), healthy("b"));
    let router = router(
        vec![
            with(&a, "m", |c| c.priority = 1),
            with(&b, "m", |c| c.priority = 0),
        ],
        config(StrategyKind::RoundRobin),
    );
    let options = RouteOptions::strategy("first_available".parse().unwrap());
    for _ in 0..4 {
        assert_eq!(
            router
                .chat_with(&request("m"), &options)
                .await
                .unwrap()
                .model,
            "b"
        );
    }
    let err = "fastest".parse::<StrategyKind>().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert!(
        err.to_string()
            .contains("expected one of round_robin, random"),
        "{err}"
    );
    // Streams take the same options.
    let stream = router.stream_with(&request("m"), &options).await.unwrap();
    let chunks: Vec<_> = stream.collect().await;
    assert_eq!(chunks[0].as_ref().unwrap().model, "b");
}
