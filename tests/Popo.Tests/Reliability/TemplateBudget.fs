/// A model folder's chat template is untrusted input (issue 35): whatever its text, the renderer either renders it
/// or throws a TemplateException naming the source, line and column, in bounded time and memory. Named cases for
/// each bound (RenderLimits: macro call depth, syntax nesting, steps, string length, total produced), then a fuzzed
/// corpus: mutations of the real and feature templates, and generated templates with recursion and loops.
module Popo.Tests.Reliability.TemplateBudget

open System
open System.Collections.Generic
open System.Diagnostics
open System.IO
open System.Text
open System.Text.Json
open System.Threading
open System.Threading.Tasks
open Expecto
open Popo.Jinja
open Popo.Tests.Engine

/// Renders on a thread with a large stack (as the CLI's main thread has), at most `seconds`: Ok text, Error the
/// TemplateException, or fails the test (another exception type, or no result in time).
let private renderBounded (seconds: float) (source: string) (variables: IReadOnlyDictionary<string, obj>) : Result<string, TemplateException> =
    let mutable outcome : Result<Result<string, TemplateException>, exn> option = None
    let worker =
        Thread((fun () ->
                    outcome <-
                        try Some(Ok(Ok(JinjaTemplate.Parse(source, "DIR/tokenizer_config.json").Render(variables, fun () -> DateTime(2025, 1, 2)))))
                        with
                        | :? TemplateException as e -> Some(Ok(Error e))
                        | e -> Some(Error e)),
               8 <<< 20, IsBackground = true)
    worker.Start()
    if not (worker.Join(TimeSpan.FromSeconds seconds)) then
        failtestf "no result within %.0f s (a render without a bound) for the template:\n%s" seconds (source.Substring(0, min 2000 source.Length))
    match outcome with
    | Some(Ok r) -> r
    | Some(Error e) -> failtestf "%s escaped the renderer (only TemplateException may) for the template:\n%s\n%O" (e.GetType().Name) (source.Substring(0, min 2000 source.Length)) e
    | None -> failtest "no outcome"

let private noVariables = Dictionary<string, obj>() :> IReadOnlyDictionary<_, _>

/// The template must be refused with a TemplateException whose detail holds `fragment`, at line:column.
let private refused (source: string) (fragment: string) (line: int, column: int) =
    match renderBounded 60.0 source noVariables with
    | Ok text -> failtestf "rendered %d characters; expected a refusal containing '%s'" text.Length fragment
    | Error e ->
        Expect.stringContains e.Detail fragment "the reason"
        Expect.equal (e.SourceName, e.Line, e.Column) ("DIR/tokenizer_config.json", line, column) $"source:line:column ({e.Message})"

let private namedCases =
    [ test "a self-recursive macro stops at the call depth limit, at the call" {
          refused "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}\n{{ f(0) }}" "called more than 200 deep" (1, 21)
      }
      test "two macros calling each other stop at the call depth limit" {
          refused "{% macro a(n) %}{{ b(n) }}{% endmacro %}{% macro b(n) %}{{ a(n) }}{% endmacro %}{{ a(1) }}" "deep" (1, 61)
      }
      test "macro recursion that ends below the limit renders" {
          let source = "{% macro f(n) %}{% if n > 0 %}{{ n }},{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(150) }}"
          match renderBounded 30.0 source noVariables with
          | Ok text -> Expect.isTrue (text.StartsWith "150,149," && text.EndsWith "1,") "counts down"
          | Error e -> failtestf "refused: %s" e.Message
      }
      test "nested range(100000) loops stop at the step budget, at the loop" {
          refused "{% for i in range(100000) %}\n{% for j in range(100000) %}{% endfor %}{% endfor %}" "runs too long" (2, 4)
      }
      test "'x' * 10**10 is refused before the string is built" {
          refused "{{ 'x' * 10**10 }}" "string too long" (1, 8)
      }
      test "a string doubled in a loop stops at the length limit" {
          refused "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}" "too long" (1, 75)
      }
      test "a list doubled in a loop stops at the length limit" {
          refused "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}" "list too long" (1, 75)
      }
      test "a list of many references to one long string cannot be printed without bound" {
          refused "{% set s = 'y' * 1000000 %}{{ [s] * 100000 }}" "too long" (1, 28)
      }
      test "join and replace are refused before they build an overlong string" {
          refused "{% set s = 'y' * 1000000 %}{{ ([s] * 100000)|join(',') }}" "too long" (1, 46)
          refused "{% set s = 'y' * 1000000 %}{{ s|replace('y', s) }}" "too long" (1, 33)
          refused "{{ {'a': 1}|tojson(indent=10**10) }}" "indent" (1, 13)
      }
      test "many moderate strings stop at the total-produced budget" {
          refused "{% set s = 'y' * 1000000 %}{% for i in range(100000) %}{% set t = s ~ i %}{% endfor %}" "builds too much" (1, 69)
      }
      test "output written in a loop stops at the output limit" {
          refused "{% set s = 'y' * 1000000 %}{% for i in range(100000) %}{{ s }}{% endfor %}" "output too long" (1, 56)
      }
      test "100,000 nested parentheses are refused by the parser, not a stack overflow" {
          refused ("{{ " + String('(', 100_000) + "1" + String(')', 100_000) + " }}") "nested too deeply" (1, 170)
      }
      test "deeply nested if blocks and not/unary chains are refused by the parser" {
          refused (String.replicate 5000 "{% if true %}" + "x" + String.replicate 5000 "{% endif %}") "nested too deeply" (1, 6468)
          refused ("{{ " + String.replicate 100_000 "not " + "x }}") "nested too deeply" (1, 2004)
          refused ("{{ " + String.replicate 100_000 "- " + "1 }}") "nested too deeply" (1, 1002)
      }
      test "a left-deep chain of 200,000 additions stops at the stack, not a stack overflow" {
          match renderBounded 60.0 ("{{ 1" + String.replicate 200_000 " + 1" + " }}") noVariables with
          | Ok text -> Expect.equal text "200001" "or it is evaluated in full"
          | Error e -> Expect.stringContains e.Detail "nested too deeply" "refused at the stack guard"
      }
      test "1 ** 10**18 is computed by squaring, not 10**18 multiplications" {
          match renderBounded 10.0 "{{ 1 ** 10**18 }},{{ (-1) ** (10**18 + 1) }},{{ 3 ** 5 }}" noVariables with
          | Ok text -> Expect.equal text "1,-1,243" "Python's values"
          | Error e -> failtestf "refused: %s" e.Message
      }
      test "unique over 100,000 items is linear, not quadratic" {
          match renderBounded 10.0 "{{ (range(100000)|list + range(100000)|list)|unique|list|length }}" noVariables with
          | Ok text -> Expect.equal text "100000" "each value once"
          | Error e -> failtestf "refused: %s" e.Message
      } ]

