//! `{P}_API_KEYS`-style environment variables, from the process and `.env` files.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use llm_core::{ConfigError, Result, SecretString};

use super::{ModelConfig, ProviderType};
use crate::providers;

/// Where variables come from: the process environment (or an explicit map standing in for
/// it) over the variables of an optional env file.
#[derive(Debug, Default)]
pub(crate) struct EnvSource {
    file: Option<PathBuf>,
    vars: BTreeMap<String, String>,
    /// Variables used instead of the process environment.
    overrides: Option<BTreeMap<String, String>>,
}

/// Read a `.env` file into a map, without changing the process environment.
///
/// # Errors
///
/// [`ErrorKind::Configuration`](llm_core::ErrorKind) naming the file and line of a
/// malformed entry, or saying the file cannot be read.
pub fn load_env(path: impl AsRef<Path>) -> Result<BTreeMap<String, String>> {
    let path = path.as_ref();
    let iter = dotenvy::from_path_iter(path).map_err(|e| {
        ConfigError::new(format!("cannot read the env file: {e}")).in_file(path, None)
    })?;
    let mut vars = BTreeMap::new();
    for item in iter {
        let (name, value) = item.map_err(|e| {
            let line = matches!(e, dotenvy::Error::LineParse(..))
                .then(|| first_bad_line(path))
                .flatten();
            ConfigError::new(format!("malformed entry: {e}")).in_file(path, line)
        })?;
        vars.insert(name, value);
    }
    Ok(vars)
}

/// dotenvy reports the offending line's text but not its number, so the line is found by
/// parsing the file again line by line (only on error).
fn first_bad_line(path: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .enumerate()
        .find(|(_, line)| {
            let line = line.trim();
            !line.is_empty()
                && !line.starts_with('#')
                && dotenvy::from_read_iter(line.as_bytes()).any(|r| r.is_err())
        })
        .map(|(i, _)| i + 1)
}

impl EnvSource {
    /// The process environment (or `overrides`) over the variables of `file`: as with
    /// `dotenvy`, a `.env` file never overrides a real variable.
    pub(crate) fn new(
        file: Option<&Path>,
        overrides: Option<BTreeMap<String, String>>,
    ) -> Result<Self> {
        let vars = match file {
            Some(path) => load_env(path)?,
            None => BTreeMap::new(),
        };
        Ok(Self {
            file: file.map(Path::to_path_buf),
            vars,
            overrides,
        })
    }

    #[expect(
        clippy::disallowed_methods,
        reason = "the config module is the one place that reads the environment"
    )]
    fn get(&self, name: &str) -> Option<(String, bool)> {
        let real = match &self.overrides {
            Some(overrides) => overrides.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        if let Some(value) = real {
            return Some((value, false));
        }
        self.vars.get(name).map(|value| (value.clone(), true))
    }

    /// The value of `name`: the process environment first, then the file.
    pub(crate) fn raw(&self, name: &str) -> Option<String> {
        self.get(name).map(|(value, _)| value)
    }

    /// The non-empty value of `name`, and where it came from.
    fn value(&self, name: &str) -> Option<(String, Option<&Path>)> {
        let (value, from_file) = self.get(name)?;
        let value = value.trim().to_owned();
        let origin = if from_file {
            self.file.as_deref()
        } else {
            None
        };
        (!value.is_empty()).then_some((value, origin))
    }

    fn error(&self, name: &str, message: String, origin: Option<&Path>) -> ConfigError {
        let error = ConfigError::new(message).at_field(name.to_owned());
        match origin.or(self
            .file
            .as_deref()
            .filter(|_| self.vars.contains_key(name)))
        {
            Some(path) => error.in_file(path, None),
            None => error,
        }
    }
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|item| item.trim().trim_matches('"').trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect()
}

/// The variable prefixes of the built-in providers (`OPENAI_API_KEYS`, ...), in the order
/// they are read.
pub const ENV_PREFIXES: [&str; 6] = [
    "OPENAI",
    "AZURE_OPENAI",
    "QWEN",
    "DEEPSEEK",
    "CLAUDE",
    "GEMINI",
];

/// The provider prefixes read from the environment, and their types.
fn prefixes(registered: &[String]) -> Vec<(String, ProviderType)> {
    let mut prefixes: Vec<(String, ProviderType)> = providers::BUILTINS
        .iter()
        .filter(|builtin| !builtin.env_prefix.is_empty())
        .map(|builtin| (builtin.env_prefix.to_owned(), builtin.kind.clone()))
        .collect();
    for name in registered {
        let prefix: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        prefixes.push((prefix, ProviderType::Custom(name.clone())));
    }
    prefixes
}

