/// One place for each fact: the algorithms are registered once, and every list of names, presets, families and metric
/// columns is read off the registrations; a metric value nobody declared is an error.
module Popo.Tests.Architecture.Registry

open System
open System.Collections.Generic
open Expecto
open Popo.Engine.Configuration
open Popo.Engine.Objectives
open Popo.Engine.Training

[<Tests>]
let tests =
    testList "architecture/registry" [
        testCase "the algo key's allowed words, the presets and the families are the registrations'" <| fun () ->
            let names = ObjectiveRegistry.Names |> List.ofSeq
            let algo = ConfigSchema.Entries |> Seq.find (fun e -> e.Key = "algo")
            Expect.sequenceEqual (List.ofSeq algo.Words) names "algo's allowed words"
            Expect.sequenceEqual (ConfigLoader.Presets.Keys |> Seq.sort |> List.ofSeq) (List.sort names) "preset names"
            for a in ObjectiveRegistry.All do
                Expect.sequenceEqual ConfigLoader.Presets.[a.Name] a.Preset $"{a.Name}'s preset"
                Expect.equal (ConfigLoader.IsPopoFamily a.Name) (a.Family = AlgorithmFamily.Popo) $"{a.Name}'s family"
                let resolved = ConfigLoader.Resolve(null, [| struct ("algo", a.Name) |] |> Array.map (fun struct (k, v) -> (k, v)))
                for key, value in a.Preset do
                    let entry = ConfigSchema.Entries |> Seq.find (fun e -> e.Key = key)
                    Expect.equal (entry.Property.GetValue resolved) value $"{a.Name} sets {key}"

        testCase "every algorithm's columns are in the metrics header, each once" <| fun () ->
            for a in ObjectiveRegistry.All do
                for c in a.Columns do
                    Expect.equal (Trainer.Columns |> Array.filter ((=) c) |> Array.length) 1 $"{a.Name}'s column {c}"
            Expect.equal (Trainer.Columns |> Array.distinct |> Array.length) Trainer.Columns.Length "no column twice"

        testCase "a metric that neither the loop nor the algorithm declared is refused, not dropped" <| fun () ->
            let popo = ObjectiveRegistry.Get "popo"
            let grpo = ObjectiveRegistry.Get "grpo"
            let ok = Dictionary<string, float>(dict [ "step", 1.0; "loss_nll", 0.5 ])
            let row = Trainer.Row(ok, popo)
            Expect.equal row.["loss_nll"] 0.5 "a declared value is written"
            Expect.isTrue (Double.IsNaN row.["kl_ref"]) "another algorithm's column is NaN"
            let undeclared = Dictionary<string, float>(dict [ "step", 1.0; "made_up", 2.0 ])
            Expect.throwsT<InvalidOperationException> (fun () -> Trainer.Row(undeclared, popo) |> ignore) "an undeclared name"
            // GRPO's kept_rows is declared by GRPO, not by POPO: under POPO it is refused.
            let kept = Dictionary<string, float>(dict [ "kept_rows", 3.0 ])
            Expect.equal (Trainer.Row(kept, grpo)).["kept_rows"] 3.0 "GRPO's own column"
            Expect.throwsT<InvalidOperationException> (fun () -> Trainer.Row(kept, popo) |> ignore) "another algorithm's column"
    ]

/// A task's judgement is made once and carries everything downstream needs; verifier failures are counted, not lost.
[<Tests>]
let judgements =
    testList "architecture/judgement" [
        testCase "the math tasks' judgement carries the verdict's route and answer" <| fun () ->
            let task = Popo.Engine.Tasks.ArithmeticTask(1L)
            let p = task.Get(Popo.Engine.Data.Split.Train, 0L)
            let j = task.Judge(p, $"so the sum is\n#### {p.Answer}")
            Expect.equal j.Reward 1.0 "rewarded"
            Expect.equal j.Route Popo.MathVerify.AnswerRoute.Marked "route"
            Expect.equal j.Answer p.Answer "the answer judged"
            Expect.isNull j.Error "no error"

        testCase "a verdict's error reaches the judgement, and the trainer counts the rollouts that carry one" <| fun () ->
            let failed = Popo.Engine.Tasks.Judgement.Of(Popo.MathVerify.Verdict(false, Popo.MathVerify.AnswerRoute.Math, "x", "ArgumentException: boom"))
            Expect.equal failed.Error "ArgumentException: boom" "error kept"
            Expect.equal failed.Reward 0.0 "no reward"
            let ok = Popo.Engine.Tasks.Judgement(1.0)
            Expect.equal (Trainer.ErrorsOf [| ok; failed; ok; failed |]) (struct (2, 1)) "two, the first at 1"
            Expect.equal (Trainer.ErrorsOf [| ok; ok |]) (struct (0, -1)) "none"
            Expect.contains Trainer.Columns "verifier_errors" "a metrics column"
    ]
