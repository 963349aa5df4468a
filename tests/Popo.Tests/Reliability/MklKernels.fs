/// libtorch's MKL runs its tuned kernels on AMD once its vendor test is bypassed (src/Popo.Kernels/MklVendorCheck.cs): by
/// default on CPUs with AVX-512, on any AMD CPU with POPO_MKL_VENDOR_CHECK=bypass, never with =keep. Checked in
/// `popo` processes, so that this test host's kernels stay as they are.
module Popo.Tests.Reliability.MklKernels

open Expecto
open Popo.Tests.Reliability.Harness

let private reported environment = benchMeta environment "mkl_vendor_check"

[<Tests>]
let tests =
    testSequenced <| testList "reliability/mkl-kernels" [
        testCase "MKL's vendor test: bypassed on AMD with AVX-512 by default, on any AMD when asked, kept when asked" <| fun () ->
            let byDefault = reported [ "POPO_MKL_VENDOR_CHECK", "" ]
            let asked = reported [ "POPO_MKL_VENDOR_CHECK", "bypass" ]
            let kept = reported [ "POPO_MKL_VENDOR_CHECK", "keep" ]
            match Popo.Tests.CpuInfo.field "vendor_id" with
            | Some "AuthenticAMD" ->
                Expect.equal byDefault (if Popo.Tests.CpuInfo.hasFlag "avx512f" then "bypassed" else "kept") "AMD, default"
                Expect.equal asked "bypassed" "AMD, bypass asked"
                Expect.equal kept "kept" "AMD, keep asked"
            | Some "GenuineIntel" ->
                for value in [ byDefault; asked; kept ] do Expect.equal value "intel" "Intel: nothing to bypass"
            | _ -> for value in [ byDefault; asked; kept ] do Expect.stringStarts value "not applicable" "elsewhere"

        testCase "an unknown POPO_MKL_VENDOR_CHECK is refused with the values it takes" <| fun () ->
            let code, stderr = runPopoWith [ "POPO_MKL_VENDOR_CHECK", "yes" ] 60_000 [ "bench"; "--quick"; "--only"; "peak" ]
            Expect.equal code 1 "exit code"
            Expect.stringContains stderr "POPO_MKL_VENDOR_CHECK=yes: expected bypass, keep or unset" "message"
    ]
