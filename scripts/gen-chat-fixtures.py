#!/usr/bin/env python3
"""Renders the chat-template fixtures of tests/Popo.Tests/fixtures/chat/ with Python's jinja2, the way
Hugging Face transformers' apply_chat_template renders them (ImmutableSandboxedEnvironment with
trim_blocks=True, lstrip_blocks=True, the loopcontrols extension, raise_exception, strftime_now and a
json.dumps tojson), so the .NET engine (src/Popo.Jinja) can be checked byte for byte without Python.

Inputs: the real Qwen3, Llama 3 and Gemma 3 templates from the fetched cache (build/fetch-tokenizers.sh:
.cache/tokenizers/<name>/tokenizer_config.json; not committed), plus the small feature templates below.
Outputs: conversations.json (the conversations), expected.json (per template and conversation: the
rendered text or the raised error; with the template's sha256) and features.json (feature templates,
variables, expected text or error).

Usage: build/fetch-tokenizers.sh && python3 scripts/gen-chat-fixtures.py
"""
import datetime
import hashlib
import json
import os
import sys

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(ROOT, ".cache", "tokenizers")
OUT = os.path.join(ROOT, "tests", "Popo.Tests", "fixtures", "chat")
TEMPLATES = ["qwen3", "llama3", "gemma3"]
# strftime_now's clock in every fixture (the .NET tests pass the same instant).
FIXED_NOW = datetime.datetime(2026, 7, 4, 9, 5, 3)


class TemplateError(Exception):
    pass


