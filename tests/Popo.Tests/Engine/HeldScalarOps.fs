/// The held-Scalar arithmetic of the model and the sampler (Runtime/HeldScalars: the alpha TorchSharp's own + creates
/// can be finalized mid-call) gives the operators' bits, in every dtype the engine runs: a change of alpha type or value
/// (1.0 for 1, or 0) shows here.
module Popo.Tests.Engine.HeldScalarOps

open Expecto
open TorchSharp
open Popo.Engine.Runtime

let private bitsOf (t: torch.Tensor) =
    use flat = t.to_type(torch.ScalarType.Float64).contiguous().flatten()
    flat.data<float>().ToArray() |> Array.map System.BitConverter.DoubleToInt64Bits

[<Tests>]
let tests =
    testList "engine/held-scalars" [
        testCase "Plus and PlusInPlace are TorchSharp's + and add_ bit for bit; Plus of a held Scalar is + of that value" <| fun () ->
            use g = new torch.Generator(5UL, torch.CPU)
            for dtype in [ torch.ScalarType.Float32; torch.ScalarType.Float64; torch.ScalarType.BFloat16 ] do
                use a = torch.randn([| 7L; 33L |], generator = g).to_type(dtype)
                use b = torch.randn([| 7L; 33L |], generator = g).to_type(dtype)
                use expected = a + b
                use held = HeldScalars.Plus(a, b)
                Expect.equal (bitsOf held) (bitsOf expected) $"{dtype}: a + b"
                use inPlace = a.clone()
                HeldScalars.PlusInPlace(inPlace, b) |> ignore
                Expect.equal (bitsOf inPlace) (bitsOf expected) $"{dtype}: add_"
                use eps = (1e-6).ToScalar()
                use withEps = HeldScalars.Plus(a, eps)
                use expectedEps = a + 1e-6
                Expect.equal (bitsOf withEps) (bitsOf expectedEps) $"{dtype}: a + eps"
            use positions = torch.arange(0L, 9L, dtype = torch.ScalarType.Int64)
            use step = (3).ToScalar()
            use shifted = HeldScalars.Plus(positions, step)
            Expect.equal (shifted.data<int64>().ToArray()) [| 3L .. 11L |] "int64 positions + step"
            Expect.equal shifted.dtype torch.ScalarType.Int64 "stays int64"
            use counts = positions.sub(HeldScalars.One)
            Expect.equal (counts.data<int64>().ToArray()) [| -1L .. 7L |] "the held 1 is an integer 1"
    ]
