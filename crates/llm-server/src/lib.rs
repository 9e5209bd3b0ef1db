//! The OpenAI-compatible gateway of LLM Factory: **not implemented yet**; this crate holds
//! no code and no binary.
//!
//! It will hold `router(factory) -> axum::Router` and the `llm-server` binary serving
//! `POST /v1/chat/completions` (JSON and SSE), `GET /v1/models`, `GET /v1/providers/status`,
//! health and Prometheus metrics, with OpenAI-style errors, gateway keys, body limits,
//! load shedding and graceful shutdown.
