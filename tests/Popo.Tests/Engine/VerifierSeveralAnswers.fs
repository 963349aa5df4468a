/// The verifier on answers of several parts and on how they are marked (issue 33): boxes separated by text
/// in one sentence, a gold written with boxes, sets with a repeated element or semicolons, articles in text
/// answers, doubled backslashes, "Final Answer: The ... is N.", and truncated completions under `any`.
module Popo.Tests.Engine.VerifierSeveralAnswers

open Expecto
open FsCheck
open FsCheck.FSharp
open Popo.MathVerify
open Popo.Engine.Data
open Popo.Engine.Tasks

let config = { FsCheckConfig.defaultConfig with maxTest = 100 }

let marked = AnswerFormat.Marked
let any = AnswerFormat.Any
let neither (a: string) (b: string) = not (Equivalence.Equal(a, b)) && not (Equivalence.Equal(b, a))
let both (a: string) (b: string) = Equivalence.Equal(a, b) && Equivalence.Equal(b, a)

let genPair = Gen.zip (Gen.choose (-30, 30)) (Gen.choose (-30, 30))
let tuple (a, b) = sprintf "(%d,%d)" a b

[<Tests>]
let tests =
    testList "engine/verifier/several answers" [
        testList "boxes" [
            test "boxes in one sentence linked by text are one answer; a corrected box is not joined" {
                let two = "So $\\boxed{(3,3)}$ for part (a) and $\\boxed{(1,1)}$ for part (b)."
                Expect.isTrue (MathVerifier.IsCorrect(two, "(3,3), (1,1)", marked)) "both parts"
                Expect.isTrue (MathVerifier.IsCorrect(two, "\\boxed{(3,3)} for part (a) and \\boxed{(1,1)}", marked)) "a gold written with boxes"
                Expect.isFalse (MathVerifier.IsCorrect(two, "(3,3)", marked)) "the first part alone"
                Expect.isFalse (MathVerifier.IsCorrect("first \\boxed{1}, no wait, \\boxed{2}", "1, 2", marked)) "a correction"
                Expect.isFalse (MathVerifier.IsCorrect("It is \\boxed{1}.\nSo for part (b) it is \\boxed{2}", "1, 2", marked)) "another sentence"
                Expect.isTrue (MathVerifier.IsCorrect("first I thought \\boxed{1}. No wait, it is \\boxed{2}", "2", marked)) "the corrected box"
            }
            testPropertyWithConfig config "two boxes linked in a sentence answer a two-part gold; a changed or missing part does not" <|
                Prop.forAll (Arb.fromGen (Gen.zip genPair genPair |> Gen.filter (fun (p, q) -> p <> q))) (fun (p, q) ->
                    let text = sprintf "Hence $\\boxed{%s}$ for part (a), and $\\boxed{%s}$ for part (b)." (tuple p) (tuple q)
                    let gold = sprintf "%s, %s" (tuple p) (tuple q)
                    let (a, b) = q
                    MathVerifier.IsCorrect(text, gold, marked)
                    && MathVerifier.IsCorrect(text, sprintf "\\boxed{%s} and \\boxed{%s}" (tuple p) (tuple q), marked)
                    && not (MathVerifier.IsCorrect(text, sprintf "%s, %s" (tuple p) (tuple (a + 1, b)), marked))
                    && not (MathVerifier.IsCorrect(text, sprintf "%s, %s" (tuple p) (tuple (b, a)), marked) && a <> b)
                    && not (MathVerifier.IsCorrect(text, tuple p, marked))
                    && not (MathVerifier.IsCorrect(text, sprintf "%s, %s, (0,100)" (tuple p) (tuple q), marked)))
        ]
        testList "sets and words" [
            test "a set of tuples with a repeat or semicolons; articles; doubled backslashes" {
                Expect.isTrue (both "\\{(1,2),(1,2),(3,4)\\}" "\\{(1,2),(3,4)\\}") "a repeat counts once in a set"
                Expect.isTrue (neither "1, 1, 2" "1, 2") "a list keeps its repeats"
                Expect.isTrue (both "(1,2); (3,4)" "\\{(1,2),(3,4)\\}") "semicolons between tuples"
                Expect.isTrue (both "\\{(1;2),(3;4)\\}" "\\{(1,2),(3,4)\\}") "semicolons inside tuples"
                Expect.isTrue (both "\\text{an ellipse}" "\\text{ellipse}") "an article"
                Expect.isTrue (neither "\\text{a circle}" "\\text{ellipse}") "another word"
                Expect.isTrue (both "\\\\frac{1}{2}" "\\frac12") "doubled backslashes"
            }
            testPropertyWithConfig config "a set with repeats is the set; a missing or changed element is not" <|
                Prop.forAll (Arb.fromGen (Gen.listOfLength 3 genPair |> Gen.map List.distinct |> Gen.filter (fun l -> l.Length = 3))) (fun ps ->
                    let set (xs: (int * int) list) = "\\{" + System.String.Join(",", xs |> List.map tuple) + "\\}"
                    let (a, b) = ps.Head
                    let changed = (a, b + 1)
                    both (set (ps @ [ ps.Head ])) (set ps)
                    && neither (set (ps @ [ ps.Head ])) (set ps.Tail)
                    && (List.contains changed ps || neither (set (ps @ [ ps.Head ])) (set (changed :: ps.Tail))))
            testPropertyWithConfig config "\\\\frac{p}{q} is p/q and not q/p" <|
                Prop.forAll (Arb.fromGen (Gen.zip (Gen.choose (1, 99)) (Gen.choose (1, 99)) |> Gen.filter (fun (p, q) -> p <> q))) (fun (p, q) ->
                    both (sprintf "\\\\frac{%d}{%d}" p q) (sprintf "%d/%d" p q) && neither (sprintf "\\\\frac{%d}{%d}" p q) (sprintf "%d/%d" q p))
        ]
        testList "marked answers" [
            test "Final Answer: a sentence gives the value after its verb" {
                Expect.isTrue (MathVerifier.IsCorrect("Final Answer: The largest $n$ is 34.", "34", marked)) "is N"
                Expect.isTrue (MathVerifier.IsCorrect("Final Answer: The volume of the box is $120$.", "120", marked)) "is $N$"
                Expect.isTrue (MathVerifier.IsCorrect("Final Answer: Jane has 12 more marbles than Tom.", "12", marked)) "no verb: the last number"
                Expect.isTrue (MathVerifier.IsCorrect("Final Answer: Jane needs $\\frac{3}{4}$ of a cup.", "0.75", marked)) "no verb: the last math span"
                Expect.isTrue (MathVerifier.IsCorrect("Answer: Evelyn", "\\text{Evelyn}", marked)) "a word answer stays a word"
                Expect.isTrue (MathVerifier.IsCorrect("Answer: Evelyn wins the race", "\\text{Evelyn}", marked)) "a word answer in a sentence with no number"
                Expect.isTrue (MathVerifier.IsCorrect("Answer: Evelyn wins with 5 points.", "\\text{Evelyn}", marked)) "the first word is one reading"
                Expect.isTrue (MathVerifier.IsCorrect("Answer: Evelyn wins with 5 points.", "5", marked)) "the sentence's number the other"
                Expect.isFalse (MathVerifier.IsCorrect("Answer: Evelyn wins with 5 points.", "\\text{Briana}", marked)) "another name"
                Expect.isFalse (MathVerifier.IsCorrect("Answer: Evelyn wins with 5 points.", "4", marked)) "another number"
                Expect.isTrue (MathVerifier.IsCorrect("The answer is 42 because 6*7", "42", marked)) "a formula then a word"
                Expect.isFalse (MathVerifier.IsCorrect("Final Answer: The largest $n$ is 34.", "\\text{The}", marked)) "not the first word"
            }
            testPropertyWithConfig config "Final Answer: The ... is v. (or Jane has v ...) verifies v, never v+1 or -v" <|
                Prop.forAll (Arb.fromGen (Gen.choose (1, 100000))) (fun v ->
                    [ sprintf "Final Answer: The number of ways is %d." v; sprintf "Final Answer: Jane has %d more marbles." v ]
                    |> List.forall (fun text ->
                        MathVerifier.IsCorrect(text, string v, marked)
                        && not (MathVerifier.IsCorrect(text, string (v + 1), marked)) && not (MathVerifier.IsCorrect(text, string -v, marked))))
            test "the <answer> tag is graded, not the reasoning before it (Math-Verify grades the reasoning)" {
                let text = "We try $x = 3$, which fails the check. <answer>5</answer>"
                Expect.isTrue (MathVerifier.IsCorrect(text, "5", any)) "the tag"
                Expect.isFalse (MathVerifier.IsCorrect(text, "3", any)) "not the reasoning"
            }
        ]
        testList "truncated completions" [
            test "a truncated completion earns the reward only through an explicit marker" {
                let cut = "We have $\\frac{14}{3}$ as a candidate, and now we need to"
                Expect.isFalse (MathVerifier.IsCorrect(cut, "\\frac{14}{3}", any, finished = false)) "a math span of unfinished work"
                Expect.isTrue (MathVerifier.IsCorrect(cut, "\\frac{14}{3}", any, finished = true)) "finished: the last math span"
                Expect.isTrue (MathVerifier.IsCorrect("so the answer is \\boxed{5}. Let me double", "5", any, finished = false)) "a box"
                Expect.isTrue (MathVerifier.IsCorrect("The answer is 5. Let me double", "5", any, finished = false)) "the answer is"
            }
            testPropertyWithConfig config "a truncated completion whose last number or math span is v never verifies; boxed it does" <|
                Prop.forAll (Arb.fromGen (Gen.choose (0, 100000))) (fun v ->
                    not (MathVerifier.IsCorrect(sprintf "so far we have %d and then" v, string v, any, finished = false))
                    && not (MathVerifier.IsCorrect(sprintf "so far we have $%d$" v, string v, any, finished = false))
                    && not (MathVerifier.IsCorrect(sprintf "so far we have %d" v, string v, any, finished = false))
                    && MathVerifier.IsCorrect(sprintf "so far we have %d" v, string v, any, finished = true)
                    && MathVerifier.IsCorrect(sprintf "thus \\boxed{%d} and" v, string v, any, finished = false))
            test "the tasks pass the finished flag to the verifier" {
                let task = ArithmeticTask(seed = 3L) :> ITask
                let p = task.Get(Split.Test, 0L)
                let text = sprintf "so far %s" p.Answer
                Expect.equal (task.Reward(p, text, true)) 1.0 "finished"
                Expect.equal (task.Reward(p, text, false)) 0.0 "truncated"
                Expect.equal (task.Reward(p, sprintf "\\boxed{%s}" p.Answer, false)) 1.0 "truncated but boxed"
            }
        ]
    ]
