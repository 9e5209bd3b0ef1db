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
fn the_spec_dotenv_with_matching_counts_serves_azure_and_qwen_with_their_endpoints() {
    let fixed = SPEC_DOTENV.replace(
        "https://account2.openai.azure.com\"",
        "https://account2.openai.azure.com,https://account3.openai.azure.com\"",
    );
    // The README's placeholder base is not a URL: a clear error naming the entry's field.
    let file = temp_file(".env", &fixed);
    let err = LlmFactory::builder()
        .vars(Default::default())
        .env_file(&file)
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("api_base `your-qwen-api-base` must start with https:// or http://"),
        "{err}"
    );

    // With DashScope's documented base, three Azure and two Qwen deployments, each showing
    // where it sends requests (never a key).
    let real = fixed.replace(
        "your-qwen-api-base",
        "https://dashscope.aliyuncs.com/api/v1",
    );
    let file = temp_file(".env", &real);
    let factory = LlmFactory::builder()
        .vars(Default::default())
        .env_file(&file)
        .build()
        .unwrap();
    let status = factory.status();
    assert_eq!(status.len(), 5);
    let azure: Vec<_> = status.iter().filter(|d| d.model == "gpt-4o").collect();
    assert_eq!(azure.len(), 3);
    for (deployment, account) in azure.iter().zip(1..) {
        assert_eq!(deployment.provider, "azure-openai");
        assert_eq!(
            deployment.key.as_deref(),
            Some("…"),
            "short keys are fully masked"
        );
        assert_eq!(
            deployment.endpoint.as_deref(),
            Some(format!("https://account{account}.openai.azure.com (deployment gpt-4o, api-version 2024-02-15-preview)").as_str())
        );
    }
    let qwen: Vec<_> = status.iter().filter(|d| d.model == "qwen-turbo").collect();
    assert_eq!(qwen.len(), 2);
    for deployment in qwen {
        assert_eq!(deployment.provider, "qwen");
        assert_eq!(
            deployment.endpoint.as_deref(),
            Some("https://dashscope.aliyuncs.com/api/v1 (native API)")
        );
    }
    assert_eq!(factory.models(), ["gpt-4o", "qwen-turbo"]);
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
    let factory = LlmFactory::builder()
        .vars(set)
        .yaml_file(&file)
        .build()
        .unwrap();
    let status = factory.status();
    assert_eq!(status.len(), 2);
    assert_eq!(
        (status[0].provider.as_str(), status[0].model.as_str()),
        ("azure-openai", "gpt-4o")
    );
    assert_eq!(status[0].key.as_deref(), Some("az…cdef"));
    assert_eq!(
        status[0].endpoint.as_deref(),
        Some("https://account1.openai.azure.com (deployment gpt-4o, api-version 2024-02-01)")
    );
    assert_eq!(
        (status[1].provider.as_str(), status[1].model.as_str()),
        ("qwen", "qwen-turbo")
    );
    assert_eq!(status[1].key.as_deref(), Some("qw…6789"));
    assert_eq!(
        status[1].endpoint.as_deref(),
        Some("https://dashscope.aliyuncs.com/api/v1 (native API)")
    );
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

    // 2. 多模型配置.
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
    let factory = LlmFactory::new(configs).unwrap();
    assert_eq!(factory.models(), ["gpt-4o", "qwen-turbo"]);
}
