//! The original LLM Factory README's own `.env` and YAML examples.

use llm_factory::{LlmFactory, ModelConfig, ProviderType};

use crate::support::{temp_file, vars};

/// The README's `.env`, as printed.
const SPEC_DOTENV: &str = r#"# Azure OpenAI 配置
OPENAI_API_KEYS="key1,key2,key3"  # 多个 API 密钥用于负载均衡
OPENAI_API_BASES="https://account1.openai.azure.com,https://account2.openai.azure.com"
OPENAI_MODEL="gpt-4o"
OPENAI_API_VERSION="2024-02-15-preview"

# 可选：其他提供商配置
QWEN_API_KEYS="key1,key2"
QWEN_MODEL="qwen-turbo"
QWEN_API_BASE="your-qwen-api-base"
"#;

/// The README's `config.yaml`, as printed.
const SPEC_YAML: &str = r#"providers:
  - provider: "openai"
    model_name: "gpt-4o"
    api_key: "${OPENAI_API_KEY}"  # 支持从环境变量读取
    api_base: "${OPENAI_API_BASE}"
    api_version: "2024-02-01"
    max_tokens: 4096
    temperature: 0.7

  - provider: "qwen"
    model_name: "qwen-turbo"
    api_key: "${QWEN_API_KEY}"
    api_base: "https://dashscope.aliyuncs.com/api/v1"
    max_tokens: 2000
"#;

#[test]
fn the_spec_dotenv_pairs_three_keys_with_two_bases_which_is_ambiguous() {
    let file = temp_file(".env", SPEC_DOTENV);
    let err = LlmFactory::builder()
        .vars(Default::default())
        .env_file(&file)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), llm_factory::ErrorKind::Configuration);
    let text = err.to_string();
    assert!(
        text.contains(
            "OPENAI_API_BASES: OPENAI_API_KEYS gives 3 keys but OPENAI_API_BASES gives 2 bases"
        ),
        "{text}"
    );
    assert!(text.contains(".env"), "the file is named: {text}");
    assert!(!text.contains("key1"), "keys never appear: {text}");
}

#[test]
fn the_spec_dotenv_with_matching_counts_loads_and_its_qwen_entry_is_not_available_yet() {
    let fixed = SPEC_DOTENV.replace(
        "https://account2.openai.azure.com\"",
        "https://account2.openai.azure.com,https://account3.openai.azure.com\"",
    );
    let file = temp_file(".env", &fixed);
    let err = LlmFactory::builder()
        .vars(Default::default())
        .env_file(&file)
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("provider `qwen` is not available in this build yet"),
        "{err}"
    );

    // Without the Qwen lines, the OpenAI part loads: three Azure deployments of gpt-4o.
    let openai_only: String = fixed
        .lines()
        .filter(|l| !l.starts_with("QWEN"))
        .collect::<Vec<_>>()
        .join("\n");
    let file = temp_file(".env", &openai_only);
    let factory = LlmFactory::builder()
        .vars(Default::default())
        .env_file(&file)
        .build()
        .unwrap();
    let status = factory.status();
    assert_eq!(status.len(), 3);
    for deployment in &status {
        assert_eq!(deployment.model, "gpt-4o");
        assert_eq!(deployment.provider, "azure-openai");
        assert_eq!(
            deployment.key.as_deref(),
            Some("…"),
            "short keys are fully masked"
        );
    }
    assert_eq!(factory.models(), ["gpt-4o"]);
}

#[test]
fn real_variables_win_over_the_env_file() {
    let file = temp_file(
        ".env.local",
        "OPENAI_API_KEY=from-file-0123456789\nOPENAI_MODEL=gpt-4o-mini\n",
    );
    let factory = LlmFactory::builder()
        .vars(vars(&[("OPENAI_API_KEY", "sk-from-vars-0123456789")]))
        .env_file(&file)
        .build()
        .unwrap();
    let status = factory.status();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].key.as_deref(), Some("sk-…6789"));
    assert_eq!(
        status[0].provider, "openai",
        "no version, no Azure host: OpenAI itself"
    );
    assert_eq!(factory.models(), ["gpt-4o-mini"]);
}

#[test]
fn a_comma_list_of_models_serves_each_with_every_key() {
    let factory = LlmFactory::builder()
        .vars(vars(&[
            ("OPENAI_API_KEYS", "sk-aaaaaaaaaaaa1111,sk-bbbbbbbbbbbb2222"),
            ("OPENAI_MODEL", "gpt-4o, gpt-4o-mini"),
        ]))
        .env()
        .build()
        .unwrap();
    assert_eq!(factory.models(), ["gpt-4o", "gpt-4o-mini"]);
    let ids: Vec<String> = factory.status().into_iter().map(|s| s.id).collect();
    assert_eq!(
        ids,
        [
            "openai/gpt-4o/sk-…1111",
            "openai/gpt-4o/sk-…2222",
            "openai/gpt-4o-mini/sk-…1111",
            "openai/gpt-4o-mini/sk-…2222"
        ]
    );
}

#[test]
fn the_spec_yaml_with_variables_set() {
    let file = temp_file("config.yaml", SPEC_YAML);
    let set = vars(&[
        ("OPENAI_API_KEY", "azure-key-0123456789abcdef"),
        ("OPENAI_API_BASE", "https://account1.openai.azure.com"),
        ("QWEN_API_KEY", "qwen-key-0123456789"),
    ]);
    let err = LlmFactory::builder()
        .vars(set.clone())
        .yaml_file(&file)
        .build()
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("config.yaml:10: providers[1].provider: provider `qwen` is not available in this build yet"),
        "{text}"
    );

    // The OpenAI entry alone loads as one Azure deployment with its defaults.
    let openai_only: String = SPEC_YAML.split("\n\n").next().unwrap().to_owned();
    let file = temp_file("config.yaml", &openai_only);
    let factory = LlmFactory::builder()
        .vars(set)
        .yaml_file(&file)
        .build()
        .unwrap();
    let status = factory.status();
    assert_eq!(status.len(), 1);
    assert_eq!(
        (status[0].provider.as_str(), status[0].model.as_str()),
        ("azure-openai", "gpt-4o")
    );
    assert_eq!(status[0].key.as_deref(), Some("az…cdef"));
}

#[test]
fn the_spec_model_config_examples_build() {
    // 1. 直接模型配置
    let single = ModelConfig {
        provider: ProviderType::OpenAi,
        model_name: "gpt-4o".into(),
        api_key: Some("your-api-key".into()),
        api_base: Some("https://your-resource.openai.azure.com".into()),
        api_version: Some("2024-02-15-preview".into()),
        ..ModelConfig::default()
    };
    assert_eq!(LlmFactory::new(single.clone()).unwrap().status().len(), 1);

    // 2. 多模型配置: its Qwen and DeepSeek entries are not available in this build yet.
    let configs = vec![
        single,
        ModelConfig {
            provider: ProviderType::Qwen,
            model_name: "qwen-turbo".into(),
            api_key: Some("key2".into()),
            api_base: Some("https://dashscope.aliyuncs.com/api/v1".into()),
            ..ModelConfig::default()
        },
    ];
    let err = LlmFactory::new(configs).unwrap_err();
    assert_eq!(
        err.to_string(),
        "configuration error: providers[1].provider: provider `qwen` is not available in this build yet: its crate `llm-qwen` is not implemented (it will come with the `qwen` feature of llm-factory)"
    );
}
