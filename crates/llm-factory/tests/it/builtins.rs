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

#[test]
fn claude_deploys_once_per_region_and_key_and_masks_aws_secrets() {
    let yaml = concat!(
        "providers:\n",
        "  - provider: claude\n    model_name: claude-sonnet\n    deployment: us.anthropic.claude-sonnet-4-5-20250929-v1:0\n    regions: [us-east-1, us-west-2]\n    api_keys: [ABSK-key-PLANTED-aaaa1111, ABSK-key-PLANTED-bbbb2222]\n",
        "  - provider: bedrock\n    model_name: claude-sonnet\n    deployment: eu.anthropic.claude-sonnet-4-5-20250929-v1:0\n    region: eu-west-1\n    aws_access_key_id: AKIAPLANTEDID00001234\n    aws_secret_access_key: PLANTED/secret/access/key/cccc3333\n    aws_session_token: PLANTED-session-token-dddd4444\n",
        "  - provider: claude\n    model_name: claude-chain\n    aws_profile: prod\n",
    );
    let factory = LlmFactory::builder()
        .vars(vars(&[]))
        .yaml_file(temp_file("config.yaml", yaml))
        .build()
        .unwrap();
    let status = factory.status();
    assert_eq!(status.len(), 6, "{status:#?}");
    let endpoints: Vec<&str> = status
        .iter()
        .filter_map(|d| d.endpoint.as_deref())
        .collect();
    assert_eq!(
        endpoints,
        [
            "https://bedrock-runtime.us-east-1.amazonaws.com",
            "https://bedrock-runtime.us-east-1.amazonaws.com",
            "https://bedrock-runtime.us-west-2.amazonaws.com",
            "https://bedrock-runtime.us-west-2.amazonaws.com",
            "https://bedrock-runtime.eu-west-1.amazonaws.com",
            "bedrock-runtime (region from the AWS credential chain)",
        ]
    );
    let keys: Vec<Option<&str>> = status.iter().map(|d| d.key.as_deref()).collect();
    assert_eq!(
        keys,
        [
            Some("AB…1111"),
            Some("AB…2222"),
            Some("AB…1111"),
            Some("AB…2222"),
            None,
            None
        ]
    );
    let printed = format!("{status:?} {factory:?}");
    assert!(!printed.contains("PLANTED"), "{printed}");
}

#[test]
fn claude_entries_authenticate_one_way_and_say_what_is_missing() {
    for (yaml, place, words) in [
        (
            "providers:\n  - provider: claude\n    model_name: c\n    aws_access_key_id: AKIAEXAMPLE\n    aws_secret_access_key: s3cr3t\n",
            "providers[0].region",
            "needs region",
        ),
        (
            "providers:\n  - provider: claude\n    model_name: c\n    region: us-east-1\n    api_key: ABSK-1\n    aws_access_key_id: AKIAEXAMPLE\n    aws_secret_access_key: s3cr3t\n",
            "providers[0].api_key",
            "one way",
        ),
        (
            "providers:\n  - provider: claude\n    model_name: c\n    region: us-east-1\n    aws_secret_access_key: s3cr3t\n",
            "providers[0].aws_access_key_id",
            "aws_access_key_id is not",
        ),
        (
            "providers:\n  - provider: openai\n    model_name: gpt-4o\n    api_key: sk-1\n    region: us-east-1\n",
            "providers[0].region",
            "Claude on Bedrock",
        ),
        (
            "providers:\n  - provider: claude\n    model_name: c\n    region: us east 1\n",
            "providers[0]",
            "region `us east 1` is not valid",
        ),
    ] {
        let err = LlmFactory::builder()
            .vars(vars(&[]))
            .yaml_file(temp_file("config.yaml", yaml))
            .build()
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains(place) && text.contains(words), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");
    }
}

#[test]
fn claude_from_the_environment() {
    let factory = LlmFactory::builder()
        .vars(vars(&[
            (
                "CLAUDE_MODEL",
                "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            ),
            ("CLAUDE_REGIONS", "us-east-1,us-west-2"),
            ("CLAUDE_AWS_ACCESS_KEY_ID", "AKIAEXAMPLE00001234"),
            ("CLAUDE_AWS_SECRET_ACCESS_KEY", "PLANTED-secret-5678"),
        ]))
        .env()
        .build()
        .unwrap();
    let status = factory.status();
    assert_eq!(status.len(), 2);
    assert!(status.iter().all(|d| d.provider == "claude-bedrock"));
    assert!(!format!("{status:?}").contains("PLANTED"));
}
