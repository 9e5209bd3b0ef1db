//! The DashScope native API: `{base}/services/aigc/{text|multimodal}-generation/generation`.

mod request;
mod response;

use std::fmt;

use http::{
    HeaderMap, HeaderName, HeaderValue,
    header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE},
};
use llm_core::{
    ChatRequest, ChatResponse, ChatStream, Error, Result, SecretString, kit::sse_chat_stream,
    mask_key,
};
use llm_http::{Target, Transport, reqwest::Url};

use crate::errors;
pub(crate) use request::{BodyMode, NativeRequest};
use response::{NativeTranslator, parse_response};

/// A native-API client for one key.
pub(crate) struct NativeClient {
    pub(crate) transport: Transport,
    text_url: Target,
    multimodal_url: Target,
    key: SecretString,
    auth: HeaderValue,
    workspace: Option<HeaderValue>,
}

impl fmt::Debug for NativeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NativeClient")
            .field("text_url", &self.text_url.url().as_str())
            .field("key", &mask_key(&self.key))
            .field("workspace", &self.workspace)
            .finish_non_exhaustive()
    }
}

impl NativeClient {
    pub(crate) fn new(
        transport: Transport,
        base: &str,
        key: SecretString,
        workspace: Option<HeaderValue>,
    ) -> Result<Self> {
        let parse = |path: &str| {
            Url::parse(&format!("{base}/services/aigc/{path}/generation"))
                .map(Target::from)
                .map_err(|e| Error::config(format!("api_base `{base}` is not a valid URL: {e}")))
        };
        Ok(Self {
            text_url: parse("text-generation")?,
            multimodal_url: parse("multimodal-generation")?,
            auth: llm_openai::secret_header("Bearer ", &key)?,
            key,
            workspace,
            transport,
        })
    }

    fn secrets(&self) -> [&SecretString; 1] {
        [&self.key]
    }

    async fn send(
        &self,
        request: &ChatRequest,
        model: &str,
        mode: BodyMode,
    ) -> Result<(llm_http::Response, request::Sent)> {
        if request.messages.is_empty() {
            return Err(Error::invalid_request("`messages` must not be empty"));
        }
        let (body, sent) = NativeRequest::new(request, model, mode, self.transport.name())?;
        let body = serde_json::to_vec(&body).map_err(|e| {
            Error::invalid_request(format!("the request cannot be serialized: {e}"))
        })?;
        let mut headers = HeaderMap::with_capacity(5);
        headers.insert(AUTHORIZATION, self.auth.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if mode.stream {
            headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
            headers.insert(
                HeaderName::from_static("x-dashscope-sse"),
                HeaderValue::from_static("enable"),
            );
        } else {
            headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        }
        if let Some(workspace) = &self.workspace {
            headers.insert(
                HeaderName::from_static("x-dashscope-workspace"),
                workspace.clone(),
            );
        }
        let url = if mode.multimodal {
            &self.multimodal_url
        } else {
            &self.text_url
        };
        let name = self.transport.name();
        let response = self
            .transport
            .post(url.clone(), headers, body, |status, headers, body| {
                errors::from_response(name, status, headers, body, &self.secrets())
            })
            .await?;
        Ok((response, sent))
    }

    pub(crate) async fn chat(
        &self,
        request: &ChatRequest,
        model: &str,
        multimodal: bool,
    ) -> Result<ChatResponse> {
        let mode = BodyMode {
            stream: false,
            multimodal,
        };
        // Pinned where it is made: the timeout's wrappers would copy the call's large
        // future on the way to its first poll.
        let call = std::pin::pin!(async {
            let (response, _) = self.send(request, model, mode).await?;
            let body = self.transport.read_body(response).await?;
            parse_response(self.transport.name(), &body, model, &self.secrets())
        });
        self.transport.within_total(call).await
    }

    pub(crate) async fn stream(
        &self,
        request: &ChatRequest,
        model: &str,
        multimodal: bool,
    ) -> Result<ChatStream> {
        let mode = BodyMode {
            stream: true,
            multimodal,
        };
        let (response, sent) = self.send(request, model, mode).await?;
        self.transport.expect_event_stream(&response)?;
        let translator = NativeTranslator::new(
            self.transport.name().to_owned(),
            vec![self.key.clone()],
            model.to_owned(),
            sent.cumulative,
            request.n.map_or(1, |n| usize::try_from(n).unwrap_or(1)),
        );
        Ok(sse_chat_stream(
            self.transport.body_stream(response),
            translator,
        ))
    }
}
