//! `router.shared_state`: deployments' health shared between gateway replicas, and the
//! stable identity of each deployment across replicas.

use std::{fmt, sync::Arc};

use llm_balance::SharedState;
use llm_core::{ConfigError, Result, SecretString};
use secrecy::ExposeSecret as _;

use crate::{ModelConfig, RouterSettings, SecretSetting, config::env::EnvSource};

/// The environment variable of `router.shared_state`.
pub(crate) const REDIS_URL_VAR: &str = "LLM_FACTORY_REDIS_URL";
/// The environment variable of `router.shared_state_secret`.
pub(crate) const SECRET_VAR: &str = "LLM_FACTORY_SHARED_STATE_SECRET";

/// The HMAC key used when neither `shared_state_secret` nor a Redis password is set.
const UNSET_SECRET: &[u8] = b"llm-factory shared state: no secret configured";

/// The key of the keyed hash that identifies credentials in shared state.
#[derive(Clone)]
pub(crate) struct FingerprintKey(Arc<[u8]>);

impl fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FingerprintKey([REDACTED])")
    }
}

/// The shared state a configuration asks for.
pub(crate) struct Shared {
    pub(crate) state: Arc<dyn SharedState>,
    pub(crate) fingerprint_key: FingerprintKey,
}

/// Take `router.shared_state` (and its secret) from the environment when the
/// configuration does not set them.
pub(crate) fn from_env(router: &mut RouterSettings, env: &EnvSource) {
    let value = |name| {
        env.raw(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .map(SecretSetting::new)
    };
    if router.shared_state.is_none() {
        router.shared_state = value(REDIS_URL_VAR);
    }
    if router.shared_state_secret.is_none() {
        router.shared_state_secret = value(SECRET_VAR);
    }
}

/// The shared state `router` configures, if any.
pub(crate) fn state(router: &RouterSettings) -> Result<Option<Shared>> {
    let Some(url) = &router.shared_state else {
        return Ok(None);
    };
    let (state, password) = backend(&url.0)?;
    let key: Vec<u8> = match (&router.shared_state_secret, password) {
        (Some(secret), _) => secret.0.expose_secret().as_bytes().to_vec(),
        (None, Some(password)) => password.expose_secret().as_bytes().to_vec(),
        (None, None) => {
            tracing::warn!(
                "router.shared_state: no shared_state_secret and no password in the Redis URL; \
                 credentials are identified in Redis by a hash keyed with a built-in constant. \
                 Set router.shared_state_secret (or {SECRET_VAR}) to the same value on every replica"
            );
            UNSET_SECRET.to_vec()
        }
    };
    Ok(Some(Shared {
        state,
        fingerprint_key: FingerprintKey(key.into()),
    }))
}

/// The backend for `url`, and the password in the URL.
#[cfg(feature = "redis")]
fn backend(url: &SecretString) -> Result<(Arc<dyn SharedState>, Option<SecretString>)> {
    use llm_balance::{RedisState, RedisStateConfig, redis_url_password};
    let state = RedisState::new(RedisStateConfig::new(url.clone())).map_err(|error| {
        llm_core::Error::from(
            ConfigError::new(error.to_string()).at_field("router.shared_state".to_owned()),
        )
    })?;
    let password = redis_url_password(url.expose_secret()).map(SecretString::from);
    Ok((Arc::new(state), password))
}

#[cfg(not(feature = "redis"))]
fn backend(_url: &SecretString) -> Result<(Arc<dyn SharedState>, Option<SecretString>)> {
    Err(ConfigError::new(
        "shared state through Redis needs llm-factory's `redis` feature, which this build lacks",
    )
    .at_field("router.shared_state".to_owned())
    .into())
}

/// A deployment's identity in shared state: provider and upstream model in clear (to read
/// Redis keys), then an HMAC-SHA-256 (keyed with `key`) over provider, endpoint, model,
/// region and the credential. The same on every replica configured alike; never the key,
/// nor a plain hash of it.
pub(crate) fn identity(
    key: &FingerprintKey,
    config: &ModelConfig,
    api_key: Option<&SecretString>,
    endpoint: Option<&str>,
    region: Option<&str>,
) -> String {
    use hmac::{KeyInit as _, Mac as _};
    let model = config.deployment.as_deref().unwrap_or(&config.model_name);
    let provider = config.provider.to_string();
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key.0) else {
        // HMAC takes keys of any length; this cannot happen.
        return format!("{provider}/{model}");
    };
    let secret = |s: Option<&SecretString>| s.map(|s| s.expose_secret().to_owned());
    let parts = [
        Some(provider.clone()),
        endpoint.map(str::to_owned),
        Some(model.to_owned()),
        region.map(str::to_owned),
        secret(api_key),
        config.aws_access_key_id.clone(),
        secret(config.aws_secret_access_key.as_ref()),
        config.aws_profile.clone(),
        config.project.clone(),
        config.location.clone(),
        config.credentials_file.clone(),
    ];
    for part in parts {
        // Length-prefixed, so no two different lists hash alike.
        let part = part.unwrap_or_default();
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    let digest = mac.finalize().into_bytes();
    let hex: String = digest
        .iter()
        .take(16)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("{provider}/{model}/{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_stable_keyed_and_never_show_the_key() {
        let key = FingerprintKey(Arc::from(&b"replica secret"[..]));
        let other_key = FingerprintKey(Arc::from(&b"another secret"[..]));
        let config = ModelConfig::new(crate::ProviderType::OpenAi, "gpt-4o", "sk-unused");
        let api_key = SecretString::from("sk-live-0123456789abcdef");
        let first = identity(&key, &config, Some(&api_key), Some("https://a"), None);
        assert_eq!(
            first,
            identity(&key, &config, Some(&api_key), Some("https://a"), None),
            "stable"
        );
        assert!(first.starts_with("openai/gpt-4o/"), "{first}");
        assert!(!first.contains("0123456789abcdef"), "{first}");
        let different = [
            identity(&other_key, &config, Some(&api_key), Some("https://a"), None),
            identity(&key, &config, None, Some("https://a"), None),
            identity(&key, &config, Some(&api_key), Some("https://b"), None),
            identity(
                &key,
                &config,
                Some(&api_key),
                Some("https://a"),
                Some("us-east-1"),
            ),
        ];
        for other in different {
            assert_ne!(first, other);
        }
    }
}
