"""A real tool round trip through `moa serve` on a real local model (Qwen2.5-Coder-1.5B
on llama.cpp, its tools given as text by moa): the official `openai` client asks, gets a
call, runs the function, sends the result, and gets an answer that uses it.
Usage: openai_tool_real.py BASE_URL MODEL"""
import json
import sys

import openai

base_url, model = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url, api_key="unused-by-moa", max_retries=0, timeout=600)
tools = [{"type": "function", "function": {
    "name": "get_weather", "description": "Today's weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
messages = [{"role": "user", "content": "What is the weather in Oslo today?"}]
first = client.chat.completions.create(model=model, messages=messages, tools=tools, temperature=0)
assert first.choices[0].finish_reason == "tool_calls", first
call = first.choices[0].message.tool_calls[0]
assert call.function.name == "get_weather", call
assert json.loads(call.function.arguments)["city"].lower() == "oslo", call
messages.append(first.choices[0].message.model_dump(exclude_none=True))
messages.append({"role": "tool", "tool_call_id": call.id, "content": "12 degrees Celsius and light rain"})
final = client.chat.completions.create(model=model, messages=messages, tools=tools, temperature=0)
answer = final.choices[0].message.content or ""
assert final.choices[0].finish_reason in ("stop", "length") and "12" in answer, final
print("real tool round trip: 2 checks passed")
