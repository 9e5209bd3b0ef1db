//! DashScope's OpenAI-compatible mode (`…/compatible-mode/v1/chat/completions`), on the
//! OpenAI-compatible client of `llm-openai`.

use std::fmt;

use async_trait::async_trait;
use http::{HeaderMap, HeaderName, HeaderValue, header::AUTHORIZATION};
use llm_core::{ChatRequest, ErrorKind, Extra, Result, SecretString, mask_key};
use llm_openai::{Endpoint, ErrorInfo};
use serde_json::Value;

use crate::errors::kind_of_code;

pub(crate) struct CompatEndpoint {
    pub(crate) name: String,
    pub(crate) url: String,
    pub(crate) key: SecretString,
    pub(crate) auth: HeaderValue,
    pub(crate) workspace: Option<HeaderValue>,
}

impl fmt::Debug for CompatEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompatEndpoint")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("key", &mask_key(&self.key))
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Endpoint for CompatEndpoint {
    fn name(&self) -> &str {
        &self.name
    }

    fn chat_url(&self, _model: &str) -> String {
        self.url.clone()
    }

    async fn write_headers(&self, headers: &mut HeaderMap) -> Result<()> {
        headers.insert(AUTHORIZATION, self.auth.clone());
        if let Some(workspace) = &self.workspace {
            headers.insert(
                HeaderName::from_static("x-dashscope-workspace"),
                workspace.clone(),
            );
        }
        Ok(())
    }

    fn secrets(&self) -> Vec<&SecretString> {
        vec![&self.key]
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

    fn classify_error(&self, error: &ErrorInfo<'_>, kind: ErrorKind) -> ErrorKind {
        error
            .code
            .into_iter()
            .chain(error.error_type)
            .find_map(|code| kind_of_code(code, error.message))
            .unwrap_or(kind)
    }
}
