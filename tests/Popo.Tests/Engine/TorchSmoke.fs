/// libtorch loads on this image (docs/design.md §8) and its autograd path produces the right numbers.
module Popo.Tests.Engine.TorchSmoke

open Expecto
open Popo.Engine.Runtime

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
        test "bf16 = true is warned about on a CPU without AVX-512 (libtorch's bf16 GEMM is then a scalar loop)" {
            let known = (Popo.Tests.CpuInfo.field "flags").IsSome
            if known && not (Popo.Tests.CpuInfo.hasFlag "avx512f") && not (Popo.Tests.CpuInfo.hasFlag "amx_bf16") then
                let warning = MatmulRate.Bf16Warning(TorchRuntime.ResolveDevice "cpu")
                Expect.isNotNull warning "no AVX-512: bf16 multiplies slower than float32"
                Expect.stringStarts warning "warning: bf16 = true" "the warning's wording"
        }
        test "no bf16 warning on a CPU that multiplies bf16 natively (AVX512_BF16 or AMX), however busy the machine" {
            if Popo.Tests.CpuInfo.hasFlag "avx512_bf16" || Popo.Tests.CpuInfo.hasFlag "amx_bf16" then
                for _ in 1 .. 3 do
                    Expect.isNull (MatmulRate.Bf16Warning(TorchRuntime.ResolveDevice "cpu")) "native bf16: no warning"
        }
        test "asking for cuda without a CUDA libtorch fails with a clear message" {
            if not (TorchSharp.torch.cuda.is_available ()) then
                let ex = Expect.throwsT<System.InvalidOperationException> (fun () -> TorchRuntime.ResolveDevice "cuda" |> ignore) "no cuda"
                ()
        }
    ]
