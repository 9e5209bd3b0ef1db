//! JSON Schema → the schema subset Gemini accepts in `functionDeclarations[].parameters`
//! and `responseSchema`.
//!
//! Gemini rejects, with "Unknown name … Cannot find field" or "Proto field is not
//! repeating": `$schema`, `$id`, `additionalProperties`, `propertyNames`,
//! `patternProperties`, `const`, `default`, `$defs` / `$ref`, `type` arrays, non-string
//! `enum` values, and a top-level `anyOf`; an `OBJECT` needs non-empty `properties`. Agent
//! tool schemas (MCP servers, zod-to-json-schema, coding agents) carry all of these. This
//! module rewrites them:
//!
//! - `$ref` is inlined from `$defs` / `definitions` (cycles end in an untyped schema);
//! - `type: ["string", "null"]` → `type: "string", nullable: true` (several non-null types
//!   → `anyOf`);
//! - `const: v` → `enum: ["v"]`; non-string `enum` values become strings;
//! - `oneOf` → `anyOf`; `allOf` of objects is merged;
//! - a top-level `anyOf` / `oneOf` of objects becomes one object with every variant's
//!   properties, none required (the variants' descriptions are kept in the description);
//! - unsupported keywords are dropped; unsupported string `format`s too;
//! - `required` names that are not properties are dropped; empty `properties` are removed.

use serde_json::{Map, Value};

/// String formats Gemini accepts.
const FORMATS: &[&str] = &["enum", "date-time", "int32", "int64", "float", "double"];

/// How deep `$ref`s are followed before giving up (recursive schemas).
const MAX_DEPTH: usize = 16;

/// The function `parameters` for `schema`: `None` when the tool takes no parameters (Gemini
/// refuses an empty `OBJECT`, so the field is left out).
#[must_use]
pub fn parameters(schema: &Value) -> Option<Value> {
    let defs = definitions(schema);
    let mut converted = convert(schema, &defs, 0);
    if let Some(object) = converted.as_object_mut() {
        flatten_top_level_union(object);
        object.remove("nullable");
        if object.get("type").is_none() && object.contains_key("properties") {
            object.insert("type".into(), Value::from("object"));
        }
    }
    let has_properties = converted
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| !p.is_empty());
    has_properties.then_some(converted)
}

/// A `responseSchema` for structured output (any top-level type).
#[must_use]
pub fn response_schema(schema: &Value) -> Value {
    let defs = definitions(schema);
    convert(schema, &defs, 0)
}

fn definitions(schema: &Value) -> Map<String, Value> {
    let mut defs = Map::new();
    for key in ["$defs", "definitions"] {
        if let Some(map) = schema.get(key).and_then(Value::as_object) {
            defs.extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    defs
}

fn resolve<'a>(reference: &str, defs: &'a Map<String, Value>) -> Option<&'a Value> {
    let name = reference
        .strip_prefix("#/$defs/")
        .or_else(|| reference.strip_prefix("#/definitions/"))?;
    defs.get(name)
}

