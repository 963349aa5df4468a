/// The sampler draws from the distribution whose log-probs it reports (docs/design.md §2.1): softmax(logits / T),
/// restricted to the top-k and top-p sets when those filters are on (the reported log-prob is that of the
/// unrestricted softmax, so the draw distribution is exp(l_j) / sum_{kept} exp(l)). N rows of one prompt
/// each draw one token; the counts are compared with those probabilities cell by cell.
///
/// Bound: the count c_j of token j is Binomial(N, q_j). Hoeffding gives P(|c_j / N - q_j| >= t) <= 2 exp(-2 N t^2);
/// a union over the V cells of one configuration gives <= 2 V exp(-2 N t^2) =: delta. With delta = 2e-7 per
/// configuration and 4 configurations, a correct sampler fails this test with probability below 8e-7 < 1e-6.
/// V = 6, N = 20000: t = sqrt(ln(2 V / delta) / (2 N)) = sqrt(ln(6e7) / 40000) = sqrt(17.91 / 40000) = 0.02116.
/// (The generator is seeded, so a run is reproducible; the bound is what a fresh seed would risk.)
module Popo.Tests.Engine.SamplerFrequencies

open System
open Expecto
open TorchSharp
open Popo.Engine.Model
open Popo.Engine.Rollout
open Popo.Tests.Engine.ModelFixtures

let private vocab = 6
let private draws = 20000
let private delta = 2e-7
let private tolerance = sqrt (log (2.0 * float vocab / delta) / (2.0 * float draws))

let private config =
    ModelConfig(VocabSize = vocab, HiddenSize = 8, IntermediateSize = 12, NumHiddenLayers = 1,
                NumAttentionHeads = 2, NumKeyValueHeads = 1, MaxPositionEmbeddings = 16)

let private prompt = [| 1; 4; 2 |]

/// softmax(z / T) as log-probs, in float64.
let private logSoftmax (t: float) (z: float[]) =
    let s = z |> Array.map (fun x -> x / t)
    let m = Array.max s
    let lse = m + log (s |> Array.sumBy (fun x -> exp (x - m)))
    s |> Array.map (fun x -> x - lse)

/// The tokens the filters keep, by the sampler's rule: the k most likely, then the nucleus (drop a token
/// once the mass before it, renormalised over the survivors, already reaches p).
let private kept (l: float[]) (topK: int) (topP: float) =
    let order = [| 0 .. l.Length - 1 |] |> Array.sortByDescending (fun j -> l.[j])
    let byK = if topK > 0 && topK < l.Length then order.[.. topK - 1] else order
    if topP >= 1.0 then set byK
    else
        let mass = byK |> Array.sumBy (fun j -> exp l.[j])
        let mutable before = 0.0
        set [ for j in byK do
                  if before < topP then yield j
                  before <- before + exp l.[j] / mass ]

/// Draw probabilities q over the vocabulary: exp(l_j) / sum over the kept set, 0 outside it.
let private drawProbabilities (l: float[]) (keep: Set<int>) =
    let z = keep |> Seq.sumBy (fun j -> exp l.[j])
    l |> Array.mapi (fun j x -> if keep.Contains j then exp x / z else 0.0)

/// The next-token logits after the prompt, from a full forward pass.
let private logits (model: Qwen2ForCausalLM) =
    use scope = torch.NewDisposeScope()
    use o = model.Forward(idsTensor [| prompt |])
    let last = o.Logits.select(0, 0L).select(0, int64 (prompt.Length - 1)).contiguous()
    last.data<float>().ToArray()

/// A random tiny model whose next-token logits are spread to a standard deviation of 1.5 (the final norm's
/// gain scales them linearly), so that distributions at different temperatures are far apart.
let private spreadModel () =
    let model = randomModel config 41 torch.ScalarType.Float64
    let z = logits model
    let mean = Array.average z
    let sd = sqrt (z |> Array.averageBy (fun x -> (x - mean) ** 2.0))
    use noGrad = torch.no_grad ()
    let gain = model.named_parameters() |> Seq.tryPick (fun struct (name, p) -> if name = "model.norm.weight" then Some p else None)
    match gain with
    | Some p -> p.mul_(torch.tensor(1.5 / sd, dtype = p.dtype)) |> ignore
    | None -> failtest "no model.norm.weight"
    model

let private check (temperature: float) (topK: int) (topP: float) =
    use model = spreadModel ()
    let z = logits model
    let l = logSoftmax temperature z
    let q = drawProbabilities l (kept l topK topP)
    let options = SamplerOptions(Temperature = temperature, TopK = topK, TopP = topP, MaxNewTokens = 1, Seed = 2026L)
    use result = Sampler.Generate(model, Array.create draws prompt, options)
    let tokens = result.CompletionIds.data<int64>().ToArray() |> Array.map int
    let reported = result.OldLogProbs.contiguous().data<float>().ToArray()
    // Every row reports the unrestricted log-prob of the token it drew.
    for i in 0 .. draws - 1 do
        if abs (reported.[i] - l.[tokens.[i]]) > 1e-9 then
            failtestf "row %d drew %d with reported log-prob %g, softmax(z/T) gives %g" i tokens.[i] reported.[i] l.[tokens.[i]]
    let counts = Array.zeroCreate vocab
    for t in tokens do counts.[t] <- counts.[t] + 1
    for j in 0 .. vocab - 1 do
        let f = float counts.[j] / float draws
        if q.[j] = 0.0 then Expect.equal counts.[j] 0 $"token {j} is filtered out but was drawn {counts.[j]} times"
        else
            Expect.isLessThanOrEqual (abs (f - q.[j])) tolerance
                $"T={temperature} top_k={topK} top_p={topP}: token {j} drawn at {f:F4}, reported distribution gives {q.[j]:F4} (bound {tolerance:F4}); counts {counts}"
    z, q

[<Tests>]
let tests =
    testSequenced <| testList "engine/sampler/frequencies" [
        testCase "draw frequencies match exp(reported log-prob) at T = 0.7" <| fun () ->
            let z, q = check 0.7 0 1.0
            // Power: drawing at T^2 (the temperature applied twice) would move some cell by more than 2t.
            let wrong = drawProbabilities (logSoftmax 0.49 z) (set [ 0 .. vocab - 1 ])
            Expect.isGreaterThan (Array.map2 (fun a b -> abs (a - b)) q wrong |> Array.max) (2.0 * tolerance) "the test can tell T from T^2"

        testCase "draw frequencies match exp(reported log-prob) at T = 1" <| fun () -> check 1.0 0 1.0 |> ignore

        testCase "with top-k = 3 at T = 1.3 the draws follow the reported softmax renormalised over the 3 kept tokens" <| fun () ->
            check 1.3 3 1.0 |> ignore

        testCase "with top-p = 0.8 at T = 0.8 the draws follow the reported softmax renormalised over the nucleus" <| fun () ->
            check 0.8 0 0.8 |> ignore
    ]
