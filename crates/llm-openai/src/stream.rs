//! OpenAI stream frames → [`ChatChunk`]s: a plain state machine, driven by the client over
//! the response body.
//!
//! Reference: <https://platform.openai.com/docs/api-reference/chat-streaming>. Frames are
//! `data: {chunk}` and end with `data: [DONE]`; `data: {"error": ...}` is a failure inside a
//! successful response. Azure sends chunks with empty `choices` carrying only content-filter
//! results, and an empty `id`/`model` on its first chunk.

use std::{collections::VecDeque, sync::Arc};

use llm_core::{
    ChatChunk, Error, Result, Role,
    kit::{Flow, StreamTranslator},
    sse::Event,
};

use crate::{
    Endpoint,
    error::{self, ErrorEnvelope},
    head::Head,
};

/// The per-stream translation state.
#[derive(Debug)]
pub(crate) struct ChunkTranslator {
    endpoint: Arc<dyn Endpoint>,
    /// The model to report when the upstream leaves it empty.
    model: String,
    /// Whether a chunk with choices was already passed on.
    started: bool,
    /// The id of the first real chunk, used where later chunks have none.
    id: String,
    /// The members every frame repeats before `choices`, read once.
    head: Head,
}

impl ChunkTranslator {
    pub(crate) fn new(endpoint: Arc<dyn Endpoint>, model: String) -> Self {
        Self {
            endpoint,
            model,
            started: false,
            id: String::new(),
            head: Head::default(),
        }
    }

    /// Adds the chunk an event carries for the caller to `out`: nothing for Azure's
    /// filter-results chunks; an error for an in-band error frame or an unparsable one.
    fn translate(&mut self, data: &str, out: &mut VecDeque<ChatChunk>) -> Result<()> {
        // An error frame has a top-level `error` key. Chunks are parsed first, so that the
        // common frame is read once; `{"error": ...}` parses as a chunk with `error` in its
        // extra fields (or not at all) and is then read as the error it is.
        // Parsed where it is queued: a chunk is a few hundred bytes, and every move of it is
        // a copy on the path of each streamed token.
        out.push_back(ChatChunk::default());
        let Some(chunk) = out.back_mut() else {
            return Ok(());
        };
        let parsed = if self.head.read(data, chunk) {
            Ok(())
        } else {
            let mut reader = serde_json::Deserializer::from_str(data);
            let parsed = serde::Deserialize::deserialize_in_place(&mut reader, chunk)
                .and_then(|()| reader.end());
            if parsed.is_ok() && !chunk.extra.contains_key("error") {
                self.head.learn(data);
            }
            parsed
        };
        if parsed
            .as_ref()
            .map_or(true, |()| chunk.extra.contains_key("error"))
            && let Ok(envelope) = serde_json::from_str::<ErrorEnvelope>(data)
        {
            out.pop_back();
            // The credentials to scrub from the message, looked up only for an error frame.
            let secrets = self.endpoint.secrets();
            return Err(error::in_band(&*self.endpoint, &envelope.error, &secrets));
        }
        if let Err(e) = parsed {
            out.pop_back();
            return Err(Error::protocol(
                self.endpoint.name().to_owned(),
                format!("a stream frame is not a chat.completion.chunk: {e}"),
                Some(Box::new(e)),
            ));
        }
        if chunk.choices.is_empty() && chunk.usage.is_none() {
            out.pop_back();
            return Ok(());
        }
        if chunk.id.is_empty() {
            chunk.id.clone_from(&self.id);
        } else if self.id.is_empty() {
            self.id.clone_from(&chunk.id);
        }
        if chunk.model.is_empty() {
            chunk.model.clone_from(&self.model);
        }
        if chunk.object != ChatChunk::OBJECT {
            ChatChunk::OBJECT.clone_into(&mut chunk.object);
        }
        if !self.started && !chunk.choices.is_empty() {
            self.started = true;
            for choice in &mut chunk.choices {
                choice.delta.role.get_or_insert(Role::Assistant);
            }
        }
        self.endpoint.fix_chunk(chunk);
        Ok(())
    }
}

