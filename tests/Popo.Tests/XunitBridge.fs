/// Exposes every Expecto test of this assembly to the xunit runner, one xunit case per Expecto test,
/// so that `dotnet test` runs (and fails on) the Expecto/FsCheck suite. Microsoft.NET.Test.Sdk alone
/// finds no Expecto tests and exits 0 (docs/design.md §8).
namespace Popo.Tests

open Expecto
open Expecto.Impl
open Xunit

type internal Marker = class end

/// What `popo`'s Main sets up for the process, done here before any test: the in-process runs of the tests must
/// compute with the same MKL kernels as the `popo` processes they are compared with.
module internal HostSetup =
    let apply () = Popo.Kernels.MklVendorCheck.Configure() |> ignore

module internal Discovery =
    let all =
        lazy (
            HostSetup.apply ()
            match testFromAssembly (typeof<Marker>.Assembly) with
            | Some t -> Test.toTestCodeList (CaseCount.scaled t) |> List.map (fun flat -> flat.fullName "/", flat)
            | None -> []
            |> Map.ofList)

    let run (name: string) =
        let flat = all.Value.[name]
        let single = TestLabel(name, TestCase(flat.test, flat.state), flat.state)
        let config = { ExpectoConfig.defaultConfig with printer = TestPrinters.silent; runInParallel = false }
        let results = evalTests config single |> Async.RunSynchronously
        match results with
        | [ _, summary ] ->
            match summary.result with
            | Passed -> ()
            | Ignored reason -> Skip.If(true, reason)
            | Failed message -> Assert.Fail(message)
            | Error exn -> raise exn
        | other -> Assert.Fail(sprintf "expected one result for %s, got %d" name other.Length)

type ExpectoTests() =
    static member Names: obj[] seq = Discovery.all.Value |> Map.keys |> Seq.map (fun n -> [| box n |])

    [<SkippableTheory; MemberData(nameof ExpectoTests.Names)>]
    member _.``expecto``(name: string) = Discovery.run name
