//! Thinking mode and the replay of `reasoning_content` in tool loops.
//!
//! DeepSeek's thinking mode rejects a follow-up turn whose assistant tool-call message lacks
//! the `reasoning_content` it was answered with ("The reasoning_content in the thinking mode
//! must be passed back to the API."), while the legacy `deepseek-reasoner` rejected the field
//! in input. OpenAI-shaped clients routinely drop the field from their history, so the
//! provider remembers the reasoning of each tool-call answer it relayed, by tool-call id,
//! and puts it back when a later request's history lacks it.

use std::{
    borrow::Cow,
    collections::{HashMap, VecDeque},
};

use parking_lot::Mutex;

use llm_core::{ChatRequest, Message, Role};
use serde_json::Value;

/// How a request is answered, as far as reasoning goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThinkingMode {
    /// Thinking: `reasoning_content` must be replayed on assistant tool-call turns.
    Thinking,
    /// No thinking: messages are sent as they are.
    Plain,
    /// The legacy `deepseek-reasoner`: `reasoning_content` in input is rejected, so it is
    /// removed.
    LegacyReasoner,
}

impl ThinkingMode {
    /// The mode of `request` sent to `model`: an explicit `thinking: {"type": …}` wins;
    /// else `deepseek-chat` is plain, `deepseek-reasoner` is the legacy reasoner, and any
    /// other model thinks when `thinks_by_default` (current DeepSeek models do).
    #[must_use]
    pub fn of(request: &ChatRequest, model: &str, thinks_by_default: bool) -> Self {
        let explicit = request
            .extra
            .get("thinking")
            .and_then(|thinking| thinking.get("type"))
            .and_then(Value::as_str);
        match (explicit, model) {
            (_, "deepseek-reasoner") => Self::LegacyReasoner,
            (Some("enabled"), _) => Self::Thinking,
            (Some("disabled"), _) | (None, "deepseek-chat") => Self::Plain,
            _ if thinks_by_default => Self::Thinking,
            _ => Self::Plain,
        }
    }
}

/// Reasoning of recent tool-call answers, by tool-call id; bounded (oldest out first).
///
/// Touched only by requests that carry or make tool calls, for a map insert or lookup
/// under a short, uncontended-in-practice `parking_lot` lock (one per pool of keys).
#[derive(Debug)]
pub struct ReasoningCache {
    capacity: usize,
    inner: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    by_id: HashMap<String, String>,
    order: VecDeque<String>,
}

impl Default for ReasoningCache {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl ReasoningCache {
    /// A cache of at most `capacity` answers (0 disables it).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Entries::default()),
        }
    }

    /// Remember `reasoning` for the answer that made the calls `ids`.
    pub fn insert<'a>(&self, ids: impl IntoIterator<Item = &'a str>, reasoning: &str) {
        if self.capacity == 0 || reasoning.is_empty() {
            return;
        }
        let mut entries = self.inner.lock();
        for id in ids {
            if entries
                .by_id
                .insert(id.to_owned(), reasoning.to_owned())
                .is_none()
            {
                entries.order.push_back(id.to_owned());
            }
            while entries.order.len() > self.capacity {
                if let Some(old) = entries.order.pop_front() {
                    entries.by_id.remove(&old);
                }
            }
        }
    }

    /// The reasoning remembered for the call `id`.
    #[must_use]
    pub fn get(&self, id: &str) -> Option<String> {
        let entries = self.inner.lock();
        entries.by_id.get(id).cloned()
    }

    /// How many calls are remembered.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.lock().by_id.len()
    }

    /// Whether nothing is remembered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The messages to send in `mode`, or `None` when the request's own are right as they are.
