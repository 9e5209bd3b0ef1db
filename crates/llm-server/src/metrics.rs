//! Prometheus metrics: requests, errors by kind, latency and time-to-first-token
//! histograms, tokens, per-deployment health and the runtime's live task count, read at
//! scrape time.

use std::sync::OnceLock;

use llm_factory::{
    DeploymentStatus,
    balance::{HealthState, SharedStateStatus},
};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds, from sub-millisecond gateway overhead to slow generations.
const BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide recorder, installed on first use. `None` when the application already
/// installed a recorder of its own (then `/metrics` says so instead of guessing).
pub(crate) fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &BUCKETS)
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// Record per-deployment gauges from a status snapshot, then render.
pub(crate) fn render(
    handle: &PrometheusHandle,
    status: &[DeploymentStatus],
    shared: &SharedStateStatus,
) -> String {
    // Whether health is shared with other replicas (1) or this replica serves on its own
    // state (0: no shared backend, or it is unreachable), and how stale it is.
    metrics::gauge!("llm_shared_state_connected", "backend" => shared.backend)
        .set(if shared.shared { 1.0 } else { 0.0 });
    if let Some(staleness) = shared.staleness_ms {
        metrics::gauge!("llm_shared_state_staleness_seconds", "backend" => shared.backend)
            .set(staleness as f64 / 1000.0);
    }
    metrics::gauge!("llm_shared_state_disconnects", "backend" => shared.backend)
        .set(shared.disconnects as f64);
    for deployment in status {
        let labels = [
            ("deployment", deployment.id.clone()),
            ("model", deployment.model.clone()),
        ];
        let healthy = matches!(deployment.state, HealthState::Healthy);
        metrics::gauge!("llm_deployment_healthy", &labels).set(if healthy { 1.0 } else { 0.0 });
        metrics::gauge!("llm_deployment_in_flight", &labels).set(f64::from(deployment.in_flight));
        metrics::gauge!("llm_deployment_cooldown_seconds", &labels)
            .set(deployment.cooldown_remaining_ms as f64 / 1000.0);
        metrics::gauge!("llm_deployment_successes", &labels).set(deployment.successes as f64);
        metrics::gauge!("llm_deployment_failures", &labels).set(deployment.failures as f64);
    }
    let connections = crate::connection_stats();
    metrics::gauge!("llm_gateway_open_connections").set(connections.open as f64);
    metrics::gauge!("llm_gateway_max_connections").set(connections.max as f64);
    metrics::gauge!("llm_gateway_connections_accepted").set(connections.accepted as f64);
    for (reason, count) in connections.closed {
        metrics::gauge!("llm_gateway_connections_closed", "reason" => reason).set(count as f64);
    }
    // Tasks alive on the runtime serving this scrape: a leak (a request that left a task
    // behind) shows as a count that does not return to its idle baseline.
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        metrics::gauge!("llm_gateway_tokio_alive_tasks")
            .set(runtime.metrics().num_alive_tasks() as f64);
    }
    handle.render()
}

/// The handles of the metrics recorded on every request, registered once: looking a
/// metric up by name and labels on each call was a measurable share of a request's CPU.
/// The recorder is settled before the first request ([`handle`] runs when the router is
/// built), so the handles belong to the recorder in use.
struct Hot {
    requests: [Counter; 2],
    prompt_tokens: Counter,
    completion_tokens: Counter,
    duration: Histogram,
    first_token: Histogram,
}

fn hot() -> &'static Hot {
    static HOT: OnceLock<Hot> = OnceLock::new();
    HOT.get_or_init(|| Hot {
        requests: [
            metrics::counter!("llm_requests_total", "stream" => "false"),
            metrics::counter!("llm_requests_total", "stream" => "true"),
        ],
        prompt_tokens: metrics::counter!("llm_tokens_total", "type" => "prompt"),
        completion_tokens: metrics::counter!("llm_tokens_total", "type" => "completion"),
        duration: metrics::histogram!("llm_request_duration_seconds"),
        first_token: metrics::histogram!("llm_time_to_first_token_seconds"),
    })
}

pub(crate) fn count_request(stream: bool) {
    hot().requests[usize::from(stream)].increment(1);
}

pub(crate) fn count_error(error: &crate::error::ApiError) {
    metrics::counter!(
        "llm_errors_total",
        "status" => error.status().as_u16().to_string(),
        "type" => error.kind()
    )
    .increment(1);
}

pub(crate) fn count_tokens(usage: &llm_factory::core::Usage) {
    let hot = hot();
    hot.prompt_tokens.increment(usage.prompt_tokens);
    hot.completion_tokens.increment(usage.completion_tokens);
}

pub(crate) fn observe_duration(started: std::time::Instant) {
    hot().duration.record(started.elapsed().as_secs_f64());
}

pub(crate) fn observe_first_token(started: std::time::Instant) {
    hot().first_token.record(started.elapsed().as_secs_f64());
}

pub(crate) fn observe_answer(
    started: std::time::Instant,
    usage: Option<&llm_factory::core::Usage>,
) {
    observe_duration(started);
    if let Some(usage) = usage {
        count_tokens(usage);
    }
}
