//! The built-in provider modules: names and aliases, environment prefixes and option
//! variables, `options:` in YAML (typed, unknown ones refused), endpoints in status.

use llm_factory::{LlmFactory, ProviderType};

use crate::support::{temp_file, vars};

#[test]
fn names_and_aliases_pick_the_builtin() {
    for (name, kind) in [
        ("qwen", ProviderType::Qwen),
        ("DashScope", ProviderType::Qwen),
        ("deepseek", ProviderType::DeepSeek),
        ("gemini", ProviderType::Gemini),
        ("vertex", ProviderType::Gemini),
        ("azure", ProviderType::AzureOpenAi),
        ("bedrock", ProviderType::Claude),
        ("my-own", ProviderType::Custom("my-own".into())),
    ] {
        assert_eq!(name.parse::<ProviderType>().unwrap(), kind, "{name}");
    }
}

#[test]
fn qwen_and_deepseek_from_the_environment_with_option_variables() {
    let factory = LlmFactory::builder()
        .vars(vars(&[
            ("QWEN_API_KEYS", "sk-qwen-aaaa1111,sk-qwen-bbbb2222"),
            ("QWEN_MODEL", "qwen-plus"),
            (
                "QWEN_API_BASE",
                "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
            ),
            // The base says compatible mode; the option variable wins.
            ("QWEN_API_MODE", "native"),
            ("DEEPSEEK_API_KEY", "sk-deepseek-cccc3333"),
            ("DEEPSEEK_MODEL", "deepseek-flash"),
            ("DEEPSEEK_THINKS_BY_DEFAULT", "false"),
        ]))
        .env()
        .build()
        .unwrap();
    let status = factory.status();
    assert_eq!(status.len(), 3);
    let qwen: Vec<_> = status.iter().filter(|d| d.provider == "qwen").collect();
    assert_eq!(qwen.len(), 2);
    assert!(
        qwen.iter().all(|d| d.endpoint.as_deref()
            == Some("https://dashscope-intl.aliyuncs.com/compatible-mode/v1 (native API)")),
        "{qwen:?}"
    );
    let deepseek = status.iter().find(|d| d.provider == "deepseek").unwrap();
    assert_eq!(
        deepseek.endpoint.as_deref(),
        Some("https://api.deepseek.com")
    );
    assert_eq!(deepseek.key.as_deref(), Some("sk-…3333"));
}

#[test]
fn yaml_options_are_typed_and_typos_are_refused_with_their_place() {
    let good = temp_file(
        "config.yaml",
        "providers:\n  - provider: qwen\n    model_name: qwen-vl-max\n    api_key: sk-qwen-0123456789\n    options:\n      api: compatible\n      multimodal: true\n      workspace: ws-1\n",
    );
    let factory = LlmFactory::builder()
        .vars(vars(&[]))
        .yaml_file(&good)
        .build()
        .unwrap();
    assert_eq!(
        factory.status()[0].endpoint.as_deref(),
        Some("https://dashscope.aliyuncs.com/api/v1 (compatible mode)")
    );

    let typo = temp_file(
        "config.yaml",
        "providers:\n  - provider: qwen\n    model_name: qwen-plus\n    api_key: sk-qwen-0123456789\n    options:\n      multimodel: true\n",
    );
    let err = LlmFactory::builder()
        .vars(vars(&[]))
        .yaml_file(&typo)
        .build()
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("config.yaml:2"), "{text}");
    assert!(text.contains("providers[0].options"), "{text}");
    assert!(text.contains("unknown field `multimodel`"), "{text}");
    assert!(!text.contains("0123456789"), "{text}");

    let wrong_type = temp_file(
        "config.yaml",
        "providers:\n  - provider: deepseek\n    model_name: deepseek-flash\n    api_key: sk-ds-0123456789\n    options: {thinks_by_default: sometimes}\n",
    );
    let err = LlmFactory::builder()
        .vars(vars(&[]))
        .yaml_file(&wrong_type)
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("options.thinks_by_default"),
        "{err}"
    );

    let mock_with_unknown = temp_file(
        "config.yaml",
        "providers:\n  - provider: openai\n    model_name: gpt-4o\n    api_key: sk-0123456789\n    options: {organization: x}\n",
    );
    let err = LlmFactory::builder()
        .vars(vars(&[]))
        .yaml_file(&mock_with_unknown)
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("unknown field `organization`"),
        "{err}"
    );
}

#[test]
fn gemini_picks_its_front_door_from_the_entry() {
    let key_file = temp_file("sa.json", "{}");
    let yaml = format!(
        "providers:\n  - provider: gemini\n    model_name: gemini-2.5-flash\n    api_keys: [AIza-key-0000aaaa, AIza-key-1111bbbb]\n  - provider: vertex\n    model_name: gemini-2.5-pro\n    project: my-proj\n    location: europe-west4\n    credentials_file: {}\n",
        key_file.display()
    );
    // The key file is not a service account: a configuration error naming the entry.
    let err = LlmFactory::builder()
        .vars(vars(&[]))
        .yaml_file(temp_file("config.yaml", &yaml))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("providers[1]"), "{err}");
    assert!(err.to_string().contains("service-account"), "{err}");

    let studio_only = "providers:\n  - provider: gemini\n    model_name: gemini-2.5-flash\n    api_keys: [AIza-key-0000aaaa, AIza-key-1111bbbb]\n    api_version: v1\n";
    let factory = LlmFactory::builder()
        .vars(vars(&[]))
        .yaml_file(temp_file("config.yaml", studio_only))
        .build()
        .unwrap();
    let status = factory.status();
    assert_eq!(status.len(), 2);
    assert!(status.iter().all(|d| d.endpoint.as_deref()
        == Some("https://generativelanguage.googleapis.com (AI Studio, v1)")));

    let no_project = "providers:\n  - provider: gemini\n    model_name: gemini-2.5-pro\n    location: us-central1\n";
    let err = LlmFactory::builder()
        .vars(vars(&[]))
        .yaml_file(temp_file("config.yaml", no_project))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("providers[0].project"), "{err}");

    // GEMINI_PROJECT needs no key.
    let from_env = LlmFactory::builder()
        .vars(vars(&[
            ("GEMINI_PROJECT", "my-proj"),
            ("GEMINI_MODEL", "gemini-2.5-pro"),
        ]))
        .env()
        .build();
    // Without Application Default Credentials on this machine, a clear error; with them, a
    // Vertex deployment.
    match from_env {
        Ok(factory) => assert!(
            factory.status()[0]
                .endpoint
                .as_deref()
                .is_some_and(|e| e.contains("Vertex AI, project my-proj"))
        ),
        Err(err) => assert!(
            err.to_string().contains("Application Default Credentials"),
            "{err}"
        ),
    }
}