// ---- the fuzzed corpus ----

let private readFixture (name: string) = JsonDocument.Parse(File.ReadAllText(SharedData.fixture ("chat/" + name))).RootElement

/// Variables a chat template sees: a real conversation (with tools and a system turn) and the usual flags.
let private chatVariables () =
    let conversations = (readFixture "conversations.json").GetProperty("conversations")
    let d = Dictionary<string, obj>()
    let longest = conversations.EnumerateArray() |> Seq.maxBy (fun c -> c.GetProperty("messages").GetArrayLength())
    d.["messages"] <- box (longest.GetProperty "messages")
    d.["add_generation_prompt"] <- box true
    d.["bos_token"] <- box "<s>"
    d.["eos_token"] <- box "</s>"
    d.["tools"] <- null
    d.["x"] <- box true
    d.["n"] <- box 3L
    d :> IReadOnlyDictionary<_, _>

let private seeds () =
    [ for name in [ "qwen3"; "llama3"; "gemma3" ] do
          let path = Path.Combine(TokenizerCache.folder name, "tokenizer_config.json")
          yield JsonDocument.Parse(File.ReadAllText path).RootElement.GetProperty("chat_template").GetString()
      for f in (readFixture "features.json").EnumerateArray() do yield f.GetProperty("template").GetString() ]

/// Pieces spliced into templates: budget breakers, recursion, and fragments of syntax.
let private snippets =
    [| "{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}"
       "{% macro p(n) %}{{ q(n) }}{% endmacro %}{% macro q(n) %}{{ p(n) ~ p(n) }}{% endmacro %}{{ p(1) }}"
       "{% for i in range(100000) %}{% for j in range(100000) %}{{ '' }}{% endfor %}{% endfor %}"
       "{{ 'x' * 10**10 }}"; "{{ [1] * 10**12 }}"; "{{ 'ab' * -3 }}"; "{{ 2 ** 64 }}"; "{{ 1 ** 10**18 }}"
       "{% set ns = namespace(s='x') %}{% for i in range(80) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}"
       "{% set ns = namespace(l=[0]) %}{% for i in range(80) %}{% set ns.l = ns.l + ns.l %}{% endfor %}"
       "{% set ns = namespace(l=[]) %}{% for i in range(5000) %}{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l }}{{ ns.l|tojson }}{{ ns.l == ns.l }}"
       "{{ range(10**9) }}"; "{{ range(0, 10, 0) }}"; "{{ raise_exception('stop') }}"; "{{ x|frobnicate }}"
       "{{ messages|tojson(indent=4) }}"; "{{ messages[0]['content']|replace('', '--') }}"
       "{{ (messages * 3)|map(attribute='role')|unique|join(' ') }}"; "{{ messages|selectattr('role', 'equalto', 'user')|list|length }}"
       "{% for m in messages %}{% if loop.first %}{{ loop.length }}{% endif %}{{ m.content[::-1] }}{% endfor %}"
       "{{ ((((((((1)))))))) }}"; "{{ 1 / 0 }}"; "{{ 7 // 0 }}"; "{{ 'a' < 1 }}"; "{{ none.x.y }}"; "{{ n|int + 'a' }}"
       "{%"; "%}"; "{{"; "}}"; "{#"; "#}"; "("; ")"; "["; "]"; "|"; "~"; "**"; ","; "'"; "\""; "endfor"; "{% endif %}"
       "{% else %}"; "{% break %}"; "{% continue %}"; "{% set %}"; "{% macro %}"; "{% for %}"; "{% if %}"; "{% raw %}" |]

