//! `serde_json::Value` ↔ smithy `Document` (tool schemas, `toolUse.input`, additional model
//! fields). aws-smithy-types has no serde support without an unstable cfg, so the
//! conversion is written here, both ways, losslessly for JSON.

use std::collections::HashMap;

use aws_smithy_types::{Document, Number};
use serde_json::{Map, Value};

/// A JSON value as a smithy document.
pub(crate) fn to_document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            Number::NegInt(i)
        } else {
            Number::Float(n.as_f64().unwrap_or_default())
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(items) => Document::Array(items.iter().map(to_document).collect()),
        Value::Object(map) => Document::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), to_document(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

/// A smithy document as a JSON value (a non-finite float becomes `null`, as JSON has none).
pub(crate) fn to_value(document: &Document) -> Value {
    match document {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        Document::String(s) => Value::String(s.clone()),
        Document::Array(items) => Value::Array(items.iter().map(to_value).collect()),
        Document::Object(map) => {
            // Sorted keys: stable output (smithy keeps objects in a HashMap).
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), to_value(v)))
                    .collect::<Map<_, _>>(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn round_trips_json() {
        let value = json!({
            "a": [1, -2, 2.5, "s", null, true, {"nested": {"deep": []}}],
            "big": u64::MAX,
            "neg": i64::MIN,
            "unicode": "é😀"
        });
        assert_eq!(to_value(&to_document(&value)), value);
    }
}
