//! YAML configuration: the original LLM Factory's `providers:` list, plus `router:` and
//! `server:` sections, with `${VAR}` and `${VAR:-default}` interpolation.
//!
//! The file is parsed into a generic tree first; variables are expanded in string values
//! only (so a value can never break the YAML around it); then the tree is deserialized
//! with unknown fields rejected. Every error names the file, the line and the field path.

use std::path::Path;

use llm_core::{ConfigError, Result};
use serde_json::Value;

use super::FactoryConfig;

/// Parse `text` (read from `file`), looking variables up with `lookup`.
pub(crate) fn from_yaml_str(
    text: &str,
    file: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<FactoryConfig> {
    let mut tree: Value = serde_saphyr::from_str(text).map_err(|e| {
        let message = e.to_string();
        let line = line_in_message(&message);
        ConfigError::new(format!("invalid YAML: {}", first_line(&message))).in_file(file, line)
    })?;
    if tree.is_null() {
        return Err(
            ConfigError::new("the file is empty; expected a `providers:` list")
                .in_file(file, None)
                .into(),
        );
    }
    // The values variables expanded to: a value in the wrong field (a key where a number
    // belongs) must not be echoed by the type error that follows.
    let expanded = std::cell::RefCell::new(Vec::new());
    let recording = |name: &str| {
        let value = lookup(name);
        if let Some(value) = &value {
            expanded.borrow_mut().push(value.clone());
        }
        value
    };
    interpolate(&mut tree, &mut String::new(), &recording).map_err(|(path, message)| {
        ConfigError::new(message)
            .at_field(path.clone())
            .in_file(file, line_of(text, &path))
    })?;
    serde_path_to_error::deserialize::<_, FactoryConfig>(tree).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let mut message = e.inner().to_string();
        for value in expanded.borrow().iter().filter(|v| v.len() >= 4) {
            let masked = llm_core::mask_key(&llm_core::SecretString::from(value.as_str()));
            message = message.replace(value.as_str(), &masked);
        }
        let mut error = ConfigError::new(message);
        if !path.is_empty() {
            error = error.at_field(path.clone());
        }
        error.in_file(file, line_of(text, &path)).into()
    })
}

fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or(message)
}

