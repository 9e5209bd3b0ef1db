//! `router.shared_state`: from YAML (with `${VAR}`) or `LLM_FACTORY_REDIS_URL`, its errors,
//! and the Redis password kept out of every output.

use llm_factory::{ErrorKind, FactoryConfig, LlmFactory};

use crate::support::{temp_file, vars};

const GOOD: &str = "providers:\n  - provider: mock\n    model_name: mock-echo\n";
const PASSWORD: &str = "PLANTED-redis-password-0123";

fn from_yaml(router: &str, set: &[(&str, &str)]) -> llm_factory::Result<LlmFactory> {
    let file = temp_file("config.yaml", &format!("{GOOD}router:\n{router}"));
    LlmFactory::builder()
        .vars(vars(set))
        .yaml_file(&file)
        .build()
}

#[test]
fn state_is_local_unless_configured() {
    let factory = from_yaml("  strategy: round_robin\n", &[]).unwrap();
    let shared = factory.shared_state();
    assert_eq!(shared.backend, "memory");
    assert!(!shared.shared);
}

#[test]
fn yaml_takes_a_redis_url_with_its_password_from_a_variable() {
    let factory = from_yaml(
        "  shared_state: \"redis://:${REDIS_PASSWORD}@127.0.0.1:1/0\"\n",
        &[("REDIS_PASSWORD", PASSWORD)],
    )
    .unwrap();
    let shared = factory.shared_state();
    assert_eq!(shared.backend, "redis");
    assert!(!shared.connected, "nothing listens there");
    let shown = format!("{factory:?} {shared:?}");
    assert!(!shown.contains(PASSWORD), "{shown}");
}

#[test]
fn the_environment_variable_turns_it_on_for_env_and_yaml_configurations() {
    let url = format!("redis://:{PASSWORD}@127.0.0.1:1/0");
    let env = LlmFactory::builder()
        .vars(vars(&[
            ("LLM_FACTORY_REDIS_URL", url.as_str()),
            ("OPENAI_API_KEYS", "sk-test-0123456789"),
            ("OPENAI_MODEL", "gpt-4o-mini"),
        ]))
        .env()
        .build()
        .unwrap();
    assert_eq!(env.shared_state().backend, "redis");
    let yaml = from_yaml(
        "  strategy: round_robin\n",
        &[("LLM_FACTORY_REDIS_URL", url.as_str())],
    )
    .unwrap();
    assert_eq!(yaml.shared_state().backend, "redis");
    // The YAML setting wins over the variable.
    let error = from_yaml(
        "  shared_state: 'redis+cluster://h:6379'\n",
        &[("LLM_FACTORY_REDIS_URL", url.as_str())],
    )
    .unwrap_err();
    assert!(error.to_string().contains("redis+cluster"), "{error}");
    let file = temp_file("config.yaml", GOOD);
    let config = FactoryConfig::from_yaml_str(
        &std::fs::read_to_string(file).unwrap(),
        "inline.yaml",
        |_| None,
    )
    .unwrap();
    assert_eq!(
        LlmFactory::new(config).unwrap().shared_state().backend,
        "memory",
        "a configuration built in code does not read the environment"
    );
}

#[test]
fn a_bad_url_names_the_field_and_never_shows_the_password() {
    for url in [
        format!("redis+cluster://:{PASSWORD}@h:6379"),
        format!("redis+sentinel://:{PASSWORD}@h:26379"),
        format!("cache:{PASSWORD}@6379"),
    ] {
        let error = from_yaml(&format!("  shared_state: '{url}'\n"), &[]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Configuration);
        let text = error.to_string();
        assert!(text.contains("router.shared_state"), "{text}");
        assert!(!text.contains(PASSWORD), "{text}");
    }
}

#[test]
fn a_typo_in_the_setting_is_located() {
    let file = temp_file(
        "config.yaml",
        &format!("{GOOD}router:\n  shared_sate: redis://127.0.0.1:6379\n"),
    );
    let error = LlmFactory::builder()
        .vars(vars(&[]))
        .yaml_file(&file)
        .build()
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("unknown field `shared_sate`"), "{text}");
    assert!(text.contains("config.yaml:5"), "{text}");
}
