/// The real-scale features of issue 18 on tiny models: the chunked head (values and gradients equal the
/// unchunked path for every consumer in Objectives/), per-layer activation checkpointing (same gradients),
/// bf16 mixed precision (float32 master gradients, bf16-close to float32) and the unchanged default path.
module Popo.Tests.Engine.ModelScale

open System
open Expecto
open TorchSharp
open Popo.Engine.Configuration
open Popo.Engine.Model
open Popo.Kernels
open Popo.Engine.Objectives
open Popo.Engine.Policy
open Popo.Engine.Runtime
open Popo.Tests
open Popo.Tests.Engine.ModelFixtures
open Popo.Tests.Engine.ObjectiveFixtures

let private config tied =
    ModelConfig(VocabSize = 37, HiddenSize = 16, IntermediateSize = 24, NumHiddenLayers = 2,
                NumAttentionHeads = 4, NumKeyValueHeads = 2, MaxPositionEmbeddings = 64, TieWordEmbeddings = tied)

let private gradients (parameters: seq<Modules.Parameter>) = parameters |> Seq.collect gradValues |> Seq.toArray

let private zeroGrads (parameters: seq<Modules.Parameter>) =
    for p in parameters do
        match p.grad with
        | null -> ()
        | g -> g.zero_() |> ignore

/// Two groups of three completions (lengths 1-6) after a 3-token prompt, rewards with positives and negatives.
let private completions (seed: int) =
    let rng = Random(seed)
    [| for _ in 1 .. 6 -> Array.init (rng.Next(1, 7)) (fun _ -> rng.Next(37)) |]

let private rewards = [| 1.0; 0.0; 1.0; 0.0; 0.0; 1.0 |]

/// theta <- theta + 0.05 N(0, 1): the policy moves away from the one that sampled (rho != 1) and from the reference.
let private perturb (m: torch.nn.Module) (seed: int) =
    use noGrad = torch.no_grad ()
    use g = new torch.Generator(uint64 seed, torch.CPU)
    for struct (_, p) in m.named_parameters() do
        use noise = torch.randn(p.shape, dtype = p.dtype, generator = g)
        p.add_(noise, alpha = 0.05) |> ignore

/// One objective's loss and gradients on a fixed batch at the given head chunk (0 = unchunked), with or without padding.
let private objectiveGradientsOf (paddingFree: bool) (algo: string) (tied: bool) (chunk: int) =
    use model = randomModel (config tied) 3 ScalarType.Float64
    model.LogitChunkSize <- chunk
    model.PaddingFree <- paddingFree
    let policy = Qwen2Policy(model)
    use batch = batchOf policy [| 1; 2; 3 |] (completions 7) rewards 3
    use objective : IObjective =
        if algo = "popo" then
            new PopoObjective("popo", policy, Func<IPolicy>(fun () -> policy.FrozenClone() :> IPolicy), 16,
                              PopoOptions(Alpha = 0.5, BetaEntropy = 0.3, FeatureNoise = 0.0, PredictorHidden = 8), 0.7,
                              torch.CPU, ScalarType.Float64, 5L)
        else
            new GrpoObjective("grpo", policy, Func<IPolicy>(fun () -> policy.FrozenClone() :> IPolicy),
                              GrpoOptions(Beta = 0.2, MaxCompletionLength = 6), 0.7)
    perturb model 11
    let metrics = StepMetrics()
    use prepared = objective.Prepare(batch, metrics)
    objective.Backward(prepared, prepared.TrainRows, 1, metrics) |> ignore
    let m = metrics.ToDictionary()
    m.["loss"], gradients (Seq.append policy.Parameters objective.ExtraParameters)

let private objectiveGradients = objectiveGradientsOf true

let private real (mask: torch.Tensor) = mask.``to``(ScalarType.Bool)
let private padding (mask: torch.Tensor) = (real mask).logical_not()

