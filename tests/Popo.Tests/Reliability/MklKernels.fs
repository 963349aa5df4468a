/// POPO_MKL_VENDOR_CHECK=bypass lets libtorch's MKL use its tuned kernels on AMD (Runtime/MklVendorCheck.cs); the
/// default keeps MKL as shipped. Checked in `popo` processes, so that this test host's kernels stay as they are.
module Popo.Tests.Reliability.MklKernels

open System.IO
open System.Text.Json
open Expecto
open Popo.Tests.Reliability.Harness

/// mkl_vendor_check of `popo bench --quick --only peak` run with these variables.
let private reported (environment: (string * string) list) =
    let mutable value = ""
    withTemp (fun root ->
        let out = Path.Combine(root, "bench.json")
        let code, stderr = runPopoWith environment 120_000 [ "bench"; "--quick"; "--only"; "peak"; "--threads"; "1"; "--out"; out ]
        Expect.equal code 0 $"popo bench: {stderr}"
        use json = JsonDocument.Parse(File.ReadAllText out)
        value <- json.RootElement.GetProperty("meta").GetProperty("mkl_vendor_check").GetString())
    value

[<Tests>]
let tests =
    testSequenced <| testList "reliability/mkl-kernels" [
        testCase "MKL is kept as shipped by default, and its vendor test is bypassed on AMD when asked" <| fun () ->
            Expect.equal (reported [ "POPO_MKL_VENDOR_CHECK", "" ]) "kept" "default"
            let asked = reported [ "POPO_MKL_VENDOR_CHECK", "bypass" ]
            match Popo.Tests.CpuInfo.field "vendor_id" with
            | Some "AuthenticAMD" -> Expect.equal asked "bypassed" "AMD, bypass asked"
            | Some "GenuineIntel" -> Expect.equal asked "intel" "Intel: nothing to bypass"
            | _ -> Expect.stringStarts asked "not applicable" "elsewhere"
    ]
