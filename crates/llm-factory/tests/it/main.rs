//! llm-factory tests: the original specification's own configurations, every configuration
//! error class, and the full path factory → router → provider crate → wiremock.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod builtins;
mod config_errors;
mod custom;
mod full_path;
mod original_spec;
mod shared_state;
mod support;
