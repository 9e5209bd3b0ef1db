//! The endpoints.

use std::{
    sync::Arc,
    task::{Context, Poll, ready},
    time::Instant,
};

use axum::{
    Extension, Json,
    body::{Body, Bytes},
    extract::{Request, State},
    http::{
        HeaderValue, Method, StatusCode, Uri,
        header::{CONTENT_LENGTH, CONTENT_TYPE},
    },
    response::{IntoResponse, Response},
};
use bytes::BytesMut;
use futures_util::StreamExt;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use llm_factory::{
    ChatOptions, ChatRequest, ChatStream, StrategyKind, balance::HealthState, core::ChunkHeadCache,
};
use serde_json::json;

use crate::{
    AppState,
    error::{ApiError, BodyError, parse_body},
    metrics, middleware,
    middleware::RequestId,
    sse::{self, EventSource, SseBody},
};

/// The most choices a request may ask for.
const MAX_N: u32 = 16;

/// The request body: OpenAI's, plus the original LLM Factory's `load_balance_strategy`,
/// which is taken out so it never reaches an upstream.
fn parse(body: &[u8]) -> Result<(ChatRequest, Option<String>), ApiError> {
    let mut request: ChatRequest = parse_body(body).map_err(|error| match error {
        BodyError::Invalid { path: None, detail } => ApiError::bad_request(format!(
            "the request body is not a valid chat completion request: {detail}"
        )),
        BodyError::Invalid {
            path: Some(path),
            detail,
        } => ApiError::bad_request(format!("invalid `{path}`: {detail}")).with_param(path),
        BodyError::Trailing(detail) => ApiError::bad_request(format!(
            "the request body has data after the JSON object: {detail}"
        )),
    })?;
    let strategy = match request.extra.remove("load_balance_strategy") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(name)) => Some(name),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`load_balance_strategy` must be a string, not {other}"
            ))
            .with_param("load_balance_strategy"));
        }
    };
    Ok((request, strategy))
}

fn validate(request: &ChatRequest) -> Result<(), ApiError> {
    if request.messages.is_empty() {
        return Err(
            ApiError::bad_request("`messages` must contain at least one message")
                .with_param("messages"),
        );
    }
    if request.n.is_some_and(|n| n == 0 || n > MAX_N) {
        return Err(
            ApiError::bad_request(format!("`n` must be between 1 and {MAX_N}")).with_param("n"),
        );
    }
    if let Some(model) = &request.model
        && (model.len() > 256 || model.chars().any(char::is_control))
    {
        return Err(ApiError::bad_request(
            "`model` must be a plain name of at most 256 characters",
        )
        .with_param("model"));
    }
    Ok(())
}

/// How much of an oversized body is read and thrown away, at most, so the client (still
/// sending) reads the 413 instead of a connection reset; and for how long.
const DRAIN_MAX_BYTES: usize = 64 * 1024 * 1024;
const DRAIN_MAX_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Read the body, at most `limit` bytes. An oversized body is drained (up to
/// [`DRAIN_MAX_BYTES`] and [`DRAIN_MAX_TIME`]) before the 413, as nginx's lingering close
/// does: closing a connection with unread data makes the kernel reset it, and the client
/// would lose the answer. A body in one frame is returned without a copy.
pub(crate) async fn read_body(mut body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            Some("request_too_large"),
            format!("the request body is larger than {limit} bytes"),
        )
    };
    // A declared length beyond what would be drained is refused at once.
    let declared =
        usize::try_from(axum::body::HttpBody::size_hint(&body).lower()).unwrap_or(usize::MAX);
    if declared > DRAIN_MAX_BYTES {
        return Err(too_large());
    }
    match Limited::new(&mut body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => {
            let drain = async {
                let mut drained = limit;
                while drained <= DRAIN_MAX_BYTES
                    && let Some(Ok(frame)) = body.frame().await
                {
                    drained = drained.saturating_add(frame.data_ref().map_or(0, Bytes::len));
                }
            };
            let _ = tokio::time::timeout(DRAIN_MAX_TIME, drain).await;
            Err(too_large())
        }
        Err(error) => Err(ApiError::bad_request(format!(
            "the request body could not be read: {error}"
        ))),
    }
}

/// The chat completions path, as routed and as `serve`'s direct path takes it.
pub(crate) const CHAT_COMPLETIONS: &str = "/v1/chat/completions";

pub(crate) async fn chat_completions(
    State(state): State<Arc<AppState>>,
    Extension(request_id): Extension<RequestId>,
    body: Body,
) -> Response {
    chat(&state, &request_id, body).await
}

/// `POST /v1/chat/completions` on `serve`'s direct path (see [`crate::Gateway`]): the
/// gateway's middleware around [`chat_completions`], both called as functions.
pub(crate) async fn chat_direct(state: Arc<AppState>, request: Request) -> Response {
    let state = &*state;
    let mut response = middleware::front_with(state, request, |request, id| async move {
        chat(state, &id, request.into_body()).await
    })
    .await;
    // What axum's router does last for a response of known size: `content-length` goes
    // into the map (so it comes before the `connection` and `date` headers hyper adds).
    if !response.headers().contains_key(CONTENT_LENGTH)
        && let Some(size) = axum::body::HttpBody::size_hint(response.body()).exact()
    {
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(size));
    }
    response
}

async fn chat(state: &AppState, request_id: &RequestId, body: Body) -> Response {
    let started = Instant::now();
    match serve_chat(state, request_id, body, started).await {
        Ok(response) => response,
        Err(error) => {
            metrics::count_error(&error);
            error.into_response()
        }
    }
}

