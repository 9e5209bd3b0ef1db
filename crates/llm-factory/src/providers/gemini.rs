//! Gemini: its crate `llm-gemini` is not implemented yet, so an entry naming it is a clear
//! configuration error (it will come with the `gemini` feature of llm-factory).

use llm_core::Result;

use super::{BuildContext, Builtin, Pool, config_error};
use crate::{ModelConfig, ProviderType};

pub(crate) static GEMINI: Builtin = Builtin {
    kind: ProviderType::Gemini,
    aliases: &["vertex"],
    env_prefix: "GEMINI",
    env_options: &[],
    // Vertex AI (a project) authenticates with Google credentials, not a key.
    needs_key: |config| config.project.is_none(),
    pool,
};

fn pool(config: &ModelConfig, _context: &BuildContext) -> Result<Box<dyn Pool>> {
    Err(config_error(
        "provider",
        format!(
            "provider `{}` is not available in this build yet: its crate `llm-gemini` is not implemented (it will come with the `gemini` feature of llm-factory)",
            config.provider
        ),
    ))
}
