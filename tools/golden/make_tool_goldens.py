"""Tool-call chat goldens: transformers' apply_chat_template (Jinja) renders conversations with
tools, assistant tool calls and tool results through the official Qwen2.5 and Qwen3 templates,
as llama.cpp's source tree carries them (models/templates/). yak's chatml and qwen3 families
must write the same text (tests/tokenizer_chat_template_test.cpp, ChatTools.*).

Run: python tools/golden/make_tool_goldens.py --llama-cpp PATH/vendor/llama.cpp
Writes tests/golden/tokenizer/chat_tools.json.
"""
import argparse
import json
from pathlib import Path

from transformers import PreTrainedTokenizerFast

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = ROOT / "tests" / "golden" / "tokenizer" / "chat_tools.json"
TEMPLATES = {"chatml": "Qwen-Qwen2.5-7B-Instruct.jinja", "qwen3": "Qwen-Qwen3-0.6B.jinja"}

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Weather of a city, now.",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "城市名"},
            "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "top_songs", "parameters": {
        "type": "object", "properties": {"n": {"type": "integer"}}}}},
]
CALL = {"role": "assistant", "content": "", "tool_calls": [
    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "北京", "unit": "c"}}},
    {"id": "call_2", "type": "function", "function": {"name": "top_songs", "arguments": {"n": 3}}}]}
CASES = [
    ("tools, no system", [{"role": "user", "content": "Weather in Beijing?"}], TOOLS),
    ("tools and system", [{"role": "system", "content": "You are terse."},
                          {"role": "user", "content": "Weather in Beijing?"}], TOOLS),
    ("calls and results", [{"role": "user", "content": "Weather in Beijing, and the top 3 songs?"}, CALL,
                           {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 3}"},
                           {"role": "tool", "tool_call_id": "call_2", "content": "[\"a\", \"b\", \"c\"]"},
                           {"role": "assistant", "content": "3°C; songs a, b, c."},
                           {"role": "user", "content": "Thanks"}], TOOLS),
    ("call with content", [{"role": "user", "content": "Weather?"},
                           {"role": "assistant", "content": "Let me look.", "tool_calls": CALL["tool_calls"][:1]},
                           {"role": "tool", "content": "sunny"}], TOOLS),
    ("no tools", [{"role": "user", "content": "Hi"}], None),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp", required=True, type=Path)
    args = ap.parse_args()
    tok = PreTrainedTokenizerFast(tokenizer_file=str(ROOT / "tests/golden/models/qwen2_chat/tokenizer.json"))
    out = []
    for family, file in TEMPLATES.items():
        src = (args.llama_cpp / "models" / "templates" / file).read_text()
        for name, messages, tools in CASES:
            text = tok.apply_chat_template(messages, tools=tools, chat_template=src, tokenize=False,
                                           add_generation_prompt=True)
            out.append({"family": family, "case": name, "messages": messages, "tools": tools, "rendered": text})
    OUT.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {OUT} ({len(out)} cases)")


if __name__ == "__main__":
    main()
