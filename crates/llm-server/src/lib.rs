//! The OpenAI-compatible HTTP gateway of LLM Factory, as a library and as the `llm-server`
//! binary.
//!
//! [`router`] turns an [`LlmFactory`] into an axum [`Router`] serving
//! `POST /v1/chat/completions` (JSON, or SSE with `data: [DONE]`), `GET /v1/models`,
//! `GET /v1/providers/status`, `GET /health/live`, `GET /health/ready` and `GET /metrics`.
//! Mount it anywhere in your own axum app, as the original `include_router` did:
//!
//! ```no_run
//! use llm_factory::{LlmFactory, ModelConfig, ProviderType};
//!
//! # async fn run() -> anyhow::Result<()> {
//! let factory = LlmFactory::new(ModelConfig {
//!     provider: ProviderType::Mock,
//!     model_name: "mock-echo".into(),
//!     ..ModelConfig::default()
//! })?;
//! let app = axum::Router::new().nest("/llm", llm_server::router(factory));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Errors are OpenAI-shaped (`{"error":{"message","type","param","code"}}`) with the status
//! of their kind; a failure after a stream started is one error event and no `[DONE]`.
//! [`GatewayOptions`] adds gateway keys (`Authorization: Bearer`, compared in constant
//! time; health stays open), a body size limit (413), a per-request deadline and bounded
//! concurrency that sheds load with 503. Every response carries `x-request-id` (the
//! client's, or a new one). Logs carry no secrets and no prompt text.
//!
//! [`serve`] runs a [`Gateway`] (the same routes, plus a direct path to chat completions
//! that skips axum's per-route layers) or any router with the connection bounds of
//! [`ConnectionLimits`] (header, keep-alive and send timeouts, a connection cap that
//! closes idle connections first); the `llm-server` binary uses it. `axum::serve` works
//! too, without those bounds.
//!
//! # Features
//!
//! - `openai` (default): OpenAI and Azure OpenAI upstreams.
//! - `qwen` (default): Qwen on DashScope upstreams.
//! - `deepseek` (default): DeepSeek upstreams.
//! - `claude-bedrock` (default): Claude on AWS Bedrock upstreams (Converse /
//!   ConverseStream, the AWS SDK).
//! - `gemini` (default): Gemini upstreams (AI Studio and Vertex AI).
//! - `redis` (default): `router.shared_state: redis://…`: replicas share deployments'
//!   cooldowns, probes and rpm/tpm windows through Redis.
//! - `jemalloc` (default): the `llm-server` binary allocates with jemalloc and purges
//!   freed memory in the background (the library itself sets no allocator). See
//!   `docs/performance.md`.

mod anthropic;
mod error;
mod handlers;
mod metrics;
mod middleware;
mod serve;
mod sse;

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    http::Method,
    routing::{get, post},
};
use llm_factory::{LlmFactory, ServerSettings, core::SecretString};
use tokio::sync::Semaphore;

pub use serve::{
    ConnectionLimits, ConnectionStats, connection_stats, default_max_connections, raise_fd_limit,
    serve,
};

/// How the gateway guards itself.
#[derive(Clone)]
pub struct GatewayOptions {
    /// Keys clients must present as `Authorization: Bearer`; empty means open.
    pub api_keys: Vec<SecretString>,
    /// The largest request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// The deadline of a non-streaming request (streams are bounded by the router's
    /// time-to-first-token and idle timeouts instead).
    pub request_timeout: Duration,
    /// Requests (and open streams) served at once; more are shed with 503.
    pub max_concurrency: usize,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            api_keys: Vec::new(),
            max_body_bytes: 8 * 1024 * 1024,
            request_timeout: Duration::from_secs(600),
            max_concurrency: 1024,
        }
    }
}

impl std::fmt::Debug for GatewayOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = self
            .api_keys
            .iter()
            .map(llm_factory::core::mask_key)
            .collect();
        f.debug_struct("GatewayOptions")
            .field("api_keys", &keys)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("request_timeout", &self.request_timeout)
            .field("max_concurrency", &self.max_concurrency)
            .finish()
    }
}

impl GatewayOptions {
    /// Options from a configuration's `server:` section, defaults elsewhere.
    #[must_use]
    pub fn from_settings(settings: &ServerSettings) -> Self {
        let defaults = Self::default();
        Self {
            api_keys: settings.api_keys.clone(),
            max_body_bytes: settings.max_body_bytes.unwrap_or(defaults.max_body_bytes),
            request_timeout: settings
                .request_timeout
                .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
                .unwrap_or(defaults.request_timeout),
            max_concurrency: settings
                .max_concurrency
                .unwrap_or(defaults.max_concurrency)
                .max(1),
        }
    }
}

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct AppState {
    /// What each model's deployments take besides OpenAI's fields (the Anthropic door).
    pub(crate) abilities: std::collections::BTreeMap<String, anthropic::Abilities>,
    pub(crate) factory: LlmFactory,
    pub(crate) options: GatewayOptions,
    pub(crate) slots: Arc<Semaphore>,
    /// The gateway's request timeout when it can fire before the router's own deadline
    /// for a whole request; `None` when the router's comes first (the defaults: 300 s
    /// against 600 s), so that a non-streamed call runs without a timer that never fires.
    pub(crate) request_timer: Option<Duration>,
}

