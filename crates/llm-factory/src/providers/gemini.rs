//! Gemini (`llm-gemini`, feature `gemini`): AI Studio with API keys, or Vertex AI when the
//! entry names a `project` (with `location`, default `us-central1`, and `credentials_file`,
//! a service-account key; Application Default Credentials without one). `api_version`
//! picks the API version (`v1beta` / `v1` on AI Studio, `v1` on Vertex AI); `api_base`
//! overrides the host.

use super::Builtin;
use crate::ProviderType;

/// Gemini.
pub(crate) static GEMINI: Builtin = Builtin {
    kind: ProviderType::Gemini,
    aliases: &["vertex", "google"],
    env_prefix: "GEMINI",
    env_options: &[],
    // Vertex AI (a project) authenticates with Google credentials, not a key.
    needs_key: |config| config.project.is_none(),
    pool: imp::pool,
};

#[cfg(feature = "gemini")]
mod imp {
    use std::sync::Arc;

    use llm_core::Result;
    use llm_gemini::{GeminiConfig, GeminiProvider, Limits, Timeouts, VertexCredentials};

    use crate::{
        ModelConfig,
        providers::{
            BuildContext, Built, CONNECT_TIMEOUT, NoOptions, Pool, config_error, key, options,
        },
        registry::ProviderSpec,
    };

    struct GeminiPool {
        http: llm_http::HttpClient,
        timeouts: Timeouts,
        limits: Limits,
    }

    pub(crate) fn pool(config: &ModelConfig, context: &BuildContext) -> Result<Box<dyn Pool>> {
        options::<NoOptions>(config)?;
        if config.project.is_none()
            && (config.location.is_some() || config.credentials_file.is_some())
        {
            return Err(config_error(
                "project",
                "a Vertex AI entry (location or credentials_file given) needs project",
            ));
        }
        let timeouts = Timeouts::connect_only(CONNECT_TIMEOUT);
        Ok(Box::new(GeminiPool {
            http: llm_http::http_client_with(&timeouts, context.max_idle_upstream_connections)?,
            timeouts,
            limits: Limits {
                max_body_bytes: context.max_upstream_body_bytes,
                ..Limits::default()
            },
        }))
    }

    impl Pool for GeminiPool {
        fn build(&self, spec: ProviderSpec<'_>) -> Result<Built> {
            let config = spec.config;
            let mut gemini = match &config.project {
                Some(project) => GeminiConfig::vertex(
                    project.clone(),
                    config
                        .location
                        .clone()
                        .unwrap_or_else(|| "us-central1".to_owned()),
                    config
                        .credentials_file
                        .as_ref()
                        .map_or(VertexCredentials::ApplicationDefault, |file| {
                            VertexCredentials::ServiceAccountFile(file.into())
                        }),
                ),
                None => {
                    let mut studio = GeminiConfig::api_key(String::new());
                    studio.auth = llm_gemini::GeminiAuth::ApiKey(key(&spec)?.clone());
                    studio
                }
            };
            gemini.base_url = spec.api_base.map(str::to_owned);
            gemini.api_version.clone_from(&config.api_version);
            gemini.model = Some(
                config
                    .deployment
                    .clone()
                    .unwrap_or_else(|| config.model_name.clone()),
            );
            gemini.timeouts = self.timeouts;
            gemini.limits = self.limits;
            let shown = match &config.project {
                Some(project) => format!(
                    "{} (Vertex AI, project {project}, location {})",
                    gemini.base(),
                    config.location.as_deref().unwrap_or("us-central1")
                ),
                None => format!(
                    "{} (AI Studio, {})",
                    gemini.base(),
                    gemini.api_version.as_deref().unwrap_or("v1beta")
                ),
            };
            Ok(Built {
                provider: Arc::new(GeminiProvider::with_http_client(gemini, self.http.clone())?),
                endpoint: Some(shown),
            })
        }
    }
}

#[cfg(not(feature = "gemini"))]
mod imp {
    use llm_core::Result;

    use crate::{
        ModelConfig,
        providers::{BuildContext, Pool, not_compiled},
    };

    pub(crate) fn pool(config: &ModelConfig, _context: &BuildContext) -> Result<Box<dyn Pool>> {
        Err(not_compiled(config, "gemini"))
    }
}
