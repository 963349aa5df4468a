/// FsCheck's case counts, scaled for the whole suite by one environment variable: POPO_FSCHECK_SCALE=3 runs
/// every property (testProperty's default 100 and every explicit maxTest) with three times its cases. Both
/// entry points (Main.fs for Expecto's runner, XunitBridge.fs for `dotnet test`) pass the suite through
/// `scaled`, so no property file needs to know.
module Popo.Tests.CaseCount

open System
open Expecto

/// The factor from POPO_FSCHECK_SCALE (a positive integer; 1 when unset); anything else is refused.
let factor =
    lazy (
        match Environment.GetEnvironmentVariable "POPO_FSCHECK_SCALE" with
        | null | "" -> 1
        | s ->
            match Int32.TryParse s with
            | true, k when k >= 1 -> k
            | _ -> failwithf "POPO_FSCHECK_SCALE=%s: expected a positive integer (the factor on FsCheck's case counts)" s)

let private scale (k: int) (config: FsCheckConfig option) =
    let c = defaultArg config FsCheckConfig.defaultConfig
    Some { c with maxTest = c.maxTest * k }

/// The same test tree with every FsCheck property's case count multiplied by `k`.
let rec scaleBy (k: int) (test: Test) : Test =
    match test with
    | TestCase (AsyncFsCheck (testConfig, stressConfig, run), state) when k <> 1 ->
        TestCase (AsyncFsCheck (scale k testConfig, scale k stressConfig, run), state)
    | TestCase _ -> test
    | TestList (tests, state) -> TestList (tests |> List.map (scaleBy k), state)
    | TestLabel (label, t, state) -> TestLabel (label, scaleBy k t, state)
    | Test.Sequenced (how, t) -> Test.Sequenced (how, scaleBy k t)

/// The suite as POPO_FSCHECK_SCALE asks.
let scaled (test: Test) : Test = scaleBy factor.Value test
