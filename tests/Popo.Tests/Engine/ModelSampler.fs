/// The batched KV-cache sampler: cached greedy decoding equals uncached decoding, log-probs equal a full
/// forward pass, seeds reproduce samples, and the filters keep to their sets.
module Popo.Tests.Engine.ModelSampler

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open Popo.Engine.Model
open Popo.Engine.Rollout
open Popo.Tests
open Popo.Tests.Engine.ModelFixtures

/// A tiny model, ragged prompts, a generation length and stop tokens.
type Case =
    { Model: TinyModel
      Prompts: int[][]
      MaxNew: int
      Stops: int list }

let private caseGen =
    gen {
        let! model = tinyModelGen
        let v = model.Config.VocabSize
        let! b = Gen.choose (1, 4)
        let! prompts = Gen.arrayOfLength b (Gen.choose (1, 6) |> Gen.bind (fun t -> Gen.arrayOfLength t (Gen.choose (0, v - 1))))
        let! maxNew = Gen.choose (1, 8)
        let! stops = Gen.listOfLength 1 (Gen.choose (0, v - 1)) |> Gen.map List.distinct
        let! withStops = Gen.elements [ true; false ]
        return { Model = model; Prompts = prompts; MaxNew = maxNew; Stops = (if withStops then stops else []) }
    }

/// Greedy decoding of one unpadded prompt by full forward passes, no cache: the reference.
let private uncachedGreedy (model: Qwen2ForCausalLM) (prompt: int[]) (maxNew: int) (stops: int list) =
    let mutable sequence = prompt
    let out = ResizeArray<int>()
    let mutable stopped = false
    while not stopped && out.Count < maxNew do
        use scope = torch.NewDisposeScope()
        use o = model.Forward(idsTensor [| sequence |])
        let next = o.Logits.select(0, 0L).select(0, int64 (sequence.Length - 1)).argmax().item<int64>() |> int
        out.Add next
        sequence <- Array.append sequence [| next |]
        stopped <- List.contains next stops
    out.ToArray()

let private options (case: Case) temperature =
    SamplerOptions(Temperature = temperature, MaxNewTokens = case.MaxNew, StopTokenIds = ResizeArray case.Stops, Seed = 7L)

let private cachedEqualsUncached (case: Case) =
    use model = randomModel case.Model.Config case.Model.Seed torch.ScalarType.Float64
    use result = Sampler.Generate(model, case.Prompts, options case 0.0)
    let expected = case.Prompts |> Array.map (fun p -> uncachedGreedy model p case.MaxNew case.Stops)
    let steps = int result.CompletionIds.shape.[1]
    let mask = result.CompletionMask.to_type(torch.ScalarType.Float64).data<float>().ToArray()
    let tokens = result.CompletionIds.data<int64>().ToArray()
    let rowsAgree = result.Completions = expected
    // The mask is 1 up to and including the stop token and 0 after, with pad tokens after it.
    let maskShape =
        expected |> Array.mapi (fun r e ->
            [ 0 .. steps - 1 ] |> List.forall (fun j ->
                let m = mask.[r * steps + j]
                if j < e.Length then m = 1.0 else m = 0.0 && tokens.[r * steps + j] = 0L))
        |> Array.forall id
    let longest = expected |> Array.map Array.length |> Array.max
    rowsAgree && maskShape && steps = longest

/// Log-probs of the sampled tokens recomputed by one forward pass over prompt + completion, compared to `tol`.
/// float32 uses weights of std 0.2 (logits of order 1, as in a trained model): with std 0.5 three layers
/// amplify float32 rounding to ~2e-5 in either path; float64 uses std 0.5.
let private logProbsMatch (dtype: torch.ScalarType) (case: Case) (temperature: float) (topK: int) (topP: float) =
    let scale, tol = if dtype = torch.ScalarType.Float64 then 0.5, Accuracy.engine64 else 0.2, Accuracy.engine32
    use model = scaledRandomModel scale case.Model.Config case.Model.Seed dtype
    let opts = SamplerOptions(Temperature = temperature, TopK = topK, TopP = topP, MaxNewTokens = case.MaxNew, StopTokenIds = ResizeArray case.Stops, Seed = 11L)
    use result = Sampler.Generate(model, case.Prompts, opts)
    use scope = torch.NewDisposeScope()
    use out = model.Forward(result.InputIds, result.AttentionMask)
    let p, n = result.PromptLength, int result.CompletionIds.shape.[1]
    let logits = out.Logits.narrow(1, int64 (p - 1), int64 n) / temperature               // [B,N,V]
    let full = logits.log_softmax(-1).gather(2, result.CompletionIds.unsqueeze(2)).squeeze(2)    // [B,N]
    let values (t: torch.Tensor) = t.to_type(torch.ScalarType.Float64).data<float>().ToArray()
    Array.forall2 (Accuracy.close tol) (values (full * result.CompletionMask)) (values result.OldLogProbs)

let private fewer = { FsCheckConfig.defaultConfig with maxTest = 40 }

