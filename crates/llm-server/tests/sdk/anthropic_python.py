"""The official Anthropic Python SDK against `llm-server`'s Messages door (`/v1/messages`),
on models whose upstream is `provider-mock` speaking each provider's own wire format:
an OpenAI-shaped one (DeepSeek) and others (Gemini, Claude on Bedrock).

Run by `cargo xtask sdk`:

    python anthropic_python.py http://127.0.0.1:PORT GATEWAY_KEY LIMITED_MODEL MODEL [MODEL ...]

For each model, non-streamed and streamed (every stream's event sequence checked frame by
frame): text with a system block list, image, stop sequences and max tokens, usage, tools,
a tool-result round trip with parallel results (one an error), thinking requested, a
request shaped like Claude Code's; then count_tokens, and every error the door answers.
Exits non-zero on the first failure.
"""

import base64
import json
import sys

import anthropic

base_url, key, limited, models = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
client = anthropic.Anthropic(base_url=base_url, api_key=key, max_retries=0, timeout=30)
checks = 0

PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201e5277cde0000000049454e44ae426082"
)).decode()
TOOLS = [
    {"name": "get_weather", "description": "Weather for a city",
     "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
     "cache_control": {"type": "ephemeral"}},
    {"name": "get_time", "description": "Time in a city",
     "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
]
SYSTEM = [{"type": "text", "text": "You are terse."},
          {"type": "text", "text": "Answer in one line.", "cache_control": {"type": "ephemeral"}}]


def check(condition, message):
    global checks
    if not condition:
        print(f"FAILED: {message}", file=sys.stderr)
        sys.exit(1)
    checks += 1


def streamed(model, **kwargs):
    """Stream a request; check the event sequence frame by frame; return (blocks, stop, usage)."""
    events = list(client.messages.create(model=model, stream=True, **kwargs))
    kinds = [e.type for e in events]
    check(kinds[0] == "message_start", f"{model}: first event {kinds}")
    check(kinds[-1] == "message_stop", f"{model}: last event {kinds}")
    check(kinds[-2] == "message_delta", f"{model}: message_delta before message_stop {kinds}")
    check(kinds.count("message_delta") == 1, f"{model}: one message_delta {kinds}")
    start = events[0].message
    check(start.content == [] and isinstance(start.usage.input_tokens, int), f"{model}: message_start {start}")
    blocks, open_index, expected_index = [], None, 0
    for event in events[1:-2]:
        if event.type == "ping":
            continue
        if event.type == "content_block_start":
            check(open_index is None, f"{model}: a block starts while {open_index} is open: {kinds}")
            check(event.index == expected_index, f"{model}: block index {event.index}, expected {expected_index}")
            open_index = event.index
            block = event.content_block.model_dump()
            if block["type"] == "tool_use":
                block["partial"] = ""
            blocks.append(block)
        elif event.type == "content_block_delta":
            check(event.index == open_index, f"{model}: delta for {event.index} while {open_index} is open")
            delta, block = event.delta, blocks[-1]
            if delta.type == "text_delta":
                block["text"] += delta.text
            elif delta.type == "input_json_delta":
                block["partial"] += delta.partial_json
            elif delta.type == "thinking_delta":
                block["thinking"] += delta.thinking
            elif delta.type == "signature_delta":
                block["signature"] = delta.signature
        elif event.type == "content_block_stop":
            check(event.index == open_index, f"{model}: stop for {event.index} while {open_index} is open")
            open_index, expected_index = None, expected_index + 1
        else:
            check(False, f"{model}: unexpected event {event.type} in {kinds}")
    check(open_index is None, f"{model}: a block left open: {kinds}")
    for block in blocks:
        check(block["type"] != "text" or block["text"] != "", f"{model}: an empty text block {blocks}")
    final = events[-2]
    return blocks, final.delta.stop_reason, final.usage


def text_of(blocks):
    return "".join(b["text"] if isinstance(b, dict) else b.text
                   for b in blocks if (b["type"] if isinstance(b, dict) else b.type) == "text")


for model in models:
    # Text with a system block list, an image, stop sequences and max tokens.
    request = dict(
        max_tokens=256, system=SYSTEM, stop_sequences=["\n\nEND"],
        metadata={"user_id": "sdk-user"},
        messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "text", "text": "你好 world"}]}],
    )
    plain = client.messages.create(model=model, **request)
    check(plain.type == "message" and plain.role == "assistant", f"{model}: {plain}")
    check(text_of(plain.content) == "你好 world", f"{model} text: {plain.content}")
    check(plain.stop_reason == "end_turn" and plain.stop_sequence is None, f"{model} stop: {plain}")
    usage = plain.usage
    prompt = usage.input_tokens + (usage.cache_read_input_tokens or 0) + (usage.cache_creation_input_tokens or 0)
    check(prompt == 12 and usage.output_tokens > 0, f"{model} usage: {usage}")
    check(all(b.type != "text" or b.text for b in plain.content), f"{model}: empty text block {plain.content}")
    blocks, stop, usage = streamed(model, **request)
    check(text_of(blocks) == "你好 world", f"{model} streamed text: {blocks}")
    check(stop == "end_turn", f"{model} streamed stop: {stop}")
    check(usage.output_tokens > 0, f"{model} streamed usage: {usage}")

    # A stop sequence: Claude on Bedrock says which one stopped it; OpenAI-shaped finish
    # reasons cannot, so elsewhere it reads as end_turn.
    if model.startswith("claude"):
        request = dict(max_tokens=256, stop_sequences=["END", "HALT"],
                       messages=[{"role": "user", "content": "alpha beta END gamma"}])
        stopped = client.messages.create(model=model, **request)
        check(stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "END"
              and text_of(stopped.content) == "alpha beta ", f"{model} stop sequence: {stopped}")
        blocks, stop, _ = streamed(model, **request)
        check(stop == "stop_sequence" and text_of(blocks) == "alpha beta ",
              f"{model} streamed stop sequence: {blocks} {stop}")

    # Thinking requested (dropped where the provider has no reasoning; never an error).
    thought = client.messages.create(
        model=model, max_tokens=4096, thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "think about this"}])
    check(text_of(thought.content) == "think about this", f"{model} thinking: {thought.content}")

    # Tools: a call, plain and streamed.
    question = {"role": "user", "content": "Weather in Paris?"}
    called = client.messages.create(model=model, max_tokens=256, tools=TOOLS,
                                    tool_choice={"type": "auto"}, messages=[question])
    check(called.stop_reason == "tool_use", f"{model} tool stop: {called}")
    uses = [b for b in called.content if b.type == "tool_use"]
    check(len(uses) == 1 and uses[0].name == "get_weather" and uses[0].input == {"city": "Paris"},
          f"{model} tool_use: {called.content}")
    check(all(c.isalnum() or c in "_-" for c in uses[0].id), f"{model} tool id: {uses[0].id}")
    blocks, stop, _ = streamed(model, max_tokens=256, tools=TOOLS, messages=[question])
    tool_blocks = [b for b in blocks if b["type"] == "tool_use"]
    check(stop == "tool_use" and len(tool_blocks) == 1, f"{model} streamed tool: {blocks} {stop}")
    check(json.loads(tool_blocks[0]["partial"]) == {"city": "Paris"}, f"{model} streamed input: {tool_blocks}")

    # Parallel calls answered in one user turn (one result an error), text after them.
    history = [
        question,
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking both."},
            {"type": "tool_use", "id": uses[0].id, "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_second", "name": "get_time", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_second", "content": "clock broken", "is_error": True},
            {"type": "tool_result", "tool_use_id": uses[0].id, "content": [{"type": "text", "text": "21°C"}]}]},
    ]
    answered = client.messages.create(model=model, max_tokens=256, tools=TOOLS, messages=history)
    said = text_of(answered.content)
    # The mocks answer with the result they read (the last, the first, or all of them).
    check(said.startswith("tool said: ") and ("21°C" in said or "clock broken" in said),
          f"{model} tool round trip: {answered.content}")
    blocks, stop, _ = streamed(model, max_tokens=256, tools=TOOLS, messages=history)
    check(text_of(blocks) == said and stop == "end_turn", f"{model} streamed round trip: {blocks}")

    # A request shaped like Claude Code's: beta endpoint (?beta=true), its headers, metadata,
    # a long system list with cache_control, tools with cache_control.
    code = client.beta.messages.create(
        model=model, max_tokens=1024, betas=["claude-code-20250219", "interleaved-thinking-2025-05-14"],
        system=[{"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."}]
        + [{"type": "text", "text": f"Instruction {i}: be careful." * 20} for i in range(6)]
        + [{"type": "text", "text": "Environment: linux", "cache_control": {"type": "ephemeral"}}],
        metadata={"user_id": "user_abc123_account_def_session_0f0e"},
        tools=TOOLS, tool_choice={"type": "auto"},
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>context</system-reminder>"},
            {"type": "text", "text": "Weather in Paris?", "cache_control": {"type": "ephemeral"}}]}],
        extra_headers={"x-app": "cli", "user-agent": "claude-cli/2.0.0 (external, cli)",
                       "anthropic-dangerous-direct-browser-access": "true"},
    )
    check(code.stop_reason == "tool_use", f"{model} claude-code shaped: {code}")
    events = list(client.beta.messages.create(
        model=model, max_tokens=1024, betas=["claude-code-20250219"], stream=True,
        system=[{"type": "text", "text": "You are Claude Code."}] * 8,
        metadata={"user_id": "user_abc123_account_def_session_0f0e"}, tools=TOOLS,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        extra_headers={"x-app": "cli", "user-agent": "claude-cli/2.0.0 (external, cli)"}))
    kinds = [e.type for e in events]
    check(kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
          and events[-2].delta.stop_reason == "tool_use", f"{model} claude-code shaped stream: {kinds}")

    # count_tokens: larger for a longer prompt.
    short = client.messages.count_tokens(model=model, messages=[{"role": "user", "content": "hi"}])
    long = client.messages.count_tokens(model=model, system=SYSTEM, tools=TOOLS,
                                        messages=[{"role": "user", "content": "a longer prompt " * 50}])
    check(0 < short.input_tokens < long.input_tokens, f"{model} count_tokens: {short} {long}")