impl StreamTranslator for ChunkTranslator {
    fn provider(&self) -> &str {
        self.endpoint.name()
    }

    fn on_event(&mut self, event: &Event, out: &mut VecDeque<ChatChunk>) -> Result<Flow> {
        // A frame is an object, or `[DONE]`: `trim` only when the ends say there is
        // something to trim (it decodes characters from both ends, on every token).
        let data = match event.data.as_bytes() {
            [b'{' | b'[', .., b'}' | b']'] => event.data.as_str(),
            _ => event.data.trim(),
        };
        if data == "[DONE]" {
            return Ok(Flow::Done);
        }
        self.translate(data, out)?;
        Ok(Flow::Continue)
    }

    fn on_end(&mut self, _out: &mut VecDeque<ChatChunk>) -> Result<()> {
        Err(Error::protocol(
            self.endpoint.name().to_owned(),
            "the stream ended before [DONE]",
            None,
        ))
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
        let config = crate::AzureOpenAiConfig::with_key("https://x.openai.azure.com", "k-0000");
        ChunkTranslator::new(
            Arc::new(crate::endpoint::AzureEndpoint::new(&config).unwrap()),
            "gpt-4o".to_owned(),
        )
    }

    fn on(t: &mut ChunkTranslator, e: &Event) -> Result<Option<ChatChunk>> {
        let mut out = VecDeque::new();
        match t.on_event(e, &mut out)? {
            Flow::Done => Ok(None),
            Flow::Continue => Ok(out.pop_front()),
        }
    }

    #[test]
    fn azure_prompt_filter_chunk_is_skipped_and_ids_filled() {
        let mut t = translator();
        let first = r#"{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}]}"#;
        assert_eq!(on(&mut t, &event(first)).unwrap(), None);
        let Some(chunk) = on(&mut t, &event(r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":5,"model":"","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null,"content_filter_results":{}}]}"#)).unwrap() else {
            panic!("expected a chunk");
        };
        assert_eq!(chunk.model, "gpt-4o");
        assert_eq!(
            chunk.choices[0].delta.role,
            Some(Role::Assistant),
            "role is added to the first chunk"
        );
        let Some(last) = on(
            &mut t,
            &event(
                r#"{"id":"","choices":[{"index":0,"delta":{},"finish_reason":"content_filter"}]}"#,
            ),
        )
        .unwrap() else {
            panic!("expected a chunk");
        };
        assert_eq!(last.id, "chatcmpl-1");
        assert_eq!(last.object, "chat.completion.chunk");
        assert_eq!(
            last.choices[0].finish_reason,
            Some(FinishReason::ContentFilter)
        );
        assert_eq!(last.choices[0].delta.role, None);
        let mut out = VecDeque::new();
        assert_eq!(t.on_event(&event("[DONE]"), &mut out).unwrap(), Flow::Done);
    }

    #[test]
    fn content_mentioning_error_is_not_an_error() {
        let mut t = translator();
        let frame = r#"{"id":"c","choices":[{"index":0,"delta":{"content":"the \"error\" key"},"finish_reason":null}]}"#;
        assert!(on(&mut t, &event(frame)).unwrap().is_some());
    }

    #[test]
    fn error_frames_are_errors_whether_or_not_they_parse_as_chunks() {
        for frame in [
            r#"{"error":{"message":"overloaded","type":"server_error"}}"#,
            // Fields a chunk cannot hold beside the error: still the error, not a parse failure.
            r#"{"error":{"message":"overloaded","type":"server_error"},"choices":"none","created":-1}"#,
        ] {
            let err = on(&mut translator(), &event(frame)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::UpstreamServer, "{frame}");
            assert!(err.to_string().contains("overloaded"), "{err}");
        }
    }

    #[test]
    fn garbage_frames_are_protocol_errors() {
        let mut t = translator();
        let err = on(&mut t, &event("{not json")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol);
        assert!(
            err.to_string()
                .starts_with("azure-openai sent an unparsable response"),
            "{err}"
        );
    }
}
