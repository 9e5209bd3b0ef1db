//! The built-in providers, one module each: its names, environment prefix, options and the
//! builder of its deployments. A module is always compiled (so a configuration naming a
//! provider whose feature is off gets a clear error); only its `pool` needs the feature.
//!
//! Adding a provider: a module here with a [`Builtin`] and a `pool` function, one line in
//! [`BUILTINS`], and a Cargo feature (see `docs/providers.md`).

mod claude;
mod deepseek;
mod gemini;
mod mock;
mod openai;
mod qwen;

use std::{sync::Arc, time::Duration};

use llm_core::{ChatProvider, ConfigError, Error, Result};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{ModelConfig, ProviderType, registry::ProviderSpec};

/// One built-in provider.
pub(crate) struct Builtin {
    /// The [`ProviderType`] it serves.
    pub(crate) kind: ProviderType,
    /// Other names a configuration may use (case-insensitive); the first name is
    /// `kind.as_str()`.
    pub(crate) aliases: &'static [&'static str],
    /// The environment prefix (`QWEN` for `QWEN_API_KEYS`, …); empty when the provider is
    /// not configured from the environment.
    pub(crate) env_prefix: &'static str,
    /// Environment suffixes that set an option: `("API_MODE", "api")` reads
    /// `QWEN_API_MODE` into `options.api`.
    pub(crate) env_options: &'static [(&'static str, &'static str)],
    /// Whether an entry needs an API key.
    pub(crate) needs_key: fn(&ModelConfig) -> bool,
    /// Prepares what the deployments of one entry share (a connection pool).
    pub(crate) pool: fn(&ModelConfig, &BuildContext) -> Result<Box<dyn Pool>>,
}

/// What every provider is built with besides its own entry.
#[derive(Debug, Clone)]
pub(crate) struct BuildContext {
    /// The largest non-streaming upstream answer read (`server.max_upstream_body_bytes`).
    pub(crate) max_upstream_body_bytes: usize,
    /// Idle connections kept per host by each entry's HTTP client
    /// (`server.max_idle_upstream_connections`).
    pub(crate) max_idle_upstream_connections: usize,
    /// The key of the keyed hash that identifies credentials in shared state; `None`
    /// when state is not shared.
    pub(crate) fingerprint_key: Option<crate::shared::FingerprintKey>,
}

impl Default for BuildContext {
    fn default() -> Self {
        Self {
            max_upstream_body_bytes: 32 * 1024 * 1024,
            max_idle_upstream_connections: 64,
            fingerprint_key: None,
        }
    }
}

/// What the deployments of one entry share; builds one deployment per key (and base).
pub(crate) trait Pool: Send + Sync {
    /// The provider for one key and base of the entry, and where it sends requests.
    fn build(&self, spec: ProviderSpec<'_>) -> Result<Built>;
}

/// One built deployment's provider.
pub(crate) struct Built {
    pub(crate) provider: Arc<dyn ChatProvider>,
    /// Base URL, region or project, for status and `check` (never a key).
    pub(crate) endpoint: Option<String>,
}

/// Every built-in provider, in the order the environment is read.
pub(crate) static BUILTINS: &[&Builtin] = &[
    &openai::OPENAI,
    &openai::AZURE,
    &qwen::QWEN,
    &deepseek::DEEPSEEK,
    &claude::CLAUDE,
    &gemini::GEMINI,
    &mock::MOCK,
];

/// The built-in provider of `kind`, if it is one.
pub(crate) fn builtin(kind: &ProviderType) -> Option<&'static Builtin> {
    BUILTINS.iter().copied().find(|b| &b.kind == kind)
}

/// The built-in provider a configuration name (or alias) means, case-insensitively.
pub(crate) fn by_name(name: &str) -> Option<&'static Builtin> {
    let lower = name.trim().to_ascii_lowercase();
    BUILTINS
        .iter()
        .copied()
        .find(|b| b.kind.as_str() == lower || b.aliases.contains(&lower.as_str()))
}