async fn serve_chat(
    state: &AppState,
    request_id: &RequestId,
    body: Body,
    started: Instant,
) -> Result<Response, ApiError> {
    let body = read_body(body, state.options.max_body_bytes).await?;
    let (request, load_balance_strategy) = parse(&body)?;
    validate(&request)?;
    let options = match load_balance_strategy.as_deref() {
        Some(name) => ChatOptions::strategy(
            name.parse::<StrategyKind>()
                .map_err(|e| ApiError::from(e).with_param("load_balance_strategy"))?,
        ),
        None => ChatOptions::default(),
    };
    let stream = request.stream == Some(true);
    tracing::debug!(request_id = %request_id.0, model = request.model.as_deref().unwrap_or(""), stream, "chat completion");
    metrics::count_request(stream);
    if !stream {
        // Boxed: the routed call's future is large (the request, the router's state), and
        // every future around it (this handler's, axum's and hyper's wrappers) would
        // otherwise be that much larger and copied whole at each move.
        let answer = within_request_timeout(
            state,
            Box::pin(state.factory.chat_json_with(request, &options)),
        )
        .await
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout_error",
                Some("timeout"),
                format!(
                    "the request took longer than {:?}",
                    state.options.request_timeout
                ),
            )
        })??;
        metrics::observe_answer(started, answer.usage.as_ref());
        return Ok(json_answer(answer.body));
    }
    let include_usage = request.include_usage();
    let upstream = Box::pin(state.factory.stream_with(request, &options)).await?;
    Ok(sse(upstream, include_usage, started))
}

/// `call`, or `None` when the gateway's request timeout ran out first (no timer when the
/// router's own deadline comes first: see `AppState::request_timer`).
pub(crate) async fn within_request_timeout<T>(
    state: &AppState,
    call: impl Future<Output = T>,
) -> Option<T> {
    match state.request_timer {
        Some(limit) => tokio::time::timeout(limit, call).await.ok(),
        None => Some(call.await),
    }
}

/// The answer's JSON as `application/json`: the upstream's bytes when the provider relayed
/// them, else what the answer's direct writer wrote (see `ChatProvider::chat_json`).
fn json_answer(body: Bytes) -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response()
}

/// Chunks as `data:` events, then `data: [DONE]`; a failure is one error event and the
/// end, without `[DONE]`.
struct ChunkEvents {
    upstream: ChatStream,
    /// The head members the chunks of an answer share, written once.
    head: ChunkHeadCache,
    include_usage: bool,
    started: Instant,
    first_token: bool,
    finished: bool,
}

impl EventSource for ChunkEvents {
    fn poll_write(&mut self, cx: &mut Context<'_>, out: &mut BytesMut) -> Poll<bool> {
        if self.finished {
            return Poll::Ready(false);
        }
        loop {
            match ready!(self.upstream.poll_next_unpin(cx)) {
                Some(Ok(mut chunk)) => {
                    if !self.first_token && chunk.has_content() {
                        self.first_token = true;
                        metrics::observe_first_token(self.started);
                    }
                    if let Some(usage) = &chunk.usage {
                        metrics::count_tokens(usage);
                    }
                    if !self.include_usage {
                        // The caller did not ask for usage: drop the usage-only chunk.
                        if chunk.choices.is_empty() {
                            continue;
                        }
                        chunk.usage = None;
                    }
                    sse::write_json_event(
                        out,
                        |out| chunk.write_json_cached(out, &mut self.head),
                        |e| {
                            json!({"error": {"message": format!("cannot encode a chunk: {e}"), "type": "api_error"}}).to_string()
                        },
                    );
                    return Poll::Ready(true);
                }
                Some(Err(error)) => {
                    self.finished = true;
                    let error = ApiError::from(error);
                    metrics::count_error(&error);
                    sse::write_data_event(out, &error.body().to_string());
                    return Poll::Ready(true);
                }
                None => {
                    self.finished = true;
                    metrics::observe_duration(self.started);
                    sse::write_data_event(out, "[DONE]");
                    return Poll::Ready(true);
                }
            }
        }
    }
}

fn sse(upstream: ChatStream, include_usage: bool, started: Instant) -> Response {
    SseBody::new(ChunkEvents {
        upstream,
        head: ChunkHeadCache::new(),
        include_usage,
        started,
        first_token: false,
        finished: false,
    })
    .into_response()
}

pub(crate) async fn models(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let data: Vec<serde_json::Value> = state
        .factory
        .models()
        .into_iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "llm-factory"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

pub(crate) async fn status(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(json!({
        "object": "list",
        "data": state.factory.status(),
        "shared_state": state.factory.shared_state(),
        "connections": crate::connection_stats(),
    }))
}

pub(crate) async fn live() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

pub(crate) async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let available = state
        .factory
        .status()
        .iter()
        .filter(|d| matches!(d.state, HealthState::Healthy | HealthState::AwaitingProbe))
        .count();
    let body = json!({"status": if available > 0 { "ready" } else { "unavailable" }, "available_deployments": available});
    let status = if available > 0 {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    match metrics::handle() {
        Some(handle) => (
            [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            metrics::render(
                handle,
                &state.factory.status(),
                &state.factory.shared_state(),
            ),
        )
            .into_response(),
        None => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            None,
            "metrics are unavailable: the application installed its own metrics recorder",
        )
        .into_response(),
    }
}

pub(crate) async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        Some("unknown_url"),
        format!("unknown endpoint `{method} {}`", uri.path()),
    )
}
