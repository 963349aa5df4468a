/// Generated tasks (issue 6): reproducible, disjoint splits, always solvable, reference solutions
/// verify, difficulty presets generate what they describe, compact ASCII text.
module Popo.Tests.Engine.Tasks

open System
open System.Numerics
open Expecto
open FsCheck
open FsCheck.FSharp
open Popo.Engine.Data
open Popo.Engine.Tasks

let config = { FsCheckConfig.defaultConfig with maxTest = 100 }

let arithmeticPresets = [ "tiny"; "add2"; "easy"; "medium"; "hard"; "mul"; "expert" ]
let countdownPresets = [ "tiny"; "easy"; "medium"; "hard"; "expert" ]

/// (task, preset, seed, split, index): the domain of the generated-instance properties.
type Instance = { Task: string; Preset: string; Seed: int64; Split: Split; Index: int64 }

let genInstance (task: string) =
    gen {
        let! preset = Gen.elements (if task = "arithmetic" then arithmeticPresets else countdownPresets)
        let! seed = Gen.choose (0, 1000)
        let! split = Gen.elements [ Split.Train; Split.Test ]
        let! index = Gen.choose (0, 1_000_000)
        return { Task = task; Preset = preset; Seed = int64 seed; Split = split; Index = int64 index }
    }

let create (i: Instance) = TaskRegistry.Create(i.Task, TaskOptions(Seed = i.Seed, Difficulty = i.Preset))

/// The expression of an arithmetic prompt "Q: 47+385\nA: ".
let expressionOf (prompt: string) = prompt.Substring(3, prompt.IndexOf('\n') - 3)

/// Independent evaluation of a + - * expression with the usual precedence (the test's own oracle).
let evaluate (expr: string) : BigInteger =
    let tokens = Text.RegularExpressions.Regex.Split(expr, @"([+\-*])") |> Array.filter ((<>) "")
    // products first
    let rec fold (acc: BigInteger list) (ops: string list) (rest: string list) =
        match rest with
        | "*" :: n :: tail -> fold ((List.head acc * BigInteger.Parse n) :: List.tail acc) ops tail
        | op :: n :: tail -> fold (BigInteger.Parse n :: acc) (op :: ops) tail
        | _ -> List.rev acc, List.rev ops
    let terms, ops = fold [ BigInteger.Parse tokens.[0] ] [] (List.ofArray tokens.[1..])
    List.zip ops terms.Tail |> List.fold (fun s (op, t) -> if op = "+" then s + t else s - t) terms.Head

/// Independent evaluation of a countdown expression (System.Data's expression engine) and its literals.
let countdownValue (expr: string) =
    use table = new Data.DataTable()
    let v = table.Compute(expr, "")
    Convert.ToDecimal v

let literals (expr: string) =
    Text.RegularExpressions.Regex.Matches(expr, @"\d+") |> Seq.map (fun m -> int64 m.Value) |> List.ofSeq

let isSubMultiset (used: int64 list) (pool: int64 list) =
    used |> List.countBy id |> List.forall (fun (n, k) -> (pool |> List.filter ((=) n) |> List.length) >= k)

let plainAscii (s: string) = s |> Seq.forall (fun c -> c = '\n' || (c >= ' ' && c <= '~'))

let prompts (task: ITask) split count = [ for i in 0L .. count - 1L -> (task.Get(split, i)).Prompt ]

