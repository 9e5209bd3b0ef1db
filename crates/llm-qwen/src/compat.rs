//! DashScope's OpenAI-compatible mode (`…/compatible-mode/v1/chat/completions`), on the
//! OpenAI-compatible client of `llm-openai`.

use async_trait::async_trait;
use http::HeaderMap;
use llm_core::{ChatRequest, ErrorKind, Extra, Result, SecretString};
use llm_openai::{BearerEndpoint, Endpoint, ErrorInfo};
use serde_json::Value;

use crate::errors::kind_of_code;

/// The Bearer endpoint (with `X-DashScope-WorkSpace` when set) plus DashScope's hooks.
#[derive(Debug)]
pub(crate) struct CompatEndpoint {
    pub(crate) bearer: BearerEndpoint,
}

#[async_trait]
impl Endpoint for CompatEndpoint {
    fn name(&self) -> &str {
        self.bearer.name()
    }

    fn chat_url(&self, model: &str) -> String {
        self.bearer.chat_url(model)
    }

    async fn write_headers(&self, headers: &mut HeaderMap) -> Result<()> {
        self.bearer.write_headers(headers).await
    }

    fn secrets(&self) -> Vec<&SecretString> {
        self.bearer.secrets()
    }

    fn extra_body(&self, request: &ChatRequest, model: &str, stream: bool) -> Option<Extra> {
        // Thinking models refuse `enable_thinking: true` on non-streaming calls
        // ("parameter.enable_thinking must be set to false for non-streaming calls"), and
        // some think by default.
        let asked = request
            .extra
            .get("enable_thinking")
            .and_then(Value::as_bool);
        if stream || asked == Some(false) {
            return None;
        }
        let thinking = crate::non_streaming_thinking(asked, model)?;
        Some(Extra::from_iter([(
            "enable_thinking".to_owned(),
            Value::Bool(thinking),
        )]))
    }

    fn relays_answers(&self) -> bool {
        // No answer fix-ups: DashScope's compatible answers are OpenAI's.
        true
    }

    fn classify_error(&self, error: &ErrorInfo<'_>, kind: ErrorKind) -> ErrorKind {
        error
            .code
            .into_iter()
            .chain(error.error_type)
            .find_map(|code| kind_of_code(code, error.message))
            .unwrap_or(kind)
    }
}