/// Model configs from `{P}_API_KEYS` / `{P}_API_KEY`, `{P}_API_BASES` / `{P}_API_BASE`,
/// `{P}_MODEL`, `{P}_API_VERSION` (and for Claude `{P}_REGION(S)`, `{P}_AWS_ACCESS_KEY_ID`,
/// `{P}_AWS_SECRET_ACCESS_KEY`, `{P}_AWS_SESSION_TOKEN`, `{P}_AWS_PROFILE`, for Gemini
/// `{P}_PROJECT`, `{P}_LOCATION`, `{P}_CREDENTIALS_FILE`), and each provider's option
/// variables (`QWEN_API_MODE`, …), for each provider prefix.
pub(crate) fn from_env_map(source: &EnvSource, registered: &[String]) -> Result<Vec<ModelConfig>> {
    let mut configs = Vec::new();
    for (prefix, provider) in prefixes(registered) {
        let var = |suffix: &str| format!("{prefix}_{suffix}");
        let get = |suffix: &str| source.value(&var(suffix));
        let key_vars = [var("API_KEYS"), var("API_KEY")];
        let mut keys = Vec::new();
        let mut key_origin = None;
        for name in &key_vars {
            if let Some((value, origin)) = source.value(name) {
                key_origin = key_origin.or(origin);
                for key in list(&value) {
                    if !keys.contains(&key) {
                        keys.push(key);
                    }
                }
            }
        }
        let bases: Vec<String> = get("API_BASES")
            .or_else(|| get("API_BASE"))
            .map(|(value, _)| list(&value))
            .unwrap_or_default();
        let models = get("MODEL").map(|(value, origin)| (list(&value), origin));
        let regions: Vec<String> = get("REGIONS")
            .or_else(|| get("REGION"))
            .map(|(v, _)| list(&v))
            .unwrap_or_default();
        let project = get("PROJECT").map(|(v, _)| v);
        let access_key_id = get("AWS_ACCESS_KEY_ID").map(|(v, _)| v);
        let secret_access_key = get("AWS_SECRET_ACCESS_KEY").map(|(v, _)| SecretString::from(v));
        let session_token = get("AWS_SESSION_TOKEN").map(|(v, _)| SecretString::from(v));
        let profile = get("AWS_PROFILE").map(|(v, _)| v);
        let present = !keys.is_empty()
            || models.is_some()
            || !bases.is_empty()
            || !regions.is_empty()
            || project.is_some()
            || access_key_id.is_some()
            || secret_access_key.is_some();
        if !present {
            continue;
        }
        let Some((models, _)) = models.filter(|(models, _)| !models.is_empty()) else {
            return Err(source
                .error(
                    &var("MODEL"),
                    format!(
                        "{} is not set: name the model(s) to serve with the {prefix}_* settings",
                        var("MODEL")
                    ),
                    key_origin,
                )
                .into());
        };
        let builtin = providers::builtin(&provider);
        let mut options = BTreeMap::new();
        for (suffix, option) in builtin.map_or(&[][..], |b| b.env_options) {
            if let Some((value, _)) = get(suffix) {
                options.insert((*option).to_owned(), super::yaml::typed(&value));
            }
        }
        let probe = ModelConfig {
            provider: provider.clone(),
            project: project.clone(),
            ..ModelConfig::default()
        };
        let needs_key = builtin.is_some_and(|b| (b.needs_key)(&probe));
        if needs_key && keys.is_empty() {
            return Err(source
                .error(
                    &key_vars[0],
                    format!(
                        "{} (or {}) is not set, but {} is",
                        key_vars[0],
                        key_vars[1],
                        var("MODEL")
                    ),
                    None,
                )
                .into());
        }
        let template = ModelConfig {
            provider: provider.clone(),
            api_keys: keys.iter().map(|k| SecretString::from(k.clone())).collect(),
            api_bases: bases.clone(),
            api_version: get("API_VERSION").map(|(v, _)| v),
            regions: regions.clone(),
            aws_access_key_id: access_key_id,
            aws_secret_access_key: secret_access_key,
            aws_session_token: session_token,
            aws_profile: profile,
            project: project.clone(),
            location: get("LOCATION").map(|(v, _)| v),
            credentials_file: get("CREDENTIALS_FILE").map(|(v, _)| v),
            options,
            ..ModelConfig::default()
        };
        if template.key_base_pairs().is_err() {
            let message = format!(
                "{} gives {} keys but {} gives {} bases: give one base for all keys, or exactly one base per key",
                key_vars[0],
                keys.len(),
                var("API_BASES"),
                bases.len(),
            );
            return Err(source.error(&var("API_BASES"), message, key_origin).into());
        }
        for model in models {
            configs.push(ModelConfig {
                model_name: model,
                ..template.clone()
            });
        }
    }
    Ok(configs)
}
