"""The official `openai` Python client against `moa serve`: models, a plain completion,
a streamed one with usage, and the error cases. Usage: openai_client.py BASE_URL MODEL"""
import sys

import openai

base_url, model = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url, api_key="unused-by-moa", max_retries=0, timeout=300)

ids = [m.id for m in client.models.list().data]
assert model in ids and "moa" in ids, ids

done = client.chat.completions.create(
    model=model,
    messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a color."}],
    max_tokens=24,
    temperature=0.2,
)
assert done.object == "chat.completion", done
assert done.choices[0].message.role == "assistant"
assert done.choices[0].message.content.strip(), done
# The aggregator's own finish reason: a small model may well use all 24 tokens.
assert done.choices[0].finish_reason in ("stop", "length"), done
assert done.usage.completion_tokens > 0 and done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens

stream = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "Name an animal."}],
    max_tokens=24,
    stream=True,
    stream_options={"include_usage": True},
)
text, usage, chunks = "", None, 0
for chunk in stream:
    chunks += 1
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
    if chunk.usage:
        usage = chunk.usage
assert text.strip(), "streamed text"
assert chunks > 3, chunks
assert usage is not None and usage.completion_tokens > 0, usage

try:
    client.chat.completions.create(model="no-such-recipe", messages=[{"role": "user", "content": "hi"}])
    raise AssertionError("an unknown model must fail")
except openai.NotFoundError as e:
    assert e.code == "model_not_found", e

try:
    client.chat.completions.create(model=model, messages=[{"role": "tool", "content": "hi"}])
    raise AssertionError("a tool message that answers no call must fail")
except openai.BadRequestError as e:
    assert e.param == "messages[0].tool_call_id", e

print("openai client: 4 checks passed")
