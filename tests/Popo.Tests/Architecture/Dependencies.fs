/// The dependency directions ARCHITECTURE.md lists, enforced on the compiled assemblies (NetArchTest reads every
/// type's references with Mono.Cecil, so a fully qualified name counts as much as a `using`): each engine stage may
/// use the stages before it and never one after it, and the libraries reference nothing of the engine.
module Popo.Tests.Architecture.Dependencies

open System.Reflection
open Expecto
open NetArchTest.Rules

/// The engine's stages, bottom up: the same list, in the same order, as ARCHITECTURE.md's "Dependencies".
let stages =
    [ "Runtime"; "Checkpoints"; "Model"; "Lora"; "Tokenizers"; "Data"; "Tasks"; "Rewards"; "Rollout"; "Policy"; "Objectives"
      "Configuration"; "Training" ]

let engine = typeof<Popo.Engine.Training.Trainer>.Assembly

/// Types of `stage` that use a later stage, as "Type -> (first later stage it uses)".
let backReferences (assembly: Assembly) (stage: string) (later: string list) =
    if later.IsEmpty then [] else
    let result =
        Types.InAssembly(assembly).That().ResideInNamespace($"Popo.Engine.{stage}")
             .ShouldNot().HaveDependencyOnAny(later |> List.map (fun s -> $"Popo.Engine.{s}") |> Array.ofList)
             .GetResult()
    if result.IsSuccessful then [] else [ for t in result.FailingTypes -> t.FullName ]

/// Every violation in `assembly`: a stage's type that uses a stage after it.
let violations (assembly: Assembly) =
    [ for i, stage in List.indexed stages do
        for t in backReferences assembly stage (List.skip (i + 1) stages) -> $"{stage}: {t}" ]

/// The engine's namespaces that are not a listed stage (a new folder must be placed in the order).
let unplaced (assembly: Assembly) =
    assembly.GetTypes()
    |> Array.choose (fun t -> if isNull t.Namespace then None else Some t.Namespace)
    |> Array.filter (fun ns -> ns.StartsWith "Popo.Engine.")
    |> Array.map (fun ns -> ns.Split('.').[2])
    |> Array.distinct
    |> Array.filter (fun s -> not (List.contains s stages))
    |> List.ofArray

let libraries =
    [ "Popo.Spec"; "Popo.Jinja"; "Popo.MathVerify"; "Popo.Kernels"; "Popo.Rewards"; "Popo.Scripting" ] |> List.map Assembly.Load

[<Tests>]
let tests =
    testList "architecture/dependencies" [
        testCase "no engine stage uses a later one (the order in ARCHITECTURE.md)" <| fun () ->
            let found = violations engine
            Expect.isEmpty found ("back-references:\n" + String.concat "\n" found)

        testCase "every engine namespace is a stage of the order" <| fun () ->
            let found = unplaced engine
            Expect.isEmpty found ("namespaces that are not in the stage list: " + String.concat ", " found)

        testCase "the libraries reference nothing of the engine, the CLI or each other" <| fun () ->
            let ours = set [ "Popo.Engine"; "popo"; "Popo.Bench"; "Popo.Jinja"; "Popo.MathVerify"; "Popo.Kernels"; "Popo.Rewards"; "Popo.Scripting"; "Popo.Spec" ]
            for lib in libraries do
                let refs = lib.GetReferencedAssemblies() |> Array.map (fun a -> a.Name) |> Array.filter ours.Contains
                Expect.isEmpty refs $"{lib.GetName().Name} references"

        testCase "only Popo.Kernels allows unsafe code" <| fun () ->
            // The C# compiler marks a module built with /unsafe with UnverifiableCodeAttribute.
            let unsafeModule (a: Assembly) = a.Modules |> Seq.exists (fun m -> m.GetCustomAttributes(typeof<System.Security.UnverifiableCodeAttribute>, false).Length > 0)
            for a in engine :: libraries do
                let name = a.GetName().Name
                Expect.equal (unsafeModule a) (name = "Popo.Kernels") $"{name} is built with unsafe code"
    ]
