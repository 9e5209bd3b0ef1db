//! The LLM Factory facade: **not implemented yet**; this crate holds no code.
//!
//! It will hold `LlmFactory`, `ModelConfig` and `ProviderType`: a factory built from one
//! or many configs, from `{P}_API_KEYS`-style environment variables and `.env` files, or
//! from YAML with `${VAR}` interpolation, balancing over the providers compiled in through
//! the Cargo features `openai`, `qwen`, `deepseek`, `claude-bedrock` and `gemini`, with a
//! blocking API behind `blocking`.
