//! Request ids, gateway keys and load shedding.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderName, HeaderValue, StatusCode, header::AUTHORIZATION},
    middleware::Next,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use llm_factory::core::ExposeSecret;
use subtle::ConstantTimeEq;
use tokio::sync::OwnedSemaphorePermit;

use crate::{AppState, error::ApiError};

/// The request id of the current request (the client's `x-request-id`, or a new one).
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub(crate) String);

/// The request id header (a `HeaderName` made once: from a `&str` it would be parsed and
/// copied on every response).
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A client id is kept only if it is short and plain, so it cannot smuggle anything into
/// logs or headers.
fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| {
            u64::try_from(d.as_nanos() & u128::from(u64::MAX)).unwrap_or(0)
        })
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut z = seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    // `req_` + 16 hex digits + the counter's low 8 (written by hand: `format!` was a
    // measurable share of a request's CPU).
    let mut id = String::with_capacity(28);
    id.push_str("req_");
    push_hex(&mut id, z ^ (z >> 31), 16);
    push_hex(&mut id, n, 8);
    id
}

/// The `digits` low hex digits of `value`, zero-padded, lowercase.
fn push_hex(out: &mut String, value: u64, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..digits).rev() {
        let nibble = (value >> (shift * 4)) & 0xf;
        out.push(char::from(HEX[usize::try_from(nibble).unwrap_or(0)]));
    }
}

/// The paths behind the gateway key and the concurrency limit: everything but the health
/// probes and unknown paths (a 404 needs no key). Every method on them is guarded (a wrong
/// method without a key gets 401 before 405).
pub(crate) const GUARDED: [&str; 6] = [
    "/v1/chat/completions",
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/v1/models",
    "/v1/providers/status",
    "/metrics",
];

/// The gateway's one middleware (one layer on every request, not two: each `from_fn`
/// layer clones its inner service and boxes a future per request). It accepts or assigns
/// `x-request-id`, returns it on the response and logs one line per request (no bodies,
/// no secrets); on the [`GUARDED`] paths it also requires a gateway key when any is
/// configured, then serves at most `max_concurrency` requests (and open streams) at once,
/// shedding the rest with 503 at once rather than queueing them.
pub(crate) async fn front(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    front_with(&state, request, |mut request, id| {
        request.extensions_mut().insert(id);
        next.run(request)
    })
    .await
}

/// [`front`] around `next`, which gets the request and its id: the axum layer passes the
/// id on as an extension; `serve`'s direct path to chat completions hands both to the
/// handler itself.
pub(crate) async fn front_with<F, R>(state: &AppState, request: Request, next: F) -> Response
where
    F: FnOnce(Request, RequestId) -> R,
    R: Future<Output = Response>,
{
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map_or_else(new_id, str::to_owned);
    let header = HeaderValue::try_from(id.as_str()).ok();
    // The access line's fields are gathered only when it is written.
    let logged = tracing::enabled!(tracing::Level::INFO).then(|| {
        (
            request.method().clone(),
            request.uri().path().to_owned(),
            Instant::now(),
            id.clone(),
        )
    });
    let id = RequestId(id);
    let mut response = if GUARDED.contains(&request.uri().path()) {
        guard(state, request, id, next).await
    } else {
        next(request, id).await
    };
    if let Some((method, path, started, id)) = logged {
        tracing::info!(
            request_id = %id,
            method = %method,
            path = %path,
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
    }
    if let Some(value) = header {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// Whether `request` came through the Anthropic Messages door (its errors are shaped
/// Anthropic's way).
fn is_anthropic(request: &Request) -> bool {
    request.uri().path().starts_with("/v1/messages")
}

/// The key check and the concurrency limit of a guarded request.
async fn guard<F, R>(state: &AppState, request: Request, id: RequestId, next: F) -> Response
where
    F: FnOnce(Request, RequestId) -> R,
    R: Future<Output = Response>,
{
    if let Some(rejection) = unauthenticated(state, &request) {
        return rejection;
    }
    let Ok(permit) = Arc::clone(&state.slots).try_acquire_owned() else {
        return overloaded(&request);
    };
    let response = next(request, id).await;
    // The slot is held until the body is sent in full (a stream holds it while open).
    response.map(|body| {
        Body::new(Slotted {
            body,
            _permit: permit,
        })
    })
}

/// The 401 for a request without a valid gateway key, when any key is configured.
fn unauthenticated(state: &AppState, request: &Request) -> Option<Response> {
    let keys = &state.options.api_keys;
    if keys.is_empty() {
        return None;
    }
    // `Authorization: Bearer <key>`, or `x-api-key: <key>` as Anthropic clients send it.
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| {
            request
                .headers()
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
        })
        .map(str::trim)
        .unwrap_or_default();
    // Compare against every key, in constant time per key, without stopping early.
    let mut accepted = subtle::Choice::from(0);
    for key in keys {
        accepted |= presented.as_bytes().ct_eq(key.expose_secret().as_bytes());
    }
    if bool::from(accepted) && !presented.is_empty() {
        return None;
    }
    if is_anthropic(request) {
        return Some(crate::anthropic::error_response(
            StatusCode::UNAUTHORIZED,
            "a valid gateway API key is required: send `x-api-key: <key>` or `Authorization: Bearer <key>`",
            None,
        ));
    }
    Some(
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            Some("invalid_api_key"),
            "a valid gateway API key is required: send `Authorization: Bearer <key>`",
        )
        .into_response(),
    )
}

/// The 503 for a request over the concurrency limit.
fn overloaded(request: &Request) -> Response {
    if is_anthropic(request) {
        return crate::anthropic::error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "the gateway is at its concurrency limit; retry shortly",
            None,
        );
    }
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "api_error",
        Some("server_overloaded"),
        "the gateway is at its concurrency limit; retry shortly",
    )
    .into_response()
}

/// A response body holding its concurrency slot until it is dropped.
struct Slotted {
    body: Body,
    _permit: OwnedSemaphorePermit,
}

impl HttpBody for Slotted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids() {
        assert!(acceptable("abc-123_X.y:z"));
        assert!(!acceptable("evil\r\nx-injected: 1"));
        assert!(!acceptable(&"a".repeat(129)));
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert!(acceptable(&a) && a.starts_with("req_"));
        assert_eq!(a.len(), 28, "{a}");
        assert!(
            a[4..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        let mut hex = String::new();
        push_hex(&mut hex, 0xab_0012, 8);
        assert_eq!(hex, "00ab0012");
    }
}
