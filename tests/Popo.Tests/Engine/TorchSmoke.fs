/// libtorch loads on this image (DESIGN.md section 8) and its autograd path produces the right numbers.
module Popo.Tests.Engine.TorchSmoke

open System.IO
open Expecto
open Popo.Engine.Runtime
open TorchSharp

let private cpuVendor () =
    if File.Exists "/proc/cpuinfo" then
        File.ReadLines "/proc/cpuinfo" |> Seq.tryFind (fun l -> l.StartsWith "vendor_id") |> Option.map (fun l -> l.Split(':').[1].Trim())
    else None

[<Tests>]
let tests =
    testList "engine/torch" [
        test "libtorch loads and reports version 2.10" {
            Expect.stringStarts TorchRuntime.LibTorchVersion "2.10" "libtorch version"
        }
        test "backward of sum((W x)^2) gives 2 (W x) x^T" {
            let grad = TorchRuntime.SmokeGradient(TorchRuntime.ResolveDevice "cpu")
            Expect.equal grad [| 6.0; 6.0; 14.0; 14.0 |] "dy/dW"
        }
        test "MKL's vendor test is bypassed on AMD, and float32 matmuls still agree with float64 afterwards" {
            let outcome = MklVendorCheck.Configure()
            match cpuVendor () with
            | Some "AuthenticAMD" when System.Environment.GetEnvironmentVariable MklVendorCheck.KeepVariable <> "keep" ->
                Expect.equal outcome "bypassed" "AMD: MKL dispatches on instruction sets"
            | Some "GenuineIntel" -> Expect.equal outcome "intel" "Intel: nothing to do"
            | _ -> ()
            Expect.equal (MklVendorCheck.Configure()) outcome "idempotent"
            torch.manual_seed 3L |> ignore
            use a = torch.randn([| 300L; 200L |], dtype = torch.float64)
            use b = torch.randn([| 200L; 500L |], dtype = torch.float64)
            use exact = a.matmul b
            use single = a.to_type(torch.float32).matmul(b.to_type(torch.float32)).to_type(torch.float64)
            let relative = ((single - exact).abs().max() / exact.abs().max()).item<double>()
            Expect.isLessThan relative 1e-5 "float32 GEMM against float64"
        }
        test "asking for cuda without a CUDA libtorch fails with a clear message" {
            if not (TorchSharp.torch.cuda.is_available ()) then
                let ex = Expect.throwsT<System.InvalidOperationException> (fun () -> TorchRuntime.ResolveDevice "cuda" |> ignore) "no cuda"
                ()
        }
    ]
