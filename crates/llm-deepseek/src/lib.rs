//! DeepSeek for LLM Factory: **not implemented yet**; this crate holds no code.
//!
//! It will hold `DeepSeekProvider`, built on the OpenAI-compatible client of `llm-openai`,
//! adding what DeepSeek does differently: `reasoning_content` on messages and deltas (and
//! its replay rules in thinking-mode tool loops), cache-hit usage
//! (`prompt_cache_hit_tokens`), the `insufficient_system_resource` finish reason, the 402
//! insufficient-balance error and `: keep-alive` comments in streams. Until then
//! `llm-factory` reports a DeepSeek configuration as not available in this build.
