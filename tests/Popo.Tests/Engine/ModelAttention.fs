/// The attention core's two paths (issue 34): a forward without a cache within Qwen2Attention.ExplicitMaxScores runs
/// explicit products and a masked softmax in chunks of query positions (CausalAttention, its own backward), longer and
/// cached ones libtorch's fused attention. Each gives the other's values and gradients (float64), with left padding,
/// packing and checkpointing, whatever the chunk (one position, a ragged last chunk, the whole row); padding rows stay
/// finite and leave each real row's results its own.
module Popo.Tests.Engine.ModelAttention

open Expecto
open TorchSharp
open Popo.Engine.Model
open Popo.Tests
open Popo.Tests.Engine.ModelFixtures
open Popo.Tests.Engine.ObjectiveFixtures

/// Grouped-query layout (4 query heads on 2 key heads, head size 4).
let private config =
    ModelConfig(VocabSize = 29, HiddenSize = 16, IntermediateSize = 24, NumHiddenLayers = 2,
                NumAttentionHeads = 4, NumKeyValueHeads = 2, MaxPositionEmbeddings = 64, TieWordEmbeddings = true)

let private t = 7L

/// Row 0 (t tokens) and row 1 (3 tokens), each alone, or together with row 1 left-padded to t: the chosen row's hidden states at its real positions and the gradients of
/// sum(w * those hidden states) with respect to every parameter.
let private rowOf (model: Qwen2ForCausalLM) (row: int) (together: bool) =
    use scope = torch.NewDisposeScope()
    use g = new torch.Generator(11UL, torch.CPU)
    let ids0 = torch.randint(29L, [| 1L; t |], generator = g)
    let ids1 = torch.randint(29L, [| 1L; 3L |], generator = g)
    let length = if row = 0 then t else 3L
    let w = torch.randn([| 1L; length; 16L |], dtype = model.Dtype, generator = g)
    for p in model.parameters () do p.grad <- null
    let ids, mask =
        if together then
            let padded = torch.cat([| torch.zeros(1L, t - 3L, dtype = torch.ScalarType.Int64); ids1 |], 1L)
            let mask1 = torch.tensor([| for i in 0L .. t - 1L -> if i >= t - 3L then 1L else 0L |]).view(1L, t)
            torch.cat([| ids0; padded |], 0L), torch.cat([| torch.ones(1L, t, dtype = torch.ScalarType.Int64); mask1 |], 0L)
        else
            let alone = if row = 0 then ids0 else ids1
            alone, torch.ones(1L, alone.shape.[1], dtype = torch.ScalarType.Int64)
    let positions = Qwen2ForCausalLM.DefaultPositions(mask, mask.shape.[1])
    let hidden = model.ForwardHidden(ids, mask, positions)
    Expect.isTrue (values hidden |> Array.forall System.Double.IsFinite) "every position finite (padding queries included)"
    let real = if together then hidden.narrow(0L, int64 row, 1L).narrow(1L, t - length, length) else hidden
    (w * real).sum().backward()
    values real, model.parameters () |> Seq.collect gradValues |> Seq.toArray

/// f () with the explicit path on (the tiny shapes here are under the limit), in chunks of `chunk` query positions, or off, then restored.
let private withExplicitChunk (on: bool) (chunk: int) f =
    let saved, savedChunk = Qwen2Attention.ExplicitMaxScores, Qwen2Attention.QueryChunk
    try
        Qwen2Attention.ExplicitMaxScores <- if on then 1L <<< 20 else 0L
        Qwen2Attention.QueryChunk <- chunk
        f ()
    finally
        Qwen2Attention.ExplicitMaxScores <- saved
        Qwen2Attention.QueryChunk <- savedChunk

let private withExplicit (on: bool) f = withExplicitChunk on 3 f

/// The left-padded batch of rowOf's rows through both attention paths: hidden states and gradients.
let private bothPathsChunk (chunk: int) (model: Qwen2ForCausalLM) =
    let rows () = [ for row in 0 .. 1 -> rowOf model row true ]
    withExplicitChunk true chunk rows, withExplicit false rows

let private bothPaths model = bothPathsChunk 3 model

