"""The official OpenAI Python SDK against a running `llm-server --demo`.

Run by `cargo xtask sdk` (and `cargo xtask ci`), which installs the pinned SDK into a
virtual environment under target/ and starts the gateway:

    python openai_python.py http://127.0.0.1:PORT/v1

Checks that the SDK's requests (with every header and field it adds) are accepted and that
its parsers accept our responses, streams and errors. Exits non-zero on the first failure.
"""

import sys

import openai
from openai import OpenAI

base_url = sys.argv[1]
# The demo has no gateway keys; the SDK insists on sending one anyway.
client = OpenAI(base_url=base_url, api_key="sk-demo-not-checked", max_retries=0, timeout=30)
checks = 0


def check(condition, message):
    global checks
    if not condition:
        print(f"FAILED: {message}", file=sys.stderr)
        sys.exit(1)
    checks += 1


models = client.models.list()
ids = [m.id for m in models.data]
check("mock-echo" in ids and "mock-story" in ids, f"models.list: {ids}")

completion = client.chat.completions.create(
    model="mock-echo",
    messages=[
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "你好，世界！"},
    ],
    temperature=0.7,
    max_tokens=1000,
    user="sdk-test",
    extra_body={"load_balance_strategy": "round_robin"},
)
check(completion.object == "chat.completion", f"object: {completion.object}")
check(completion.choices[0].message.content == "你好，世界！", f"content: {completion.choices[0].message}")
check(completion.choices[0].finish_reason == "stop", f"finish_reason: {completion.choices[0].finish_reason}")
check(completion.usage is not None and completion.usage.total_tokens > 0, f"usage: {completion.usage}")

# Tools and JSON mode are accepted (the mock ignores them).
tooled = client.chat.completions.create(
    model="mock-echo",
    messages=[{"role": "user", "content": "weather?"}],
    tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}],
    tool_choice="auto",
    response_format={"type": "json_object"},
)
check(tooled.choices[0].message.role == "assistant", "tools request")

raw = client.chat.completions.with_raw_response.create(
    model="mock-echo", messages=[{"role": "user", "content": "id?"}]
)
check(raw.headers.get("x-request-id", "").startswith("req_"), f"x-request-id: {raw.headers}")

stream = client.chat.completions.create(
    model="mock-story",
    messages=[{"role": "user", "content": "写一个故事"}],
    stream=True,
    stream_options={"include_usage": True},
)
text, usage, finish = "", None, None
for chunk in stream:
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
        finish = chunk.choices[0].finish_reason or finish
    if chunk.usage:
        usage = chunk.usage
check(text.startswith("Once upon a time"), f"streamed text: {text!r}")
check(finish == "stop", f"stream finish_reason: {finish}")
check(usage is not None and usage.completion_tokens > 0, f"stream usage: {usage}")

try:
    client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    check(False, "an unknown model must fail")
except openai.NotFoundError as e:
    check(e.status_code == 404, f"404 status: {e.status_code}")
    check("no-such-model" in str(e), f"404 message: {e}")

try:
    client.chat.completions.create(model="mock-echo", messages=[])
    check(False, "empty messages must fail")
except openai.BadRequestError as e:
    check(e.status_code == 400 and e.body.get("param") == "messages", f"400 body: {e.body}")

try:
    client.chat.completions.create(
        model="mock-echo", messages=[{"role": "user", "content": "x"}], extra_body={"load_balance_strategy": "fastest"}
    )
    check(False, "an unknown strategy must fail")
except openai.BadRequestError as e:
    check("load_balance_strategy" in str(e), f"strategy error: {e}")

print(f"openai-python {openai.__version__}: {checks} checks passed")
