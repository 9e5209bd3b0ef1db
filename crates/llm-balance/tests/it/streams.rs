//! The stream commit rule.

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt;
use llm_balance::{RouterConfig, StrategyKind};
use llm_core::{
    ChatProvider, ChatStreamExt, Error, ErrorKind, FailWhen, MockConfig, MockFailure, MockProvider,
    TimeoutPhase,
};
use tokio::time::Instant;

use crate::support::{deployment, failing_with, healthy, request, router, with};

fn first_available() -> RouterConfig {
    RouterConfig {
        strategy: StrategyKind::FirstAvailable,
        max_rounds: 1,
        ..RouterConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn failures_before_first_content_fail_over_invisibly() {
    // Three ways to fail before any content: an error when opening, an error item first,
    // and a time-to-first-token timeout.
    let refuses = failing_with("refuses", MockFailure::always(ErrorKind::UpstreamServer));
    let errors_first = failing_with(
        "errors-first",
        MockFailure::always(ErrorKind::Protocol).after_chunks(0),
    );
    let silent = Arc::new(MockProvider::new(
        "silent",
        MockConfig {
            model: "silent".into(),
            latency: Duration::from_secs(600),
            ..MockConfig::default()
        },
    ));
    let good = healthy("good");
    let router = router(
        vec![
            with(&refuses, "m", |c| c.priority = 0),
            with(&errors_first, "m", |c| c.priority = 1),
            with(&silent, "m", |c| {
                c.priority = 2;
                c.timeouts.first_token = Duration::from_secs(5);
            }),
            with(&good, "m", |c| c.priority = 3),
        ],
        first_available(),
    );
    let start = Instant::now();
    let items: Vec<_> = router.stream(&request("m")).await.unwrap().collect().await;
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(5),
        "only the time-to-first-token timeout took time"
    );
    assert!(
        items.iter().all(Result::is_ok),
        "the caller sees one clean stream"
    );
    let text: String = items
        .iter()
        .filter_map(|i| i.as_ref().unwrap().content().map(str::to_owned))
        .collect();
    assert_eq!(text, "hello there");
    assert!(items.iter().all(|i| i.as_ref().unwrap().model == "good"));
    assert_eq!(
        (refuses.calls(), errors_first.calls(), silent.calls()),
        (1, 1, 1)
    );
    let status = router.status();
    assert_eq!(status[2].last_error, Some("timeout"));
}

#[tokio::test(start_paused = true)]
async fn failure_after_content_ends_with_exactly_one_error() {
    let cuts = failing_with(
        "cuts",
        MockFailure::always(ErrorKind::Connection).after_chunks(1),
    );
    let spare = healthy("spare");
    let router = router(
        vec![
            with(&cuts, "m", |c| c.priority = 0),
            with(&spare, "m", |c| c.priority = 1),
        ],
        first_available(),
    );
    let items: Vec<_> = router.stream(&request("m")).await.unwrap().collect().await;
    assert_eq!(items.len(), 2, "one chunk, one error, and nothing after");
    assert_eq!(items[0].as_ref().unwrap().content(), Some("hello"));
    assert_eq!(items[1].as_ref().unwrap_err().kind(), ErrorKind::Connection);
    assert_eq!(spare.calls(), 0, "a committed stream never fails over");
    // collect_response surfaces it: no silent half answer.
    let err = router
        .stream(&request("m"))
        .await
        .unwrap()
        .collect_response()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert_eq!(router.status()[0].failures, 2);
}

#[tokio::test(start_paused = true)]
async fn an_idle_committed_stream_times_out_with_an_error_item() {
    let stalls = Arc::new(MockProvider::new(
        "stalls",
        MockConfig {
            model: "stalls".into(),
            chunk_delay: Duration::from_secs(120),
            ..MockConfig::default()
        },
    ));
    let router = router(
        vec![with(&stalls, "m", |c| {
            c.timeouts.idle = Duration::from_secs(10);
        })],
        first_available(),
    );
    let mut stream = router.stream(&request("m")).await.unwrap();
    assert_eq!(
        stream.next().await.unwrap().unwrap().content(),
        Some("hello")
    );
    let start = Instant::now();
    match stream.next().await.unwrap() {
        Err(Error::Timeout { phase, after, .. }) => assert_eq!(
            (phase, after),
            (TimeoutPhase::Idle, Duration::from_secs(10))
        ),
        other => panic!("expected an idle timeout, got {other:?}"),
    }
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    assert!(stream.next().await.is_none(), "nothing after the error");
    assert_eq!(router.status()[0].in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn every_deployment_failing_before_content_is_one_error() {
    let a = failing_with(
        "a",
        MockFailure::always(ErrorKind::UpstreamServer).after_chunks(0),
    );
    let b = failing_with(
        "b",
        MockFailure::always(ErrorKind::RateLimited).retry_after(Duration::from_secs(3)),
    );
    let router = router(
        vec![deployment(&a, "m"), deployment(&b, "m")],
        first_available(),
    );
    let err = router.stream(&request("m")).await.err().expect("no stream");
    assert_eq!(err.kind(), ErrorKind::AllAttemptsFailed);
    assert_eq!(err.attempts().len(), 2);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
}

#[tokio::test(start_paused = true)]
async fn usage_arrives_after_failover_and_counts_tokens() {
    let dead = failing_with(
        "dead",
        MockFailure::always(ErrorKind::Authentication).when(FailWhen::Always),
    );
    let good = healthy("good");
    let router = router(
        vec![
            with(&dead, "m", |c| c.priority = 0),
            with(&good, "m", |c| {
                c.priority = 1;
                c.tpm = Some(1_000);
            }),
        ],
        first_available(),
    );
    let mut req = request("m");
    req.stream_options = Some(llm_core::StreamOptions {
        include_usage: Some(true),
        ..Default::default()
    });
    let response = router
        .stream(&req)
        .await
        .unwrap()
        .collect_response()
        .await
        .unwrap();
    assert_eq!(response.usage.unwrap().total_tokens, 4);
    let chat = router.chat(&req).await.unwrap();
    assert_eq!(chat.usage.unwrap().total_tokens, 4);
}

/// A provider whose streams open fine and then end without a single chunk.
#[derive(Debug)]
struct EmptyStreams;

#[llm_core::async_trait]
impl ChatProvider for EmptyStreams {
    fn name(&self) -> &str {
        "empty"
    }

    async fn chat(
        &self,
        _request: &llm_core::ChatRequest,
    ) -> llm_core::Result<llm_core::ChatResponse> {
        Err(Error::invalid_request("chat is not used in this test"))
    }

    async fn stream(
        &self,
        _request: &llm_core::ChatRequest,
    ) -> llm_core::Result<llm_core::ChatStream> {
        Ok(Box::pin(futures_util::stream::empty()))
    }
}

#[tokio::test(start_paused = true)]
async fn an_empty_stream_is_a_failed_attempt() {
    let good = healthy("good");
    let router = router(
        vec![
            llm_balance::Deployment::new(
                Arc::new(EmptyStreams),
                llm_balance::DeploymentConfig {
                    priority: 0,
                    ..llm_balance::DeploymentConfig::new("empty", "m")
                },
            ),
            with(&good, "m", |c| c.priority = 1),
        ],
        first_available(),
    );
    let response = router
        .stream(&request("m"))
        .await
        .unwrap()
        .collect_response()
        .await
        .unwrap();
    assert_eq!(response.model, "good");
    let status = router.status();
    assert_eq!(
        (status[0].failures, status[0].last_error),
        (1, Some("protocol"))
    );
}
