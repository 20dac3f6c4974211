"""Jinja chat-template goldens: transformers' own renderer (render_jinja_template, jinja2 3.1.6 in
an ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks, loopcontrols and the
{% generation %} tag) renders the released models' templates in ../shared/data/chat-templates/
over the conversations defined here. The templates are test inputs and are never copied into
the repository, and neither is what they render: each rendering is stored as its length in
characters and the FNV-1a 64-bit hash of its UTF-8 bytes (or the error class when jinja2 raised).
tests/tokenizer_jinja_test.cpp renders the same inputs with yak's interpreter and compares.

Run:  python tools/golden/make_jinja_goldens.py [--templates DIR]
      python tools/golden/make_jinja_goldens.py --show FILE.jinja CASE   # print one rendering
Writes tests/golden/tokenizer/jinja_templates.json.
"""
import argparse
import datetime as dt
import json
from pathlib import Path

import transformers.utils.chat_template_utils as ctu

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = ROOT / "tests" / "golden" / "tokenizer" / "jinja_templates.json"
NOW = dt.datetime(2025, 1, 15, 12, 0, 0)


class FixedClock(dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return NOW


ctu.datetime = FixedClock  # strftime_now() reads this: every rendering sees 2025-01-15 12:00

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather of a city, now.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "城市名 (city)"},
        "unit": {"type": "string", "enum": ["c", "f"], "description": "Unit"}},
        "required": ["city"]}}}
SONGS = {"type": "function", "function": {"name": "top_songs", "description": "Most played songs.",
                                          "parameters": {"type": "object", "properties": {
                                              "n": {"type": "integer", "description": "How many"}}}}}
SYSTEM = {"role": "system", "content": "You are a helpful assistant. 请用中文回答。"}
TURNS = [
    {"role": "user", "content": "Hello! What's 2 + 2?"},
    {"role": "assistant", "content": "2 + 2 = 4.\n\nAnything else?"},
    {"role": "user", "content": "Write \"<b>bold</b>\" & explain {{ braces }} — 谢谢"},
]
CALL = {"role": "assistant", "content": "", "tool_calls": [
    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "北京", "unit": "c"}}}]}
RESULT = {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "{\"temp\": 21, \"sky\": \"clear\"}"}


def parts(m):
    return {**m, "content": [{"type": "text", "text": m["content"]}]}