/// tokio's runtime for the gateway, as `llm-server` starts it: the multi-threaded one, one
/// worker per CPU the process may use — or, when that is one CPU (`taskset`, a
/// container's CPU quota of one or less) and `TOKIO_WORKER_THREADS` does not ask for more,
/// the current-thread one. With one CPU a second thread buys nothing, and the
/// current-thread runtime skips the work-stealing scheduler's bookkeeping on every
/// wake-up (see `docs/performance.md`). The benchmarks' one-hop proxy runs on the same
/// choice, so that the floor and the gateway differ in what they do, not in their
/// scheduler.
///
/// # Errors
///
/// When tokio cannot start (no I/O driver, no threads).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    #[expect(
        clippy::disallowed_methods,
        reason = "reads the variable tokio itself reads for its worker count"
    )]
    let workers_set = std::env::var_os("TOKIO_WORKER_THREADS").is_some();
    let one_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let mut builder = if one_cpu && !workers_set {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build()
}

/// The gateway's routes for `factory`, with the options of its `server:` settings.
pub fn router(factory: LlmFactory) -> Router {
    Gateway::new(factory).router
}

/// The gateway's routes for `factory` with explicit options.
pub fn router_with(factory: LlmFactory, options: GatewayOptions) -> Router {
    Gateway::with_options(factory, options).router
}

/// The gateway as [`serve`] runs it: the routes of [`router_with`], and a direct path to
/// `POST /v1/chat/completions` that calls the same middleware and handler as functions,
/// without the boxed service, cloned route and boxed future that each of axum's routing
/// layers adds to a request (callgrind: ≈ 12 allocations and ≈ 5,000 instructions per
/// request). What a client sees is the same on both paths.
///
/// [`serve`] takes a plain [`Router`] too (`Gateway::from(router)`); then every request
/// goes through the router.
///
/// ```no_run
/// use llm_factory::{LlmFactory, ModelConfig, ProviderType};
/// use llm_server::{ConnectionLimits, Gateway, GatewayOptions};
///
/// # async fn run() -> anyhow::Result<()> {
/// let factory = LlmFactory::new(ModelConfig {
///     provider: ProviderType::Mock,
///     model_name: "mock-echo".into(),
///     ..ModelConfig::default()
/// })?;
/// let gateway = Gateway::with_options(factory, GatewayOptions::default());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
/// llm_server::serve(listener, gateway, ConnectionLimits::default(), std::future::pending())
///     .await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Gateway {
    router: Router,
    /// The state of the direct path; `None` for a plain router.
    direct: Option<Arc<AppState>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("direct", &self.direct.is_some())
            .finish_non_exhaustive()
    }
}

impl From<Router> for Gateway {
    fn from(router: Router) -> Self {
        Self {
            router,
            direct: None,
        }
    }
}

impl Gateway {
    /// The gateway for `factory`, with the options of its `server:` settings.
    #[must_use]
    pub fn new(factory: LlmFactory) -> Self {
        let options = GatewayOptions::from_settings(factory.server_settings());
        Self::with_options(factory, options)
    }

    /// The gateway for `factory` with explicit options.
    #[must_use]
    pub fn with_options(factory: LlmFactory, options: GatewayOptions) -> Self {
        let (router, state) = routes(factory, options);
        Self {
            router,
            direct: Some(state),
        }
    }

    /// Its routes, to mount in an axum app (without the direct path).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The state to serve `request` with on the direct path, when that path takes it: a
    /// `POST` to `/v1/chat/completions` (any query) on a gateway made by [`Gateway::new`]
    /// or [`Gateway::with_options`]. `None` sends it through the router.
    fn direct(&self, request: &axum::extract::Request) -> Option<&Arc<AppState>> {
        self.direct.as_ref().filter(|_| {
            request.method() == Method::POST && request.uri().path() == handlers::CHAT_COMPLETIONS
        })
    }
}

/// The routes and the state they share.
fn routes(factory: LlmFactory, options: GatewayOptions) -> (Router, Arc<AppState>) {
    // Install the metrics recorder before the first request is counted.
    let _ = metrics::handle();
    // The router answers at its deadline; a gateway timeout at least a second later (its
    // timer starts a little earlier) can never fire first.
    let request_timer = (options.request_timeout
        < factory
            .router()
            .timeout()
            .saturating_add(Duration::from_secs(1)))
    .then_some(options.request_timeout);
    let state = Arc::new(AppState {
        abilities: anthropic::abilities(&factory),
        slots: Arc::new(Semaphore::new(options.max_concurrency)),
        factory,
        options,
        request_timer,
    });
    // Every route but the health probes is listed in `middleware::GUARDED` (the gateway
    // key and the concurrency limit apply there; tests/it/hardening.rs checks each).
    let router = Router::new()
        .route("/health/live", get(handlers::live))
        .route("/health/ready", get(handlers::ready))
        .route(handlers::CHAT_COMPLETIONS, post(handlers::chat_completions))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        .route("/v1/models", get(handlers::models))
        .route("/v1/providers/status", get(handlers::status))
        .route("/metrics", get(handlers::metrics))
        .fallback(handlers::not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            middleware::front,
        ))
        .with_state(Arc::clone(&state));
    (router, state)
}