pub(crate) fn messages<'a>(
    request: &'a ChatRequest,
    mode: ThinkingMode,
    cache: &ReasoningCache,
) -> Option<Vec<Cow<'a, Message>>> {
    let needs_change = |message: &Message| match mode {
        ThinkingMode::Thinking => {
            message.role == Role::Assistant
                && message.tool_calls.as_ref().is_some_and(|c| !c.is_empty())
                && message.reasoning_content.is_none()
        }
        ThinkingMode::LegacyReasoner => message.reasoning_content.is_some(),
        ThinkingMode::Plain => false,
    };
    if !request.messages.iter().any(needs_change) {
        return None;
    }
    Some(
        request
            .messages
            .iter()
            .map(|message| {
                if !needs_change(message) {
                    return Cow::Borrowed(message);
                }
                let mut message = message.clone();
                message.reasoning_content = match mode {
                    ThinkingMode::Thinking => Some(
                        message
                            .tool_calls
                            .iter()
                            .flatten()
                            .find_map(|call| cache.get(&call.id))
                            // Unknown (another process answered it): an empty reasoning is
                            // accepted where a missing one is refused.
                            .unwrap_or_default(),
                    ),
                    ThinkingMode::LegacyReasoner | ThinkingMode::Plain => None,
                };
                Cow::Owned(message)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use llm_core::{FunctionCall, ToolCall, ToolKind};
    use serde_json::json;

    use super::*;

    fn call(id: &str) -> ToolCall {
        ToolCall {
            id: id.to_owned(),
            kind: ToolKind::Function,
            function: FunctionCall {
                name: "f".to_owned(),
                arguments: "{}".to_owned(),
            },
        }
    }

    #[test]
    fn modes() {
        let mut request = ChatRequest::from("hi");
        assert_eq!(
            ThinkingMode::of(&request, "deepseek-flash", true),
            ThinkingMode::Thinking
        );
        assert_eq!(
            ThinkingMode::of(&request, "deepseek-flash", false),
            ThinkingMode::Plain
        );
        assert_eq!(
            ThinkingMode::of(&request, "deepseek-chat", true),
            ThinkingMode::Plain
        );
        assert_eq!(
            ThinkingMode::of(&request, "deepseek-reasoner", true),
            ThinkingMode::LegacyReasoner
        );
        request
            .extra
            .insert("thinking".into(), json!({"type": "disabled"}));
        assert_eq!(
            ThinkingMode::of(&request, "deepseek-flash", true),
            ThinkingMode::Plain
        );
        request
            .extra
            .insert("thinking".into(), json!({"type": "enabled"}));
        assert_eq!(
            ThinkingMode::of(&request, "deepseek-chat", true),
            ThinkingMode::Thinking
        );
    }

    #[test]
    fn cache_is_bounded() {
        let cache = ReasoningCache::new(2);
        cache.insert(["a"], "ra");
        cache.insert(["b", "c"], "rbc");
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get("a"), None);
        assert_eq!(cache.get("c").as_deref(), Some("rbc"));
        ReasoningCache::new(0).insert(["x"], "r");
    }

    #[test]
    fn only_changed_messages_are_copied() {
        let cache = ReasoningCache::default();
        cache.insert(["call_1"], "I should look it up.");
        let mut assistant = Message::assistant("");
        assistant.tool_calls = Some(vec![call("call_1")]);
        let request = ChatRequest::new(
            "deepseek-flash",
            vec![Message::user("q"), assistant, Message::tool("call_1", "42")],
        );
        assert!(messages(&request, ThinkingMode::Plain, &cache).is_none());
        let sent = messages(&request, ThinkingMode::Thinking, &cache).unwrap();
        assert!(matches!(sent[0], Cow::Borrowed(_)) && matches!(sent[2], Cow::Borrowed(_)));
        assert_eq!(
            sent[1].reasoning_content.as_deref(),
            Some("I should look it up.")
        );
        let empty = ReasoningCache::default();
        let sent = messages(&request, ThinkingMode::Thinking, &empty).unwrap();
        assert_eq!(sent[1].reasoning_content.as_deref(), Some(""));
    }
}