fn convert(schema: &Value, defs: &Map<String, Value>, depth: usize) -> Value {
    let Some(object) = schema.as_object() else {
        // `true` / `false` schemas and garbage: anything goes.
        return Value::Object(Map::new());
    };
    if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
        if depth >= MAX_DEPTH {
            return Value::Object(Map::new());
        }
        let mut resolved = match resolve(reference, defs) {
            Some(target) => convert(target, defs, depth + 1),
            None => Value::Object(Map::new()),
        };
        // Sibling keywords (a description next to the $ref) win.
        if let (Some(target), Some(description)) =
            (resolved.as_object_mut(), object.get("description"))
        {
            target.insert("description".into(), description.clone());
        }
        return resolved;
    }
    let mut out = Map::new();
    // type, with null folded into `nullable`.
    match object.get("type") {
        Some(Value::String(kind)) if kind == "null" => {
            out.insert("nullable".into(), Value::Bool(true));
        }
        Some(Value::String(kind)) => {
            out.insert("type".into(), Value::from(kind.as_str()));
        }
        Some(Value::Array(kinds)) => {
            let non_null: Vec<&str> = kinds
                .iter()
                .filter_map(Value::as_str)
                .filter(|k| *k != "null")
                .collect();
            if non_null.len() < kinds.len() {
                out.insert("nullable".into(), Value::Bool(true));
            }
            match non_null.as_slice() {
                [] => {}
                [one] => {
                    out.insert("type".into(), Value::from(*one));
                }
                many => {
                    let variants: Vec<Value> = many
                        .iter()
                        .map(|kind| {
                            let mut single = object.clone();
                            single.insert("type".into(), Value::from(*kind));
                            convert(&Value::Object(single), defs, depth + 1)
                        })
                        .collect();
                    out.insert("anyOf".into(), Value::Array(variants));
                    return Value::Object(out);
                }
            }
        }
        _ => {}
    }
    for (key, value) in object {
        match key.as_str() {
            "type" => {}
            "const" => {
                out.insert("enum".into(), Value::Array(vec![enum_value(value)]));
                if !out.contains_key("type") {
                    out.insert("type".into(), Value::from("string"));
                }
            }
            "enum" => {
                let values: Vec<Value> = value
                    .as_array()
                    .map(|values| {
                        values
                            .iter()
                            .filter(|v| !v.is_null())
                            .map(enum_value)
                            .collect()
                    })
                    .unwrap_or_default();
                if !values.is_empty() {
                    out.insert("enum".into(), Value::Array(values));
                    // Gemini's enums are strings.
                    out.insert("type".into(), Value::from("string"));
                }
            }
            "properties" => {
                if let Some(properties) = value.as_object() {
                    let converted: Map<String, Value> = properties
                        .iter()
                        .map(|(name, property)| (name.clone(), convert(property, defs, depth + 1)))
                        .collect();
                    if !converted.is_empty() {
                        out.insert("properties".into(), Value::Object(converted));
                    }
                }
            }
            "items" => {
                let item = match value {
                    Value::Array(tuple) => tuple.first().cloned().unwrap_or(Value::Null),
                    other => other.clone(),
                };
                out.insert("items".into(), convert(&item, defs, depth + 1));
            }
            "anyOf" | "oneOf" => {
                if let Some(variants) = value.as_array() {
                    let (nulls, rest): (Vec<&Value>, Vec<&Value>) = variants
                        .iter()
                        .partition(|v| v.get("type").and_then(Value::as_str) == Some("null"));
                    if !nulls.is_empty() {
                        out.insert("nullable".into(), Value::Bool(true));
                    }
                    let converted: Vec<Value> =
                        rest.iter().map(|v| convert(v, defs, depth + 1)).collect();
                    match converted.len() {
                        0 => {}
                        1 => {
                            if let Some(single) = converted.into_iter().next().and_then(|v| match v
                            {
                                Value::Object(map) => Some(map),
                                _ => None,
                            }) {
                                for (k, v) in single {
                                    out.entry(k).or_insert(v);
                                }
                            }
                        }
                        _ => {
                            out.insert("anyOf".into(), Value::Array(converted));
                        }
                    }
                }
            }
            "allOf" => {
                for part in value.as_array().into_iter().flatten() {
                    if let Value::Object(part) = convert(part, defs, depth + 1) {
                        merge(&mut out, part);
                    }
                }
            }
            "format" if value.as_str().is_some_and(|f| FORMATS.contains(&f)) => {
                out.insert("format".into(), value.clone());
            }
            "examples" => {
                if let Some(first) = value.as_array().and_then(|e| e.first()) {
                    out.insert("example".into(), first.clone());
                }
            }
            "required" | "description" | "title" | "nullable" | "example" | "minItems"
            | "maxItems" | "minProperties" | "maxProperties" | "minLength" | "maxLength"
            | "pattern" | "minimum" | "maximum" | "propertyOrdering" => {
                out.insert(key.clone(), value.clone());
            }
            // `$schema`, `additionalProperties`, `default`, `propertyNames`, … : refused by
            // Gemini, dropped.
            _ => {}
        }
    }
    // `required` only names properties that exist.
    if let Some(Value::Array(required)) = out.get("required").cloned() {
        let properties = out.get("properties").and_then(Value::as_object);
        let kept: Vec<Value> = required
            .into_iter()
            .filter(|name| {
                name.as_str()
                    .is_some_and(|n| properties.is_some_and(|p| p.contains_key(n)))
            })
            .collect();
        if kept.is_empty() {
            out.remove("required");
        } else {
            out.insert("required".into(), Value::Array(kept));
        }
    }
    Value::Object(out)
}

