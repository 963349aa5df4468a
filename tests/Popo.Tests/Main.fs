/// `dotnet run --project tests/Popo.Tests` runs the same suite under Expecto's own runner.
module Popo.Tests.Main

open Expecto
open Expecto.Impl

[<EntryPoint>]
let main argv =
    Popo.Tests.HostSetup.apply ()
    match testFromAssembly (typeof<Popo.Tests.Marker>.Assembly) with
    | Some tests -> Tests.runTestsWithCLIArgs [] argv (CaseCount.scaled tests)
    | None -> failwith "no tests found in the test assembly"
