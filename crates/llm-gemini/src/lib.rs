//! Gemini for LLM Factory: **not implemented yet**; this crate holds no code.
//!
//! It will hold `GeminiProvider` for Google AI Studio (`x-goog-api-key`) and Vertex AI
//! (tokens from `google-cloud-auth`), mapping OpenAI messages, tools, images and JSON mode
//! to `generateContent` / `streamGenerateContent?alt=sse` and back, including thought
//! parts as `reasoning_content` and safety blocks as `content_filter`. Until then
//! `llm-factory` reports a Gemini configuration as not available in this build.
