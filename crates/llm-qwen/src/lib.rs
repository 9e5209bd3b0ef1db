//! Qwen on Alibaba Cloud DashScope for LLM Factory: **not implemented yet**; this crate
//! holds no code.
//!
//! It will hold `QwenProvider` for both DashScope APIs: the native
//! `/api/v1/services/aigc/text-generation/generation` API (its `data:` frames without a
//! space, cumulative or incremental output, `finish_reason: "null"`, `event:error` frames)
//! and the OpenAI-compatible mode, which reuses the client of `llm-openai`. Until then
//! `llm-factory` reports a Qwen configuration as not available in this build.
