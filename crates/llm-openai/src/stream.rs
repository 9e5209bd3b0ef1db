//! OpenAI stream frames → [`ChatChunk`]s: a plain state machine, driven by the client over
//! the response body.
//!
//! Reference: <https://platform.openai.com/docs/api-reference/chat-streaming>. Frames are
//! `data: {chunk}` and end with `data: [DONE]`; `data: {"error": ...}` is a failure inside a
//! successful response. Azure sends chunks with empty `choices` carrying only content-filter
//! results, and an empty `id`/`model` on its first chunk.

use std::{borrow::Cow, pin::Pin, time::Duration};

use bytes::Bytes;
use futures_core::Stream;
use futures_util::{StreamExt, stream};
use llm_core::{
    ChatChunk, ChatStream, Error, Result, Role, SecretString, TimeoutPhase,
    sse::{Decoder, Event},
};

use crate::error::{self, ErrorEnvelope};

/// The per-stream translation state.
#[derive(Debug)]
pub(crate) struct ChunkTranslator {
    provider: Cow<'static, str>,
    secrets: Vec<SecretString>,
    /// The model to report when the upstream leaves it empty.
    model: String,
    /// Whether a chunk with choices was already passed on.
    started: bool,
    /// The id of the first real chunk, used where later chunks have none.
    id: String,
    /// `[DONE]` arrived: the stream is complete.
    done: bool,
}

impl ChunkTranslator {
    pub(crate) fn new(
        provider: Cow<'static, str>,
        secrets: Vec<SecretString>,
        model: String,
    ) -> Self {
        Self {
            provider,
            secrets,
            model,
            started: false,
            id: String::new(),
            done: false,
        }
    }

    /// Whether `[DONE]` arrived.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// The chunk an event carries for the caller: `None` for `[DONE]` (see
    /// [`Self::is_done`]) and for Azure's filter-results chunks; an error for an in-band
    /// error frame or an unparsable one.
    pub(crate) fn on_event(&mut self, event: &Event) -> Result<Option<ChatChunk>> {
        let data = event.data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(None);
        }
        // Only frames that mention "error" can be error frames; parse those twice at worst.
        if data.contains("\"error\"")
            && let Ok(envelope) = serde_json::from_str::<ErrorEnvelope>(data)
        {
            let secrets: Vec<&SecretString> = self.secrets.iter().collect();
            return Err(error::in_band(&self.provider, &envelope.error, &secrets));
        }
        let mut chunk: ChatChunk = serde_json::from_str(data).map_err(|e| {
            Error::protocol(
                self.provider.clone(),
                format!("a stream frame is not a chat.completion.chunk: {e}"),
                Some(Box::new(e)),
            )
        })?;
        if chunk.choices.is_empty() && chunk.usage.is_none() {
            return Ok(None);
        }
        if chunk.id.is_empty() {
            chunk.id.clone_from(&self.id);
        } else if self.id.is_empty() {
            self.id.clone_from(&chunk.id);
        }
        if chunk.model.is_empty() {
            chunk.model.clone_from(&self.model);
        }
        chunk.object = ChatChunk::OBJECT.to_owned();
        if !self.started && !chunk.choices.is_empty() {
            self.started = true;
            for choice in &mut chunk.choices {
                choice.delta.role.get_or_insert(Role::Assistant);
            }
        }
        Ok(Some(chunk))
    }
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

struct State {
    body: ByteStream,
    decoder: Decoder,
    translator: ChunkTranslator,
    finished: bool,
    idle: Duration,
}

/// Turn a streaming response body into a [`ChatStream`] that ends with `[DONE]`, or with
/// exactly one error: an in-band error frame, an unparsable frame, a transport failure, or a
/// body that ends before `[DONE]`.
pub(crate) fn chat_stream(
    body: ByteStream,
    translator: ChunkTranslator,
    idle: Duration,
) -> ChatStream {
    let state = State {
        body,
        decoder: Decoder::new(),
        translator,
        finished: false,
        idle,
    };
    Box::pin(stream::unfold(state, |mut state| async move {
        if state.finished {
            return None;
        }
        let item = next_item(&mut state).await;
        if !matches!(item, Some(Ok(_))) {
            state.finished = true;
        }
        item.map(|item| (item, state))
    }))
}

async fn next_item(state: &mut State) -> Option<Result<ChatChunk>> {
    let provider = state.translator.provider.clone();
    loop {
        match state.decoder.next_event() {
            Ok(Some(event)) => match state.translator.on_event(&event) {
                Ok(Some(chunk)) => return Some(Ok(chunk)),
                Ok(None) if state.translator.is_done() => return None,
                Ok(None) => continue,
                Err(err) => return Some(Err(err)),
            },
            Ok(None) => {}
            Err(err) => {
                return Some(Err(Error::protocol(
                    provider,
                    err.to_string(),
                    Some(Box::new(err)),
                )));
            }
        }
        match state.body.next().await {
            Some(Ok(bytes)) => state.decoder.feed(&bytes),
            Some(Err(err)) => {
                return Some(Err(error::transport(
                    &provider,
                    err,
                    TimeoutPhase::Idle,
                    state.idle,
                )));
            }
            None => {
                let detail = match state.decoder.finish() {
                    Ok(Some(_)) => "the stream was cut off in the middle of a frame",
                    _ => "the stream ended before [DONE]",
                };
                return Some(Err(Error::protocol(provider, detail, None)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use llm_core::{ErrorKind, FinishReason};

    use super::*;

    fn event(data: &str) -> Event {
        Event {
            data: data.to_owned(),
            ..Event::default()
        }
    }

    fn translator() -> ChunkTranslator {
        ChunkTranslator::new(
            Cow::Borrowed("azure-openai"),
            Vec::new(),
            "gpt-4o".to_owned(),
        )
    }

    #[test]
    fn azure_prompt_filter_chunk_is_skipped_and_ids_filled() {
        let mut t = translator();
        let first = r#"{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}]}"#;
        assert_eq!(t.on_event(&event(first)).unwrap(), None);
        assert!(!t.is_done());
        let Some(chunk) = t.on_event(&event(r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":5,"model":"","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null,"content_filter_results":{}}]}"#)).unwrap() else {
            panic!("expected a chunk");
        };
        assert_eq!(chunk.model, "gpt-4o");
        assert_eq!(
            chunk.choices[0].delta.role,
            Some(Role::Assistant),
            "role is added to the first chunk"
        );
        let Some(last) = t
            .on_event(&event(
                r#"{"id":"","choices":[{"index":0,"delta":{},"finish_reason":"content_filter"}]}"#,
            ))
            .unwrap()
        else {
            panic!("expected a chunk");
        };
        assert_eq!(last.id, "chatcmpl-1");
        assert_eq!(last.object, "chat.completion.chunk");
        assert_eq!(
            last.choices[0].finish_reason,
            Some(FinishReason::ContentFilter)
        );
        assert_eq!(last.choices[0].delta.role, None);
        assert_eq!(t.on_event(&event("[DONE]")).unwrap(), None);
        assert!(t.is_done());
    }

    #[test]
    fn content_mentioning_error_is_not_an_error() {
        let mut t = translator();
        let frame = r#"{"id":"c","choices":[{"index":0,"delta":{"content":"the \"error\" key"},"finish_reason":null}]}"#;
        assert!(t.on_event(&event(frame)).unwrap().is_some());
    }

    #[test]
    fn garbage_frames_are_protocol_errors() {
        let mut t = translator();
        let err = t.on_event(&event("{not json")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol);
        assert!(
            err.to_string()
                .starts_with("azure-openai sent an unparsable response"),
            "{err}"
        );
    }
}
