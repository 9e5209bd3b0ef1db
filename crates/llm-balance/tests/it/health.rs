//! Health that persists across requests: each cooldown rule, Retry-After, the probe.

use std::time::Duration;

use llm_balance::{HealthState, RouterConfig, StrategyKind};
use llm_core::{ChatProvider, ErrorKind, FailWhen, MockFailure};

use crate::support::{deployment, failing, failing_with, healthy, request, router};

fn first_available() -> RouterConfig {
    RouterConfig {
        strategy: StrategyKind::FirstAvailable,
        max_rounds: 1,
        ..RouterConfig::default()
    }
}

/// Fail `kind` once on a deployment in front of a healthy one; return the faulty one's status.
async fn after_one(failure: MockFailure) -> llm_balance::DeploymentStatus {
    let bad = failing_with("bad", failure);
    let good = healthy("good");
    let router = router(
        vec![deployment(&bad, "m"), deployment(&good, "m")],
        first_available(),
    );
    assert_eq!(router.chat(&request("m")).await.unwrap().model, "good");
    router.status().remove(0)
}

#[tokio::test(start_paused = true)]
async fn each_cooldown_rule() {
    let credential = [
        ErrorKind::Authentication,
        ErrorKind::Permission,
        ErrorKind::QuotaExhausted,
        ErrorKind::NotFound,
    ];
    for kind in credential {
        let status = after_one(MockFailure::always(kind)).await;
        assert_eq!(status.state, HealthState::CoolingDown, "{kind}");
        assert_eq!(status.cooldown_remaining_ms, 300_000, "{kind}");
        assert_eq!(status.last_error, Some(kind.as_str()));
    }
    let limited =
        after_one(MockFailure::always(ErrorKind::RateLimited).retry_after(Duration::from_secs(7)))
            .await;
    assert_eq!(limited.cooldown_remaining_ms, 7_000, "Retry-After honoured");
    let capped = after_one(
        MockFailure::always(ErrorKind::RateLimited).retry_after(Duration::from_secs(3_600)),
    )
    .await;
    assert_eq!(capped.cooldown_remaining_ms, 60_000, "Retry-After capped");
    let no_hint = after_one(MockFailure::always(ErrorKind::RateLimited)).await;
    assert_eq!(
        no_hint.cooldown_remaining_ms, 5_000,
        "default rate-limit cooldown"
    );
    for kind in [
        ErrorKind::UpstreamServer,
        ErrorKind::Timeout,
        ErrorKind::Connection,
        ErrorKind::Protocol,
    ] {
        let status = after_one(MockFailure::always(kind)).await;
        assert_eq!(
            (status.state, status.consecutive_failures),
            (HealthState::Healthy, 1),
            "{kind}: one failure is not a pattern"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn repeated_server_errors_back_off_exponentially() {
    let flaky = failing("flaky", ErrorKind::UpstreamServer, FailWhen::Always);
    let good = healthy("good");
    let router = router(
        vec![deployment(&flaky, "m"), deployment(&good, "m")],
        first_available(),
    );
    let mut cooldowns = Vec::new();
    for _ in 0..9 {
        router.chat(&request("m")).await.unwrap();
        let status = router.status().remove(0);
        cooldowns.push(status.cooldown_remaining_ms);
        // Let the cooldown pass so the next request probes it again.
        tokio::time::advance(Duration::from_millis(status.cooldown_remaining_ms)).await;
    }
    // A fresh deployment rests once six calls in a row failed (the share of failures is
    // judged over at least ten outcomes), then each failed probe doubles the rest.
    assert_eq!(cooldowns, [0, 0, 0, 0, 0, 1_000, 2_000, 4_000, 8_000]);
    assert_eq!(flaky.calls(), 9);
    assert_eq!(
        router.status()[0].trips,
        4,
        "each failed probe is one more trip"
    );
}

#[tokio::test(start_paused = true)]
async fn three_failures_in_a_healthy_history_do_not_rest_a_deployment() {
    let flaky = failing(
        "flaky",
        ErrorKind::UpstreamServer,
        FailWhen::Between { from: 20, to: 22 },
    );
    let good = healthy("good");
    let router = router(
        vec![deployment(&flaky, "m"), deployment(&good, "m")],
        first_available(),
    );
    for _ in 0..22 {
        router.chat(&request("m")).await.unwrap();
    }
    let status = router.status().remove(0);
    assert_eq!(
        (status.state, status.consecutive_failures, status.trips),
        (HealthState::Healthy, 3, 0),
        "three in a row after 19 successes is flakiness: {status:?}"
    );
    assert_eq!(status.recent_failure_percent, 13);
    router.chat(&request("m")).await.unwrap();
    assert_eq!(flaky.calls(), 23, "still in rotation");
}

#[tokio::test(start_paused = true)]
async fn a_deployment_that_dies_after_a_healthy_run_rests_once_most_recent_calls_fail() {
    let dying = failing(
        "dying",
        ErrorKind::Connection,
        FailWhen::Between {
            from: 33,
            to: u64::MAX,
        },
    );
    let good = healthy("good");
    let router = router(
        vec![deployment(&dying, "m"), deployment(&good, "m")],
        first_available(),
    );
    let mut tripped_after = None;
    for call in 1..=60 {
        router.chat(&request("m")).await.unwrap();
        if router.status()[0].state == HealthState::CoolingDown {
            tripped_after = Some(call);
            break;
        }
    }
    // 32 successes, then failures: the 20th failure makes 20 of the last 32 (60 %).
    assert_eq!(tripped_after, Some(52));
    assert_eq!(router.status()[0].cooldown_remaining_ms, 1_000);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_then_one_probe_restores_traffic() {
    let limited = failing_with(
        "limited",
        MockFailure::always(ErrorKind::RateLimited)
            .when(FailWhen::FirstCalls(1))
            .retry_after(Duration::from_secs(7)),
    );
    let other = healthy("other");
    let router = router(
        vec![deployment(&limited, "m"), deployment(&other, "m")],
        RouterConfig::default(),
    );
    // Round robin would alternate; the rate-limited key rests for its 7 s instead.
    let mut during = Vec::new();
    for _ in 0..4 {
        during.push(router.chat(&request("m")).await.unwrap().model);
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    assert_eq!(during, ["other"; 4]);
    assert_eq!(limited.calls(), 1);
    tokio::time::advance(Duration::from_secs(3)).await;
    assert_eq!(router.status()[0].state, HealthState::AwaitingProbe);
    // Traffic returns after the probe.
    let after = crate::support::answers(&router, "m", 4).await;
    assert!(
        after.iter().filter(|a| *a == "limited").count() >= 2,
        "{after:?}"
    );
    assert_eq!(router.status()[0].state, HealthState::Healthy);
}

#[tokio::test(start_paused = true)]
async fn exactly_one_probe_after_a_cooldown_and_others_go_elsewhere() {
    // A deployment that failed (auth) and now answers slowly: its probe is in flight for
    // 500 ms, and every request in that window goes elsewhere.
    let recovering = std::sync::Arc::new(llm_core::MockProvider::new(
        "recovering",
        llm_core::MockConfig {
            model: "recovering".into(),
            latency: Duration::from_millis(500),
            failure: Some(
                MockFailure::always(ErrorKind::Authentication).when(FailWhen::FirstCalls(1)),
            ),
            ..llm_core::MockConfig::default()
        },
    ));
    let other = healthy("other");
    let router = router(
        vec![deployment(&recovering, "m"), deployment(&other, "m")],
        first_available(),
    );
    router.chat(&request("m")).await.unwrap();
    assert_eq!(recovering.calls(), 1);
    tokio::time::advance(Duration::from_secs(300)).await;

    let probe = {
        let router = router.clone();
        tokio::spawn(async move { router.chat(&request("m")).await.unwrap().model })
    };
    tokio::task::yield_now().await;
    assert_eq!(router.status()[0].state, HealthState::Probing);
    let during = crate::support::answers(&router, "m", 5).await;
    assert_eq!(during, ["other"; 5], "only the probe may reach it");
    assert_eq!(probe.await.unwrap(), "recovering");
    assert_eq!(recovering.calls(), 2, "exactly one probe");
    assert_eq!(
        crate::support::answers(&router, "m", 1).await,
        ["recovering"],
        "full traffic again"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_re_cools_and_keeps_the_later_deadline() {
    let dead = failing("dead", ErrorKind::Authentication, FailWhen::Always);
    let other = healthy("other");
    let router = router(
        vec![deployment(&dead, "m"), deployment(&other, "m")],
        first_available(),
    );
    router.chat(&request("m")).await.unwrap();
    tokio::time::advance(Duration::from_secs(301)).await;
    router.chat(&request("m")).await.unwrap();
    let status = router.status().remove(0);
    assert_eq!(
        (status.state, status.cooldown_remaining_ms),
        (HealthState::CoolingDown, 300_000)
    );
    assert_eq!(dead.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn rpm_limits_skip_a_deployment_until_its_window_frees() {
    let capped = healthy("capped");
    let spare = healthy("spare");
    let router = router(
        vec![
            crate::support::with(&capped, "m", |c| c.rpm = Some(2)),
            deployment(&spare, "m"),
        ],
        first_available(),
    );
    assert_eq!(
        crate::support::answers(&router, "m", 4).await,
        ["capped", "capped", "spare", "spare"]
    );
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(crate::support::answers(&router, "m", 1).await, ["capped"]);
}

#[tokio::test(start_paused = true)]
async fn status_shows_masked_keys_and_counters() {
    let bad = failing("bad", ErrorKind::Authentication, FailWhen::Always);
    let good = healthy("good");
    let router = router(
        vec![
            crate::support::with(&bad, "gpt-4o", |c| c.key_hint = Some("sk-…abcd".into())),
            deployment(&good, "gpt-4o"),
        ],
        first_available(),
    );
    router.chat(&request("gpt-4o")).await.unwrap();
    let json = serde_json::to_value(router.status()).unwrap();
    assert_eq!(json[0]["key"], "sk-…abcd");
    assert_eq!(json[0]["state"], "cooling_down");
    assert_eq!(json[0]["failures"], 1);
    assert_eq!(json[0]["last_error"], "authentication");
    assert_eq!(json[1]["successes"], 1);
    assert_eq!(json[1]["in_flight"], 0);
    assert_eq!(json[1]["provider"], "good");
}
