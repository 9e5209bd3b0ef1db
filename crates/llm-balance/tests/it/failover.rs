//! The failover loop: order, pool-bounded rotation, fallbacks, deadlines, budget.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use llm_balance::{
    Deployment, DeploymentConfig, RetryBudgetConfig, Router, RouterConfig, StrategyKind,
};
use llm_core::{ChatProvider, ErrorKind, FailWhen, MockFailure};
use tokio::time::Instant;

use crate::support::{deployment, failing, failing_with, healthy, request, router, slow, with};

fn config(strategy: StrategyKind) -> RouterConfig {
    RouterConfig {
        strategy,
        max_rounds: 1,
        ..RouterConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn failover_follows_the_strategy_order_and_lists_every_attempt() {
    let mocks: Vec<_> = ["p0", "p1", "p2"]
        .iter()
        .map(|id| failing(id, ErrorKind::UpstreamServer, FailWhen::Always))
        .collect();
    let router = router(
        vec![
            with(&mocks[2], "m", |c| c.priority = 2),
            with(&mocks[0], "m", |c| c.priority = 0),
            with(&mocks[1], "m", |c| c.priority = 1),
        ],
        config(StrategyKind::FirstAvailable),
    );
    let err = router.chat(&request("m")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AllAttemptsFailed);
    let order: Vec<&str> = err
        .attempts()
        .iter()
        .map(|a| a.deployment.as_str())
        .collect();
    assert_eq!(order, ["p0", "p1", "p2"]);
    assert!(
        err.attempts()
            .iter()
            .all(|a| a.kind == ErrorKind::UpstreamServer)
    );
    assert_eq!(err.http_status().as_u16(), 503);
    let text = err.to_string();
    assert!(text.starts_with("all 3 attempts failed: p0 (upstream_server): p0 returned HTTP 500: mock server error; p1"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn five_keys_four_dead_still_answers() {
    for strategy in [
        StrategyKind::RoundRobin,
        StrategyKind::Random,
        StrategyKind::FirstAvailable,
        StrategyKind::LeastBusy,
        StrategyKind::Latency,
    ] {
        let mut deployments = Vec::new();
        let mut dead = Vec::new();
        for i in 0..4 {
            let mock = failing(
                &format!("dead-{i}"),
                ErrorKind::Authentication,
                FailWhen::Always,
            );
            deployments.push(with(&mock, "gpt-4o", |c| c.priority = i));
            dead.push(mock);
        }
        let alive = healthy("alive");
        deployments.push(with(&alive, "gpt-4o", |c| c.priority = 4));
        // One pass only: success must come from rotating through the pool, not retries.
        let router = router(deployments, config(strategy));
        assert_eq!(
            router.chat(&request("gpt-4o")).await.unwrap().model,
            "alive",
            "{strategy}"
        );
        // Every later request goes straight to the live key: the dead ones rest.
        assert_eq!(
            crate::support::answers(&router, "gpt-4o", 5).await,
            ["alive"; 5],
            "{strategy}"
        );
        assert!(dead.iter().all(|d| d.calls() <= 1), "{strategy}");
    }
}

#[tokio::test(start_paused = true)]
async fn non_retryable_errors_return_at_once() {
    let rejecting = failing("rejecting", ErrorKind::InvalidRequest, FailWhen::Always);
    let other = healthy("other");
    let router = router(
        vec![deployment(&rejecting, "m"), deployment(&other, "m")],
        config(StrategyKind::FirstAvailable),
    );
    let err = router.chat(&request("m")).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::InvalidRequest,
        "the error itself, not an aggregate"
    );
    assert_eq!(err.http_status().as_u16(), 400);
    assert_eq!(other.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn fallback_groups_are_tried_in_order() {
    let gpt = failing("gpt", ErrorKind::UpstreamServer, FailWhen::Always);
    let deepseek = failing("deepseek", ErrorKind::RateLimited, FailWhen::Always);
    let qwen = healthy("qwen");
    let router = router(
        vec![
            deployment(&gpt, "gpt-4o"),
            deployment(&deepseek, "deepseek-chat"),
            deployment(&qwen, "qwen-max"),
        ],
        RouterConfig {
            fallbacks: BTreeMap::from([(
                "gpt-4o".to_owned(),
                vec!["deepseek-chat".to_owned(), "qwen-max".to_owned()],
            )]),
            ..config(StrategyKind::RoundRobin)
        },
    );
    assert_eq!(router.chat(&request("gpt-4o")).await.unwrap().model, "qwen");
    assert_eq!((gpt.calls(), deepseek.calls()), (1, 1));
    // A group without fallbacks stays within itself.
    let err = router.chat(&request("deepseek-chat")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AllAttemptsFailed);
    assert_eq!(qwen.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn context_window_fallback_only_when_configured() {
    let small = failing("small", ErrorKind::ContextLengthExceeded, FailWhen::Always);
    let large = healthy("large");
    let deployments = || {
        vec![
            deployment(&small, "gpt-4o"),
            deployment(&large, "gpt-4o-128k"),
        ]
    };
    let with_fallback = router(
        deployments(),
        RouterConfig {
            context_window_fallbacks: BTreeMap::from([(
                "gpt-4o".to_owned(),
                vec!["gpt-4o-128k".to_owned()],
            )]),
            ..config(StrategyKind::RoundRobin)
        },
    );
    assert_eq!(
        with_fallback.chat(&request("gpt-4o")).await.unwrap().model,
        "large"
    );

    let without = router(deployments(), config(StrategyKind::RoundRobin));
    let err = without.chat(&request("gpt-4o")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ContextLengthExceeded);
    assert_eq!(large.calls(), 1, "no fallback without configuration");
    assert_eq!(small.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn when_all_rest_the_router_waits_if_the_deadline_allows() {
    let only = failing_with(
        "only",
        MockFailure::always(ErrorKind::RateLimited)
            .when(FailWhen::FirstCalls(1))
            .retry_after(Duration::from_secs(2)),
    );
    let router = router(
        vec![deployment(&only, "m")],
        config(StrategyKind::RoundRobin),
    );
    let first = router.chat(&request("m")).await.unwrap_err();
    assert_eq!(first.retry_after(), Some(Duration::from_secs(2)));
    let start = Instant::now();
    assert_eq!(router.chat(&request("m")).await.unwrap().model, "only");
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(2),
        "waited exactly until the cooldown ended"
    );
}

#[tokio::test(start_paused = true)]
async fn when_all_rest_past_the_deadline_the_router_fails_fast_with_the_shortest_wait() {
    let a = failing_with(
        "a",
        MockFailure::always(ErrorKind::RateLimited).retry_after(Duration::from_secs(50)),
    );
    let b = failing_with(
        "b",
        MockFailure::always(ErrorKind::RateLimited).retry_after(Duration::from_secs(40)),
    );
    let router = router(
        vec![deployment(&a, "m"), deployment(&b, "m")],
        RouterConfig {
            timeout: Duration::from_secs(10),
            ..config(StrategyKind::RoundRobin)
        },
    );
    router.chat(&request("m")).await.unwrap_err();
    let start = Instant::now();
    let err = router.chat(&request("m")).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO, "no waiting");
    assert_eq!(err.http_status().as_u16(), 429);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(40)));
    assert_eq!(err.attempts().len(), 2);
    assert!(
        err.attempts()[0].message.contains("cooling down for"),
        "{err}"
    );
    assert_eq!(
        (a.calls(), b.calls()),
        (1, 1),
        "resting deployments were not called"
    );
}

#[tokio::test(start_paused = true)]
async fn long_rests_are_not_waited_for_even_within_the_deadline() {
    // A revoked key rests 300 s; the request's deadline is 300 s too. Waiting would hold the
    // caller for five minutes: the router fails fast instead.
    let revoked = failing("revoked", ErrorKind::Authentication, FailWhen::Always);
    let router = router(
        vec![deployment(&revoked, "m")],
        RouterConfig {
            max_rounds: 2,
            ..RouterConfig::default()
        },
    );
    let start = Instant::now();
    let err = router.chat(&request("m")).await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "waited {:?}",
        start.elapsed()
    );
    assert_eq!(err.http_status().as_u16(), 502);
    assert_eq!(revoked.calls(), 1);
    // A rest within `max_wait` is still waited for.
    let limited = failing_with(
        "limited",
        MockFailure::always(ErrorKind::RateLimited)
            .when(FailWhen::FirstCalls(1))
            .retry_after(Duration::from_secs(20)),
    );
    let router = crate::support::router(vec![deployment(&limited, "m")], RouterConfig::default());
    let start = Instant::now();
    assert_eq!(router.chat(&request("m")).await.unwrap().model, "limited");
    assert_eq!(start.elapsed(), Duration::from_secs(20));
}

#[tokio::test(start_paused = true)]
async fn the_overall_deadline_bounds_failover() {
    // Each deployment takes 8 s to fail; the request may take 10 s in all.
    let mocks: Vec<_> = (0..3)
        .map(|i| {
            Arc::new(llm_core::MockProvider::new(
                format!("slow-{i}"),
                llm_core::MockConfig {
                    latency: Duration::from_secs(8),
                    failure: Some(MockFailure::always(ErrorKind::UpstreamServer)),
                    ..llm_core::MockConfig::default()
                },
            ))
        })
        .collect();
    let router = router(
        mocks.iter().map(|m| deployment(m, "m")).collect(),
        RouterConfig {
            timeout: Duration::from_secs(10),
            max_rounds: 3,
            strategy: StrategyKind::FirstAvailable,
            ..RouterConfig::default()
        },
    );
    let start = Instant::now();
    let err = router.chat(&request("m")).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    let kinds: Vec<ErrorKind> = err.attempts().iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        [ErrorKind::UpstreamServer, ErrorKind::Timeout],
        "the second attempt was cut at the deadline"
    );
    assert_eq!(mocks[2].calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_deployment_total_timeout_fails_over() {
    let stuck = slow("stuck", Duration::from_secs(3_600));
    let quick = healthy("quick");
    let router = router(
        vec![
            with(&stuck, "m", |c| c.timeouts.total = Duration::from_secs(5)),
            deployment(&quick, "m"),
        ],
        config(StrategyKind::FirstAvailable),
    );
    let start = Instant::now();
    assert_eq!(router.chat(&request("m")).await.unwrap().model, "quick");
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(router.status()[0].last_error, Some("timeout"));
}

#[tokio::test(start_paused = true)]
async fn the_retry_budget_stops_a_retry_storm() {
    let broken = failing("broken", ErrorKind::UpstreamServer, FailWhen::Always);
    let also = failing("also", ErrorKind::UpstreamServer, FailWhen::Always);
    let router = router(
        vec![deployment(&broken, "m"), deployment(&also, "m")],
        RouterConfig {
            max_rounds: 3,
            retry_budget: RetryBudgetConfig {
                ratio: 0.0,
                min_per_second: 0,
                window: Duration::from_secs(10),
            },
            ..config(StrategyKind::FirstAvailable)
        },
    );
    let err = router.chat(&request("m")).await.unwrap_err();
    assert_eq!(
        (broken.calls(), also.calls()),
        (1, 1),
        "failover to an untried deployment is free; a second pass needs the budget"
    );
    let last = err.attempts().last().unwrap();
    assert!(last.message.contains("retry budget exhausted"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn unknown_models_and_aliases() {
    let a = healthy("a");
    let router = router(
        vec![deployment(&a, "gpt-4o")],
        RouterConfig {
            aliases: BTreeMap::from([("gpt4".to_owned(), "gpt-4o".to_owned())]),
            ..RouterConfig::default()
        },
    );
    assert_eq!(router.chat(&request("gpt4")).await.unwrap().model, "a");
    assert_eq!(
        router
            .chat(&llm_core::ChatRequest::from("no model"))
            .await
            .unwrap()
            .model,
        "a",
        "no model: the default group"
    );
    let err = router.chat(&request("gpt-5")).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.http_status().as_u16()),
        (ErrorKind::NotFound, 404)
    );
    assert_eq!(
        err.to_string(),
        "model `gpt-5` is not configured; available models: gpt-4o, gpt4"
    );
    assert_eq!(router.models(), ["gpt-4o", "gpt4"]);
}

#[tokio::test(start_paused = true)]
async fn invalid_router_configs_are_clear_errors() {
    let a = healthy("a");
    let missing_fallback = Router::builder()
        .deployment(deployment(&a, "gpt-4o"))
        .config(RouterConfig {
            fallbacks: BTreeMap::from([("gpt-4o".to_owned(), vec!["nope".to_owned()])]),
            ..RouterConfig::default()
        })
        .build()
        .unwrap_err();
    assert_eq!(
        missing_fallback.to_string(),
        "configuration error: router.fallbacks: `nope` is not a configured model"
    );
    let duplicate = Router::builder()
        .deployment(deployment(&a, "m"))
        .deployment(deployment(&a, "m"))
        .build()
        .unwrap_err();
    assert!(
        duplicate
            .to_string()
            .contains("two deployments are labelled `a`"),
        "{duplicate}"
    );
    assert_eq!(
        Router::builder().build().unwrap_err().kind(),
        ErrorKind::Configuration
    );
}

#[tokio::test(start_paused = true)]
async fn routers_nest_and_their_attempts_flatten() {
    let inner_dead = failing("inner-dead", ErrorKind::Authentication, FailWhen::Always);
    let inner = router(
        vec![deployment(&inner_dead, "m")],
        config(StrategyKind::RoundRobin),
    );
    let outer_ok = healthy("outer-ok");
    let outer = router(
        vec![
            Deployment::new(
                Arc::new(inner),
                DeploymentConfig {
                    priority: 0,
                    ..DeploymentConfig::new("inner-router", "m")
                },
            ),
            with(&outer_ok, "m", |c| c.priority = 1),
        ],
        config(StrategyKind::FirstAvailable),
    );
    assert_eq!(outer.chat(&request("m")).await.unwrap().model, "outer-ok");
    let all_dead = router(
        vec![Deployment::new(
            Arc::new(router(
                vec![deployment(
                    &failing("x", ErrorKind::UpstreamServer, FailWhen::Always),
                    "m",
                )],
                config(StrategyKind::RoundRobin),
            )),
            DeploymentConfig::new("nested", "m"),
        )],
        config(StrategyKind::RoundRobin),
    );
    let err = all_dead.chat(&request("m")).await.unwrap_err();
    let labels: Vec<&str> = err
        .attempts()
        .iter()
        .map(|a| a.deployment.as_str())
        .collect();
    assert_eq!(labels, ["x"], "nested attempts are flattened, not nested");
}