class GenerationTag(jinja2.ext.Extension):
    """Hugging Face's {% generation %} tag (AssistantTracker) without the mask tracking: renders its body."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def environment():
    def raise_exception(message):
        raise TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return FIXED_NOW.strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def token_text(value):
    if isinstance(value, dict):
        return value.get("content")
    return value


def special_tokens(config):
    """The special-token variables HF passes (special_tokens_map), as the .NET prompt format passes them."""
    result = {}
    for key in ["bos_token", "eos_token", "pad_token", "unk_token"]:
        value = token_text(config.get(key))
        if isinstance(value, str):
            result[key] = value
    return result


def render(env, source, variables):
    try:
        return {"output": env.from_string(source).render(**variables)}
    except TemplateError as e:
        return {"error": str(e), "raised": True}
    except jinja2.TemplateError as e:
        return {"error": f"{type(e).__name__}: {e}", "raised": False}


SYSTEM = "You are a careful mathematician. Answer with \\boxed{}."
USER = "What is 2 + 3? Show your steps.  "
ASSISTANT = "2 + 3 = 5, so the answer is \\boxed{5}."
THINKING = "<think>\nAdd the units: 2 + 3 = 5.\n</think>\n\nThe answer is \\boxed{5}."

CONVERSATIONS = [
    {"name": "user", "messages": [{"role": "user", "content": USER}], "add_generation_prompt": True},
    {"name": "user-no-generation-prompt", "messages": [{"role": "user", "content": USER}], "add_generation_prompt": False},
    {"name": "system-user", "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}], "add_generation_prompt": True},
    {"name": "system-user-assistant", "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER},
                                                   {"role": "assistant", "content": ASSISTANT}], "add_generation_prompt": False},
    {"name": "multi-turn", "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hi!"},
                                        {"role": "assistant", "content": "Hello. What shall we compute?"},
                                        {"role": "user", "content": USER}], "add_generation_prompt": True},
    {"name": "thinking-last-turn", "messages": [{"role": "user", "content": USER}, {"role": "assistant", "content": THINKING}],
     "add_generation_prompt": False},
    {"name": "thinking-earlier-turn", "messages": [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": THINKING},
                                                   {"role": "user", "content": USER}], "add_generation_prompt": True},
    {"name": "thinking-after-last-query", "messages": [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello."},
                                                       {"role": "user", "content": USER}, {"role": "assistant", "content": THINKING}],
     "add_generation_prompt": False},
    {"name": "reasoning-content-field", "messages": [{"role": "user", "content": USER},
                                                     {"role": "assistant", "content": "The answer is 5.", "reasoning_content": "\n2 + 3 = 5\n"}],
     "add_generation_prompt": False},
    {"name": "enable-thinking-false", "messages": [{"role": "user", "content": USER}], "add_generation_prompt": True, "enable_thinking": False},
    {"name": "enable-thinking-true", "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
     "add_generation_prompt": True, "enable_thinking": True},
    {"name": "unicode", "messages": [{"role": "user", "content": "Let \U0001d465 = 3 — what's 𝑥²? 数学 🧮👩‍👩‍👧 e\u0301"}],
     "add_generation_prompt": True},
    {"name": "two-users-in-a-row", "messages": [{"role": "user", "content": "First."}, {"role": "user", "content": "Second."}],
     "add_generation_prompt": True},
    {"name": "tool-call", "messages": [{"role": "user", "content": "Weather in Paris?"},
                                       {"role": "assistant", "content": "", "tool_calls": [
                                           {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "°C"}}}]},
                                       {"role": "tool", "content": "{\"temp\": 21.5}"}],
     "add_generation_prompt": True},
]


FEATURES = [
    ("whitespace-control", "  {% if x %}\n  a {{- ' b ' -}} c\n  {%- endif %}\n{# note #}\n  {%+ if x %}k{% endif +%}\nend\n", {"x": True}),
    ("lstrip-not-for-variables", "line\n    {{ 'v' }}\n    {% if true %}w{% endif %}\n", {}),
    ("trailing-newline-dropped-once", "a\n\n", {}),
    ("crlf-normalised", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\n", {}),
    ("raw", "{% raw %}{{ not parsed }}{% endraw %}", {}),
    ("loop-variables", "{% for x in items %}{{ loop.index0 }}{{ loop.index }}{{ loop.revindex }}{{ loop.first }}{{ loop.last }}{{ loop.length }}"
                        "{{ loop.cycle('a','b') }}{% if not loop.first %}{{ loop.previtem }}{% endif %};{% endfor %}", {"items": [3, 4, 5]}),
    ("loop-else-filter-break", "{% for x in xs if x > 1 %}{% if x == 4 %}{% break %}{% endif %}{% if x == 2 %}{% continue %}{% endif %}"
                               "{{ x }}{{ loop.length }}{% else %}empty{% endfor %}|{% for y in [] %}{% else %}none{% endfor %}", {"xs": [1, 2, 3, 4, 5]}),
    ("scoping", "{% set x = 1 %}{% for i in [1, 2] %}[{{ x }}]{% set x = i * 10 %}[{{ x }}]{% endfor %}{{ x }}", {}),
    ("namespace", "{% set ns = namespace(n=0, s='') %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% set ns.s = ns.s ~ i %}{% endfor %}"
                  "{{ ns.n }} {{ ns.s }}", {}),
    ("tuple-unpacking", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% set a, b = [1, 2] %}{{ a + b }}{% for k, v in d|items %}{{ k }}{% endfor %}",
     {"d": {"b": 1, "a": 2}}),
    ("slicing", "{{ s[::-1] }} {{ s[1:3] }} {{ s[-2:] }} {{ xs[::2] }} {{ xs[1:] }} {{ xs[-1] }} {{ s[0] }} {{ xs[10] is defined }}",
     {"s": "a𝑥b😀c", "xs": [1, 2, 3, 4, 5]}),
    ("string-methods", "{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ t.strip('x') }}|{{ t.rstrip('xy') }}|{{ t.split('y') }}|"
                       "{{ s.split() }}|{{ 'a b c'.split(none, 1) }}|{{ t.startswith('xy') }}{{ t.endswith(('q', 'x')) }}|{{ s.upper() }}{{ s.lower() }}|"
                       "{{ t.replace('x', '-') }}|{{ t.replace('x', '-', 1) }}|{{ t.find('z') }}{{ t.count('x') }}|{{ '-'.join(['a', 'b']) }}|{{ 'ab'.capitalize() }}",
     {"s": "  Hello World \t\n", "t": "xyzxyx"}),
    ("operators", "{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 7 / 2 }} {{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 'ab' * 2 }}"
                  " {{ [1] + [2] }} {{ 'a' ~ 1 ~ none ~ true ~ undefined_name }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'b' in 'abc' }} {{ 4 not in [1, 2] }}"
                  " {{ 1 == 1.0 }} {{ true == 1 }} {{ not 0 }} {{ 0 or 'x' }} {{ '' and 'y' }} {{ 'yes' if 0 else 'no' }} {{ -3|abs }} {{ - 2 ** 2 }}", {}),
    ("printing", "{{ none }}|{{ true }}|{{ [1, 'a', none, 1.5, [true]] }}|{{ {'a': 1, 'b': 'c'} }}|{{ (1,) }}|{{ (1, 2) }}|{{ 1e15 }}|{{ 1e16 }}|"
                 "{{ 0.0001 }}|{{ 0.00001 }}|{{ 1 / 3 }}|{{ 2.5e-10 }}|{{ 10 / 2 }}|{{ -0.0 }}|{{ 123456789.125 }}|{{ \"it's\" }}|{{ [\"it's\", 'q\"'] }}|{{ ['\\n'] }}", {}),
    ("filters", "{{ '  x  '|trim }}|{{ xs|length }}|{{ 'ab𝑥'|length }}|{{ xs|first }}{{ xs|last }}|{{ xs|join(', ') }}|{{ xs|reverse|list }}|{{ 'abc'|reverse }}|"
                "{{ none|default('d') }}{{ missing|default('m') }}{{ ''|default('e', true) }}|{{ 'Hello World'|upper }}{{ 'Hi'|lower }}|{{ 'hello wORLD-x(y'|title }}|"
                "{{ 'abc'|replace('b', 'B') }}|{{ '12'|int + 1 }}{{ 'x'|int }}{{ '3.7'|int }}{{ '2.5'|float }}|{{ 3|string ~ 'x' }}|"
                "{{ [3, 1, 2]|sort }}{{ ['b', 'A', 'c']|sort }}{{ [3, 1, 2]|sort(reverse=true) }}|{{ [1, 2, 1, 3]|unique|list }}|{{ [1, 5, 2]|max }}{{ [1, 5, 2]|min }}{{ [1, 5, 2]|sum }}|"
                "{{ msgs|selectattr('role', 'equalto', 'user')|map(attribute='content')|join('+') }}|{{ msgs|rejectattr('role', 'eq', 'user')|list|length }}|"
                "{{ msgs|map(attribute='role')|list }}|{{ [0, 1, 2]|select|list }}{{ [0, 1, 2]|reject('odd')|list }}|{{ {'b': 1, 'a': 2}|dictsort }}|{{ ['a', 'b']|map('upper')|join }}",
     {"xs": [1, 2, 3], "msgs": [{"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"}, {"role": "user", "content": "u2"}]}),
    ("tojson", "{{ d|tojson }}|{{ d|tojson(indent=2) }}|{{ [1, 2.5, none, true, 'é\"\\\\\\n\\t\\u0001😀']|tojson }}|{{ d|tojson(sort_keys=true) }}|{{ 'é'|tojson(ensure_ascii=true) }}|"
               "{{ [] |tojson(indent=2) }}{{ {}|tojson }}|{{ d|tojson(separators=(',', ':')) }}",
     {"d": {"z": 1, "a": [1, {"b": None}], "u": "<tag> & 'q'"}}),
    ("tests", "{{ x is defined }}{{ y is defined }}{{ y is undefined }}{{ none is none }}{{ 1 is number }}{{ true is number }}{{ true is integer }}"
              "{{ 1.0 is float }}{{ 'a' is string }}{{ d is mapping }}{{ xs is mapping }}{{ 'a' is iterable }}{{ 1 is iterable }}{{ d is iterable }}"
              "{{ xs is sequence }}{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 9 is divisibleby(4) }}{{ false is false }}{{ 0 is false }}"
              "{{ true is true }}{{ x is not none }}{{ 'ab' is lower }}{{ 'AB' is upper }}{{ 2 is in [1, 2] }}{{ 1 is eq 1 }}{{ 1 is sameas 1 }}{{ range is callable }}",
     {"x": 1, "d": {"k": 1}, "xs": [1]}),
    ("attribute-and-item-lookup", "{{ d.k }}{{ d['k'] }}{{ d.missing is defined }}{{ d['items'] }}{{ d.items is callable }}{{ d.get('k') }}{{ d.get('q', 'dflt') }}"
                                  "{{ xs.0 }}{{ d.keys()|list }}{{ d.values()|list }}{{ none.attr is defined }}",
     {"d": {"k": "v", "items": "I"}, "xs": ["first"]}),
    ("set-block-and-filters", "{% set x | upper %}hello {{ name }}{% endset %}{{ x }}|{% set y %}  raw  {% endset %}[{{ y }}]", {"name": "bob"}),
    ("macro", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('a') }} {{ greet('b', '?') }} {{ greet(name='c', punct='.') }}", {}),
    ("strftime", "{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M:%S %A %B %j %I%p %-d %y') }}", {}),
    ("raise-exception", "{% if x %}{{ raise_exception('bad conversation: ' ~ x) }}{% endif %}", {"x": "roles"}),
    ("dict-and-literals", "{{ {'a': [1, 2], 'b': {'c': none}} }}|{{ dict(a=1, b='x') }}|{{ 'con' 'cat' }}|{{ 1_000 }}|{{ 0.5e1 }}|{{ [1, 2,] }}", {}),
    ("generation-tag", "{% for m in msgs %}{% generation %}{{ m }}{% endgeneration %}{% endfor %}", {"msgs": ["x", "y"]}),
]


def main():
    env = environment()
    os.makedirs(OUT, exist_ok=True)
    expected = {}
    for name in TEMPLATES:
        path = os.path.join(CACHE, name, "tokenizer_config.json")
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: run build/fetch-tokenizers.sh first")
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
        source = config["chat_template"]
        tokens = special_tokens(config)
        cases = {}
        for conversation in CONVERSATIONS:
            variables = dict(tokens)
            variables.update(messages=conversation["messages"], tools=None, documents=None,
                             add_generation_prompt=conversation["add_generation_prompt"])
            if "enable_thinking" in conversation:
                variables["enable_thinking"] = conversation["enable_thinking"]
            cases[conversation["name"]] = render(env, source, variables)
        expected[name] = {"template_sha256": hashlib.sha256(source.encode("utf-8")).hexdigest(),
                          "special_tokens": tokens, "cases": cases}

    features = []
    for name, template, variables in FEATURES:
        entry = {"name": name, "template": template, "variables": variables}
        entry.update(render(env, template, variables))
        features.append(entry)

    def write(file, value):
        with open(os.path.join(OUT, file), "w", encoding="utf-8", newline="\n") as f:
            json.dump(value, f, ensure_ascii=False, indent=1)
            f.write("\n")

    write("conversations.json", {"fixed_now": FIXED_NOW.isoformat(), "conversations": CONVERSATIONS})
    write("expected.json", {"jinja2_version": jinja2.__version__, "templates": expected})
    write("features.json", features)
    print(f"wrote {len(CONVERSATIONS)} conversations x {len(TEMPLATES)} templates and {len(FEATURES)} feature templates to {OUT}")


if __name__ == "__main__":
    main()
