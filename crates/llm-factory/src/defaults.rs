//! Per-model request defaults (`max_tokens`, `temperature`) from configuration.

use std::sync::Arc;

use async_trait::async_trait;
use llm_core::{ChatJson, ChatProvider, ChatRequest, ChatResponse, ChatStream, Result};

/// Fills `max_tokens` and `temperature` from configuration when a request sets neither.
/// A request that sets them (or `max_completion_tokens`) keeps its own; only then is the
/// request passed on without a copy.
#[derive(Debug)]
pub(crate) struct WithDefaults {
    inner: Arc<dyn ChatProvider>,
    max_tokens: Option<u32>,
    temperature: Option<f64>,
}

impl WithDefaults {
    pub(crate) fn new(
        inner: Arc<dyn ChatProvider>,
        max_tokens: Option<u32>,
        temperature: Option<f64>,
    ) -> Self {
        Self {
            inner,
            max_tokens,
            temperature,
        }
    }

    /// The request with defaults applied, or `None` when it needs none.
    fn apply(&self, request: &ChatRequest) -> Option<ChatRequest> {
        let wants_tokens = self.max_tokens.is_some()
            && request.max_tokens.is_none()
            && request.max_completion_tokens.is_none();
        let wants_temperature = self.temperature.is_some() && request.temperature.is_none();
        if !wants_tokens && !wants_temperature {
            return None;
        }
        let mut request = request.clone();
        if wants_tokens {
            request.max_tokens = self.max_tokens;
        }
        if wants_temperature {
            request.temperature = self.temperature;
        }
        Some(request)
    }
}

#[async_trait]
impl ChatProvider for WithDefaults {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        match self.apply(request) {
            Some(request) => self.inner.chat(&request).await,
            None => self.inner.chat(request).await,
        }
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream> {
        match self.apply(request) {
            Some(request) => self.inner.stream(&request).await,
            None => self.inner.stream(request).await,
        }
    }

    async fn chat_json(&self, request: &ChatRequest) -> Result<ChatJson> {
        match self.apply(request) {
            Some(request) => self.inner.chat_json(&request).await,
            None => self.inner.chat_json(request).await,
        }
    }
}
