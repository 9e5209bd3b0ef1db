"""The official OpenAI Python SDK against `llm-server` serving Qwen (native API and
compatible mode), DeepSeek and Gemini (AI Studio and Vertex AI) deployments, whose upstream
is `provider-mock` speaking each provider's own wire format. The Gemini upstream refuses a
tool-result turn whose call lost its thought signature, as Gemini 3 does.

Run by `cargo xtask sdk`:

    python providers_python.py http://127.0.0.1:PORT/v1 GATEWAY_KEY MODEL [MODEL ...]

For each model: a plain chat, a streamed chat, a tool call (plain and streamed) and a
tool-result round trip. Exits non-zero on the first failure.
"""

import json
import sys

from openai import OpenAI

base_url, key, models = sys.argv[1], sys.argv[2], sys.argv[3:]
client = OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=30)
checks = 0
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def check(condition, message):
    global checks
    if not condition:
        print(f"FAILED: {message}", file=sys.stderr)
        sys.exit(1)
    checks += 1


listed = [m.id for m in client.models.list().data]
for model in models:
    check(model in listed, f"{model} in models.list: {listed}")

    plain = client.chat.completions.create(
        model=model, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "你好 world"}]
    )
    check(plain.choices[0].message.content == "你好 world", f"{model} plain: {plain.choices[0].message}")
    check(plain.choices[0].finish_reason == "stop", f"{model} finish: {plain.choices[0].finish_reason}")
    check(plain.usage is not None and plain.usage.prompt_tokens == 12, f"{model} usage: {plain.usage}")
    if model.startswith("deepseek"):
        extra = plain.choices[0].message.model_extra or {}
        check(extra.get("reasoning_content") == "Thinking it over.", f"{model} reasoning: {extra}")
        details = plain.usage.prompt_tokens_details
        check(details is not None and details.cached_tokens == 8, f"{model} cached tokens: {plain.usage}")

    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "stream these words please"}],
        stream=True, stream_options={"include_usage": True},
    )
    text, finish, usage, first_role = "", None, None, None
    for chunk in stream:
        if chunk.choices:
            delta = chunk.choices[0].delta
            first_role = first_role or delta.role
            text += delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    check(text == "stream these words please", f"{model} streamed text: {text!r}")
    check(first_role == "assistant", f"{model} first role: {first_role}")
    check(finish == "stop", f"{model} stream finish: {finish}")
    check(usage is not None and usage.total_tokens > 0, f"{model} stream usage: {usage}")

    question = {"role": "user", "content": "Weather in Paris?"}
    called = client.chat.completions.create(model=model, messages=[question], tools=TOOLS, tool_choice="auto")
    message = called.choices[0].message
    check(called.choices[0].finish_reason == "tool_calls", f"{model} tool finish: {called.choices[0].finish_reason}")
    check(message.tool_calls and message.tool_calls[0].function.name == "get_weather", f"{model} tool call: {message}")
    check(json.loads(message.tool_calls[0].function.arguments) == {"city": "Paris"}, f"{model} arguments: {message}")

    streamed_args, streamed_name, streamed_finish = "", None, None
    for chunk in client.chat.completions.create(model=model, messages=[question], tools=TOOLS, stream=True):
        if chunk.choices:
            for call in chunk.choices[0].delta.tool_calls or []:
                check(call.index == 0, f"{model} streamed tool index: {call}")
                streamed_name = streamed_name or (call.function.name if call.function else None)
                streamed_args += (call.function.arguments or "") if call.function else ""
            streamed_finish = chunk.choices[0].finish_reason or streamed_finish
    check(streamed_name == "get_weather", f"{model} streamed tool name: {streamed_name}")
    check(json.loads(streamed_args) == {"city": "Paris"}, f"{model} streamed arguments: {streamed_args!r}")
    check(streamed_finish == "tool_calls", f"{model} streamed tool finish: {streamed_finish}")

    call = message.tool_calls[0]
    answered = client.chat.completions.create(
        model=model,
        tools=TOOLS,
        messages=[
            question,
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": call.id, "type": "function", "function": {"name": call.function.name, "arguments": call.function.arguments}}]},
            {"role": "tool", "tool_call_id": call.id, "content": "21°C"},
        ],
    )
    check(answered.choices[0].message.content == "tool said: 21°C", f"{model} tool round trip: {answered.choices[0].message}")

print(f"openai-python against {', '.join(models)}: {checks} checks passed")
