/// The Jinja chat-template engine (src/Popo.Jinja) against Python jinja2 under Hugging Face's
/// rendering conventions: the real Qwen3, Llama 3 and Gemma 3 templates (from the fetched tokenizer cache) on
/// the conversations of fixtures/chat/conversations.json, and the feature templates of features.json, must
/// render byte-identically to what scripts/gen-chat-fixtures.py recorded with jinja2.
module Popo.Tests.Engine.ChatTemplates

open System
open System.Collections.Generic
open System.IO
open System.Security.Cryptography
open System.Text
open System.Text.Json
open Expecto
open Popo.Jinja

let private fixtureDir () = Path.GetDirectoryName(SharedData.fixture "chat/expected.json")
let private readJson (name: string) = JsonDocument.Parse(File.ReadAllText(Path.Combine(fixtureDir (), name))).RootElement

/// The instant the fixtures were rendered at (strftime_now).
let private fixedNow () = DateTime.Parse((readJson "conversations.json").GetProperty("fixed_now").GetString())

let private variablesOf (element: JsonElement) =
    let d = Dictionary<string, obj>()
    for p in element.EnumerateObject() do d.[p.Name] <- box p.Value
    d

/// The exception <paramref name="f"/> throws, failing the test when it throws none or another kind.
let private throws (f: unit -> unit) (what: string) : TemplateException =
    try
        f ()
        failtestf "%s: expected a TemplateException, none was thrown" what
    with :? TemplateException as e -> e

/// Asserts one render against its recorded outcome: the exact text, or the error jinja2 raised.
let private check (label: string) (render: unit -> string) (expected: JsonElement) =
    match expected.TryGetProperty "output" with
    | true, output ->
        let actual = render ()
        Expect.equal actual (output.GetString()) (sprintf "%s renders as jinja2 does" label)
    | _ ->
        let message = expected.GetProperty("error").GetString()
        let raised = expected.GetProperty("raised").GetBoolean()
        let e = throws (render >> ignore) (sprintf "%s must fail as jinja2 does (%s)" label message)
        if raised then
            Expect.isTrue e.Raised (sprintf "%s: the template's own raise_exception" label)
            Expect.stringContains e.Detail message (sprintf "%s: the template's message" label)

let private realTemplate (name: string) =
    let path = Path.Combine(TokenizerCache.folder name, "tokenizer_config.json")
    let source = JsonDocument.Parse(File.ReadAllText path).RootElement.GetProperty("chat_template").GetString()
    path, source

let private realTemplateTests =
    let expected = readJson "expected.json"
    let conversations = (readJson "conversations.json").GetProperty("conversations")
    [ for t in expected.GetProperty("templates").EnumerateObject() do
          let name = t.Name
          test (sprintf "the real %s chat template renders every fixture conversation byte-identically to jinja2" name) {
              let path, source = realTemplate name
              let sha = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes source)).ToLowerInvariant()
              Expect.equal sha (t.Value.GetProperty("template_sha256").GetString())
                  (sprintf "%s is the template the fixtures were generated from (else rerun scripts/gen-chat-fixtures.py)" path)
              let template = JinjaTemplate.Parse(source, path)
              let cases = t.Value.GetProperty("cases")
              for c in conversations.EnumerateArray() do
                  let caseName = c.GetProperty("name").GetString()
                  let variables = variablesOf (t.Value.GetProperty("special_tokens"))
                  variables.["messages"] <- box (c.GetProperty("messages"))
                  variables.["tools"] <- null
                  variables.["documents"] <- null
                  variables.["add_generation_prompt"] <- box (c.GetProperty("add_generation_prompt").GetBoolean())
                  match c.TryGetProperty "enable_thinking" with
                  | true, v -> variables.["enable_thinking"] <- box (v.GetBoolean())
                  | _ -> ()
                  check (sprintf "%s / %s" name caseName) (fun () -> template.Render(variables, fun () -> fixedNow ())) (cases.GetProperty caseName)
          } ]

let private featureTests =
    [ for f in (readJson "features.json").EnumerateArray() do
          let name = f.GetProperty("name").GetString()
          test (sprintf "feature template '%s' renders as jinja2 does" name) {
              let render () =
                  JinjaTemplate.Parse(f.GetProperty("template").GetString(), name).Render(variablesOf (f.GetProperty "variables"), fun () -> fixedNow ())
              check name render f
          } ]

