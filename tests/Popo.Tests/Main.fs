/// `dotnet run --project tests/Popo.Tests` runs the same suite under Expecto's own runner.
module Popo.Tests.Main

open Expecto

[<EntryPoint>]
let main argv = Tests.runTestsInAssemblyWithCLIArgs [] argv
