//! Any text as a YAML configuration: a configuration or an error naming the source —
//! never a panic, and never the value a variable expanded to (a planted key).
#![no_main]

use libfuzzer_sys::fuzz_target;
use llm_factory::FactoryConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lookup = |name: &str| (name == "KEY").then(|| "sk-PLANTED-fuzz-0000".to_owned());
    if let Err(error) = FactoryConfig::from_yaml_str(text, "fuzz.yaml", lookup) {
        let message = error.to_string();
        assert!(message.contains("fuzz.yaml"), "{message}");
        assert!(!message.contains("PLANTED"), "{message}");
    }
});