/// Every provider needs a key.
pub(crate) fn always(_: &ModelConfig) -> bool {
    true
}

/// No provider needs a key.
pub(crate) fn never(_: &ModelConfig) -> bool {
    false
}

/// The connect timeout of every built-in provider's HTTP client. First-token, idle and
/// total timeouts are the router's (per deployment): providers get none of their own.
#[cfg_attr(
    not(any(
        feature = "openai",
        feature = "qwen",
        feature = "deepseek",
        feature = "claude-bedrock",
        feature = "gemini"
    )),
    expect(dead_code, reason = "used by the HTTP providers' modules")
)]
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn config_error(field: &str, message: impl Into<String>) -> Error {
    ConfigError::new(message).at_field(field.to_owned()).into()
}

/// The error for a provider whose Cargo feature is off.
#[cfg_attr(
    all(
        feature = "openai",
        feature = "qwen",
        feature = "deepseek",
        feature = "claude-bedrock",
        feature = "gemini"
    ),
    expect(dead_code, reason = "used only when a provider feature is off")
)]
pub(crate) fn not_compiled(config: &ModelConfig, feature: &str) -> Error {
    config_error(
        "provider",
        format!(
            "provider `{}` is not compiled in: enable the `{feature}` feature of llm-factory",
            config.provider
        ),
    )
}

/// The entry's key, or the error saying it is missing.
#[cfg_attr(
    not(any(
        feature = "openai",
        feature = "qwen",
        feature = "deepseek",
        feature = "gemini"
    )),
    expect(dead_code, reason = "used by the HTTP providers' modules")
)]
pub(crate) fn key<'a>(spec: &ProviderSpec<'a>) -> Result<&'a llm_core::SecretString> {
    spec.api_key
        .ok_or_else(|| config_error("api_key", "api_key (or api_keys) is missing"))
}

/// The entry's `options`, as the provider's own options type (unknown options refused).
pub(crate) fn options<T: DeserializeOwned + Default>(config: &ModelConfig) -> Result<T> {
    if config.options.is_empty() {
        return Ok(T::default());
    }
    let map: serde_json::Map<String, Value> = config
        .options
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "options".to_owned()
        } else {
            format!("options.{path}")
        };
        config_error(&field, e.into_inner().to_string())
    })
}

/// Options of a provider that has none: any option is an error.
#[cfg_attr(
    not(any(
        feature = "openai",
        feature = "claude-bedrock",
        feature = "gemini",
        test
    )),
    expect(dead_code, reason = "used by the openai, claude and gemini modules")
)]
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoOptions {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_prefixes_are_unique_and_match_env_prefixes() {
        let prefixes: Vec<&str> = BUILTINS
            .iter()
            .map(|b| b.env_prefix)
            .filter(|p| !p.is_empty())
            .collect();
        assert_eq!(prefixes, crate::ENV_PREFIXES);
        for builtin in BUILTINS {
            assert_eq!(
                by_name(builtin.kind.as_str()).map(|b| &b.kind),
                Some(&builtin.kind)
            );
            for alias in builtin.aliases {
                assert_eq!(
                    by_name(alias).map(|b| &b.kind),
                    Some(&builtin.kind),
                    "{alias}"
                );
            }
        }
        assert!(by_name("nope").is_none());
        assert_eq!(
            by_name(" DashScope ").map(|b| &b.kind),
            Some(&ProviderType::Qwen)
        );
    }

    #[test]
    fn options_are_typed_and_unknown_ones_refused() {
        let config = ModelConfig {
            options: [("colour".to_owned(), Value::from("red"))]
                .into_iter()
                .collect(),
            ..ModelConfig::default()
        };
        let err = options::<NoOptions>(&config).unwrap_err();
        assert!(err.to_string().contains("unknown field `colour`"), "{err}");
    }
}