let private errorTests =
    [ test "a syntax error names the template's source, line and column" {
          let e = throws (fun () -> JinjaTemplate.Parse("ok\n  {% if x %}\n{{ x + }}\n{% endif %}", "DIR/tokenizer_config.json") |> ignore) "bad syntax"
          Expect.equal (e.SourceName, e.Line, e.Column) ("DIR/tokenizer_config.json", 3, 8) "position of the stray '}}'"
          Expect.stringStarts e.Message "DIR/tokenizer_config.json:3:8: " "message starts with source:line:column"
      }
      test "an unclosed block names the missing end tag" {
          let e = throws (fun () -> JinjaTemplate.Parse("{% for m in messages %}{{ m }}", "t") |> ignore) "no endfor"
          Expect.stringContains e.Detail "endfor" "names endfor"
      }
      test "an unknown filter is refused when parsed, at its position" {
          let e = throws (fun () -> JinjaTemplate.Parse("{{ x | frobnicate }}", "t") |> ignore) "unknown filter"
          Expect.equal (e.Line, e.Column) (1, 8) "at the filter name"
          Expect.stringContains e.Detail "frobnicate" "names it"
      }
      test "a rendering error names the position of the failing expression" {
          let t = JinjaTemplate.Parse("{% for m in messages %}\n  {{- m.role + 1 }}\n{% endfor %}", "cfg.json")
          let vars = Dictionary<string, obj>()
          vars.["messages"] <- box [| box (dict [ "role", box "user" ]) |]
          let e = throws (fun () -> t.Render(vars) |> ignore) "str + int"
          Expect.equal (e.SourceName, e.Line) ("cfg.json", 2) "line of the addition"
          Expect.stringContains e.Detail "unsupported operand type(s) for +: 'str' and 'int'" "Python's message"
      }
      test "using an undefined value beyond printing it is an error naming what is missing" {
          let t = JinjaTemplate.Parse("{{ messages[0].role }}", "t")
          let vars = Dictionary<string, obj>()
          vars.["messages"] <- box (ResizeArray<obj>())
          let e = throws (fun () -> t.Render(vars) |> ignore) "empty messages"
          Expect.stringContains e.Detail "has no item 0" "names the missing item"
      } ]

let private expectedQwen (caseName: string) =
    (readJson "expected.json").GetProperty("templates").GetProperty("qwen3").GetProperty("cases").GetProperty(caseName).GetProperty("output").GetString()

let private userText = "What is 2 + 3? Show your steps.  "

let private promptFormatTests =
    [ test "PromptFormat renders a conversation with the model folder's own template and enable_thinking" {
          let tokenizer = Popo.Engine.Tokenizers.HfBpeTokenizer.Load(TokenizerCache.qwen3 ())
          let format = Popo.Engine.Training.PromptFormat(tokenizer, "", false)
          let problem = Popo.Engine.Data.Problem("p", userText, "5", null, [| Popo.Engine.Tokenizers.ChatMessage("user", userText) |])
          Expect.isTrue format.UsesModelTemplate "the folder has a chat_template"
          Expect.equal (format.Render problem) (expectedQwen "enable-thinking-false") "jinja2's rendering of the same conversation"
          Expect.equal (format.Prompt problem) (tokenizer.Encode(expectedQwen "enable-thinking-false")) "the ids of that text"
      }
      test "PromptFormat puts system_prompt before a prompt that has no system message" {
          let tokenizer = Popo.Engine.Tokenizers.HfBpeTokenizer.Load(TokenizerCache.qwen3 ())
          let system = "You are a careful mathematician. Answer with \\boxed{}."
          let format = Popo.Engine.Training.PromptFormat(tokenizer, system, true)
          Expect.equal (format.Render(Popo.Engine.Data.Problem("p", userText, "5", null))) (expectedQwen "system-user") "as jinja2 renders system + user"
          let own = Popo.Engine.Data.Problem("p", userText, "5", null, [| Popo.Engine.Tokenizers.ChatMessage("system", "Own."); Popo.Engine.Tokenizers.ChatMessage("user", userText) |])
          Expect.stringStarts (format.Render own) "<|im_start|>system\nOwn.<|im_end|>" "a dataset's own system message is kept and wins"
      }
      test "a tokenizer folder without chat_template falls back to ChatML" {
          let dir = Path.Combine(Path.GetTempPath(), "popo-notemplate-" + Guid.NewGuid().ToString("N"))
          Directory.CreateDirectory dir |> ignore
          try
              File.Copy(Path.Combine(TokenizerCache.qwen3 (), "tokenizer.json"), Path.Combine(dir, "tokenizer.json"))
              File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), """{"eos_token": "<|im_end|>"}""")
              let format = Popo.Engine.Training.PromptFormat(Popo.Engine.Tokenizers.HfBpeTokenizer.Load dir)
              Expect.isFalse format.UsesModelTemplate "no template"
              Expect.equal (format.Render(Popo.Engine.Data.Problem("p", "Hi", "5", null))) "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n" "ChatML"
          finally Directory.Delete(dir, true)
      }
      test "a TRL conversational prompt keeps its system message in the problem's messages" {
          let file = Path.GetTempFileName()
          try
              File.WriteAllText(file, """{"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+3?"}], "answer": "5"}""" + "\n")
              let p = (Popo.Engine.Data.JsonlDataset.Load file).Problems.[0]
              Expect.equal p.Prompt "2+3?" "the last user message is the prompt"
              Expect.equal (p.Messages |> Seq.map (fun m -> m.Role, m.Content) |> List.ofSeq) [ "system", "Be brief."; "user", "2+3?" ] "all messages kept"
          finally File.Delete file
      } ]

[<Tests>]
let tests =
    testList "Engine.ChatTemplates" [
        testList "real templates" realTemplateTests
        testList "features" featureTests
        testList "errors" errorTests
        testList "prompt format" promptFormatTests
    ]
