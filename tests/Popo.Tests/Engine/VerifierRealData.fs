/// The verifier against real benchmark answers (issue 6): every gold answer, written the way a model
/// writes it, verifies against itself; an answer from a different problem does not, unless the two
/// gold answers are really equal.
module Popo.Tests.Engine.VerifierRealData

open System
open System.IO
open System.Text.Json
open System.Text.RegularExpressions
open Expecto
open Popo.MathVerify

/// Gold answers of one file: GSM8K's follow '#### ', the others are the 'answer' field.
let golds (name: string) : string[] =
    File.ReadLines(SharedData.file name)
    |> Seq.filter (fun l -> l.Trim() <> "")
    |> Seq.map (fun line ->
        use doc = JsonDocument.Parse line
        let answer = doc.RootElement.GetProperty("answer")
        let text = if answer.ValueKind = JsonValueKind.String then answer.GetString() else answer.GetRawText()
        if name = "gsm8k" then text.Substring(text.LastIndexOf "####" + 4).Trim() else text)
    |> Array.ofSeq

let asModelWrites (gold: string) = sprintf "Let me think step by step.\nAfter simplifying, so the answer is \\boxed{%s}." gold

/// The gold answer written differently but equivalently: \dfrac for \frac, a/b for \frac{a}{b} (outside mixed numbers), spaces
/// removed (except after a command name before a letter, where "\cot x" needs one), $...$ around it,
/// in a closing "the answer is" sentence.
let rewritten (gold: string) =
    // (not in a mixed number such as 1\frac{4}{5}, where a/b would read 14/5)
    let g = Regex.Replace(gold, @"(?<!\d\s*)\\frac\{(\d+)\}\{(\d+)\}", "$1/$2")
    let g = Regex.Replace(g.Replace("\\frac", "\\dfrac"), @"(?<!\\[A-Za-z]+) +", "")
    sprintf "Putting it together, the final answer is $%s$. I hope it is correct." g

let rate name (write: string -> string) label =
    let g = golds name
    let misses = g |> Array.filter (fun a -> not (MathVerifier.IsCorrect(write a, a)))
    let rate = float (g.Length - misses.Length) / float g.Length
    printfn "verifier on %s, %s: %d/%d gold answers verify (%.2f%%)" name label (g.Length - misses.Length) g.Length (100.0 * rate)
    for m in misses do printfn "  miss in %s: %s" name m
    rate, misses

let selfRate name = rate name asModelWrites "boxed"

/// Pairs of different gold strings that denote the same answer, reviewed by hand (they differ only in
/// spacing, brace style, thousands separators, a degree or currency mark, a unit, an "x =" or the order
/// of a list of roots); a cross-problem match between two different strings must be one of these.
let reallyEqual =
    set [ "5,600", "5600"
          "10080", "10,\\!080"
          "90^\\circ", "90"
          "120^\\circ", "120"
          "30^\\circ", "30"
          "36", "36^\\circ"
          "36", "\\$36"
          "36^\\circ", "\\$36"
          "5", "x=5"
          "1,-2", "-2,1"
          "\\frac{1}{4}", "\\frac14"
          "2 \\sqrt{5}", "2\\sqrt{5}"
          "15", "15\\mbox{ cm}^2" ]

[<Tests>]
let tests =
    testList "engine/verifier/real-data" [
        for name in [ "gsm8k"; "aime24"; "aime25"; "amc2023" ] do
            test (sprintf "every %s gold answer boxed as a model writes it verifies (100%%)" name) {
                let rate, misses = selfRate name
                Expect.isEmpty misses (sprintf "%s misses" name)
                Expect.equal rate 1.0 "rate"
            }
        test "at least 98% of math500 gold answers boxed as a model writes them verify" {
            let rate, misses = selfRate "math500"
            Expect.isGreaterThanOrEqual rate 0.98 (sprintf "math500 rate; misses: %A" misses)
        }
        for name in [ "gsm8k"; "math500"; "aime24"; "aime25"; "amc2023" ] do
            test (sprintf "every %s gold answer rewritten equivalently (\\dfrac, a/b, no spaces, 'the answer is $...$') verifies" name) {
                let rate, misses = rate name rewritten "rewritten"
                Expect.isEmpty misses (sprintf "%s misses" name)
                Expect.equal rate 1.0 "rate"
            }
        for name in [ "gsm8k"; "math500"; "aime24"; "aime25"; "amc2023" ] do
            test (sprintf "a %s answer taken from a different problem verifies only when the gold answers are really equal" name) {
                let g = golds name
                let n = g.Length
                // all pairs for the small files; for gsm8k each problem against 16 others at fixed offsets
                let pairs =
                    if n <= 600 then [| for i in 0 .. n - 1 do for j in 0 .. n - 1 do if i <> j then i, j |]
                    else [| for i in 0 .. n - 1 do for d in [ 1; 2; 3; 5; 8; 13; 21; 34; 55; 89; 144; 233; 377; 610; 987; 1201 ] do i, (i + d) % n |]
                let wrong =
                    pairs
                    |> Array.filter (fun (i, j) ->
                        let a, b = g.[i].Trim(), g.[j].Trim()
                        a <> b && MathVerifier.IsCorrect(asModelWrites b, a)
                        && not (reallyEqual.Contains(a, b) || reallyEqual.Contains(b, a)))
                    |> Array.map (fun (i, j) -> g.[i], g.[j])
                    |> Array.distinct
                printfn "cross-problem check on %s: %d pairs, %d unexpected matches" name pairs.Length wrong.Length
                for a, b in wrong do printfn "  unexpected: %s  ~  %s" a b
                Expect.isEmpty wrong "matches between different gold answers that were not reviewed as equal"
            }
    ]