[<Tests>]
let tests =
    testSequenced <| testList "engine/model/attention" [
        testCase "the explicit path equals libtorch's fused attention: values and gradients, float64, left padding, with and without packing and checkpointing, chunks of 1, 3 (ragged) and 64 positions" <| fun () ->
            use model = randomModel config 3 torch.ScalarType.Float64
            for paddingFree in [ true; false ] do
              for checkpointing in [ false; true ] do
                for chunk in [ 1; 3; 64 ] do
                    model.PaddingFree <- paddingFree
                    model.GradientCheckpointing <- checkpointing
                    let explicitRows, fused = bothPathsChunk chunk model
                    for row, ((h, g), (hf, gf)) in List.indexed (List.zip explicitRows fused) do
                        let case = $"row {row}, padding-free {paddingFree}, checkpointing {checkpointing}, chunk {chunk}"
                        Expect.isTrue (allClose Accuracy.veryHigh h hf) $"{case}: hidden states"
                        Expect.isTrue (allClose Accuracy.veryHigh g gf) $"{case}: gradients"
                        Expect.isTrue (g |> Array.exists (fun x -> x <> 0.0)) "some gradient"

        testCase "float32 and bf16 compute: the explicit path within rounding of the fused one" <| fun () ->
            for bf16, tol in [ false, 1e-5; true, 0.05 ] do
                use model = randomModel config 6 torch.ScalarType.Float32
                if bf16 then model.Precision.Dtype <- System.Nullable torch.ScalarType.BFloat16
                let explicitRows, fused = bothPaths model
                for (h, g), (hf, gf) in List.zip explicitRows fused do
                    // Against the largest entry, as for the gradients: a row's rounding in bf16 (RMSNorm's statistics, the
                    // residual adds) is relative to the row's scale, so a small entry beside a large one moves by the large one's ulps.
                    let hiddenScale = hf |> Array.map abs |> Array.max
                    Expect.isTrue (Array.forall2 (fun (a: float) b -> abs (a - b) <= tol * max 1.0 hiddenScale) h hf) $"bf16 {bf16}: hidden states"
                    let scale = gf |> Array.map abs |> Array.max
                    Expect.isTrue (Array.forall2 (fun (a: float) b -> abs (a - b) <= tol * max 1.0 scale) g gf) $"bf16 {bf16}: gradients"

        testCase "each row alone equals the same row in a batch with left padding: values and gradients, float64" <| fun () ->
            use model = randomModel config 3 torch.ScalarType.Float64
            for paddingFree in [ true; false ] do
                for checkpointing in [ false; true ] do
                  for row in [ 0; 1 ] do
                    model.PaddingFree <- paddingFree
                    model.GradientCheckpointing <- checkpointing
                    let h, g = rowOf model row false
                    let hm, gm = rowOf model row true
                    let case = $"row {row}, padding-free {paddingFree}, checkpointing {checkpointing}"
                    Expect.isTrue (allClose Accuracy.veryHigh h hm) $"{case}: hidden states"
                    Expect.isTrue (allClose Accuracy.veryHigh g gm) $"{case}: gradients"
                    Expect.isTrue (g |> Array.exists (fun x -> x <> 0.0)) "some gradient"

        testCase "a forward without a cache (explicit) equals the cached forward (fused), float64 and float32" <| fun () ->
            withExplicit true <| fun () ->
              for dtype, tol in [ torch.ScalarType.Float64, Accuracy.veryHigh; torch.ScalarType.Float32, Accuracy.engine32 ] do
                use model = randomModel config 4 dtype
                use scope = torch.NewDisposeScope()
                use noGrad = torch.no_grad ()
                use g = new torch.Generator(5UL, torch.CPU)
                let ids = torch.randint(29L, [| 3L; t |], generator = g)
                let mask = torch.ones(3L, t, dtype = torch.ScalarType.Int64)
                let positions = Qwen2ForCausalLM.DefaultPositions(mask, t)
                let plain = model.ForwardHidden(ids, mask, positions)
                use cache = model.NewCache(3L, int t)
                let cached = model.ForwardHidden(ids, mask, positions, cache)
                Expect.isTrue (allClose tol (values plain) (values cached)) $"{dtype}: hidden states"

    ]