CASES = {
    "basic": {"messages": [SYSTEM, *TURNS]},
    "no_system": {"messages": TURNS},
    "no_generation_prompt": {"messages": [SYSTEM, *TURNS[:2]], "add_generation_prompt": False},
    "single_user": {"messages": TURNS[:1]},
    "parts": {"messages": [parts(SYSTEM), *[parts(m) for m in TURNS]]},
    "parts_no_system": {"messages": [parts(m) for m in TURNS]},
    "thinking_off": {"messages": [SYSTEM, *TURNS], "extra": {"enable_thinking": False}},
    "tools": {"messages": [SYSTEM, {"role": "user", "content": "Weather in Beijing?"}, CALL, RESULT],
              "tools": [WEATHER, SONGS]},
    "tools_no_system": {"messages": [{"role": "user", "content": "Weather in Beijing?"}, CALL, RESULT,
                                     {"role": "assistant", "content": "It is 21°C and clear."},
                                     {"role": "user", "content": "Thanks"}],
                        "tools": [WEATHER]},
    "functions": {"messages": TURNS, "extra": {"functions": json.dumps([WEATHER["function"]]),
                                               "datetime": "2025-01-15 12:00"}},
}
# Small templates of our own, each checking one rule of the language; their jinja2 output is
# stored as is (they contain no model's text).
SNIPPETS = [
    ("{{ 1 }}|{{ 1.0 }}|{{ 0.1 + 0.2 }}|{{ 1e-5 }}|{{ 1e16 }}|{{ 7 / 2 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ -7 % 3 }}|{{ 2 ** 10 }}", {}),
    ("{{ none }}|{{ true }}|{{ [1, 'a', none, 2.5] }}|{{ {'a': 1, 'b': [true]} }}|{{ ('x',) }}|{{ \"it's\" }}|{{ 'q\"' }}", {}),
    ("{{ x | tojson }}|{{ x | tojson(indent=2) }}|{{ x | tojson(separators=(',', ':')) }}|{{ x | tojson(ensure_ascii=True) }}",
     {"x": {"a": [1, 2.0, None, True], "b": "\u4e2d\n\"q\"", "c": {}, "d": []}}),
    ("a  \n  {% if true %}\n  b\n  {% endif %}\n c {{- ' d ' -}} e {# x #}\n f\n{%- if true %} g {% endif -%}\n h", {}),
    ("{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.first }}{{ loop.last }}{{ loop.length }}"
     "{{ loop.previtem }}{{ loop.cycle('o', 'e') }};{% else %}empty{% endfor %}", {"xs": ["a", "b", "c"]}),
    ("{% for x in xs if x > 1 %}{{ x }}{{ loop.length }}{% if x == 3 %}{% break %}{% endif %}{% endfor %}"
     "{% for k, v in d.items() %}{{ k }}={{ v }},{% endfor %}{% for x in [] %}{% else %}none{% endfor %}",
     {"xs": [1, 2, 3, 4], "d": {"b": 1, "a": 2}}),
    ("{% set ns = namespace(n=0, s='') %}{% for x in range(5) %}{% set ns.n = ns.n + x %}{% set y = x %}{% endfor %}"
     "{{ ns.n }}{{ y is defined }}{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t %}in {{ a }}{% endset %}[{{ t }}]", {}),
    ("{% macro m(a, b='B', c=none) %}<{{ a }}{{ b }}{{ c }}{{ varargs }}>{% endmacro %}{{ m(1) }}{{ m(1, 2, 3, 4) }}{{ m(a=5, c='C') }}"
     "{% macro w(x) %}[{{ caller() }}{{ x }}]{% endmacro %}{% call w('!') %}body{% endcall %}", {}),
    ("{{ s | trim }}|{{ s | length }}|{{ s[1:4] }}|{{ s[::-1] }}|{{ s | upper }}|{{ s | title }}|{{ s.title() }}|{{ s | capitalize }}"
     "|{{ s.split() }}|{{ s.split(' ', 1) }}|{{ s.strip(' h') }}|{{ s.startswith(' h') }}|{{ s.replace('l', 'L', 2) }}|{{ s.find('é') }}",
     {"s": " héllo wörld-x (ab) "}),
    ("{{ xs | selectattr('role', 'equalto', 'user') | map(attribute='c') | join(',') }}|{{ xs | rejectattr('role', 'eq', 'user') | list | length }}"
     "|{{ xs | map(attribute='c') | unique | list }}|{{ d | dictsort }}|{{ d | items | list }}|{{ ys | sort }}|{{ ys | sort(reverse=true) | first }}"
     "|{{ ys | select('odd') | list }}|{{ '3' | int + 1 }}|{{ 'x' | int }}|{{ u | default('D') }}|{{ '' | default('E', true) }}",
     {"xs": [{"role": "user", "c": "a"}, {"role": "bot", "c": "b"}, {"role": "user", "c": "a"}], "d": {"b": 2, "A": 1}, "ys": [3, 1, 2]}),
    ("{{ d.get('a') }}{{ d.get('z') }}{{ d.get('z', 0) }}{{ d['a'] }}{{ d.a }}{{ d.z is defined }}{{ d.keys() | list }}{{ d.items is defined }}",
     {"d": {"a": 1, "items": 2}}),
    ("{{ 'a' ~ 1 ~ none }}|{{ 'ab' * 2 }}|{{ [1] + [2] }}|{{ 'x' in 'xyz' }}|{{ 2 in [1, 2] }}|{{ 'k' in {'k': 1} }}|{{ 1 == 1.0 }}|{{ true == 1 }}"
     "|{{ 1 < 2 < 3 }}|{{ 'b' > 'a' }}|{{ not 0 }}|{{ 0 or 'y' }}|{{ 1 and 'z' }}|{{ 'yes' if x else 'no' }}|{{ '%s-%d' % ('a', 3) }}", {"x": []}),
    ("{{ t | indent(2) }}|{{ t | indent(2, true) }}|{{ t | indent(2, blank=true) }}|{% filter upper %}f{{ 1 }}{% endfilter %}", {"t": "a\nb\n\nc"}),
    ("{{ x is string }}{{ x is mapping }}{{ x is iterable }}{{ n is none }}{{ u is defined }}{{ u is iterable }}{{ 3 is odd }}"
     "{{ 4 is divisibleby 2 }}{{ 1 is number }}{{ true is number }}{{ true is integer }}{{ 1.5 is float }}{{ f is false }}",
     {"x": "s", "n": None, "f": False}),
    ("{{ u }}|{{ u | length }}|{{ u | list }}|{% for x in u %}no{% endfor %}|{{ u ~ 'x' }}|{{ u == u }}|{{ n.attr }}", {"n": None}),
    ("{{ raise_exception('bad ' ~ 1) }}", {}),
    ("{{ u.x }}", {}),
    ("{{ u + 1 }}", {}),
    ("{% for x in n %}{% endfor %}", {"n": None}),
    ("{{ xs.append(1) }}", {"xs": []}),
    ("{% if %}", {}),
    ("{{ 1 + }}", {}),
]
SPECIAL = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}


def fnv1a64(text):
    h = 0xcbf29ce484222325
    for b in text.encode("utf-8"):
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def render(source, case):
    c = CASES[case]
    out, _ = ctu.render_jinja_template(
        conversations=[c["messages"]], tools=c.get("tools"), chat_template=source,
        add_generation_prompt=c.get("add_generation_prompt", True), **SPECIAL, **c.get("extra", {}))
    return out[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--templates", default=str(ROOT.parent / "shared" / "data" / "chat-templates"))
    ap.add_argument("--show", nargs=2, metavar=("FILE", "CASE"))
    a = ap.parse_args()
    folder = Path(a.templates)
    if a.show:
        print(render((folder / a.show[0]).read_text(encoding="utf-8"), a.show[1]), end="")
        return
    table = {}
    for f in sorted(folder.glob("*.jinja")):
        src = f.read_bytes().decode("utf-8")
        row = {}
        for case in CASES:
            try:
                text = render(src, case)
                row[case] = {"len": len(text), "fnv1a64": fnv1a64(text)}
            except Exception as e:  # the template refuses the input: yak must refuse it too
                row[case] = {"error": type(e).__name__, "message": str(e)[:200]}
        table[f.name] = row
    env = ctu._compile_jinja_template  # transformers' environment, for the snippets too
    snippets = []
    for src, variables in SNIPPETS:
        try:
            text = env(src).render(**variables)
            snippets.append({"template": src, "variables": variables, "output": text})
        except Exception as e:
            snippets.append({"template": src, "variables": variables, "error": type(e).__name__})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    doc = {"made_by": "tools/golden/make_jinja_goldens.py (transformers 5.23.0, Jinja2 3.1.6)",
           "now": NOW.isoformat(), "special_tokens": SPECIAL, "cases": CASES, "snippets": snippets, "templates": table}
    OUT.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    ok = sum(1 for r in table.values() for v in r.values() if "len" in v)
    print(f"{len(table)} templates x {len(CASES)} cases: {ok} rendered, the rest raised -> {OUT}")


if __name__ == "__main__":
    main()
