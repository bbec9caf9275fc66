"""`moa serve`'s contract with the official `openai` Python client (and raw HTTP from the
standard library where the client cannot send what a hostile caller would), against a
server whose upstream is the project's fake provider: what is refused (by name, with
OpenAI's exception classes), what is honoured, and that every error is an OpenAI error.
Usage: openai_contract.py BASE_URL TOKEN  (recipes "stops" and "long" must exist)."""
import json
import sys
import urllib.error
import urllib.request

import openai

base_url, token = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url, api_key=token, max_retries=0, timeout=60)
hi = [{"role": "user", "content": "hi"}]
checks = 0


def refused(param, **kwargs):
    global checks
    try:
        client.chat.completions.create(model="stops", messages=hi, **kwargs)
    except openai.BadRequestError as e:
        assert e.param == param, (param, e.param, e.body)
        assert e.body["param"] == param and e.body["type"] == "invalid_request_error", e.body
        checks += 1
        return
    raise AssertionError(f"{kwargs} must be refused with param {param}")


refused("n", n=2)
refused("tools[0].function.parameters",
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "objekt"}}}])
refused("tool_choice", tool_choice="required")
refused("response_format.json_schema.schema",
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "thing"}}})
refused("logprobs", logprobs=True)
refused("top_logprobs", top_logprobs=3)
refused("modalities", modalities=["text", "audio"])
refused("top_p", top_p=1.5)

# Honoured: the knobs reach the aggregator (checked upstream by the caller) and the stop
# sequence holds although the fake provider ignores it; unknown fields are ignored.
done = client.chat.completions.create(
    model="stops", messages=hi, stop=["STOP"], top_p=0.5, seed=7, presence_penalty=0.25,
    frequency_penalty=-0.25, user="someone", extra_body={"some_future_field": 1},
)
assert done.choices[0].message.content == "alpha beta ", done
assert done.choices[0].finish_reason == "stop", done
checks += 1
streamed = "".join(
    c.choices[0].delta.content or ""
    for c in client.chat.completions.create(model="stops", messages=hi, stop="STOP", stream=True)
    if c.choices
)
assert streamed == "alpha beta ", streamed
checks += 1
# finish_reason is the aggregator's own.
long = client.chat.completions.create(model="long", messages=hi)
assert long.choices[0].finish_reason == "length", long
checks += 1

# Every error is an OpenAI error, raised as the client's own classes.
try:
    openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0).chat.completions.create(model="stops", messages=hi)
    raise AssertionError("a wrong token must fail")
except openai.AuthenticationError as e:
    assert e.code == "invalid_api_key", e.body
    checks += 1
try:
    client.get("/no/such/route", cast_to=object)
    raise AssertionError("404")
except openai.NotFoundError as e:
    assert e.body["type"] == "invalid_request_error", e.body
    checks += 1
try:
    client.get("/chat/completions", cast_to=object)
    raise AssertionError("405")
except openai.APIStatusError as e:
    assert e.status_code == 405 and e.body["code"] == "method_not_allowed", e.body
    checks += 1
try:
    client.chat.completions.create(model="stops", messages=[{"role": "user", "content": "x" * 300_000}])
    raise AssertionError("413")
except openai.APIStatusError as e:
    assert e.status_code == 413 and e.body["code"] == "request_too_large", e.body
    checks += 1
def raw(path, body=None, **headers):
    """(status, parsed JSON body) of a raw request."""
    req = urllib.request.Request(f"{base_url}{path}", data=body, headers=headers, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


auth = {"authorization": f"Bearer {token}"}
status, body = raw("/chat/completions", b'{"model": "stops"}', **auth, **{"content-type": "text/plain"})
assert status == 415 and body["error"]["code"] == "unsupported_media_type", body
checks += 1
hello = json.dumps({"model": "stops", "messages": hi}).encode()
status, body = raw("/chat/completions", hello, **auth, **{"content-type": "application/json", "x-big": "y" * 40_000})
assert status == 431 and body["error"]["type"] == "invalid_request_error", body
checks += 1
status, body = raw("/chat/completions", b"{not json", **auth, **{"content-type": "application/json"})
assert status == 400 and body["error"]["code"] == "invalid_json", body
checks += 1
# The bearer scheme is case-insensitive.
status, body = raw("/models", authorization=f"bEaReR {token}")
assert status == 200, body
checks += 1

print(f"openai contract: {checks} checks passed")
