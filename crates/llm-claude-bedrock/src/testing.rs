//! Bedrock event-stream frames for mock upstreams (feature `test-util`): real
//! `application/vnd.amazon.eventstream` messages, prelude and CRCs included, encoded with
//! aws-smithy-eventstream — what ConverseStream sends, for tests and local mocks.
//!
//! ```
//! use llm_claude_bedrock::testing::event;
//! use serde_json::json;
//!
//! let frame = event("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": "Hi"}}));
//! // total length, headers length, prelude CRC, headers, payload, message CRC
//! assert_eq!(u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize, frame.len());
//! ```

use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use serde_json::{Value, json};

/// An event frame: `:event-type` = `kind`, `:content-type` = `application/json`,
/// `:message-type` = `event`, the JSON payload with Bedrock's `"p"` padding field added.
#[must_use]
pub fn event(kind: &str, mut payload: Value) -> Vec<u8> {
    if let Value::Object(map) = &mut payload {
        map.insert("p".into(), Value::from("abcdefghijklmnopqrstuvwxyzABCDEF"));
    }
    frame(
        &payload,
        [(":event-type", kind), (":message-type", "event")],
    )
}

/// A modeled exception frame: `:exception-type` = `kind` (lowerCamelCase, as Bedrock sends
/// it: `throttlingException`), payload `{"message": message}`.
#[must_use]
pub fn exception(kind: &str, message: &str) -> Vec<u8> {
    frame(
        &json!({ "message": message }),
        [(":exception-type", kind), (":message-type", "exception")],
    )
}

/// A JSON-payload frame with `headers` and `:content-type: application/json`.
fn frame(payload: &Value, headers: [(&str, &str); 2]) -> Vec<u8> {
    let mut message = Message::new(payload.to_string().into_bytes()).add_header(Header::new(
        ":content-type",
        HeaderValue::String("application/json".into()),
    ));
    for (name, value) in headers {
        message = message.add_header(Header::new(
            name.to_owned(),
            HeaderValue::String(value.to_owned().into()),
        ));
    }
    let mut out = Vec::new();
    // Writing into a Vec fails only for headers or payloads over the format's limits,
    // which these small frames never reach.
    let _ = aws_smithy_eventstream::frame::write_message_to(&message, &mut out);
    out
}
