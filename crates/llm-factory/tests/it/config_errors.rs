//! Every configuration error class, with its message: file, line, field path, variable.

use llm_factory::{ErrorKind, LlmFactory, ModelConfig, ProviderType};

use crate::support::{temp_file, vars};

fn yaml_error(text: &str, set: &[(&str, &str)]) -> String {
    let file = temp_file("config.yaml", text);
    let err = LlmFactory::builder()
        .vars(vars(set))
        .yaml_file(&file)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration);
    let text = err.to_string();
    assert!(text.contains("config.yaml"), "names the file: {text}");
    text
}

const GOOD: &str = "providers:\n  - provider: mock\n    model_name: mock-echo\n";

#[test]
fn a_missing_variable_names_variable_field_and_line() {
    let text = yaml_error(
        "providers:\n  - provider: openai\n    model_name: gpt-4o\n    api_key: \"${OPENAI_API_KEY}\"\n",
        &[],
    );
    assert!(
        text.ends_with("config.yaml:4: providers[0].api_key: environment variable `OPENAI_API_KEY` is not set (and `${OPENAI_API_KEY}` has no `:-default`)"),
        "{text}"
    );
}

#[test]
fn defaults_fill_missing_variables_and_typed_values_keep_their_type() {
    let file = temp_file(
        "config.yaml",
        "providers:\n  - provider: mock\n    model_name: \"${MODEL:-mock-echo}\"\n    max_tokens: ${MAX_TOKENS}\n    weight: ${WEIGHT:-3}\n",
    );
    let factory = LlmFactory::builder()
        .vars(vars(&[("MAX_TOKENS", "256")]))
        .yaml_file(&file)
        .build()
        .unwrap();
    assert_eq!(factory.models(), ["mock-echo"]);
    assert_eq!(factory.status()[0].weight, 3);
}

#[test]
fn a_typo_in_a_field_is_rejected_with_its_line() {
    let text = yaml_error(
        "providers:\n  - provider: mock\n    model_name: mock-echo\n    api_kye: oops\n",
        &[],
    );
    assert!(text.contains("unknown field `api_kye`"), "{text}");
    assert!(text.contains("config.yaml:"), "{text}");
    assert!(text.contains("providers[0]"), "{text}");
}

#[test]
fn a_wrong_type_names_the_field_and_line() {
    let text = yaml_error(
        "providers:\n  - provider: mock\n    model_name: mock-echo\n    max_tokens: lots\n",
        &[],
    );
    assert!(
        text.contains("config.yaml:4: providers[0].max_tokens: invalid type: string \"lots\""),
        "{text}"
    );
}

#[test]
fn an_unknown_strategy_lists_the_known_ones() {
    let text = yaml_error(&format!("{GOOD}router:\n  strategy: fastest\n"), &[]);
    assert!(
        text.contains("config.yaml:5: router.strategy: unknown variant `fastest`"),
        "{text}"
    );
    assert!(text.contains("round_robin"), "{text}");
}

#[test]
fn broken_yaml_names_the_line() {
    let text = yaml_error(
        "providers:\n  - provider: mock\n    model_name: [unclosed\n",
        &[],
    );
    assert!(text.contains("invalid YAML"), "{text}");
}

#[test]
fn an_unknown_top_level_section_is_rejected() {
    let text = yaml_error(&format!("{GOOD}routr:\n  strategy: random\n"), &[]);
    assert!(text.contains("unknown field `routr`"), "{text}");
}

#[test]
fn an_empty_file_says_what_it_expected() {
    let text = yaml_error("# nothing yet\n", &[]);
    assert!(
        text.contains("the file is empty; expected a `providers:` list"),
        "{text}"
    );
}

#[test]
fn a_missing_file_is_named() {
    let err = LlmFactory::from_yaml("/nonexistent/llm-factory/config.yaml").unwrap_err();
    assert!(
        err.to_string()
            .contains("/nonexistent/llm-factory/config.yaml: cannot read the configuration file"),
        "{err}"
    );
    let err = LlmFactory::from_env_file("/nonexistent/.env.local").unwrap_err();
    assert!(
        err.to_string()
            .contains("/nonexistent/.env.local: cannot read the env file"),
        "{err}"
    );
}

