//! Claude: its crate `llm-claude-bedrock` is not implemented yet, so an entry naming it is a clear
//! configuration error (it will come with the `claude-bedrock` feature of llm-factory).

use llm_core::Result;

use super::{BuildContext, Builtin, Pool, config_error};
use crate::{ModelConfig, ProviderType};

pub(crate) static CLAUDE: Builtin = Builtin {
    kind: ProviderType::Claude,
    aliases: &["bedrock", "claude_bedrock", "claude-bedrock"],
    env_prefix: "CLAUDE",
    env_options: &[],
    // The AWS credential chain by default; keys are optional.
    needs_key: super::never,
    pool,
};

fn pool(config: &ModelConfig, _context: &BuildContext) -> Result<Box<dyn Pool>> {
    Err(config_error(
        "provider",
        format!(
            "provider `{}` is not available in this build yet: its crate `llm-claude-bedrock` is not implemented (it will come with the `claude-bedrock` feature of llm-factory)",
            config.provider
        ),
    ))
}
