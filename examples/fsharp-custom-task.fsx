// Trains Popo's built-in small model on a task Popo does not know, from an F# script: "reverse the digits" problems
// made here, written as a JSONL dataset, scored by a continuous reward defined here (the share of digits in place).
//
// Run: dotnet fsi examples/fsharp-custom-task.fsx OUT_FOLDER [STEPS]
//
// The script loads the assemblies that the Popo.Engine package restores into the C# example's build folder
// (`dotnet build -c Release examples/CSharpCustomTask` first): `#r "nuget: Popo.Engine"` would load TorchSharp's
// native library straight from the NuGet cache, which Debian 12's libstdc++ refuses (docs/design.md §8), while a
// build through the package marks that library's one GLIBCXX_3.4.32 need weak (the package's build targets).
// fsi does not look in the build's runtimes/<rid>/native folder, and TorchSharp would then copy the unmarked library
// from the NuGet cache, so the script loads the build's copy itself before anything touches torch.
#I "CSharpCustomTask/bin/Release/net10.0"
#r "Popo.Rewards.dll"
#r "Popo.Engine.dll"
#r "TorchSharp.dll"

open System
open System.IO
open System.Text.Json
open Popo.Engine.Configuration
open Popo.Engine.Training
open Popo.Rewards

let native =
    Path.Combine(__SOURCE_DIRECTORY__, "CSharpCustomTask", "bin", "Release", "net10.0", "runtimes",
                 System.Runtime.InteropServices.RuntimeInformation.RuntimeIdentifier, "native", "libLibTorchSharp.so")
if File.Exists native then System.Runtime.InteropServices.NativeLibrary.Load native |> ignore

let args = fsi.CommandLineArgs |> Array.skip 1
let output = Path.GetFullPath(if args.Length > 0 then args[0] else "runs/fsharp-custom-task")
let steps = if args.Length > 1 then args[1] else "4"
Directory.CreateDirectory output |> ignore

// The task: reverse a three-digit number; MATH-shaped records with a worked solution for the warm-up.
let dataset = Path.Combine(output, "reverse.jsonl")
let random = Random 11
File.WriteAllLines(dataset, [|
    for i in 1 .. 64 ->
        let n = string (random.Next(100, 1000))
        let reversed = String(Array.rev (n.ToCharArray()))
        JsonSerializer.Serialize {| id = $"rev-{i}"; problem = $"rev {n}"; answer = reversed; solution = $"\\boxed{{{reversed}}}" |} |])

/// A continuous reward: the share of the gold's digits that the completion's last three-character run puts in
/// place; null when the completion has no digit (the function does not apply).
type DigitsInPlace() =
    inherit RewardFunction()
    override _.Name = "digits_in_place"
    override _.Score(sample: RewardSample) =
        let gold = sample.Columns["answer"].GetValue<string>()
        let digits = sample.Completion |> String.filter Char.IsDigit
        if digits.Length = 0 then Nullable()
        else
            let guess = digits.Substring(max 0 (digits.Length - gold.Length))
            let hits = Seq.zip guess gold |> Seq.filter (fun (a, b) -> a = b) |> Seq.length
            Nullable(float hits / float gold.Length)

/// Prints each phase and every step's mean reward.
type ConsoleObserver() =
    interface ITrainingObserver with
        member _.Phase(name, total, _) = printfn "%s: %d steps" name total
        member _.Step(step, metrics) =
            match metrics.TryGetValue "reward_mean" with
            | true, r -> printfn "  step %d: reward_mean %.3f" step r
            | _ -> printfn "  step %d" step
        member _.Log message = printfn "%s" message

// The same keys as `popo train` flags and config files; the built-in small model (no `model` key), a few steps.
let config =
    ConfigLoader.Resolve(null, [|
        "dataset", dataset; "out", Path.Combine(output, "run"); "steps", steps
        "hidden_size", "32"; "layers", "1"; "heads", "2"; "kv_heads", "1"; "intermediate_size", "64"
        "sft_steps", "20"; "sft_batch_size", "16"; "prompts_per_step", "4"; "group_size", "4"
        "max_new_tokens", "8"; "eval_problems", "8"; "eval_every", steps; "save_every", steps
        "predictor_hidden", "16"; "threads", "1"; "seed", "1" |])

let summary = Trainer.Start(config, ConsoleObserver(), [| DigitsInPlace() :> IRewardFunction |])
printfn "done: %d steps, held-out pass@1 %.3f -> %.3f; metrics in %s/metrics.jsonl" summary.Steps summary.Warmup.Pass1 summary.Final.Pass1 config.Out
