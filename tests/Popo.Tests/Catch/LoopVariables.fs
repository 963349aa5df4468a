/// Jinja's `loop` variable against jinja2 (issue 28, group 6): generated templates using every attribute
/// (index, index0, revindex, revindex0, first, last, length, previtem, nextitem, depth, depth0, cycle, changed)
/// with filters, else branches, nesting and loop controls; expected texts recorded once with jinja2 by
/// scripts/gen-loop-fixtures.py (fixtures/chat/loops.json), plus fixed cases whose values are stated by hand.
module Popo.Tests.Catch.LoopVariables

open System.Collections.Generic
open System.IO
open System.Text.Json
open Expecto
open Popo.Jinja

let private variablesOf (element: JsonElement) =
    let d = Dictionary<string, obj>()
    for p in element.EnumerateObject() do d.[p.Name] <- box p.Value
    d

let private render (source: string) (variables: (string * obj) list) =
    JinjaTemplate.Parse(source, "loop-test").Render(dict variables |> Dictionary<string, obj>)

let private generated =
    let path = Popo.Tests.Engine.SharedData.fixture "chat/loops.json"
    [ for case in JsonDocument.Parse(File.ReadAllText path).RootElement.EnumerateArray() -> case.Clone() ]

[<Tests>]
let tests =
    testList "catch/jinja-loop" [
        test "every generated loop template renders byte-identically to jinja2" {
            Expect.isGreaterThanOrEqual generated.Length 80 "the committed fixture's cases"
            for case in generated do
                let name = case.GetProperty("name").GetString()
                let source = case.GetProperty("template").GetString()
                let actual = JinjaTemplate.Parse(source, name).Render(variablesOf (case.GetProperty "variables"))
                Expect.equal actual (case.GetProperty("output").GetString()) (sprintf "%s: %s" name source)
        }

        test "the generated templates use every loop attribute jinja2 defines" {
            // a fixture that silently lost an attribute would leave it unchecked
            let all = generated |> List.map (fun c -> c.GetProperty("template").GetString()) |> String.concat "\n"
            for attribute in [ "index"; "index0"; "revindex"; "revindex0"; "first"; "last"; "length"; "previtem"; "nextitem"
                               "depth"; "depth0"; "cycle("; "changed(" ] do
                Expect.stringContains all ("loop." + attribute) attribute
        }

        test "fixed: counters, ends and neighbours over [a, b, c]" {
            let xs = ResizeArray [ box "a"; box "b"; box "c" ]
            let out =
                render "{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.previtem }}{{ loop.nextitem }}{{ loop.depth }}{{ loop.depth0 }};{% endfor %}"
                    [ "xs", box xs ]
            Expect.equal out "1032TrueFalse3b10;2121FalseFalse3ac10;3210FalseTrue3b10;" "jinja2: index, index0, revindex, revindex0, first, last, length, previtem, nextitem, depth, depth0"
        }

        test "fixed: cycle and changed" {
            let xs = ResizeArray [ box 1L; box 1L; box 2L; box 2L; box 1L ]
            let out = render "{% for x in xs %}{{ loop.cycle('a', 'b', 'c') }}{{ loop.changed(x) }};{% endfor %}" [ "xs", box xs ]
            Expect.equal out "aTrue;bFalse;cTrue;aFalse;bTrue;" "cycle wraps; changed compares with the previous call"
        }
    ]