/// Four rows of 9 positions: left-padded prompts and right-padded completions (11 of 36 positions are padding),
/// padded with an id outside the vocabulary, so a forward that embeds a padding position fails.
let private raggedBatch () =
    let mask = torch.tensor([| 0L; 0L; 1L; 1L; 1L; 1L; 1L; 0L; 0L
                               1L; 1L; 1L; 1L; 1L; 1L; 1L; 1L; 1L
                               0L; 1L; 1L; 1L; 1L; 0L; 0L; 0L; 0L
                               0L; 0L; 0L; 1L; 1L; 1L; 1L; 1L; 1L |]).view(4L, 9L)
    let tokens = torch.randint(37L, [| 4L; 9L |], generator = new torch.Generator(3UL, torch.CPU))
    tokens.masked_fill(padding mask, 1000L), mask, Qwen2ForCausalLM.DefaultPositions(mask, 9L)

/// Hidden states at the real positions, the loss sum(R h) - mean l over them, and every parameter's gradient.
let private raggedForward (model: Qwen2ForCausalLM) (ids: torch.Tensor) (mask: torch.Tensor) (positions: torch.Tensor) =
    let policy = Qwen2Policy(model)
    zeroGrads (model.parameters())
    let hidden = model.ForwardHidden(ids, mask, positions)
    let real = real mask
    let r = torch.randn(hidden.shape, dtype = hidden.dtype, generator = new torch.Generator(5UL, torch.CPU))
    let next = ids.narrow(1, 1L, 8L).masked_fill(padding (mask.narrow(1, 1L, 8L)), 0L)
    let struct (l, _) = policy.TokenStatistics(hidden.narrow(1, 0L, 8L), next, 1.0, EntropyNeed.None)
    let both = real.narrow(1, 0L, 8L).logical_and(real.narrow(1, 1L, 8L))
    let loss = (r * hidden).masked_select(real.unsqueeze(-1)).sum() - l.masked_select(both).mean()
    loss.backward()
    values (hidden.masked_select(real.unsqueeze(-1))), gradients (model.parameters())

/// l and H for hidden states [b,n,D] through the policy's head, loss = sum(a l) + sum(c H); returns values and the gradients of h and the head.
let private headCase (chunk: int) (entropy: EntropyNeed) (temperature: float) =
    use model = randomModel (config true) 5 ScalarType.Float64
    model.LogitChunkSize <- chunk
    let policy = Qwen2Policy(model)
    use scope = torch.NewDisposeScope()
    use g = new torch.Generator(9UL, torch.CPU)
    let h = torch.randn([| 3L; 5L; 16L |], dtype = ScalarType.Float64, generator = g).requires_grad_(true)
    let tokens = torch.randint(37L, [| 3L; 5L |], generator = g)
    let a = torch.randn([| 3L; 5L |], dtype = ScalarType.Float64, generator = g)
    let c = torch.randn([| 3L; 5L |], dtype = ScalarType.Float64, generator = g)
    let struct (l, ent) = policy.TokenStatistics(h, tokens, temperature, entropy)
    let loss = if entropy = EntropyNeed.Differentiable then (a * l).sum() + (c * ent).sum() else (a * l).sum()
    loss.backward()
    values l, (if isNull ent then [||] else values ent), gradValues h, gradValues model.HeadWeight

/// headCase with a mask (3 x 5, six positions off) and the masked loss sum(m (a l + c H)); the hidden states at the
/// masked-out positions are NaN when poisoned, so any head pass over them would reach the head's gradient.
let private maskedHeadCase (chunk: int) (masked: bool) (poisoned: bool) =
    use model = randomModel (config true) 5 ScalarType.Float64
    model.LogitChunkSize <- chunk
    let policy = Qwen2Policy(model)
    use scope = torch.NewDisposeScope()
    use g = new torch.Generator(9UL, torch.CPU)
    let keep = torch.tensor([| true; true; true; false; false;  true; false; false; false; false;  true; true; true; true; true |]).view(3L, 5L)
    let m = keep.``to``(ScalarType.Int64)
    let h0 = torch.randn([| 3L; 5L; 16L |], dtype = ScalarType.Float64, generator = g)
    let h = (if poisoned then h0.masked_fill(keep.logical_not().unsqueeze(-1), Double.NaN) else h0).detach().requires_grad_(true)
    let tokens = torch.randint(37L, [| 3L; 5L |], generator = g)
    let a = torch.randn([| 3L; 5L |], dtype = ScalarType.Float64, generator = g)
    let c = torch.randn([| 3L; 5L |], dtype = ScalarType.Float64, generator = g)
    let struct (l, ent) = policy.TokenStatistics(h, tokens, 0.7, EntropyNeed.Differentiable, (if masked then m else null))
    let mf = m.``to``(ScalarType.Float64)
    let kept (t: torch.Tensor) = t.masked_select(keep)
    (mf * (a * l + c * ent)).sum().backward()
    values (kept l), values (kept ent), values (l * (1.0 - mf)), values (kept (h.grad.sum(-1L))), gradValues model.HeadWeight

