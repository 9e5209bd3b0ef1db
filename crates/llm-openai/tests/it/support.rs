//! Fixtures in OpenAI's documented wire format, and provider builders.

pub(crate) use llm_core::testing::openai_format::*;

use std::time::Duration;

use llm_openai::{OpenAiConfig, OpenAiProvider, Timeouts};

pub(crate) const KEY: &str = "sk-test-PLANTED-SECRET-0123456789abcdef";

/// An OpenAI provider pointed at `base` (a mock server's URL, without `/v1`).
pub(crate) fn openai(base: &str) -> OpenAiProvider {
    openai_with(base, Timeouts::default())
}

pub(crate) fn openai_with(base: &str, timeouts: Timeouts) -> OpenAiProvider {
    OpenAiProvider::new(OpenAiConfig {
        base_url: format!("{base}/v1"),
        model: Some("gpt-4o".into()),
        timeouts,
        ..OpenAiConfig::new(KEY)
    })
    .unwrap()
}

pub(crate) fn short_timeouts() -> Timeouts {
    Timeouts {
        first_byte: Duration::from_millis(300),
        idle: Duration::from_millis(300),
        total: Duration::from_millis(600),
        ..Timeouts::default()
    }
}