[<Tests>]
let tests =
    testList "engine/model/sampler" [
        testPropertyWithConfig fewer "cached greedy decoding of a ragged batch equals uncached decoding row by row" <|
            Prop.forAll (Arb.fromGen caseGen) cachedEqualsUncached
        testPropertyWithConfig fewer "sampled log-probs equal a full forward pass over the generated sequence (float32, 1e-5)" <|
            Prop.forAll (Arb.fromGen caseGen) (fun case ->
                logProbsMatch torch.ScalarType.Float32 case 0.8 0 1.0 && logProbsMatch torch.ScalarType.Float32 case 1.3 3 0.9)
        testPropertyWithConfig fewer "sampled log-probs equal a full forward pass over the generated sequence (float64, 1e-9)" <|
            Prop.forAll (Arb.fromGen caseGen) (fun case -> logProbsMatch torch.ScalarType.Float64 case 1.3 3 0.9)
        test "the same seed gives the same samples and another seed others" {
            let config = ModelConfig(VocabSize = 50, HiddenSize = 16, IntermediateSize = 24, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2)
            use model = randomModel config 5 torch.ScalarType.Float32
            let prompts = [| [| 1; 2; 3 |]; [| 4 |]; [| 5; 6 |]; [| 7; 8; 9; 10 |] |]
            let sample seed =
                use r = Sampler.Generate(model, prompts, SamplerOptions(MaxNewTokens = 20, Seed = seed))
                r.Completions, r.OldLogProbs.data<float32>().ToArray()
            Expect.equal (sample (Nullable 1L)) (sample (Nullable 1L)) "same seed, same tokens and log-probs"
            Expect.notEqual (fst (sample (Nullable 1L))) (fst (sample (Nullable 2L))) "another seed, other tokens"
        }
        test "a shared generator advances: two calls differ, and replaying its seed repeats them" {
            let config = ModelConfig(VocabSize = 50, HiddenSize = 16, IntermediateSize = 24, NumHiddenLayers = 1, NumAttentionHeads = 2, NumKeyValueHeads = 1)
            use model = randomModel config 6 torch.ScalarType.Float32
            let run () =
                use g = new torch.Generator(42UL, torch.CPU)
                let opts = SamplerOptions(MaxNewTokens = 16, Generator = g)
                use a = Sampler.Generate(model, [| [| 1; 2 |] |], opts)
                use b = Sampler.Generate(model, [| [| 1; 2 |] |], opts)
                a.Completions, b.Completions
            let first = run ()
            Expect.equal (run ()) first "replay"
            Expect.notEqual (fst first) (snd first) "advances"
        }
        test "top-k 1 and a tiny top-p both reduce sampling to greedy decoding" {
            let config = ModelConfig(VocabSize = 30, HiddenSize = 8, IntermediateSize = 16, NumHiddenLayers = 2, NumAttentionHeads = 2, NumKeyValueHeads = 2)
            use model = randomModel config 9 torch.ScalarType.Float64
            let prompts = [| [| 1; 2; 3 |]; [| 4 |] |]
            let run (o: SamplerOptions) =
                use r = Sampler.Generate(model, prompts, o)
                r.Completions
            let greedy = run (SamplerOptions(Temperature = 0.0, MaxNewTokens = 12))
            Expect.equal (run (SamplerOptions(Temperature = 1.0, TopK = 1, MaxNewTokens = 12, Seed = 3L))) greedy "top-k 1"
            Expect.equal (run (SamplerOptions(Temperature = 1.0, TopP = 1e-9, MaxNewTokens = 12, Seed = 3L))) greedy "top-p ~0"
        }
        test "top-k sampling only draws tokens ranked within the k largest logits" {
            let config = ModelConfig(VocabSize = 40, HiddenSize = 16, IntermediateSize = 16, NumHiddenLayers = 1, NumAttentionHeads = 2, NumKeyValueHeads = 1)
            use model = randomModel config 12 torch.ScalarType.Float64
            let prompts = Array.init 8 (fun i -> [| i; i + 1 |])
            use r = Sampler.Generate(model, prompts, SamplerOptions(Temperature = 2.0, TopK = 3, MaxNewTokens = 10, Seed = 4L))
            use out = model.Forward(r.InputIds, r.AttentionMask)
            let logits = out.Logits.narrow(1, int64 (r.PromptLength - 1), r.CompletionIds.shape.[1])  // [B,N,V]
            let chosen = logits.gather(2, r.CompletionIds.unsqueeze(2))                               // [B,N,1]
            let rank = (logits.gt chosen).sum(2)                                               // tokens strictly above
            Expect.isTrue ((rank.lt (torch.tensor 3L)).all().item<bool>()) "rank < k"
        }
        test "sampling with rows stopping early stops when all rows have stopped" {
            let config = ModelConfig(VocabSize = 6, HiddenSize = 8, IntermediateSize = 8, NumHiddenLayers = 1, NumAttentionHeads = 2, NumKeyValueHeads = 1)
            use model = randomModel config 2 torch.ScalarType.Float32
            let stops = ResizeArray [ 0; 1; 2; 3; 4; 5 ]
            use r = Sampler.Generate(model, [| [| 1 |]; [| 2; 3 |] |], SamplerOptions(MaxNewTokens = 50, StopTokenIds = stops, Seed = 1L))
            Expect.equal r.CompletionIds.shape.[1] 1L "every token stops: one step"
            Expect.equal (r.Completions |> Array.map Array.length) [| 1; 1 |] "one token each"
        }
        test "sampling and forward passes leave no live tensors behind" {
            let config = ModelConfig(VocabSize = 20, HiddenSize = 8, IntermediateSize = 8, NumHiddenLayers = 2, NumAttentionHeads = 2, NumKeyValueHeads = 1)
            use model = randomModel config 2 torch.ScalarType.Float32
            let live () = TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount
            let once () =
                use r = Sampler.Generate(model, [| [| 1; 2 |]; [| 3 |] |], SamplerOptions(MaxNewTokens = 8, TopP = 0.9, TopK = 5, Seed = 1L))
                use out = model.Forward(r.InputIds, r.AttentionMask)
                ()
            once ()
            let before = live ()
            for _ in 1..3 do once ()
            Expect.equal (live ()) before "live tensor count back to its baseline"
            use probe = torch.zeros(1L)
            Expect.equal (live ()) (before + 1L) "the counter does count live tensors"
        }
    ]