/// A random template from a small grammar: nested statements and expressions, recursion among two macros.
let private generated (rng: Random) =
    let text = StringBuilder()
    let rec expr depth =
        match (if depth > 3 then rng.Next 4 else rng.Next 12) with
        | 0 -> string (rng.Next(-3, 100))
        | 1 -> "'s" + string (rng.Next 10) + "'"
        | 2 -> "n"
        | 3 -> "messages[0].content"
        | 4 -> expr (depth + 1) + " ~ " + expr (depth + 1)
        | 5 -> expr (depth + 1) + [| " + "; " * "; " - "; " // "; " % "; " ** " |].[rng.Next 6] + expr (depth + 1)
        | 6 -> "(" + expr (depth + 1) + ")"
        | 7 -> "[" + expr (depth + 1) + ", " + expr (depth + 1) + "]"
        | 8 -> expr (depth + 1) + "|" + [| "length"; "string"; "join"; "tojson"; "list"; "upper"; "trim"; "first"; "unique"; "reverse" |].[rng.Next 10]
        | 9 -> "f(" + expr (depth + 1) + ")"
        | 10 -> "g(" + expr (depth + 1) + ")"
        | _ -> "range(" + string (rng.Next 200000) + ")"
    let rec stmt depth =
        match (if depth > 4 then rng.Next 2 else rng.Next 7) with
        | 0 -> text.Append("{{ ").Append(expr 0).Append(" }}") |> ignore
        | 1 -> text.Append("t").Append(rng.Next 10) |> ignore
        | 2 | 3 ->
            text.Append("{% for i in ").Append(expr 0).Append(" %}") |> ignore
            for _ in 0 .. rng.Next 3 do stmt (depth + 1)
            text.Append("{% endfor %}") |> ignore
        | 4 ->
            text.Append("{% if ").Append(expr 0).Append(" %}") |> ignore
            stmt (depth + 1)
            text.Append("{% else %}") |> ignore
            stmt (depth + 1)
            text.Append("{% endif %}") |> ignore
        | 5 -> text.Append("{% set n = ").Append(expr 0).Append(" %}") |> ignore
        | _ -> text.Append("{{ g(n) }}") |> ignore
    text.Append("{% macro f(k) %}").Append(if rng.Next 2 = 0 then "{{ g(k) }}" else "{{ k }}").Append("{% endmacro %}") |> ignore
    text.Append("{% macro g(k) %}").Append(if rng.Next 3 = 0 then "{{ f(k) ~ f(k) }}" else "[{{ k }}]").Append("{% endmacro %}") |> ignore
    for _ in 0 .. rng.Next(1, 5) do stmt 0
    text.ToString()

/// A seed template with a random edit: a span deleted, duplicated or moved, or a snippet spliced in.
let private mutated (rng: Random) (seed: string) =
    let at () = rng.Next(seed.Length + 1)
    match rng.Next 4 with
    | 0 -> let a = at () in let b = min seed.Length (a + rng.Next 40) in seed.Remove(a, b - a)
    | 1 -> let a = at () in let b = min seed.Length (a + rng.Next 200) in seed.Insert(at (), seed.Substring(a, b - a))
    | 2 -> let a = at () in let b = min seed.Length (a + rng.Next 200) in seed.Insert(b, seed.Substring(a, b - a))
    | _ -> seed.Insert(at (), snippets.[rng.Next snippets.Length])

let private fuzz =
    test "a fuzzed corpus of 600 templates renders or is refused with a TemplateException, each in bounded time" {
        let rng = Random(35)
        let seeds = seeds () |> Array.ofList
        let variables = chatVariables ()
        let corpus =
            [ for _ in 1 .. 250 do yield generated rng
              for _ in 1 .. 300 do yield mutated rng seeds.[rng.Next seeds.Length]
              for s in snippets do yield s ]
        let clock = Stopwatch.StartNew()
        let mutable rendered, refused = 0, 0
        for source in corpus do
            match renderBounded 30.0 source variables with
            | Ok _ -> rendered <- rendered + 1
            | Error e ->
                Expect.equal e.SourceName "DIR/tokenizer_config.json" "names the source"
                Expect.isGreaterThan e.Line 0 "a line"
                refused <- refused + 1
        // Both outcomes must occur, or the corpus tests less than it claims.
        Expect.isGreaterThan rendered 50 "many templates render"
        Expect.isGreaterThan refused 50 "many templates are refused"
        Expect.isLessThan clock.Elapsed.TotalSeconds 300.0 "the whole corpus in bounded time"
    }

[<Tests>]
let tests = testList "reliability/template-budget" (namedCases @ [ fuzz ])
