"""yak serve's tool calls through the official `openai` package (Qwen's <tool_call> format) on a
small random model with room for the tool definitions: tool_choice "required" and a named
function constrain the reply to a call whose arguments validate (checked by `jsonschema`),
streamed or not; conversations with calls and results render; errors name the field.
Prints FAIL lines; exits 1 on any."""
import json
import sys

import jsonschema
import openai
from checks import check, fails, summarize  # noqa: F401

base, key = sys.argv[1:3]


client = openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=120)
model = client.models.list().data[0].id
msgs = [{"role": "user", "content": "What is the weather in Lhasa?"}]

# Tool calls (Qwen's <tool_call> format): tool_choice "required" / a named function constrain the
# reply to one call whose arguments validate against the function's parameters.
tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather now.", "parameters": {
             "type": "object", "properties": {"city": {"type": "string", "maxLength": 10},
                                              "unit": {"type": "string", "enum": ["c", "f"]}},
             "required": ["city"], "additionalProperties": False}}},
         {"type": "function", "function": {"name": "top_songs", "parameters": {
             "type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}, "required": ["n"],
             "additionalProperties": False}}}]
params = {t["function"]["name"]: t["function"]["parameters"] for t in tools}


def check_calls(calls, finish, only=None):
    check(finish == "tool_calls" and calls, f"a required call: finish {finish}, calls {calls}")
    for call in calls or []:
        name = call.function.name
        check(name in params and (only is None or name == only), f"called {name}")
        try:
            jsonschema.validate(json.loads(call.function.arguments), params.get(name, {}))
        except (ValueError, jsonschema.ValidationError) as ex:
            check(False, f"arguments {call.function.arguments!r}: {ex}")


t = client.chat.completions.create(model=model, messages=msgs, tools=tools, tool_choice="required",
                                   temperature=1.0, seed=11, n=3, max_tokens=150)
for ch in t.choices:
    check_calls(ch.message.tool_calls, ch.finish_reason)
    check(ch.message.content is None, f"a reply that only calls has no content: {ch.message.content!r}")
t = client.chat.completions.create(model=model, messages=msgs, tools=tools, temperature=1.0, seed=12,
                                   tool_choice={"type": "function", "function": {"name": "top_songs"}}, max_tokens=150)
check_calls(t.choices[0].message.tool_calls, t.choices[0].finish_reason, only="top_songs")
streamed, finish = {}, None
for chunk in client.chat.completions.create(model=model, messages=msgs, tools=tools, tool_choice="required",
                                            temperature=1.0, seed=13, max_tokens=150, stream=True):
    for d in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
        streamed[d.index] = d
    if chunk.choices and chunk.choices[0].finish_reason:
        finish = chunk.choices[0].finish_reason
check_calls([streamed[k] for k in sorted(streamed)], finish)
# A conversation that carries calls and results renders and answers; tools in the prompt count.
plain = client.chat.completions.create(model=model, messages=msgs, max_tokens=1, temperature=0)
auto = client.chat.completions.create(model=model, messages=msgs, tools=tools, max_tokens=4, temperature=0)
check(auto.usage.prompt_tokens > plain.usage.prompt_tokens + 100, "the tools are in the prompt")
turns = msgs + [{"role": "assistant", "content": None, "tool_calls": [
    {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Lhasa\"}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "-3 C"}]
r2 = client.chat.completions.create(model=model, messages=turns, tools=tools, max_tokens=4, temperature=0)
check(r2.choices[0].finish_reason in ("stop", "length", "tool_calls"), f"after a tool result: {r2.choices[0]}")

try:
    client.chat.completions.create(model=model, messages=msgs, tools=tools,
                                   tool_choice={"type": "function", "function": {"name": "nope"}})
    check(False, "an unknown function in tool_choice is refused")
except openai.BadRequestError as ex:
    check(ex.body.get("param") == "tool_choice", f"unknown function: {ex.body}")

summarize()