fn enum_value(value: &Value) -> Value {
    match value {
        Value::String(_) => value.clone(),
        other => Value::String(other.to_string()),
    }
}

/// Merge an `allOf` part into `out`: properties and required lists are unioned.
fn merge(out: &mut Map<String, Value>, part: Map<String, Value>) {
    for (key, value) in part {
        match (key.as_str(), out.get_mut(&key), value) {
            ("properties", Some(Value::Object(existing)), Value::Object(more)) => {
                existing.extend(more);
            }
            ("required", Some(Value::Array(existing)), Value::Array(more)) => {
                for name in more {
                    if !existing.contains(&name) {
                        existing.push(name);
                    }
                }
            }
            (_, Some(_), _) => {}
            (_, None, value) => {
                out.insert(key, value);
            }
        }
    }
}

/// A top-level `anyOf` (Gemini wants an OBJECT): one object with every variant's
/// properties, none required.
fn flatten_top_level_union(object: &mut Map<String, Value>) {
    let Some(Value::Array(variants)) = object.remove("anyOf") else {
        return;
    };
    let mut properties = object
        .remove("properties")
        .and_then(|p| match p {
            Value::Object(map) => Some(map),
            _ => None,
        })
        .unwrap_or_default();
    let mut notes = Vec::new();
    for variant in variants {
        if let Some(more) = variant.get("properties").and_then(Value::as_object) {
            for (name, schema) in more {
                properties
                    .entry(name.clone())
                    .or_insert_with(|| schema.clone());
            }
        }
        if let Some(description) = variant.get("description").and_then(Value::as_str) {
            notes.push(description.to_owned());
        }
    }
    object.insert("type".into(), Value::from("object"));
    object.remove("required");
    if !properties.is_empty() {
        object.insert("properties".into(), Value::Object(properties));
    }
    if !notes.is_empty() {
        let description = object
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let joined = notes.join(" | ");
        object.insert(
            "description".into(),
            Value::from(match description {
                Some(d) => format!("{d} (one of: {joined})"),
                None => format!("One of: {joined}"),
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The keywords Gemini refuses, anywhere in `value`.
    fn refused(value: &Value, path: &str, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    if matches!(
                        key.as_str(),
                        "$schema"
                            | "$ref"
                            | "$defs"
                            | "definitions"
                            | "additionalProperties"
                            | "const"
                            | "default"
                            | "propertyNames"
                            | "patternProperties"
                            | "oneOf"
                            | "allOf"
                            | "examples"
                            | "$id"
                    ) && !path.ends_with(".properties")
                    {
                        found.push(format!("{path}.{key}"));
                    }
                    if key == "type" && inner.is_array() {
                        found.push(format!("{path}.type[]"));
                    }
                    if key == "enum"
                        && inner
                            .as_array()
                            .is_some_and(|e| e.iter().any(|v| !v.is_string()))
                    {
                        found.push(format!("{path}.enum"));
                    }
                    refused(inner, &format!("{path}.{key}"), found);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    refused(item, &format!("{path}[{i}]"), found);
                }
            }
            _ => {}
        }
    }

    fn assert_accepted(value: &Value) {
        let mut found = Vec::new();
        refused(value, "", &mut found);
        assert!(
            found.is_empty(),
            "refused keywords left: {found:?} in {value}"
        );
    }

    #[test]
    fn an_mcp_filesystem_tool_schema() {
        // As zod-to-json-schema writes it (MCP filesystem server `edit_file`).
        let schema = json!({
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "edits": {"type": "array", "items": {"type": "object", "properties": {
                    "oldText": {"type": "string", "description": "Text to search for"},
                    "newText": {"type": "string"}
                }, "required": ["oldText", "newText"], "additionalProperties": false}},
                "dryRun": {"type": "boolean", "default": false, "description": "Preview changes"}
            },
            "required": ["path", "edits"],
            "additionalProperties": false,
            "$schema": "http://json-schema.org/draft-07/schema#"
        });
        let converted = parameters(&schema).unwrap();
        assert_accepted(&converted);
        assert_eq!(converted["required"], json!(["path", "edits"]));
        assert_eq!(
            converted["properties"]["edits"]["items"]["required"],
            json!(["oldText", "newText"])
        );
        assert_eq!(
            converted["properties"]["dryRun"]["description"],
            "Preview changes"
        );
    }

    #[test]
    fn a_coding_agent_tool_with_refs_nullable_types_and_consts() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "$defs": {
                "Range": {"type": "object", "properties": {
                    "start": {"type": "integer", "minimum": 0},
                    "end": {"type": ["integer", "null"]}
                }, "required": ["start"]}
            },
            "properties": {
                "mode": {"const": "replace"},
                "range": {"$ref": "#/$defs/Range", "description": "Lines to edit"},
                "level": {"enum": [1, 2, 3]},
                "path": {"type": "string", "format": "uri-reference"},
                "tags": {"type": "object", "propertyNames": {"pattern": "^[a-z]+$"}, "additionalProperties": {"type": "string"}},
                "when": {"type": "string", "format": "date-time"}
            },
            "required": ["mode", "range", "not-a-property"]
        });
        let converted = parameters(&schema).unwrap();
        assert_accepted(&converted);
        let properties = &converted["properties"];
        assert_eq!(properties["mode"]["enum"], json!(["replace"]));
        assert_eq!(properties["range"]["description"], "Lines to edit");
        assert_eq!(properties["range"]["properties"]["end"]["nullable"], true);
        assert_eq!(properties["range"]["properties"]["end"]["type"], "integer");
        assert_eq!(properties["level"]["enum"], json!(["1", "2", "3"]));
        assert!(properties["path"].get("format").is_none());
        assert_eq!(properties["when"]["format"], "date-time");
        assert_eq!(converted["required"], json!(["mode", "range"]));
    }

    #[test]
    fn top_level_unions_and_empty_tools() {
        let union = json!({"anyOf": [
            {"type": "object", "description": "by id", "properties": {"id": {"type": "string"}}, "required": ["id"]},
            {"type": "object", "description": "by name", "properties": {"name": {"type": "string"}}}
        ]});
        let converted = parameters(&union).unwrap();
        assert_accepted(&converted);
        assert_eq!(converted["type"], "object");
        assert!(
            converted["properties"]["id"].is_object()
                && converted["properties"]["name"].is_object()
        );
        assert!(converted.get("required").is_none());
        assert!(converted.get("anyOf").is_none());
        // Tools without parameters: the field is left out.
        assert_eq!(
            parameters(&json!({"type": "object", "properties": {}})),
            None
        );
        assert_eq!(parameters(&json!({})), None);
        assert_eq!(parameters(&Value::Null), None);
    }

    #[test]
    fn recursive_refs_end() {
        let schema = json!({"type": "object", "properties": {"node": {"$ref": "#/$defs/Node"}},
            "$defs": {"Node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}, "v": {"type": "string"}}}}});
        let converted = parameters(&schema).unwrap();
        assert_accepted(&converted);
    }

    #[test]
    fn all_of_merges_and_one_of_becomes_any_of() {
        let schema = json!({"type": "object", "properties": {
            "a": {"allOf": [{"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]},
                            {"properties": {"y": {"type": "number"}}}]},
            "b": {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "null"}]}
        }});
        let converted = parameters(&schema).unwrap();
        assert_accepted(&converted);
        assert_eq!(converted["properties"]["a"]["required"], json!(["x"]));
        assert!(converted["properties"]["a"]["properties"]["y"].is_object());
        assert_eq!(
            converted["properties"]["b"]["anyOf"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(converted["properties"]["b"]["nullable"], true);
    }
}
