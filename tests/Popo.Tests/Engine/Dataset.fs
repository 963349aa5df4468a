/// The JSONL loader and the dataset task (docs/design.md §7): the three shapes, the prompt template, errors
/// that name file, line and field, skipping bad lines with a count, and the real benchmark files.
module Popo.Tests.Engine.Dataset

open System
open System.IO
open Expecto
open Popo.Engine.Data
open Popo.Engine.Tasks
open Popo.MathVerify

let instruction = "Please reason step by step, and put your final answer within \\boxed{}."

let countOf (s: string) (sub: string) =
    let rec go (from: int) n = match s.IndexOf(sub, from, StringComparison.Ordinal) with -1 -> n | i -> go (i + sub.Length) (n + 1)
    go 0 0

[<Tests>]
let tests =
    testList "engine/dataset" [
        testList "fixtures" [
            test "GSM8K shape: gold after ####, worked solution without calculator annotations, default template" {
                let d = JsonlDataset.Load(SharedData.fixture "gsm8k_small.jsonl")
                Expect.equal d.Shape DatasetShape.Gsm8k "detected shape"
                Expect.equal (d.Problems |> Seq.map (fun p -> p.Answer) |> List.ofSeq) [ "16"; "2,050"; "-3" ] "gold answers (blank line ignored)"
                let p = d.Problems.[0]
                Expect.equal p.Solution "She makes 12 * 3 = 36 rolls.\nShe has 36 - 20 = 16 rolls left.\n#### 16" "solution"
                Expect.equal p.Prompt ("A baker makes 12 rolls each hour for 3 hours and sells 20 of them. How many rolls are left?\n" + instruction) "prompt"
                Expect.equal p.Id "gsm8k_small.jsonl:1" "id from file and line"
                Expect.equal d.Problems.[2].Id "gsm8k_small.jsonl:4" "line numbers count the blank line"
                for q in d.Problems do Expect.isTrue (MathVerifier.IsCorrect(q.Solution, q.Answer)) (sprintf "solution of %s verifies" q.Id)
            }
            test "problem/answer shape: string or number answers, optional solution, the instruction is not added twice" {
                let d = JsonlDataset.Load(SharedData.fixture "math_small.jsonl")
                Expect.equal d.Shape DatasetShape.ProblemAnswer "detected shape"
                Expect.equal (d.Problems |> Seq.map (fun p -> p.Answer) |> List.ofSeq) [ "\\frac{3}{4}"; "6"; "2" ] "answers"
                Expect.equal d.Problems.[0].Id "fixture/1" "unique_id"
                Expect.isTrue (MathVerifier.IsCorrect(d.Problems.[0].Solution, d.Problems.[0].Answer)) "solution verifies"
                Expect.isNull d.Problems.[1].Solution "no solution field"
                for p in d.Problems do Expect.equal (countOf p.Prompt instruction) 1 (sprintf "one instruction in %A" p.Prompt)
            }
            test "TRL shape: a user-chosen answer field, text or message-list prompts used as written" {
                let d = JsonlDataset.Load(SharedData.fixture "trl_small.jsonl", DatasetOptions(AnswerField = "ground_truth"))
                Expect.equal d.Shape DatasetShape.Prompt "detected shape"
                Expect.equal (d.Problems |> Seq.map (fun p -> p.Prompt, p.Answer) |> List.ofSeq) [ "Compute 7*6.", "42"; "Compute 9+10.", "19" ] "prompts and answers"
                Expect.throwsT<DatasetFormatException> (fun () -> JsonlDataset.Load(SharedData.fixture "trl_small.jsonl") |> ignore) "default answer field is absent"
            }
            test "a TRL file without the chosen answer field names file, line 1 and the field" {
                let e = try JsonlDataset.Load(SharedData.fixture "trl_small.jsonl") |> ignore; None with :? DatasetFormatException as e -> Some e
                match e with
                | Some e ->
                    Expect.equal (e.Line, e.Field) (1, "answer") "line and field"
                    Expect.stringContains e.Message "trl_small.jsonl:1" "file and line in the message"
                    Expect.stringContains e.Message "'answer'" "field in the message"
                | None -> failtest "expected a DatasetFormatException"
            }
            test "a custom template must hold {question} and replaces the default" {
                let d = JsonlDataset.Load(SharedData.fixture "math_small.jsonl", DatasetOptions(PromptTemplate = "Problem: {question}\nAnswer:"))
                Expect.equal d.Problems.[1].Prompt "Problem: How many sides does a hexagon have?\nAnswer:" "templated"
                Expect.throwsT<ArgumentException> (fun () -> JsonlDataset.Load(SharedData.fixture "math_small.jsonl", DatasetOptions(PromptTemplate = "no placeholder")) |> ignore) "template without placeholder"
            }
            test "the first bad line fails the load, naming file, line and what is wrong" {
                let e = try JsonlDataset.Load(SharedData.fixture "bad_lines.jsonl") |> ignore; None with :? DatasetFormatException as e -> Some e
                match e with
                | Some e ->
                    Expect.equal e.Line 2 "line"
                    Expect.isNull e.Field "the line is not JSON"
                    Expect.stringContains e.Message "bad_lines.jsonl:2" "file:line"
                    Expect.stringContains e.Message "not valid JSON" "what is wrong"
                | None -> failtest "expected a DatasetFormatException"
            }
            test "with SkipBadLines every bad line is skipped and counted with its line and field" {
                let d = JsonlDataset.Load(SharedData.fixture "bad_lines.jsonl", DatasetOptions(SkipBadLines = true))
                Expect.equal (d.Problems |> Seq.map (fun p -> p.Answer) |> List.ofSeq) [ "2"; "4" ] "the good lines"
                Expect.equal d.SkippedCount 5 "count"
                Expect.equal (d.Skipped |> Seq.map (fun e -> e.Line, e.Field) |> List.ofSeq)
                    [ 2, null; 3, "answer"; 5, "answer"; 6, "answer"; 7, null ] "lines and fields"
                Expect.stringContains d.Skipped.[1].Message "missing" "missing field"
                Expect.stringContains d.Skipped.[2].Message "expected a string" "malformed field"
                Expect.stringContains d.Skipped.[3].Message "####" "GSM8K final line"
                Expect.stringContains d.Skipped.[4].Message "JSON object" "not an object"
            }
            test "an empty file, an unknown shape and a missing file are clear errors" {
                let dir = Directory.CreateTempSubdirectory("popo-dataset-")
                try
                    let empty = Path.Combine(dir.FullName, "empty.jsonl")
                    File.WriteAllText(empty, "\n\n")
                    Expect.throwsT<DatasetFormatException> (fun () -> JsonlDataset.Load empty |> ignore) "empty"
                    let odd = Path.Combine(dir.FullName, "odd.jsonl")
                    File.WriteAllText(odd, "{\"text\": \"hi\"}\n")
                    let msg = try JsonlDataset.Load odd |> ignore; "" with e -> e.Message
                    Expect.stringContains msg "odd.jsonl:1" "names file and line"
                    Expect.stringContains msg "\"question\"" "lists the expected fields"
                    Expect.throwsT<FileNotFoundException> (fun () -> JsonlDataset.Load(Path.Combine(dir.FullName, "nope.jsonl")) |> ignore) "missing file"
                finally dir.Delete(true)
            }
            test "a dataset task without a train fraction is all test, and asking for training data says why it fails" {
                let t = TaskRegistry.Create("jsonl", TaskOptions(DatasetPath = SharedData.fixture "gsm8k_small.jsonl"))
                Expect.equal (t.Count Split.Test) (Nullable 3L) "test count"
                Expect.equal (t.Count Split.Train) (Nullable 0L) "train count"
                Expect.equal (t.Get(Split.Test, 4L)) (t.Get(Split.Test, 1L)) "the index wraps (epochs)"
                let msg = try t.Get(Split.Train, 0L) |> ignore; "" with e -> e.Message
                Expect.stringContains msg "train fraction" "explains"
                let p = t.Get(Split.Test, 0L)
                Expect.equal (t.Reward(p, "so the answer is \\boxed{16}")) 1.0 "reward via the verifier"
                Expect.equal (t.Reward(p, "so the answer is \\boxed{17}")) 0.0 "wrong answer"
            }
        ]
        testList "real data" [
            for name, lines, shape in [ "gsm8k", 1319, DatasetShape.Gsm8k; "math500", 500, DatasetShape.ProblemAnswer
                                        "aime24", 30, DatasetShape.ProblemAnswer; "aime25", 30, DatasetShape.ProblemAnswer
                                        "amc2023", 40, DatasetShape.ProblemAnswer ] do
                test (sprintf "%s loads: %d problems, shape detected, gold answers as in the file, one instruction per prompt" name lines) {
                    let d = JsonlDataset.Load(SharedData.file name)
                    Expect.equal d.Problems.Count lines "problem count"
                    Expect.equal d.Shape shape "shape"
                    Expect.equal (d.Problems |> Seq.map (fun p -> p.Answer.Trim()) |> Array.ofSeq) (VerifierRealData.golds name |> Array.map (fun g -> g.Trim())) "gold answers"
                    for p in d.Problems do Expect.equal (countOf p.Prompt instruction) 1 (sprintf "instruction in %s" p.Id)
                }
            test "every gsm8k worked solution verifies against its gold answer" {
                let d = JsonlDataset.Load(SharedData.file "gsm8k")
                let misses = d.Problems |> Seq.filter (fun p -> not (MathVerifier.IsCorrect(p.Solution, p.Answer))) |> List.ofSeq
                printfn "gsm8k worked solutions: %d/%d verify" (d.Problems.Count - misses.Length) d.Problems.Count
                Expect.isEmpty misses "solutions that do not verify"
            }
            test "a train fraction cuts math500 into disjoint, reproducible parts of the right sizes" {
                let make seed = TaskRegistry.Create("jsonl", TaskOptions(DatasetPath = SharedData.file "math500", TrainFraction = Nullable 0.8, Seed = seed))
                let t = make 1L
                Expect.equal (t.Count Split.Train, t.Count Split.Test) (Nullable 400L, Nullable 100L) "sizes"
                let ids (task: ITask) s = [ for i in 0L .. (task.Count s).Value - 1L -> (task.Get(s, i)).Id ] |> set
                Expect.isEmpty (Set.intersect (ids t Split.Train) (ids t Split.Test)) "disjoint"
                Expect.equal (Set.count (ids t Split.Train) + Set.count (ids t Split.Test)) 500 "covers the file"
                Expect.equal (ids (make 1L) Split.Test) (ids t Split.Test) "same seed, same cut"
                Expect.notEqual (ids (make 2L) Split.Test) (ids t Split.Test) "another seed, another cut"
            }
        ]
    ]
