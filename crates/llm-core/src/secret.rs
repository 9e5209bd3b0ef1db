//! Masking secrets for display.
//!
//! Keys live in [`SecretString`] from config to header. Anything shown to a person — `Debug`
//! output, status pages, attempt labels, error messages — uses [`mask_key`], and upstream
//! error messages pass through [`redact`] in case an upstream echoes the key back.

use std::borrow::Cow;

use secrecy::{ExposeSecret, SecretString};

/// A key as it may be shown: a short prefix, an ellipsis and the last four characters
/// (`sk-…abcd`). Keys of twelve characters or fewer show only the ellipsis and at most the
/// last two, so a short key is never mostly revealed.
///
/// ```
/// use llm_core::mask_key;
/// use secrecy::SecretString;
///
/// let key = SecretString::from("sk-proj-1234567890abcdef");
/// assert_eq!(mask_key(&key), "sk-…cdef");
/// assert_eq!(mask_key(&SecretString::from("short")), "…");
/// ```
#[must_use]
pub fn mask_key(key: &SecretString) -> String {
    mask_str(key.expose_secret())
}

fn mask_str(raw: &str) -> String {
    let chars: Vec<char> = raw.chars().collect();
    let len = chars.len();
    if len <= 8 {
        return "…".to_owned();
    }
    if len <= 12 {
        let tail: String = chars[len - 2..].iter().collect();
        return format!("…{tail}");
    }
    let prefix: String = match raw.find('-') {
        // Show a vendor prefix such as `sk-` but never more than three characters of it.
        Some(dash) if dash <= 3 => chars[..=dash].iter().collect(),
        _ => chars[..2].iter().collect(),
    };
    let tail: String = chars[len - 4..].iter().collect();
    format!("{prefix}…{tail}")
}

/// `text` with every occurrence of `secret` replaced by its mask. Borrowed when the secret
/// does not occur (the usual case).
#[must_use]
pub fn redact<'a>(text: &'a str, secret: &SecretString) -> Cow<'a, str> {
    let raw = secret.expose_secret();
    if raw.is_empty() || !text.contains(raw) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.replace(raw, &mask_str(raw)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_little() {
        let cases = [
            ("sk-proj-abcdefghijklmnop", "sk-…mnop"),
            ("0123456789abcdef0123", "01…0123"),
            ("abc-defghijklmn", "abc-…klmn"),
            ("abcdefghij", "…ij"),
            ("abcdefgh", "…"),
            ("", "…"),
        ];
        for (raw, masked) in cases {
            assert_eq!(mask_key(&SecretString::from(raw)), masked, "{raw}");
        }
    }

    #[test]
    fn redact_replaces_every_occurrence() {
        let key = SecretString::from("sk-test-SECRET-123456");
        let text = "Incorrect API key provided: sk-test-SECRET-123456 (sk-test-SECRET-123456)";
        let out = redact(text, &key);
        assert!(!out.contains("SECRET"), "{out}");
        assert!(out.contains("sk-…3456"), "{out}");
        assert!(matches!(redact("nothing here", &key), Cow::Borrowed(_)));
    }
}
