#!/usr/bin/env python3
"""Renders tests/Popo.Tests/fixtures/chat/loops.json with Python's jinja2: generated templates that use every
attribute of Jinja's `loop` variable (index, index0, revindex, revindex0, first, last, length, previtem,
nextitem, depth, depth0, cycle, changed) in for-loops with and without a filter, an else branch, nesting and
loop controls, each with its expected text or error. Same environment as scripts/gen-chat-fixtures.py (HF's
apply_chat_template settings). The generator is seeded, so a rerun gives the same file.

Usage: python3 scripts/gen-loop-fixtures.py
"""
import importlib.util
import json
import os
import random

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("chat", os.path.join(ROOT, "scripts", "gen-chat-fixtures.py"))
chat = importlib.util.module_from_spec(spec)
spec.loader.exec_module(chat)

# Attribute expressions, each printed with a separator so every value shows in the output.
SIMPLE = ["loop.index", "loop.index0", "loop.revindex", "loop.revindex0", "loop.first", "loop.last", "loop.length",
          "loop.depth", "loop.depth0"]
NEIGHBOURS = ["loop.previtem", "loop.nextitem", "loop.previtem is defined", "loop.nextitem is defined",
              "loop.previtem if loop.previtem is defined else 'none'", "loop.nextitem if not loop.last else 'end'"]
VALUES = [1, 2, 3, "a", "b", "a"]


def cycle(rng):
    args = rng.sample(["'x'", "'y'", "'z'", "1", "x"], rng.randint(1, 3))
    return f"loop.cycle({', '.join(args)})"


def changed(rng):
    return rng.choice(["loop.changed(x)", "loop.changed(x, loop.index is odd)", "loop.changed(x > 1 if x is number else x)"])


def body(rng, n):
    parts = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.45: expr = rng.choice(SIMPLE)
        elif kind < 0.7: expr = rng.choice(NEIGHBOURS)
        elif kind < 0.85: expr = cycle(rng)
        else: expr = changed(rng)
        parts.append("{{ " + expr + " }}")
    return ",".join(parts)


def template(rng):
    head = "{% for x in xs" + (" if x != 2" if rng.random() < 0.3 else "") + " %}"
    inner = body(rng, rng.randint(2, 5))
    shape = rng.random()
    if shape < 0.25:
        # a nested loop: its own loop variable; the outer one through a name
        inner = ("{% set outer = loop %}" + inner + "[{% for y in ys %}{{ y }}:" + body(rng, 2) +
                 ":{{ outer.index }}/{{ outer.revindex0 }};{% endfor %}]")
    elif shape < 0.4:
        inner = "{% if x == 3 %}{% break %}{% endif %}" + inner
    elif shape < 0.5:
        inner = "{% if loop.index is even %}{% continue %}{% endif %}" + inner
    tail = "{% else %}empty" if rng.random() < 0.4 else ""
    return head + "(" + inner + ")|" + tail + "{% endfor %}"


def main():
    rng = random.Random(28)
    env = chat.environment()
    cases = []
    for i in range(80):
        source = template(rng)
        xs = [rng.choice(VALUES) for _ in range(rng.randint(0, 5))]
        ys = [rng.choice(["p", "q"]) for _ in range(rng.randint(0, 3))]
        variables = {"xs": xs, "ys": ys}
        entry = {"name": f"loop-{i:02d}", "template": source, "variables": variables}
        entry.update(chat.render(env, source, variables))
        cases.append(entry)
    path = os.path.join(chat.OUT, "loops.json")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(cases, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} loop templates to {path}")


if __name__ == "__main__":
    main()
