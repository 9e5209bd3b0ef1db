//! Claude on AWS Bedrock (`llm-claude-bedrock`, feature `claude-bedrock`): Converse and
//! ConverseStream. One deployment per region (`region` / `regions`) and per Bedrock API
//! key (`api_key` / `api_keys`, sent as a bearer token). Without API keys an entry signs
//! with static keys (`aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`:
//! one account per entry, so several entries pool several accounts) or, without those,
//! the standard AWS credential chain (`aws_profile` picks a profile; the chain also reads
//! `AWS_BEARER_TOKEN_BEDROCK`). `deployment` is the Bedrock model or inference-profile id
//! when it differs from `model_name`; `api_base` overrides the endpoint.

use super::Builtin;
use crate::ProviderType;

/// Claude on AWS Bedrock.
pub(crate) static CLAUDE: Builtin = Builtin {
    kind: ProviderType::Claude,
    aliases: &["bedrock", "claude_bedrock", "claude-bedrock"],
    env_prefix: "CLAUDE",
    env_options: &[],
    // The AWS credential chain by default; keys are optional.
    needs_key: super::never,
    pool: imp::pool,
};

#[cfg(feature = "claude-bedrock")]
mod imp {
    use std::sync::Arc;

    use llm_claude_bedrock::{
        BedrockAuth, ClaudeBedrockConfig, ClaudeBedrockProvider, Limits, Timeouts,
    };
    use llm_core::Result;

    use crate::{
        ModelConfig,
        providers::{BuildContext, Built, CONNECT_TIMEOUT, NoOptions, Pool, config_error, options},
        registry::ProviderSpec,
    };

    struct ClaudePool {
        timeouts: Timeouts,
        limits: Limits,
    }

    pub(crate) fn pool(config: &ModelConfig, context: &BuildContext) -> Result<Box<dyn Pool>> {
        options::<NoOptions>(config)?;
        let has_keys = config.api_key.is_some() || !config.api_keys.is_empty();
        let has_static = config.aws_access_key_id.is_some()
            || config.aws_secret_access_key.is_some()
            || config.aws_session_token.is_some();
        if has_keys && (has_static || config.aws_profile.is_some()) {
            return Err(config_error(
                "api_key",
                "an entry authenticates one way: Bedrock API keys (api_key / api_keys), or AWS keys (aws_access_key_id …), or the credential chain (aws_profile); use one entry per way",
            ));
        }
        if has_static {
            if config.aws_access_key_id.is_none() {
                return Err(config_error(
                    "aws_access_key_id",
                    "aws_secret_access_key is set but aws_access_key_id is not",
                ));
            }
            if config.aws_secret_access_key.is_none() {
                return Err(config_error(
                    "aws_secret_access_key",
                    "aws_access_key_id is set but aws_secret_access_key is not",
                ));
            }
            if config.aws_profile.is_some() {
                return Err(config_error(
                    "aws_profile",
                    "aws_profile selects credentials from the chain; it cannot go with aws_access_key_id",
                ));
            }
        }
        if (has_keys || has_static) && config.region.is_none() && config.regions.is_empty() {
            return Err(config_error(
                "region",
                "a Claude entry with explicit keys needs region (or regions)",
            ));
        }
        Ok(Box::new(ClaudePool {
            timeouts: Timeouts::connect_only(CONNECT_TIMEOUT),
            limits: Limits {
                max_body_bytes: context.max_upstream_body_bytes,
                ..Limits::default()
            },
        }))
    }

    impl Pool for ClaudePool {
        fn build(&self, spec: ProviderSpec<'_>) -> Result<Built> {
            let config = spec.config;
            let auth = match (spec.api_key, &config.aws_access_key_id) {
                (Some(key), _) => BedrockAuth::ApiKey(key.clone()),
                (None, Some(id)) => BedrockAuth::StaticKeys {
                    access_key_id: id.clone(),
                    secret_access_key: config.aws_secret_access_key.clone().ok_or_else(|| {
                        config_error("aws_secret_access_key", "aws_secret_access_key is missing")
                    })?,
                    session_token: config.aws_session_token.clone(),
                },
                (None, None) => BedrockAuth::DefaultChain {
                    profile: config.aws_profile.clone(),
                },
            };
            let claude = ClaudeBedrockConfig {
                region: spec.region.map(str::to_owned),
                base_url: spec.api_base.map(str::to_owned),
                model: Some(
                    config
                        .deployment
                        .clone()
                        .unwrap_or_else(|| config.model_name.clone()),
                ),
                timeouts: self.timeouts,
                limits: self.limits,
                ..ClaudeBedrockConfig::new(auth)
            };
            let shown = match (claude.endpoint(), spec.region) {
                (Some(endpoint), Some(region)) if spec.api_base.is_some() => {
                    format!("{endpoint} (region {region})")
                }
                (Some(endpoint), _) => endpoint,
                (None, _) => "bedrock-runtime (region from the AWS credential chain)".to_owned(),
            };
            Ok(Built {
                provider: Arc::new(ClaudeBedrockProvider::new(claude)?),
                endpoint: Some(shown),
            })
        }
    }
}

#[cfg(not(feature = "claude-bedrock"))]
mod imp {
    use llm_core::Result;

    use crate::{
        ModelConfig,
        providers::{BuildContext, Pool, not_compiled},
    };

    pub(crate) fn pool(config: &ModelConfig, _context: &BuildContext) -> Result<Box<dyn Pool>> {
        Err(not_compiled(config, "claude-bedrock"))
    }
}
