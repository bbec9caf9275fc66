"""Tools and structured output through `moa serve`, driven as agents drive a model: the
official `openai` client doing a whole tool loop (call, run the function, send the result,
final answer) whole and streamed, `langchain-openai`'s `bind_tools`, and
`client.chat.completions.parse` with a pydantic model; and the bad input an agent may
send, each a 400 naming the field. The upstream is the project's fake provider.
Usage: openai_tools.py BASE_URL  (recipes "tools", "shape" and "never" must exist)."""
import json
import sys

import openai
import pydantic
from langchain_openai import ChatOpenAI

base_url = sys.argv[1]
client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=60)
checks = 0
TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Today's weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}]


def get_weather(city):
    return f"12 C and rain in {city}"


def loop(stream):
    """Asks, runs the function the model calls, sends the result, returns the final answer."""
    global checks
    messages = [{"role": "user", "content": "What is the weather in Oslo?"}]
    if stream:
        calls, finish = {}, None
        for chunk in client.chat.completions.create(model="tools", messages=messages, tools=TOOLS, stream=True):
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            for d in choice.delta.tool_calls or []:
                c = calls.setdefault(d.index, {"id": "", "name": "", "arguments": ""})
                c["id"] += d.id or ""
                c["name"] += (d.function.name or "") if d.function else ""
                c["arguments"] += (d.function.arguments or "") if d.function else ""
            finish = choice.finish_reason or finish
        assert finish == "tool_calls", finish
        tool_calls = [{"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                      for _, c in sorted(calls.items())]
        messages.append({"role": "assistant", "content": None, "tool_calls": tool_calls})
    else:
        first = client.chat.completions.create(model="tools", messages=messages, tools=TOOLS)
        assert first.choices[0].finish_reason == "tool_calls", first
        assert first.choices[0].message.content is None, first
        messages.append(first.choices[0].message.model_dump(exclude_none=True))
        tool_calls = messages[-1]["tool_calls"]
    assert len(tool_calls) == 1 and tool_calls[0]["function"]["name"] == "get_weather", tool_calls
    args = json.loads(tool_calls[0]["function"]["arguments"])
    assert args == {"city": "Oslo"}, args
    checks += 1
    messages.append({"role": "tool", "tool_call_id": tool_calls[0]["id"], "content": get_weather(**args)})
    final = client.chat.completions.create(model="tools", messages=messages, tools=TOOLS)
    assert final.choices[0].finish_reason == "stop", final
    assert "12 C and rain in Oslo" in final.choices[0].message.content, final
    checks += 1


loop(stream=False)
loop(stream=True)

# langchain-openai's bind_tools: the call comes back as LangChain's tool_calls.
llm = ChatOpenAI(base_url=base_url, api_key="unused", model="tools", max_retries=0)


from langchain_core.tools import tool  # noqa: E402


@tool
def get_weather_lc(city: str) -> str:
    """Today's weather in a city."""
    return get_weather(city)


get_weather_lc.name = "get_weather"
ai = llm.bind_tools([get_weather_lc]).invoke("What is the weather in Oslo?")
assert ai.tool_calls and ai.tool_calls[0]["name"] == "get_weather", ai
assert ai.tool_calls[0]["args"] == {"city": "Oslo"}, ai
checks += 1


# Structured output: the first answer breaks the schema, moa retries, parse gets the model.
class Weather(pydantic.BaseModel):
    city: str
    temp_c: float


parsed = client.chat.completions.parse(
    model="shape", messages=[{"role": "user", "content": "Weather in Oslo as JSON"}], response_format=Weather,
)
assert parsed.choices[0].message.parsed == Weather(city="Oslo", temp_c=12.0), parsed
checks += 1
# An answer that never matches is an error, never a 200.
try:
    client.chat.completions.parse(model="never", messages=[{"role": "user", "content": "x"}], response_format=Weather)
    raise AssertionError("an answer that never matches the schema must not be a 200")
except openai.APIStatusError as e:
    assert e.status_code == 502 and "refused: the answer is not JSON" in e.message, (e.status_code, e.message)
    checks += 1


def refused(param, messages=None, **kwargs):
    global checks
    try:
        client.chat.completions.create(
            model="tools", messages=messages or [{"role": "user", "content": "hi"}], **kwargs)
    except openai.BadRequestError as e:
        assert e.param == param, (param, e.param, e.body)
        checks += 1
        return
    raise AssertionError(f"{kwargs} must be refused with param {param}")


refused("tools[0].function.parameters",
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "required": "city"}}}])
refused("tool_choice", tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_time"}})
refused("messages", messages=[{"role": "user", "content": "hi"},
                              {"role": "tool", "tool_call_id": "call_nobody", "content": "12 C"}], tools=TOOLS)
refused("response_format.json_schema.schema",
        response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": {"$ref": "#/$defs/none"}}})
print(f"openai tools: {checks} checks passed")