# Errors, each in Anthropic's shape and the SDK's exception for it.
model = models[0]
try:
    client.messages.create(model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    check(False, "unknown model accepted")
except anthropic.NotFoundError as e:
    check(e.body["error"]["type"] == "not_found_error", f"404 body: {e.body}")
try:
    anthropic.Anthropic(base_url=base_url, api_key="wrong-key", max_retries=0).messages.create(
        model=model, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    check(False, "a wrong key accepted")
except anthropic.AuthenticationError as e:
    check(e.body["error"]["type"] == "authentication_error", f"401 body: {e.body}")
try:
    client.messages.create(model=model, max_tokens="ten", messages=[{"role": "user", "content": "hi"}])
    check(False, "a wrong type accepted")
except anthropic.BadRequestError as e:
    check(e.body["error"]["type"] == "invalid_request_error", f"400 body: {e.body}")
import urllib.error
import urllib.request
try:
    urllib.request.urlopen(urllib.request.Request(
        f"{base_url}/v1/messages", data=b"{not json", method="POST",
        headers={"x-api-key": key, "content-type": "application/json", "anthropic-version": "2023-06-01"}))
    check(False, "malformed JSON accepted")
except urllib.error.HTTPError as e:
    body = json.loads(e.read())
    check(e.code == 400 and body["error"]["type"] == "invalid_request_error", f"malformed JSON: {e.code} {body}")
for stream in (False, True):
    try:
        result = client.messages.create(model=limited, max_tokens=10, stream=stream,
                                        messages=[{"role": "user", "content": "please rate limit"}])
        if stream:
            list(result)
        check(False, "a rate limit passed")
    except anthropic.RateLimitError as e:
        check(e.body["error"]["type"] == "rate_limit_error", f"429 body: {e.body}")
        check(e.response.headers.get("retry-after") is not None, f"429 headers: {e.response.headers}")

print(f"anthropic-python {anthropic.__version__} against {', '.join(models)}: {checks} checks passed")