[<Tests>]
let tests =
    testSequenced <| testList "engine/scale" [
        testCase "chunked head: l, H and their gradients (hidden and head) equal the unchunked path, float64" <| fun () ->
            for entropy in [ EntropyNeed.None; EntropyNeed.Value; EntropyNeed.Differentiable ] do
                for temperature in [ 1.0; 0.7 ] do
                    let l0, h0, dh0, dw0 = headCase 0 entropy temperature
                    for chunk in [ 1; 4; 14 ] do
                        let l, h, dh, dw = headCase chunk entropy temperature
                        let what = $"chunk {chunk}, entropy {entropy}, T {temperature}"
                        Expect.isTrue (allClose Accuracy.engine64 l l0) $"log-probs, {what}"
                        Expect.isTrue (allClose Accuracy.engine64 h h0) $"entropies, {what}"
                        Expect.isTrue (allClose Accuracy.engine64 dh dh0) $"d/dh, {what}"
                        Expect.isTrue (allClose Accuracy.engine64 dw dw0) $"d/dW, {what}"
                        Expect.isTrue (dw |> Array.exists (fun x -> x <> 0.0)) "the head weight gets a gradient"

        testCase "with a mask the chunked head runs over the masked positions only: same l, H and gradients there, 0 elsewhere (float64)" <| fun () ->
            let l0, h0, _, dh0, dw0 = maskedHeadCase 0 false false
            for chunk in [ 1; 4 ] do
                let l, h, outside, dh, dw = maskedHeadCase chunk true true
                Expect.isTrue (allClose Accuracy.engine64 l l0) $"log-probs, chunk {chunk}"
                Expect.isTrue (allClose Accuracy.engine64 h h0) $"entropies, chunk {chunk}"
                Expect.isTrue (allClose Accuracy.engine64 dh dh0) $"d/dh at the kept positions, chunk {chunk}"
                Expect.isTrue (allClose Accuracy.engine64 dw dw0) $"d/dW, chunk {chunk} (finite: no pass over the NaN positions)"
                Expect.isTrue (outside |> Array.forall ((=) 0.0)) "l = 0 at the masked-out positions"
            // The premise: without the mask the poisoned positions reach the head's gradient.
            let _, _, _, _, dwAll = maskedHeadCase 4 false true
            Expect.isTrue (dwAll |> Array.exists Double.IsNaN) "unmasked, the NaN positions poison d/dW"

        testCase "chunked head inside POPO (NLL, similarity, entropy) and GRPO (ratio, clip, k3): same loss and gradients, float64" <| fun () ->
            for algo in [ "popo"; "grpo" ] do
                for tied in [ true; false ] do
                    let loss0, g0 = objectiveGradients algo tied 0
                    for chunk in [ 1; 5 ] do
                        let loss, g = objectiveGradients algo tied chunk
                        Expect.isTrue (Accuracy.close Accuracy.engine64 loss loss0) $"{algo} tied={tied} chunk {chunk}: loss {loss} vs {loss0}"
                        Expect.isTrue (allClose Accuracy.engine64 g g0) $"{algo} tied={tied} chunk {chunk}: gradients"
                        Expect.isTrue (g |> Array.exists (fun x -> x <> 0.0)) "some gradient"

        testCase "padding-free forward: the real positions' hidden states and every gradient equal the padded forward's, with and without checkpointing" <| fun () ->
            for dtype, tol in [ ScalarType.Float64, Accuracy.veryHigh; ScalarType.Float32, Accuracy.engine32 ] do
                use model = randomModel (config true) 4 dtype
                use scope = torch.NewDisposeScope()
                let ids, mask, positions = raggedBatch ()
                let realIds = ids.masked_fill(padding mask, 0L)
                model.PaddingFree <- false
                let hidden0, g0 = raggedForward model realIds mask positions
                Expect.throws (fun () -> raggedForward model ids mask positions |> ignore) "the padded forward embeds the padding"
                model.PaddingFree <- true
                for checkpointing in [ false; true ] do
                    model.GradientCheckpointing <- checkpointing
                    let hidden, g = raggedForward model ids mask positions
                    Expect.isTrue (allClose tol hidden hidden0) $"{dtype} checkpointing={checkpointing}: hidden states"
                    Expect.isTrue (allClose tol g g0) $"{dtype} checkpointing={checkpointing}: gradients"
                model.GradientCheckpointing <- false
                let hidden = model.ForwardHidden(ids, mask, positions)
                Expect.isTrue (values (hidden.masked_select((padding mask).unsqueeze(-1))) |> Array.forall ((=) 0.0)) "zeros at the padding"

        testCase "padding-free forward inside POPO (target included) and GRPO (reference included): same loss and gradients, float64" <| fun () ->
            for algo in [ "popo"; "grpo" ] do
                let loss0, g0 = objectiveGradientsOf false algo true 0
                let loss, g = objectiveGradientsOf true algo true 0
                Expect.isTrue (Accuracy.close Accuracy.veryHigh loss loss0) $"{algo}: loss {loss} vs {loss0}"
                Expect.isTrue (allClose Accuracy.veryHigh g g0) $"{algo}: gradients"
                Expect.isTrue (g |> Array.exists (fun x -> x <> 0.0)) "some gradient"

        testCase "the default path (no bf16, auto chunk at a small vocabulary) is the old log-softmax graph, bit for bit" <| fun () ->
            use model = randomModel (config true) 2 ScalarType.Float32
            let policy = Qwen2Policy(model)
            use scope = torch.NewDisposeScope()
            let ids = torch.randint(37L, [| 4L; 9L |], generator = new torch.Generator(3UL, torch.CPU))
            let tokens = ids.narrow(1, 1L, 8L)
            let run (newPath: bool) =
                for p in model.parameters() do p.grad <- null
                let l =
                    if newPath then
                        let hidden = model.ForwardHidden(ids)
                        let struct (l, _) = policy.TokenStatistics(hidden.narrow(1, 0L, 8L), tokens, 0.9, EntropyNeed.None)
                        l
                    else
                        let logits = model.Forward(ids).Logits.narrow(1, 0L, 8L)
                        TokenStatistics.LogProbs(logits, tokens, 0.9)
                l.sum().backward()
                values l, gradients (model.parameters())
            let lOld, gOld = run false
            let lNew, gNew = run true
            Expect.equal lNew lOld "log-probs"
            Expect.equal gNew gOld "gradients"

        testCase "the embedding's in-place backward: autograd's rows and gradient (exact into no gradient, float64-close into one that holds another's)" <| fun () ->
            use scope = torch.NewDisposeScope()
            use g = new torch.Generator(4UL, torch.CPU)
            let weight () = new Modules.Parameter(torch.randn([| 11L; 5L |], dtype = ScalarType.Float64, generator = new torch.Generator(2UL, torch.CPU)))
            let ids = torch.tensor([| 3L; 0L; 3L; 10L; 7L; 3L |]).view(2L, 3L)   // 3 repeats: rows sum several gradients
            let upstream = torch.randn([| 2L; 3L; 5L |], dtype = ScalarType.Float64, generator = g)
            let earlier = torch.randn([| 11L; 5L |], dtype = ScalarType.Float64, generator = g)
            let run (lookup: Modules.Parameter -> torch.Tensor) (prior: bool) =
                let w = weight ()
                if prior then w.grad <- earlier.clone()
                let y = lookup w
                (y * upstream).sum().backward()
                values y, gradValues w
            for prior in [ false; true ] do
                let autograd (w: Modules.Parameter) =
                    let e = torch.nn.Embedding(11L, 5L, dtype = ScalarType.Float64)
                    e.weight <- w
                    e.forward(ids)
                let yRef, gRef = run autograd prior
                let y, grad = run (fun w -> EmbeddingLookup.Run(w, ids)) prior
                Expect.equal y yRef "rows"
                if prior then Expect.isTrue (allClose Accuracy.veryHigh grad gRef) "gradient added to an earlier one"
                else Expect.equal grad gRef "gradient"
                Expect.isTrue (grad |> Array.exists (fun x -> x <> 0.0)) "some gradient"

        testCase "a checkpointed backward leaves no per-layer handle in the caller's scope (the activation gradients are released)" <| fun () ->
            let handlesLeft layers =
                let c = ModelConfig(VocabSize = 37, HiddenSize = 16, IntermediateSize = 24, NumHiddenLayers = layers,
                                    NumAttentionHeads = 4, NumKeyValueHeads = 2, MaxPositionEmbeddings = 64, TieWordEmbeddings = true)
                use model = randomModel c 4 ScalarType.Float32
                model.GradientCheckpointing <- true
                use scope = torch.NewDisposeScope()
                let ids = torch.randint(37L, [| 3L; 7L |], generator = new torch.Generator(1UL, torch.CPU))
                let loss = model.ForwardHidden(ids).square().mean()
                let before = scope.DisposablesCount
                loss.backward()
                scope.DisposablesCount - before
            Expect.equal (handlesLeft 6) (handlesLeft 2) "handles the backward leaves do not grow with depth"

        testCase "gradient checkpointing gives the same gradients as the plain backward, float64 and float32" <| fun () ->
            for dtype, tol in [ ScalarType.Float64, Accuracy.veryHigh; ScalarType.Float32, Accuracy.engine32 ] do
                use model = randomModel (config true) 4 dtype
                let policy = Qwen2Policy(model)
                use scope = torch.NewDisposeScope()
                let ids = torch.randint(37L, [| 3L; 7L |], generator = new torch.Generator(1UL, torch.CPU))
                let run checkpointing =
                    model.GradientCheckpointing <- checkpointing
                    zeroGrads (model.parameters())
                    let hidden = model.ForwardHidden(ids)
                    let struct (l, _) = policy.TokenStatistics(hidden.narrow(1, 0L, 6L), ids.narrow(1, 1L, 6L), 1.0, EntropyNeed.None)
                    let loss = -l.mean() + 0.1 * hidden.square().mean()
                    loss.backward()
                    values loss, gradients (model.parameters())
                let loss0, g0 = run false
                let loss1, g1 = run true
                Expect.isTrue (allClose tol loss1 loss0) $"{dtype} loss"
                Expect.isTrue (allClose tol g1 g0) $"{dtype} gradients"
                Expect.isTrue (g1 |> Array.forall Double.IsFinite && g1 |> Array.exists (fun x -> x <> 0.0)) "gradients reach the layers"

        testCase "bf16 mixed precision: float32 master gradients within bf16 tolerance of the float32 step" <| fun () ->
            use model = new Qwen2ForCausalLM(config true, torch.CPU, ScalarType.Float32)
            model.InitializeWeights 6L   // HF's N(0, 0.02^2): logits of a realistic size
            let policy = Qwen2Policy(model)
            use scope = torch.NewDisposeScope()
            let ids = torch.randint(37L, [| 4L; 12L |], generator = new torch.Generator(2UL, torch.CPU))
            let run bf16 chunk checkpointing =
                model.Precision.Dtype <- (if bf16 then Nullable ScalarType.BFloat16 else Nullable())
                model.LogitChunkSize <- chunk
                model.GradientCheckpointing <- checkpointing
                zeroGrads (model.parameters())
                let hidden = model.ForwardHidden(ids)
                Expect.equal hidden.dtype ScalarType.Float32 "the hidden state leaves in float32"
                let struct (l, h) = policy.TokenStatistics(hidden.narrow(1, 0L, 11L), ids.narrow(1, 1L, 11L), 1.0, EntropyNeed.Differentiable)
                Expect.equal l.dtype ScalarType.Float32 "log-probs in float32"
                let loss = -l.mean() - 0.1 * h.mean()
                loss.backward()
                for p in model.parameters() do Expect.equal p.grad.dtype ScalarType.Float32 "master gradients are float32"
                loss.item<float32>() |> float, gradients (model.parameters())
            let loss32, g32 = run false 0 false
            let norm (g: float[]) = sqrt (g |> Array.sumBy (fun x -> x * x))
            for chunk, checkpointing in [ 0, false; 7, false; 7, true ] do
                let loss16, g16 = run true chunk checkpointing
                let diff = norm (Array.map2 (-) g16 g32) / norm g32
                Expect.isLessThan (abs (loss16 - loss32) / abs loss32) 1e-2 $"bf16 loss {loss16} vs float32 {loss32} (chunk {chunk})"
                // bf16 keeps 8 mantissa bits (relative rounding 2^-9 per op); over two layers and the head the
                // gradient moves by a few per cent, not more.
                Expect.isLessThan diff 5e-2 $"relative gradient difference {diff} (chunk {chunk}, checkpointing {checkpointing})"
                Expect.isGreaterThan diff 0.0 "bf16 actually ran (the gradient differs from float32)"

        testCase "the bf16 compute cache: built once by no-grad forwards, dropped by a training forward" <| fun () ->
            use model = randomModel (config true) 8 ScalarType.Float32
            model.Precision.Dtype <- Nullable ScalarType.BFloat16
            use scope = torch.NewDisposeScope()
            let ids = torch.randint(37L, [| 2L; 5L |], generator = new torch.Generator(4UL, torch.CPU))
            let cached () = model.Precision.CachedCount
            do
                use noGrad = torch.no_grad ()
                model.Forward(ids).Dispose()
                let first = cached ()
                model.Forward(ids).Dispose()
                Expect.equal (cached ()) first "a second no-grad forward reuses the cache"
                Expect.isGreaterThan first 0 "no-grad forwards cache the cast weights"
                Expect.isLessThanOrEqual first (Seq.length (model.parameters())) "at most one cast per parameter"
            model.ForwardHidden(ids).Dispose()
            Expect.equal (cached ()) 0 "a training forward drops the cache (the weights are about to change)"

        testCase "few-row kernel: x W^T in float32 for float32 and bf16 weights, each row the same bits at every batch size and split" <| fun () ->
            if not Runtime.Intrinsics.X86.Avx512F.IsSupported then
                Expect.isFalse (FewRowProduct.Applies(1L, 16384L, 64L, ScalarType.Float32, torch.CPU)) "no AVX-512: libtorch's products"
            else
            use scope = torch.NewDisposeScope()
            let g = new torch.Generator(5UL, torch.CPU)
            use noGrad = torch.no_grad ()
            let sameBits (a: torch.Tensor) (b: torch.Tensor) = a.shape = b.shape && a.eq(b).all().item<bool>()
            // 8,492 rows of width 64: two parallel pieces, float32 tiles of 4,096 rows and a partial one of 300.
            let master = torch.randn([| 8492L; 64L |], generator = g)
            for weight in [ master; master.``to``(ScalarType.BFloat16) ] do
                let exact (h: torch.Tensor) = torch.nn.functional.linear(h.``to``(ScalarType.Float64), weight.``to``(ScalarType.Float64))
                Expect.isTrue (FewRowProduct.Reads weight) $"{weight.dtype}: the kernel reads it"
                for rows in [ 1L; 2L; 3L; 4L; 5L; 8L; 9L; 13L ] do
                    let h = torch.randn([| rows; 64L |], generator = g) * 3.0
                    let z = FewRowProduct.Multiply(h, weight, 1)
                    Expect.equal z.dtype ScalarType.Float32 "float32 products"
                    Expect.sequenceEqual z.shape [| rows; 8492L |] "[R, N]"
                    let scale = (exact h).abs().max().ToDouble()
                    Expect.isLessThan ((z.``to``(ScalarType.Float64) - exact h).abs().max().ToDouble()) (1e-5 * scale) $"{weight.dtype}, {rows} rows: the float32 product"
                    Expect.isTrue (sameBits z (FewRowProduct.Multiply(h, weight, 3))) $"{weight.dtype}, {rows} rows: three threads' split gives the same bits"
                    for r in 0L .. rows - 1L do
                        Expect.isTrue (sameBits (z.narrow(0, r, 1L)) (FewRowProduct.Multiply(h.narrow(0, r, 1L), weight, 1))) $"{weight.dtype}, row {r} of {rows}: the same bits alone"
                let batched = torch.randn([| 2L; 3L; 64L |], generator = g)
                Expect.sequenceEqual (FewRowProduct.Multiply(batched, weight).shape) [| 2L; 3L; 8492L |] "[..., D] -> [..., N]"
            Expect.isFalse (FewRowProduct.Reads(master.t())) "a transposed weight is not read"
            Expect.isFalse (FewRowProduct.Applies(1L, 16384L, 64L, ScalarType.Float64, torch.CPU)) "float64 keeps libtorch's products"
            Expect.isFalse (FewRowProduct.Applies(1L, 32768L, 48L, ScalarType.Float32, torch.CPU)) "a width not divisible by 32 keeps them"
            Expect.isTrue (FewRowProduct.Applies(32L, 16384L, 64L, ScalarType.Float32, torch.CPU)) "32 float32 rows of a weight of 2^20 take the kernel"
            Expect.isFalse (FewRowProduct.Applies(1L, 16383L, 64L, ScalarType.Float32, torch.CPU)) "a weight under 2^20 keeps libtorch's products"
            Expect.isFalse (FewRowProduct.Applies(33L, 16384L, 64L, ScalarType.Float32, torch.CPU)) "33 float32 rows keep them"
            Expect.isFalse (FewRowProduct.Applies(5L, 16384L, 64L, ScalarType.BFloat16, torch.CPU)) "5 bf16 rows keep them"
            do
                use withGrad = torch.enable_grad ()
                Expect.isFalse (FewRowProduct.Applies(1L, 16384L, 64L, ScalarType.Float32, torch.CPU)) "a graph keeps them"

        testCase "the head and projections of a decode step: float32 products of the weights without a graph, libtorch's with one" <| fun () ->
            // A head and an MLP of 2^20 weights each: the kernel's smallest (FewRowProduct.MinWeights).
            let cfg = ModelConfig(VocabSize = 16384, HiddenSize = 64, IntermediateSize = 16384, NumHiddenLayers = 1, NumAttentionHeads = 4,
                                  NumKeyValueHeads = 2, MaxPositionEmbeddings = 64, TieWordEmbeddings = true)
            for bf16 in [ false; true ] do
                use model = randomModel cfg 9 ScalarType.Float32
                if bf16 then model.Precision.Dtype <- Nullable ScalarType.BFloat16
                use scope = torch.NewDisposeScope()
                let g = new torch.Generator(11UL, torch.CPU)
                let compute = if bf16 then ScalarType.BFloat16 else ScalarType.Float32
                let weight = model.HeadWeight.detach().``to``(compute)
                let libtorch (h: torch.Tensor) = torch.nn.functional.linear(h.``to``(compute), weight).``to``(ScalarType.Float32)
                let exact (h: torch.Tensor) = torch.nn.functional.linear(h.``to``(ScalarType.Float64), weight.``to``(ScalarType.Float64))
                let maxError (a: torch.Tensor) (b: torch.Tensor) = (a.``to``(ScalarType.Float64) - b.``to``(ScalarType.Float64)).abs().max().ToDouble()
                use noGrad = torch.no_grad ()
                let few = Runtime.Intrinsics.X86.Avx512F.IsSupported
                for rows in [ 1L; 2L; 4L ] do
                    let h = torch.randn([| rows; 64L |], generator = g) * 10.0
                    let logits = model.LogitsOf(h)
                    Expect.equal logits.dtype ScalarType.Float32 "float32 logits"
                    let scale = (exact h).abs().max().ToDouble()
                    if few || (bf16 && rows <= 2L) then
                        Expect.isLessThan (maxError logits (exact h)) (1e-5 * scale) $"bf16 = {bf16}, {rows} rows: the float32 product of the weights"
                    else Expect.equal (maxError logits (libtorch h)) 0.0 $"bf16 = {bf16}, {rows} rows: libtorch's product"
                    if bf16 then
                        Expect.isGreaterThan (maxError (libtorch h) (exact h)) (1e-4 * scale) "(the bf16 matmul rounds its output: the check above can tell them apart)"
                let many = torch.randn([| (if bf16 then 5L else 33L); 64L |], generator = g)
                Expect.equal (maxError (model.LogitsOf(many)) (libtorch many)) 0.0 "more rows: libtorch's product"
                do
                    use withGrad = torch.enable_grad ()
                    let one = torch.randn([| 1L; 64L |], generator = g).requires_grad_(true)
                    let logits = model.LogitsOf(one)
                    Expect.isTrue logits.requires_grad "the head with a graph: the differentiable path"
                    Expect.equal (maxError logits (libtorch one)) 0.0 "the head with a graph: libtorch's product"
                // A one-token decode step through the projections equals the same forward with a graph.
                let ids = torch.tensor([| 5L; 17L; 400L |]).reshape(1L, 3L)
                let step = model.ForwardHidden(ids.narrow(1, 2L, 1L), cache = (let c = model.NewCache(1L, 3) in model.ForwardHidden(ids.narrow(1, 0L, 2L), cache = c) |> ignore; c))
                use withGrad = torch.enable_grad ()
                let graph = model.ForwardHidden(ids).narrow(1, 2L, 1L)
                Expect.isTrue graph.requires_grad "with a graph: libtorch's products"
                let bound = if bf16 then 3e-2 else 1e-5
                Expect.isLessThan (maxError step (graph.detach())) (bound * (graph.abs().max().ToDouble() + 1.0)) $"bf16 = {bf16}: a decode step through the projections matches the full forward"
            // The bf16 blocks of CPUs without AVX-512: two full blocks of 2,048 rows and a partial one.
            use scope = torch.NewDisposeScope()
            use noGrad = torch.no_grad ()
            let g = new torch.Generator(3UL, torch.CPU)
            let weight = (torch.randn([| 4500L; 48L |], generator = g)).``to``(ScalarType.BFloat16)
            let h = torch.randn([| 2L; 48L |], generator = g) * 10.0
            let exact = torch.nn.functional.linear(h.``to``(ScalarType.Float64), weight.``to``(ScalarType.Float64))
            use widened = new WidenedHead()
            Expect.isLessThan ((widened.Logits(h, weight).``to``(ScalarType.Float64) - exact).abs().max().ToDouble()) (1e-5 * exact.abs().max().ToDouble()) "blocks: the float32 product of the bf16 weights"

        testCase "bf16 projections: the few-row kernel's float32 products at one row, libtorch's product at two to four (Projection.BfloatKernelRows)" <| fun () ->
            use scope = torch.NewDisposeScope()
            use noGrad = torch.no_grad ()
            use g = new torch.Generator(13UL, torch.CPU)
            // 2^20 weights: the kernel's smallest (FewRowProduct.MinWeights), drawn from the test's own generator, so that the
            // products below are the same on every run (the layer's own initialisation draws from the global one).
            use layer = torch.nn.Linear(64L, 16384L, hasBias = false, dtype = ScalarType.BFloat16)
            layer.weight.detach().copy_(torch.randn([| 16384L; 64L |], generator = g).``to``(ScalarType.BFloat16)) |> ignore
            let sameBits (a: torch.Tensor) (b: torch.Tensor) = a.shape = b.shape && a.eq(b).all().item<bool>()
            let mutable differ = false
            for rows in [ 1L; 2L; 3L; 4L; 2L; 4L ] do
                let x = (torch.randn([| rows; 64L |], generator = g) * 3.0).``to``(ScalarType.BFloat16)
                let libtorch = torch.nn.functional.linear(x, layer.weight)
                let kernel = if Runtime.Intrinsics.X86.Avx512F.IsSupported then FewRowProduct.Multiply(x, layer.weight).``to``(ScalarType.BFloat16) else libtorch
                differ <- differ || (rows > 1L && not (sameBits kernel libtorch))
                let expected = if rows <= int64 Projection.BfloatKernelRows then kernel else libtorch
                Expect.isTrue (sameBits (Projection.Apply(layer, x, null, null)) expected) $"{rows} rows"
            if Runtime.Intrinsics.X86.Avx512F.IsSupported then Expect.isTrue differ "(the two products round differently somewhere above one row, so the check above tells the paths apart there; the draws are seeded, the same on every run)"

        testCase "bf16 needs float32 master weights" <| fun () ->
            Expect.throwsT<ConfigException> (fun () -> ConfigLoader.Validate(TrainConfig(Bf16 = true, Dtype = "float64", Out = "x")))
                "bf16 with dtype = float64 is refused"
    ]
