/// RMSNorm and the SwiGLU gate with their own backwards (issue 34): RmsNormFunction and SwiGluFunction give autograd's
/// values and gradients through the ops they replace (float64, where they run libtorch's ops); their AVX-512 kernels
/// (float32 and bf16) agree with that math to float32 rounding, round each bf16 result once as libtorch's cast does,
/// and give the same bits on one thread or two.
module Popo.Tests.Engine.ModelElementwise

#nowarn "9" // a pinned array handed to the store as a pointer

open System
open Expecto
open TorchSharp
open Popo.Engine.Model
open Popo.Kernels
open Popo.Tests
open Popo.Tests.Engine.ObjectiveFixtures

type private ST = torch.ScalarType

let private randn (seed: uint64) (shape: int64[]) (dtype: ST) (scale: float) =
    use g = new torch.Generator(seed, torch.CPU)
    use t = torch.randn(shape, dtype = ST.Float64, generator = g)
    (t * scale).to_type(dtype)

let private leaf (t: torch.Tensor) = t.detach().requires_grad_(true)

/// The norm as RmsNorm computed it through autograd before it had its own backward (HF's Qwen2RMSNorm).
let private rmsNormByAutograd (x: torch.Tensor) (w: torch.Tensor) (eps: float) =
    let wide = if x.dtype = ST.Float64 then x else x.to_type(ST.Float32)
    w * (wide * (wide.pow(torch.tensor(2.0, dtype = wide.dtype)).mean([| -1L |], keepdim = true) + eps).rsqrt()).to_type(x.dtype)

/// |a - b| <= tol * the largest |b|: rounding relative to the tensor's scale.
let private closeToScale tol (a: float[]) (b: float[]) =
    let scale = b |> Array.map abs |> Array.fold max 1e-30
    a.Length = b.Length && Array.forall2 (fun (x: float) y -> abs (x - y) <= tol * scale) a b

/// |a - b| <= ulps bf16 units in the last place of b (2^-7 relative per ulp at worst), or tiny absolute near zero.
let private withinBf16 (ulps: float) (a: float[]) (b: float[]) =
    a.Length = b.Length && Array.forall2 (fun (x: float) y -> abs (x - y) <= ulps * Math.Pow(2.0, -7.0) * abs y + 1e-30) a b

let private shapes = [ [| 1L; 16L |]; [| 7L; 48L |]; [| 2L; 65L; 96L |]; [| 130L; 896L |] ]

let private kernelsRun = Runtime.Intrinsics.X86.Avx512F.IsSupported

