//! Many concurrent calls over many deployments with random failures.

use std::sync::Arc;

use llm_balance::{Deployment, DeploymentConfig, Router, RouterConfig, SplitMix64};
use llm_core::{ChatProvider, ErrorKind, FailWhen, MockConfig, MockFailure, MockProvider};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_over_ten_flaky_deployments() {
    let kinds = [
        ErrorKind::UpstreamServer,
        ErrorKind::Timeout,
        ErrorKind::Connection,
        ErrorKind::Protocol,
    ];
    let mocks: Vec<Arc<MockProvider>> = (0..10)
        .map(|i| {
            Arc::new(MockProvider::new(
                format!("d{i}"),
                MockConfig {
                    model: format!("d{i}"),
                    failure: Some(MockFailure::always(kinds[i % kinds.len()]).when(
                        FailWhen::Percent {
                            percent: 30,
                            seed: i as u64,
                        },
                    )),
                    ..MockConfig::default()
                },
            ))
        })
        .collect();
    let router = Router::builder()
        .config(RouterConfig::default())
        .deployments(mocks.iter().map(|m| {
            Deployment::new(
                Arc::clone(m) as Arc<dyn ChatProvider>,
                DeploymentConfig::new(m.name(), "gpt-4o"),
            )
        }))
        .random_source(Arc::new(SplitMix64::seeded(7)))
        .build()
        .unwrap();

    let tasks: Vec<_> = (0..1_000)
        .map(|i| {
            let router = router.clone();
            tokio::spawn(async move {
                let request = llm_core::ChatRequest::new(
                    "gpt-4o",
                    vec![llm_core::Message::user(format!("call {i}"))],
                );
                if i % 2 == 0 {
                    router.chat(&request).await.map(|_| ())
                } else {
                    use llm_core::ChatStreamExt;
                    match router.stream(&request).await {
                        Ok(stream) => stream.collect_response().await.map(|_| ()),
                        Err(error) => Err(error),
                    }
                }
            })
        })
        .collect();
    let mut ok = 0u64;
    let mut failed = 0u64;
    let mut failed_attempts_seen = 0u64;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => ok += 1,
            Err(error) => {
                failed += 1;
                // Every failure explains itself.
                assert_eq!(error.kind(), ErrorKind::AllAttemptsFailed, "{error}");
                assert!(!error.attempts().is_empty());
                failed_attempts_seen += error.attempts().len() as u64;
            }
        }
    }
    let status = router.status();
    let successes: u64 = status.iter().map(|s| s.successes).sum();
    let failures: u64 = status.iter().map(|s| s.failures).sum();
    let calls: u64 = mocks.iter().map(|m| m.calls()).sum();
    assert_eq!(successes, ok, "one success per successful call");
    assert_eq!(
        successes + failures,
        calls,
        "every call reaching a mock is counted once"
    );
    assert!(
        status.iter().all(|s| s.in_flight == 0),
        "nothing left in flight"
    );
    assert_eq!(ok + failed, 1_000);
    assert!(ok > 0);
    // Attempts listed in errors are real failures (or resting deployments, which made no call).
    assert!(failed_attempts_seen >= failed);
}

/// The chaos target at the balancer level, with the default configuration: three
/// deployments each failing 30 % of calls at random, 10,000 concurrent calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_three_deployments_failing_thirty_percent_default_config() {
    let kinds = [
        ErrorKind::UpstreamServer,
        ErrorKind::Connection,
        ErrorKind::Protocol,
    ];
    let mocks: Vec<Arc<MockProvider>> = (0..3)
        .map(|i| {
            Arc::new(MockProvider::new(
                format!("d{i}"),
                MockConfig {
                    model: format!("d{i}"),
                    failure: Some(MockFailure::always(kinds[i]).when(FailWhen::Percent {
                        percent: 30,
                        seed: 11 + i as u64,
                    })),
                    latency: std::time::Duration::from_millis(2),
                    ..MockConfig::default()
                },
            ))
        })
        .collect();
    let router = Router::builder()
        .deployments(mocks.iter().map(|m| {
            Deployment::new(
                Arc::clone(m) as Arc<dyn ChatProvider>,
                DeploymentConfig::new(m.name(), "gpt-4o"),
            )
        }))
        .build()
        .unwrap();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(64));
    let tasks: Vec<_> = (0..10_000)
        .map(|i| {
            let router = router.clone();
            let semaphore = Arc::clone(&semaphore);
            tokio::spawn(async move {
                let _slot = semaphore.acquire_owned().await.unwrap();
                let request = llm_core::ChatRequest::new(
                    "gpt-4o",
                    vec![llm_core::Message::user(format!("call {i}"))],
                );
                router.chat(&request).await.map(|_| ())
            })
        })
        .collect();
    let mut failed = Vec::new();
    for task in tasks {
        if let Err(error) = task.await.unwrap() {
            // Every failure explains itself.
            assert_eq!(error.kind(), ErrorKind::AllAttemptsFailed, "{error}");
            assert!(!error.attempts().is_empty());
            failed.push(error.to_string());
        }
    }
    assert!(
        failed.len() <= 10,
        "success below 99.9 %: {} of 10,000 failed; first: {:?}; status: {:?}",
        failed.len(),
        failed.first(),
        router.status()
    );
    assert!(
        router.status().iter().all(|s| s.successes > 1_000),
        "every flaky deployment stayed in rotation: {:?}",
        router.status()
    );
}