/// serde-saphyr's messages say "line N" (or "at line N"); keep the number.
fn line_in_message(message: &str) -> Option<usize> {
    let at = message.find("line ")?;
    let digits: String = message[at + 5..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Expand variables in every string of `value`; on a missing variable, return the field
/// path and the message.
fn interpolate(
    value: &mut Value,
    path: &mut String,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<(), (String, String)> {
    match value {
        Value::String(text) if text.contains('$') => {
            let (expanded, whole) =
                expand(text, lookup).map_err(|message| (path.clone(), message))?;
            // A value that was only `${VAR}` takes the type the variable's text has, as
            // if it had been written there: `max_tokens: ${MAX}` stays a number.
            *value = if whole {
                typed(&expanded)
            } else {
                Value::String(expanded)
            };
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                interpolate(item, path, lookup)?;
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                interpolate(item, path, lookup)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

/// `text` with `${VAR}` and `${VAR:-default}` replaced and `$${` kept as `${`; also
/// whether the text was a single variable reference.
fn expand(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<(String, bool), String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let whole = text.starts_with("${") && text.ends_with('}') && text.matches("${").count() == 1;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        if let Some(escaped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = escaped;
        } else if let Some(body) = after.strip_prefix("${") {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unterminated `${{` in `{text}`"))?;
            let reference = &body[..end];
            let (name, default) = match reference.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (reference, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "`${{{reference}}}` is not a valid variable reference"
                ));
            }
            match lookup(name)
                .filter(|v| !v.is_empty())
                .or_else(|| default.map(str::to_owned))
            {
                Some(value) => out.push_str(&value),
                None => {
                    return Err(format!(
                        "environment variable `{name}` is not set (and `${{{name}}}` has no `:-default`)"
                    ));
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok((out, whole))
}

/// A scalar's YAML type: integer, float, boolean or string.
pub(crate) fn typed(text: &str) -> Value {
    if let Ok(number) = text.parse::<i64>() {
        return Value::from(number);
    }
    if let Ok(number) = text.parse::<f64>()
        && number.is_finite()
    {
        return Value::from(number);
    }
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(text.to_owned()),
    }
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn segments(path: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut indices) = match part.find('[') {
            Some(at) => (&part[..at], &part[at..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Segment::Key(key));
        }
        while let Some(body) = indices.strip_prefix('[') {
            let Some(end) = body.find(']') else { break };
            if let Ok(index) = body[..end].parse() {
                out.push(Segment::Index(index));
            }
            indices = &body[end + 1..];
        }
    }
    out
}

/// The 1-based line of `path` in block-style YAML `text`, found by indentation. `None` when
/// the layout is not block style (the message still names the field path).
/// A line's indentation and content, a list item's `- ` counted as indentation.
fn layout(line: &str) -> (usize, &str) {
    let indent = line.len() - line.trim_start().len();
    let content = line.trim_start();
    match content.strip_prefix("- ") {
        Some(rest) => (
            indent + 2 + (rest.len() - rest.trim_start().len()),
            rest.trim_start(),
        ),
        None => (indent, content),
    }
}

pub(crate) fn line_of(text: &str, path: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let meaningful = |line: &str| {
        let trimmed = line.trim_start();
        !trimmed.is_empty() && !trimmed.starts_with('#')
    };
    let mut start = 0usize;
    let mut parent: Option<usize> = None; // indentation of the enclosing key
    let mut found = None;
    for segment in segments(path) {
        match segment {
            Segment::Key(key) => {
                let mut hit = None;
                for (i, line) in lines.iter().enumerate().skip(start) {
                    if !meaningful(line) {
                        continue;
                    }
                    let (indent, content) = layout(line);
                    if i > start && parent.is_some_and(|p| indent <= p) {
                        break;
                    }
                    let name = content
                        .split(':')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .trim_matches(|c| c == '"' || c == '\'');
                    if name == key && content.contains(':') {
                        hit = Some((i, indent));
                        break;
                    }
                }
                let (i, indent) = hit?;
                start = i;
                parent = Some(indent);
                found = Some(i + 1);
            }
            Segment::Index(index) => {
                let mut count = 0;
                let mut hit = None;
                for (i, line) in lines.iter().enumerate().skip(start + 1) {
                    if !meaningful(line) {
                        continue;
                    }
                    let raw_indent = line.len() - line.trim_start().len();
                    if parent.is_some_and(|p| raw_indent < p)
                        || (parent.is_some_and(|p| raw_indent == p)
                            && !line.trim_start().starts_with("- "))
                    {
                        break;
                    }
                    if line.trim_start().starts_with("- ") {
                        if count == index {
                            hit = Some((i, raw_indent));
                            break;
                        }
                        count += 1;
                    }
                }
                let (i, indent) = hit?;
                // Keys of this item sit after the `- `, deeper than the dash; the first may
                // share the dash's line, so search from this line.
                start = i;
                parent = Some(indent);
                found = Some(i + 1);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# comment\nproviders:\n  - provider: \"openai\"\n    model_name: \"gpt-4o\"\n    api_key: \"${OPENAI_API_KEY}\"\n\n  - provider: \"qwen\"\n    model_name: \"qwen-turbo\"\n    max_tokens: 2000\nrouter:\n  strategy: round_robin\n";

    #[test]
    fn lines_of_paths() {
        assert_eq!(line_of(TEXT, "providers"), Some(2));
        assert_eq!(line_of(TEXT, "providers[0]"), Some(3));
        assert_eq!(line_of(TEXT, "providers[0].provider"), Some(3));
        assert_eq!(line_of(TEXT, "providers[0].api_key"), Some(5));
        assert_eq!(line_of(TEXT, "providers[1].model_name"), Some(8));
        assert_eq!(line_of(TEXT, "providers[1].max_tokens"), Some(9));
        assert_eq!(line_of(TEXT, "router.strategy"), Some(11));
        assert_eq!(line_of(TEXT, "providers[2]"), None);
        assert_eq!(line_of(TEXT, "providers[0].nope"), None);
    }

    #[test]
    fn expansion() {
        let lookup = |name: &str| (name == "SET").then(|| "value".to_owned());
        assert_eq!(
            expand("${SET}", &lookup).unwrap(),
            ("value".to_owned(), true)
        );
        assert_eq!(
            expand("a-${SET}-b", &lookup).unwrap(),
            ("a-value-b".to_owned(), false)
        );
        assert_eq!(expand("${UNSET:-fallback}", &lookup).unwrap().0, "fallback");
        assert_eq!(expand("${UNSET:-}", &lookup).unwrap().0, "");
        assert_eq!(
            expand("cost $5 $${SET}", &lookup).unwrap().0,
            "cost $5 ${SET}"
        );
        let missing = expand("${UNSET}", &lookup).unwrap_err();
        assert!(missing.contains("`UNSET` is not set"), "{missing}");
        assert!(
            expand("${SET", &lookup)
                .unwrap_err()
                .contains("unterminated")
        );
        assert!(
            expand("${bad-name}", &lookup)
                .unwrap_err()
                .contains("not a valid variable reference")
        );
    }

    #[test]
    fn whole_references_keep_their_type() {
        assert_eq!(typed("4096"), Value::from(4096));
        assert_eq!(typed("0.7"), Value::from(0.7));
        assert_eq!(typed("true"), Value::Bool(true));
        assert_eq!(typed("2024-02-01"), Value::String("2024-02-01".into()));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// A valid configuration in block style, one field per line.
        const VALID: &str = "providers:\n  - provider: openai\n    model_name: gpt-4o\n    api_key: \"${KEY}\"\n    max_tokens: 1000\n    weight: 2\n  - provider: mock\n    model_name: mock-echo\n    temperature: 0.5\nrouter:\n  strategy: round_robin\n  max_rounds: 2\n  cooldown:\n    backoff_base: 0.5\nserver:\n  port: 8080\n";

        fn load(text: &str) -> Result<FactoryConfig> {
            from_yaml_str(text, Path::new("fuzz.yaml"), &|name: &str| {
                (name == "KEY").then(|| "sk-PLANTED-0000".to_owned())
            })
        }

        /// A value that may be of the wrong type or shape.
        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("-1".to_owned()),
                Just("1e400".to_owned()),
                Just("[1, 2]".to_owned()),
                Just("{a: 1}".to_owned()),
                Just("\"${MISSING}\"".to_owned()),
                Just("~".to_owned()),
                Just("yes".to_owned()),
                Just("\"unterminated".to_owned()),
                "[ -~]{0,12}",
            ]
        }

        #[test]
        fn a_variable_in_the_wrong_field_is_not_echoed() {
            let text =
                "providers:\n  - provider: mock\n    model_name: m\n    max_tokens: \"x${KEY}\"\n";
            let error = load(text).unwrap_err().to_string();
            assert!(
                error.contains("fuzz.yaml:4: providers[0].max_tokens"),
                "{error}"
            );
            assert!(!error.contains("PLANTED"), "{error}");
            assert!(error.contains("sk-…0000"), "{error}");
        }

        #[test]
        fn the_valid_configuration_loads() {
            let config = load(VALID).unwrap();
            assert_eq!(config.providers.len(), 2);
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

            /// Any text: a configuration or an error naming the file — never a panic.
            #[test]
            fn any_text_loads_or_names_the_file(text in "(?s).{0,400}") {
                if let Err(error) = load(&text) {
                    let message = error.to_string();
                    prop_assert!(message.contains("fuzz.yaml"), "{message}");
                    prop_assert!(!message.contains("PLANTED"), "{message}");
                }
            }

            /// One line of a valid file with its value replaced: it still loads, or the error
            /// names the file and that line (or the parser's), never a panic, never the key.
            #[test]
            fn a_replaced_value_is_reported_at_its_line(line in 1usize..16, value in value()) {
                let mut lines: Vec<String> = VALID.lines().map(str::to_owned).collect();
                let index = line.min(lines.len()) - 1;
                let Some((key, _)) = lines[index].split_once(':') else {
                    return Ok(());
                };
                lines[index] = format!("{key}: {value}");
                let text = lines.join("\n");
                if let Err(error) = load(&text) {
                    let message = error.to_string();
                    prop_assert!(!message.contains("PLANTED"), "{message}");
                    let at = message
                        .split_once("fuzz.yaml:")
                        .map_or("", |(_, after)| after)
                        .split(':')
                        .next()
                        .and_then(|n| n.trim().parse::<usize>().ok());
                    prop_assert!(at.is_some(), "no line in: {message}");
                }
            }

            /// A misspelt field name is reported with its line and field path.
            #[test]
            fn a_misspelt_field_is_reported_at_its_line(line in 2usize..16, typo in "[a-z]{1,3}") {
                let mut lines: Vec<String> = VALID.lines().map(str::to_owned).collect();
                let index = line.min(lines.len()) - 1;
                let Some((key, rest)) = lines[index].split_once(':') else {
                    return Ok(());
                };
                let field = key.trim().trim_start_matches("- ");
                if field.is_empty() {
                    return Ok(());
                }
                lines[index] = format!("{}{typo}:{rest}", key.replace(field, &format!("{field}_")));
                let text = lines.join("\n");
                let error = load(&text).unwrap_err().to_string();
                let expected = format!("fuzz.yaml:{}:", index + 1);
                prop_assert!(error.contains(&expected), "{error}");
                prop_assert!(error.contains("unknown field"), "{error}");
            }
        }
    }
}
