//! Tool-call ids that carry Gemini's thought signatures through an OpenAI-shaped history.
//!
//! Gemini 3 refuses a tool-result turn whose `functionCall` parts lost their
//! `thoughtSignature`, and OpenAI's tool call has no field for it. So the signature rides
//! in the id the caller sees: `{id}__ts__{signature}`, the signature in URL-safe base64
//! without padding, so ids stay within `[A-Za-z0-9_-]` (valid for OpenAI and Anthropic
//! clients alike). Ids Gemini did not give (`call_gen_…`) are not sent back upstream.

/// Between the id and the signature.
const SEPARATOR: &str = "__ts__";
/// The prefix of ids made here (Gemini sent none).
pub(crate) const GENERATED: &str = "call_gen_";

/// The id the caller sees for `id` with `signature` (standard base64, as Gemini sends it).
pub(crate) fn encode(id: &str, signature: Option<&str>) -> String {
    match signature {
        Some(signature) if !signature.is_empty() => {
            let safe: String = signature
                .chars()
                .filter(|c| *c != '=')
                .map(|c| match c {
                    '+' => '-',
                    '/' => '_',
                    other => other,
                })
                .collect();
            format!("{id}{SEPARATOR}{safe}")
        }
        _ => id.to_owned(),
    }
}

/// The id and the signature (standard base64, padded) an id carries.
pub(crate) fn decode(id: &str) -> (&str, Option<String>) {
    let Some((base, safe)) = id.split_once(SEPARATOR) else {
        return (id, None);
    };
    let mut signature: String = safe
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            other => other,
        })
        .collect();
    while !signature.len().is_multiple_of(4) {
        signature.push('=');
    }
    (base, Some(signature))
}

/// The id to send upstream in `functionCall.id` / `functionResponse.id`: Gemini's own,
/// never one made here.
pub(crate) fn upstream_id(base: &str) -> Option<&str> {
    (!base.is_empty() && !base.starts_with(GENERATED)).then_some(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_round_trip_in_safe_characters() {
        // Valid base64 comes back exactly as Gemini sent it.
        for signature in ["CiQB0e2Kb+/xYQ==", "AAAA", "ab+c/d8=", "Zm9vYmFy"] {
            let id = encode("call_gen_abc_0", Some(signature));
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
                "{id}"
            );
            let (base, back) = decode(&id);
            assert_eq!(base, "call_gen_abc_0");
            assert_eq!(back.as_deref(), Some(signature));
        }
        assert_eq!(decode("plain"), ("plain", None));
        assert_eq!(encode("x", None), "x");
        assert_eq!(upstream_id("call_gen_1"), None);
        assert_eq!(upstream_id("fc_1"), Some("fc_1"));
    }
}
