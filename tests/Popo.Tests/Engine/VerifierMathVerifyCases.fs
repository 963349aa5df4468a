/// Math-Verify's own public test cases of the groups nearest issue 33 (number extraction, simple fractions,
/// sets, LaTeX notation, relations; huggingface/Math-Verify tests/test_all.py, MIT licence), held as data
/// in fixtures/math_verify_public_cases.json. Each case is (gold, completion, Math-Verify's verdict); the
/// completion is judged under format any. Every disagreement must be one of `kept`, each with its reason.
module Popo.Tests.Engine.VerifierMathVerifyCases

open System.IO
open System.Text.Json
open Expecto
open Popo.MathVerify

type Case = { Group: string; Gold: string; Pred: string; Expected: bool }

let cases () =
    use doc = JsonDocument.Parse(File.ReadAllText(SharedData.fixture "math_verify_public_cases.json"))
    [ for c in doc.RootElement.EnumerateArray() ->
        { Group = c.GetProperty("group").GetString(); Gold = c.GetProperty("gold").GetString()
          Pred = c.GetProperty("pred").GetString(); Expected = c.GetProperty("expected").GetInt32() = 1 } ]

/// (completion, reason): the cases where our verdict differs from Math-Verify's on purpose.
let kept =
    [ "Answer $ \n 9 \n $", "Math-Verify refuses an inline $...$ that spans lines; a grader reads the 9 (ours: correct)"
      "Answer \\( \n 9 \n \\)", "the same for \\(...\\) (ours: correct)"
      "Answer $ \\frac{1}{2} \\$ = \\frac{10}{9} $",
      "a numeric equation 1/2 = 10/9 is not reduced to its last side: Math-Verify's own gold 7 = 11a+c must not equal 11a+c (ours: a miss)" ]

[<Tests>]
let tests =
    testList "engine/verifier/math-verify cases" [
        test "agreement with Math-Verify's public cases; every disagreement is a kept one" {
            let all = cases ()
            let verdict c = MathVerifier.IsCorrect(c.Pred, c.Gold, AnswerFormat.Any)
            let disagreements = all |> List.filter (fun c -> verdict c <> c.Expected)
            for g in all |> List.map (fun c -> c.Group) |> List.distinct do
                let inGroup = all |> List.filter (fun c -> c.Group = g)
                let agree = inGroup |> List.filter (fun c -> verdict c = c.Expected) |> List.length
                printfn "Math-Verify public cases, %s: %d/%d agree" g agree inGroup.Length
            printfn "Math-Verify public cases: %d/%d agree" (all.Length - disagreements.Length) all.Length
            let unexpected = disagreements |> List.filter (fun c -> not (kept |> List.exists (fun (p, _) -> p = c.Pred)))
            Expect.isEmpty (unexpected |> List.map (fun c -> sprintf "[%s] %s vs gold %s: Math-Verify says %b" c.Group c.Pred c.Gold c.Expected)) "disagreements not kept"
            Expect.equal disagreements.Length kept.Length "every kept disagreement still occurs (else remove it from the list)"
        }
        test "no case Math-Verify refuses is accepted, except the kept line-spanning spans" {
            for c in cases () do
                if not c.Expected && not (kept |> List.exists (fun (p, _) -> p = c.Pred)) then
                    Expect.isFalse (MathVerifier.IsCorrect(c.Pred, c.Gold, AnswerFormat.Any)) (sprintf "%s vs %s" c.Pred c.Gold)
        }
    ]