[<Tests>]
let tests =
    testList "engine/tasks" [
        testList "arithmetic" [
            testPropertyWithConfig config "every generated problem's reference solution verifies and its answer is the expression's value" <|
                Prop.forAll (Arb.fromGen (genInstance "arithmetic")) (fun i ->
                    let task = create i
                    let p = task.Get(i.Split, i.Index)
                    task.Reward(p, p.Solution) = 1.0
                    && p.Answer = string (evaluate (expressionOf p.Prompt))
                    && p.Solution.EndsWith("#### " + p.Answer))
            testPropertyWithConfig config "a wrong answer gets no reward" <|
                Prop.forAll (Arb.fromGen (genInstance "arithmetic")) (fun i ->
                    let task = create i
                    let p = task.Get(i.Split, i.Index)
                    let wrong = BigInteger.Parse p.Answer + BigInteger.One
                    task.Reward(p, sprintf "#### %O" wrong) = 0.0 && task.Reward(p, "") = 0.0)
            test "presets generate what they describe: operand count, digit counts and operators" {
                for name in arithmeticPresets do
                    let d = ArithmeticDifficulty.Presets.[name]
                    let task = TaskRegistry.Create("arithmetic", TaskOptions(Seed = 7L, Difficulty = name))
                    for k in 0L .. 199L do
                        let expr = expressionOf (task.Get(Split.Train, k)).Prompt
                        let numbers = Text.RegularExpressions.Regex.Split(expr, @"[+\-*]")
                        let ops = expr |> Seq.filter (fun c -> "+-*".Contains c) |> List.ofSeq
                        Expect.equal numbers.Length d.Operands (sprintf "%s operands in %s" name expr)
                        for n in numbers do
                            Expect.isTrue (n.Length >= d.MinDigits && n.Length <= d.MaxDigits) (sprintf "%s digits of %s" name n)
                        Expect.all ops (fun c -> d.Operators.Contains c) (sprintf "%s operators in %s" name expr)
            }
            test "the default difficulty gives prompts of 10-30 and solutions of at most 60 characters" {
                let task = TaskRegistry.Create("arithmetic")
                for k in 0L .. 499L do
                    let p = task.Get(Split.Train, k)
                    Expect.isTrue (p.Prompt.Length >= 10 && p.Prompt.Length <= 30) (sprintf "prompt %A" p.Prompt)
                    Expect.isLessThanOrEqual p.Solution.Length 60 (sprintf "solution %A" p.Solution)
            }
            test "column addition and subtraction show carries and borrows" {
                Expect.equal (ArithmeticTask.AddDetail(47I, 385I)) "7+5=12 4+8+1=13 3+1=4" "47+385"
                Expect.equal (ArithmeticTask.SubtractDetail(385I, 47I)) "15-7=8 8-1-4=3 3" "385-47"
                Expect.equal (ArithmeticTask.SubtractDetail(100I, 99I)) "10-9=1 10-1-9=0 1-1=0" "100-99"
                Expect.equal (ArithmeticTask.MultiplyDetail(47I, 35I)) "47*5=235 47*30=1410 235+1410=1645" "47*35"
            }
        ]
        testList "countdown" [
            testPropertyWithConfig config "every generated problem is solvable and its reference solution verifies" <|
                Prop.forAll (Arb.fromGen (genInstance "countdown")) (fun i ->
                    let task = create i
                    let p = task.Get(i.Split, i.Index)
                    let ok, numbers, target = CountdownTask.TryParsePrompt p.Prompt
                    ok
                    && task.Reward(p, p.Solution) = 1.0
                    && countdownValue p.Answer = decimal target
                    && isSubMultiset (literals p.Answer) (List.ofArray numbers)
                    && Array.IndexOf(numbers, target) < 0)
            testPropertyWithConfig config "the answer is accepted however it is written: parenthesised, spaced, boxed, tagged, with =target" <|
                Prop.forAll (Arb.fromGen (genInstance "countdown")) (fun i ->
                    let task = create i
                    let p = task.Get(i.Split, i.Index)
                    let _, _, target = CountdownTask.TryParsePrompt p.Prompt
                    [ sprintf "(%s)" p.Answer
                      sprintf "I think\n%s = %d" p.Answer target
                      sprintf "so \\boxed{%s}" p.Answer
                      sprintf "<answer>%s</answer>" (String.Join(" ", p.Answer.ToCharArray())) ]
                    |> List.forall (fun c -> task.Reward(p, c) = 1.0))
            testPropertyWithConfig config "invalid expressions are rejected: a number not given, a wrong value, no answer" <|
                Prop.forAll (Arb.fromGen (genInstance "countdown")) (fun i ->
                    let task = create i
                    let p = task.Get(i.Split, i.Index)
                    // 0 is never one of the numbers (they are >= 1)
                    [ sprintf "#### %s+0" p.Answer
                      sprintf "#### (%s)*2/2+1-1+0" p.Answer
                      sprintf "#### %s" (p.Answer.Replace("+", "-").Replace("*", "+") + "+0")
                      ""
                      "#### "
                      "#### 1/0" ]
                    |> List.forall (fun c -> task.Reward(p, c) = 0.0))
            test "different valid expressions all earn the reward, not only the reference one" {
                let task = CountdownTask(0L, CountdownDifficulty.Presets.["medium"])
                let p = Problem("z", "Q: nums 1 2 3 4 target 10\nA: ", "1+2+3+4", null)
                for e in [ "1+2+3+4"; "4*3-2*1"; "(4+1)*2"; "4*3-2"; "2*(4+1)"; "2*3+4"; "4*2+3-1"; "3/(1/4)-2" ] do
                    Expect.equal (task.Reward(p, sprintf "#### %s" e)) 1.0 e
                Expect.equal (task.Reward(p, "#### (3-1)*(4+1)")) 0.0 "value 10, but 1 is used twice"
            }
            test "a number may be used only as often as it is given, and only allowed operators count" {
                let task = CountdownTask(0L, CountdownDifficulty.Presets.["easy"])
                let p = Problem("x", "Q: nums 2 3 7 target 12\nA: ", "2+3+7", null)
                Expect.equal (task.Reward(p, "#### 2+3+7")) 1.0 "valid"
                Expect.equal (task.Reward(p, "#### 7+7-2")) 0.0 "7 used twice"
                Expect.equal (task.Reward(p, "#### 2*3+7-1")) 0.0 "* is not allowed in easy, and 1 is not given"
                let medium = CountdownTask(0L, CountdownDifficulty.Presets.["medium"])
                let q = Problem("y", "Q: nums 2 2 7 target 7\nA: ", "7", null)
                Expect.equal (medium.Reward(q, "#### 7/2*2")) 1.0 "exact rationals: 7/2*2 = 7"
                Expect.equal (medium.Reward(q, "#### 7/(2-2)")) 0.0 "division by zero is invalid"
            }
            test "the default difficulty gives prompts of at most 40 and solutions of at most 60 characters" {
                let task = TaskRegistry.Create("countdown")
                for k in 0L .. 299L do
                    let p = task.Get(Split.Train, k)
                    Expect.isLessThanOrEqual p.Prompt.Length 40 (sprintf "prompt %A" p.Prompt)
                    Expect.isLessThanOrEqual p.Solution.Length 60 (sprintf "solution %A" p.Solution)
            }
            test "presets generate what they describe: number count, range and target range" {
                for name in countdownPresets do
                    let d = CountdownDifficulty.Presets.[name]
                    let task = TaskRegistry.Create("countdown", TaskOptions(Seed = 3L, Difficulty = name))
                    for k in 0L .. 99L do
                        let _, numbers, target = CountdownTask.TryParsePrompt (task.Get(Split.Test, k)).Prompt
                        Expect.equal numbers.Length d.Numbers (sprintf "%s number count" name)
                        Expect.all numbers (fun n -> n >= 1L && n <= int64 d.MaxNumber) (sprintf "%s number range" name)
                        Expect.isTrue (target >= int64 d.MinTarget && target <= int64 d.MaxTarget) (sprintf "%s target %d" name target)
            }
        ]
        testList "splits" [
            for name in [ "arithmetic"; "countdown" ] do
                test (sprintf "%s: train and test never share a problem, across seeds too" name) {
                    let train = [ for seed in [ 0L; 1L ] do yield! prompts (TaskRegistry.Create(name, TaskOptions(Seed = seed))) Split.Train 1500L ] |> set
                    let test = [ for seed in [ 0L; 2L ] do yield! prompts (TaskRegistry.Create(name, TaskOptions(Seed = seed))) Split.Test 500L ] |> set
                    Expect.isEmpty (Set.intersect train test) "shared prompts"
                    Expect.isGreaterThan test.Count 400 "the test split is not degenerate"
                }
                test (sprintf "%s: a problem is a pure function of (seed, split, index)" name) {
                    let a = TaskRegistry.Create(name, TaskOptions(Seed = 5L))
                    let b = TaskRegistry.Create(name, TaskOptions(Seed = 5L))
                    let c = TaskRegistry.Create(name, TaskOptions(Seed = 6L))
                    for k in [ 0L; 1L; 17L; 123456789L ] do
                        for s in [ Split.Train; Split.Test ] do
                            Expect.equal (a.Get(s, k)) (b.Get(s, k)) "same seed, same problem"
                    Expect.notEqual (prompts a Split.Train 50L) (prompts c Split.Train 50L) "another seed, other problems"
                }
            test "the tiny arithmetic space (100 sums) is cut into two disjoint parts that cover it" {
                let task = TaskRegistry.Create("arithmetic", TaskOptions(Difficulty = "tiny"))
                let train = prompts task Split.Train 2000L |> set
                let test = prompts task Split.Test 1000L |> set
                Expect.isEmpty (Set.intersect train test) "disjoint"
                Expect.equal (train.Count + test.Count) 100 "all 100 sums a+b of digits appear"
                Expect.all test (fun p -> InstanceSpace.SplitOf(expressionOf p) = Split.Test) "test prompts hash to test"
            }
        ]
        testList "text" [
            for name in [ "arithmetic"; "countdown" ] do
                for preset in (if name = "arithmetic" then arithmeticPresets else countdownPresets) do
                    test (sprintf "%s/%s prompts and solutions are printable ASCII plus newline" name preset) {
                        let task = TaskRegistry.Create(name, TaskOptions(Difficulty = preset))
                        for k in 0L .. 99L do
                            for s in [ Split.Train; Split.Test ] do
                                let p = task.Get(s, k)
                                Expect.isTrue (plainAscii p.Prompt && plainAscii p.Solution && plainAscii p.Answer) (sprintf "%A" p)
                    }
        ]
        testList "registry" [
            test "an unknown task name lists the valid ones" {
                Expect.throwsT<ArgumentException> (fun () -> TaskRegistry.Create("sudoku") |> ignore) "unknown"
                let msg = (try TaskRegistry.Create("sudoku") |> ignore; "" with e -> e.Message)
                for n in TaskRegistry.Names do Expect.stringContains msg n "lists the valid tasks"
            }
            test "an unknown difficulty lists the presets and keys" {
                let msg = (try TaskRegistry.Create("arithmetic", TaskOptions(Difficulty = "brutal")) |> ignore; "" with e -> e.Message)
                for n in arithmeticPresets @ [ "digits"; "operands"; "ops" ] do Expect.stringContains msg n "lists presets and keys"
                let msg2 = (try TaskRegistry.Create("countdown", TaskOptions(Difficulty = "numbers=4,speed=2")) |> ignore; "" with e -> e.Message)
                Expect.stringContains msg2 "speed=2" "names the bad item"
                let msg3 = (try TaskRegistry.Create("arithmetic", TaskOptions(Difficulty = "digits=40")) |> ignore; "" with e -> e.Message)
                Expect.stringContains msg3 "[1, 18]" "gives the valid range"
            }
            test "key=value difficulties apply over the default preset" {
                let t = TaskRegistry.Create("arithmetic", TaskOptions(Difficulty = "digits=5,operands=4,ops=*")) :?> ArithmeticTask
                Expect.equal t.Difficulty (ArithmeticDifficulty(1, 5, 4, "*")) "parsed"
                let c = TaskRegistry.Create("countdown", TaskOptions(Difficulty = "preset=hard,numbers=6")) :?> CountdownTask
                let hard = CountdownDifficulty.Presets.["hard"]
                Expect.equal c.Difficulty (CountdownDifficulty(6, hard.MaxNumber, hard.MinTarget, hard.MaxTarget, hard.Operators)) "over a named preset"
            }
            test "options a task does not use are errors" {
                Expect.throwsT<ArgumentException> (fun () -> TaskRegistry.Create("arithmetic", TaskOptions(DatasetPath = "x.jsonl")) |> ignore) "arithmetic with a path"
                Expect.throwsT<ArgumentException> (fun () -> TaskRegistry.Create("jsonl", TaskOptions(Difficulty = "hard", DatasetPath = "x.jsonl")) |> ignore) "jsonl with a difficulty"
                Expect.throwsT<ArgumentException> (fun () -> TaskRegistry.Create("jsonl") |> ignore) "jsonl without a path"
            }
        ]
    ]