[<Tests>]
let tests =
    testList "engine/model/elementwise" [
        testCase "RMSNorm's own backward gives autograd's values and gradients (x and a trained weight; x alone for a frozen one), float64" <| fun () ->
            for shape in shapes do
                for trained in [ true; false ] do
                    use scope = torch.NewDisposeScope()
                    let h = shape[shape.Length - 1]
                    let x0, w0, dy = randn 1UL shape ST.Float64 3.0, randn 2UL [| h |] ST.Float64 1.0, randn 3UL shape ST.Float64 1.0
                    let run f =
                        let x, w = leaf x0, (if trained then leaf w0 else w0)
                        let y : torch.Tensor = f x w
                        y.backward([| dy |])
                        values y, gradValues x, (if trained then gradValues w else [||])
                    let y, dx, dw = run (fun x w -> RmsNormFunction.Run(x, w, 1e-6))
                    let ya, dxa, dwa = run (fun x w -> rmsNormByAutograd x w 1e-6)
                    let case = $"shape %A{shape}, trained {trained}"
                    Expect.isTrue (allClose Accuracy.veryHigh y ya) $"{case}: values"
                    Expect.isTrue (allClose Accuracy.veryHigh dx dxa) $"{case}: dx"
                    Expect.isTrue (allClose Accuracy.veryHigh dw dwa) $"{case}: dw"

        testCase "SwiGLU's own backward gives autograd's values and gradients of silu(g) * u, float64" <| fun () ->
            for shape in shapes do
                use scope = torch.NewDisposeScope()
                let g0, u0, dy = randn 4UL shape ST.Float64 4.0, randn 5UL shape ST.Float64 1.0, randn 6UL shape ST.Float64 1.0
                let run f =
                    let g, u = leaf g0, leaf u0
                    let y : torch.Tensor = f g u
                    y.backward([| dy |])
                    values y, gradValues g, gradValues u
                let y, dg, du = run (fun g u -> SwiGluFunction.Run(g, u))
                let ya, dga, dua = run (fun g u -> torch.nn.functional.silu(g) * u)
                Expect.isTrue (allClose Accuracy.veryHigh y ya) $"%A{shape}: values"
                Expect.isTrue (allClose Accuracy.veryHigh dg dga) $"%A{shape}: dg"
                Expect.isTrue (allClose Accuracy.veryHigh du dua) $"%A{shape}: du"

        testCase "the kernels in float32 agree with the float64 math (values and every gradient) to float32 rounding" <| fun () ->
            if kernelsRun then
                for shape in shapes do
                    use scope = torch.NewDisposeScope()
                    let h = shape[shape.Length - 1]
                    let x, w, dy = randn 7UL shape ST.Float64 3.0, randn 8UL [| h |] ST.Float64 1.0, randn 9UL shape ST.Float64 1.0
                    let f32 (t: torch.Tensor) = t.to_type(ST.Float32)
                    if h % 16L = 0L then
                        Expect.isTrue (RmsNormKernel.Applies(f32 x, f32 w)) $"%A{shape}: the kernel applies"
                        let struct (y, r) = RmsNormKernel.Forward(f32 x, f32 w, 1e-6, 2)
                        let struct (dx, dw) = RmsNormKernel.Backward(f32 dy, f32 x, f32 w, r, true, 2)
                        let struct (ye, re) = RmsNormFunction.ForwardOps(x, w, 1e-6)
                        let struct (dxe, dwe) = RmsNormFunction.BackwardOps(dy, x, w, re, true)
                        Expect.isTrue (closeToScale Accuracy.engine32 (values y) (values ye)) $"RMSNorm %A{shape}: values"
                        Expect.isTrue (closeToScale Accuracy.engine32 (values r) (values re)) $"RMSNorm %A{shape}: 1/rms"
                        Expect.isTrue (closeToScale Accuracy.engine32 (values dx) (values dxe)) $"RMSNorm %A{shape}: dx"
                        Expect.isTrue (closeToScale Accuracy.engine32 (values dw) (values dwe)) $"RMSNorm %A{shape}: dw"
                    else Expect.isFalse (RmsNormKernel.Applies(f32 x, f32 w)) $"%A{shape}: a width off 16 keeps the ops"
                    let u = randn 10UL shape ST.Float64 1.0
                    let g = x
                    let y = SwiGluKernel.Forward(f32 g, f32 u, 2)
                    let struct (dg, du) = SwiGluKernel.Backward(f32 dy, f32 g, f32 u, 2)
                    let struct (dge, due) = SwiGluFunction.BackwardOps(dy, g, u)
                    Expect.isTrue (closeToScale Accuracy.engine32 (values y) (values (torch.nn.functional.silu(g) * u))) $"SwiGLU %A{shape}: values"
                    Expect.isTrue (closeToScale Accuracy.engine32 (values dg) (values dge)) $"SwiGLU %A{shape}: dg"
                    Expect.isTrue (closeToScale Accuracy.engine32 (values du) (values due)) $"SwiGLU %A{shape}: du"

        testCase "the bf16 kernels store the float32 math of their bf16 inputs rounded once: within a bf16 ulp or two of libtorch's ops" <| fun () ->
            if kernelsRun then
                for shape in shapes |> List.filter (fun s -> s[s.Length - 1] % 16L = 0L) do
                    use scope = torch.NewDisposeScope()
                    let h = shape[shape.Length - 1]
                    let x, w, dy = randn 11UL shape ST.BFloat16 3.0, randn 12UL [| h |] ST.BFloat16 1.0, randn 13UL shape ST.BFloat16 1.0
                    let struct (y, r) = RmsNormKernel.Forward(x, w, 1e-6, 2)
                    let struct (dx, dw) = RmsNormKernel.Backward(dy, x, w, r, true, 2)
                    let struct (ye, re) = RmsNormFunction.ForwardOps(x, w, 1e-6)
                    let struct (dxe, dwe) = RmsNormFunction.BackwardOps(dy, x, w, re, true)
                    // y = round(round(x r) w): each factor may sit a float32 rounding either side of a bf16 tie.
                    Expect.isTrue (withinBf16 2.0 (values y) (values ye)) $"RMSNorm %A{shape}: values"
                    Expect.isTrue (withinBf16 1.0 (values dw) (values dwe)) $"RMSNorm %A{shape}: dw"
                    // dx is a difference of two terms: its rounding is relative to the row's scale, not to each entry.
                    Expect.isTrue (closeToScale (Math.Pow(2.0, -7.0)) (values dx) (values dxe)) $"RMSNorm %A{shape}: dx"
                    let g, u = x, randn 14UL shape ST.BFloat16 1.0
                    let ys = SwiGluKernel.Forward(g, u, 2)
                    let struct (dg, du) = SwiGluKernel.Backward(dy, g, u, 2)
                    let wide (t: torch.Tensor) = t.to_type(ST.Float32)
                    let yse = (torch.nn.functional.silu(wide g) * wide u).to_type(ST.BFloat16)
                    let struct (dge, due) = SwiGluFunction.BackwardOps(dy, g, u)
                    Expect.isTrue (withinBf16 1.0 (values ys) (values yse)) $"SwiGLU %A{shape}: values"
                    Expect.isTrue (withinBf16 1.0 (values dg) (values dge)) $"SwiGLU %A{shape}: dg"
                    Expect.isTrue (withinBf16 1.0 (values du) (values due)) $"SwiGLU %A{shape}: du"

        testCase "the kernels give the same bits on one thread and on two (the weight gradient sums fixed blocks of rows in order)" <| fun () ->
            if kernelsRun then
                for dtype in [ ST.Float32; ST.BFloat16 ] do
                    use scope = torch.NewDisposeScope()
                    let x, w, dy = randn 15UL [| 300L; 64L |] dtype 2.0, randn 16UL [| 64L |] dtype 1.0, randn 17UL [| 300L; 64L |] dtype 1.0
                    let bits (threads: int) =
                        let struct (y, r) = RmsNormKernel.Forward(x, w, 1e-6, threads)
                        let struct (dx, dw) = RmsNormKernel.Backward(dy, x, w, r, true, threads)
                        let s = SwiGluKernel.Forward(x, dy, threads)
                        let struct (dg, du) = SwiGluKernel.Backward(w.expand(300L, 64L).contiguous(), x, dy, threads)
                        [ y; r; dx; dw; s; dg; du ] |> List.map (fun t -> t.bytes.ToArray())
                    Expect.equal (bits 1) (bits 2) $"{dtype}: one thread against two"

        testCase "the kernels' exponential is within 2 float32 ulps of e^x over [-87, 88], and their bf16 store rounds as libtorch's cast (ties to even, NaN as 0xFFFF)" <| fun () ->
            // Both use AVX-512 instructions: without them the kernels never run (RmsNormKernel.Applies, SwiGluKernel.Applies).
            if kernelsRun then
                let xs = Array.init 4096 (fun i -> -87.0f + 175.0f * float32 i / 4095.0f)
                let got = Array.zeroCreate<float32> xs.Length
                for i in 0 .. 16 .. xs.Length - 16 do
                    Runtime.Intrinsics.Vector512.CopyTo(LaneMath.Exp(Runtime.Intrinsics.Vector512.Create<float32>(Array.sub xs i 16)), Span(got, i, 16))
                for i in 0 .. xs.Length - 1 do
                    let e = Math.Exp(float xs[i])
                    Expect.isTrue (abs (float got[i] - e) <= 2.0 * Math.Pow(2.0, -23.0) * e) $"e^{xs[i]}: {got[i]} against {e}"
                use scope = torch.NewDisposeScope()
                // Random bits (every exponent, ties included by construction), plus NaN, infinities and signed zeros.
                let rng = Random(3)
                let ties = Array.init 256 (fun _ -> BitConverter.Int32BitsToSingle((rng.Next() &&& 0x7FFF0000) ||| 0x8000))
                let specials = [| nanf; infinityf; -infinityf; 0.0f; -0.0f; Single.MaxValue; Single.Epsilon |]
                let randoms = Array.init (4096 - ties.Length - specials.Length) (fun _ -> BitConverter.Int32BitsToSingle(rng.Next() ^^^ (rng.Next() <<< 1)))
                let f = Array.concat [ ties; specials; randoms ]
                let t = torch.tensor(f)
                let stored = Array.zeroCreate<uint16> f.Length
                let handle = Runtime.InteropServices.GCHandle.Alloc(stored, Runtime.InteropServices.GCHandleType.Pinned)
                try
                    let p = NativeInterop.NativePtr.toVoidPtr (NativeInterop.NativePtr.ofNativeInt<uint16> (handle.AddrOfPinnedObject()))
                    for i in 0 .. 16 .. f.Length - 16 do Bf16Lanes.Store(p, int64 i, Runtime.Intrinsics.Vector512.Create<float32>(Array.sub f i 16))
                finally handle.Free()
                let cast = t.to_type(ST.BFloat16).bytes.ToArray()
                let expected = Array.init f.Length (fun k -> BitConverter.ToUInt16(cast, 2 * k))
                let bad = [ for k in 0 .. f.Length - 1 do if stored[k] <> expected[k] then yield (k, BitConverter.SingleToInt32Bits f[k], stored[k], expected[k]) ]
                Expect.isEmpty bad $"bf16 bits (index, float32 bits, stored, cast): {bad.Length} %A{List.truncate 6 bad}"
    ]