#[test]
fn env_errors_name_the_variables() {
    let build = |set: &[(&str, &str)]| {
        LlmFactory::builder()
            .vars(vars(set))
            .env()
            .build()
            .unwrap_err()
            .to_string()
    };
    let missing_model = build(&[("OPENAI_API_KEYS", "sk-aaaaaaaaaaaaaaaa")]);
    assert!(
        missing_model.contains("OPENAI_MODEL: OPENAI_MODEL is not set"),
        "{missing_model}"
    );
    let missing_keys = build(&[("DEEPSEEK_MODEL", "deepseek-chat")]);
    assert!(
        missing_keys
            .contains("DEEPSEEK_API_KEYS (or DEEPSEEK_API_KEY) is not set, but DEEPSEEK_MODEL is"),
        "{missing_keys}"
    );
    let mismatch = build(&[
        ("OPENAI_API_KEYS", "a-1111111111,b-2222222222,c-3333333333"),
        (
            "OPENAI_API_BASES",
            "https://one.openai.azure.com,https://two.openai.azure.com",
        ),
        ("OPENAI_MODEL", "gpt-4o"),
    ]);
    assert!(
        mismatch.contains("OPENAI_API_KEYS gives 3 keys but OPENAI_API_BASES gives 2 bases"),
        "{mismatch}"
    );
    let nothing = LlmFactory::builder()
        .vars(vars(&[]))
        .env()
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        nothing.contains("no providers are configured: set OPENAI_API_KEYS and OPENAI_MODEL"),
        "{nothing}"
    );
}

#[test]
fn code_config_errors_name_the_entry() {
    let unknown = LlmFactory::new(ModelConfig {
        provider: "my-llm".parse().unwrap(),
        model_name: "m".into(),
        ..ModelConfig::default()
    })
    .unwrap_err();
    assert!(
        unknown.to_string().contains(
            "providers[0].provider: unknown provider `my-llm`: built in are openai, azure_openai"
        ),
        "{unknown}"
    );

    let bad_base = LlmFactory::new(ModelConfig {
        api_base: Some("api.openai.com/v1".into()),
        ..ModelConfig::new(ProviderType::OpenAi, "gpt-4o", "sk-0123456789abcdef")
    })
    .unwrap_err();
    assert!(
        bad_base.to_string().contains(
            "providers[0]: base_url `api.openai.com/v1` must start with https:// or http://"
        ),
        "{bad_base}"
    );

    let azure_without_base = LlmFactory::new(ModelConfig {
        api_version: Some("2024-10-21".into()),
        ..ModelConfig::new(ProviderType::OpenAi, "gpt-4o", "0123456789abcdef")
    })
    .unwrap_err();
    assert!(
        azure_without_base
            .to_string()
            .contains("an Azure OpenAI deployment needs api_base"),
        "{azure_without_base}"
    );

    let no_key = LlmFactory::new(ModelConfig {
        provider: ProviderType::OpenAi,
        model_name: "gpt-4o".into(),
        ..ModelConfig::default()
    })
    .unwrap_err();
    assert!(
        no_key
            .to_string()
            .contains("providers[0].api_key: api_key (or api_keys) is missing"),
        "{no_key}"
    );

    let pairing = LlmFactory::new(ModelConfig {
        api_keys: vec![
            "k1-0123456789".into(),
            "k2-0123456789".into(),
            "k3-0123456789".into(),
        ],
        api_bases: vec![
            "https://a.openai.azure.com".into(),
            "https://b.openai.azure.com".into(),
        ],
        api_version: Some("2024-10-21".into()),
        ..ModelConfig::new(ProviderType::OpenAi, "gpt-4o", "k0-0123456789")
    })
    .unwrap_err();
    assert!(
        pairing
            .to_string()
            .contains("providers[0].api_bases: 4 API keys and 2 API bases cannot be paired"),
        "{pairing}"
    );

    let fallback = LlmFactory::new(llm_factory::FactoryConfig {
        providers: vec![ModelConfig {
            provider: ProviderType::Mock,
            model_name: "a".into(),
            ..ModelConfig::default()
        }],
        router: llm_factory::RouterSettings {
            fallbacks: [("a".to_owned(), vec!["b".to_owned()])].into(),
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(
        fallback.to_string(),
        "configuration error: router.fallbacks: `b` is not a configured model"
    );
}

#[test]
fn a_malformed_env_file_names_its_line() {
    let file = temp_file(".env", "OPENAI_MODEL=gpt-4o\nTHIS LINE IS BROKEN\n");
    let err = LlmFactory::builder()
        .vars(vars(&[]))
        .env_file(&file)
        .build()
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains(".env:2: malformed entry"), "{text}");
}

#[test]
fn the_server_section_is_read() {
    let file = temp_file(
        "config.yaml",
        &format!(
            "{GOOD}server:\n  max_concurrency: 7\n  api_keys: [\"${{GATEWAY_KEY}}\"]\n  request_timeout: 30\n"
        ),
    );
    let factory = LlmFactory::builder()
        .vars(vars(&[("GATEWAY_KEY", "gw-0123456789abcdef")]))
        .yaml_file(&file)
        .build()
        .unwrap();
    let server = factory.server_settings();
    assert_eq!(server.max_concurrency, Some(7));
    assert_eq!(server.request_timeout, Some(30.0));
    assert_eq!(server.api_keys.len(), 1);
    assert!(!format!("{server:?}").contains("0123456789"), "{server:?}");
}
