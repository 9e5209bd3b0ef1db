//! Claude on AWS Bedrock for LLM Factory: **not implemented yet**; this crate holds no
//! code and no AWS dependency.
//!
//! It will hold `ClaudeBedrockProvider`, calling Converse and ConverseStream through
//! `aws-sdk-bedrockruntime` (SigV4 from the AWS credential chain or explicit keys, or a
//! Bedrock API key as bearer token), mapping OpenAI messages, tools, images and JSON mode
//! to Converse and its event-stream frames, usage and exceptions back. Until then
//! `llm-factory` reports a Claude configuration as not available in this build.
