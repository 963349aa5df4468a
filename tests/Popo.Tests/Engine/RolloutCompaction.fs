/// Rollouts that cost what they generate: prefilling each distinct prompt once (share_prompt_prefill) and
/// dropping finished rows from the batch and its KV cache (compact_finished_rows) change no output. With the
/// same seed the tokens, masks and log-probs equal those of the plain sampler, for greedy, temperature, top-k
/// and top-p sampling; per-row length limits end rows where asked; the cache's row gather is a gather.
module Popo.Tests.Engine.RolloutCompaction

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open Popo.Engine.Model
open Popo.Engine.Rollout
open Popo.Tests.Engine.ModelFixtures

/// A tiny model; U distinct prompts each repeated G times in shuffled row order; stop tokens (a small vocabulary
/// makes rows stop at scattered steps); optional per-row limits; one decoding setting.
type Case =
    { Model: TinyModel
      Prompts: int[][]
      MaxNew: int
      Stops: int list
      Limits: int[] option
      Temperature: float
      TopK: int
      TopP: float }

let private caseGen =
    gen {
        let! model = tinyModelGen
        let v = model.Config.VocabSize
        let! distinct = Gen.choose (1, 3)
        let! group = Gen.choose (1, 4)
        let! unique = Gen.arrayOfLength distinct (Gen.choose (1, 6) |> Gen.bind (fun t -> Gen.arrayOfLength t (Gen.choose (0, v - 1))))
        let! order = Gen.shuffle [| 0 .. distinct * group - 1 |]
        let prompts = order |> Array.map (fun i -> unique.[i / group])
        let! maxNew = Gen.choose (1, 12)
        let! stopCount = Gen.choose (0, 3)
        let! stops = Gen.listOfLength stopCount (Gen.choose (0, v - 1)) |> Gen.map List.distinct
        let! withLimits = Gen.elements [ true; false ]
        let! limits = Gen.arrayOfLength prompts.Length (Gen.choose (1, maxNew))
        let! setting = Gen.elements [ 0.0, 0, 1.0; 1.0, 0, 1.0; 0.7, 0, 1.0; 1.3, 3, 1.0; 1.0, 0, 0.8; 1.2, 4, 0.9 ]
        let temperature, topK, topP = setting
        return
            { Model = model; Prompts = prompts; MaxNew = maxNew; Stops = stops
              Limits = (if withLimits then Some limits else None)
              Temperature = temperature; TopK = topK; TopP = topP }
    }

let private options (case: Case) share compact =
    SamplerOptions(
        Temperature = case.Temperature, TopK = case.TopK, TopP = case.TopP, MaxNewTokens = case.MaxNew,
        StopTokenIds = ResizeArray case.Stops, Seed = 17L,
        MaxNewTokensPerRow = (match case.Limits with Some l -> ResizeArray l :> Collections.Generic.IReadOnlyList<int> | None -> null),
        SharePromptPrefill = share, CompactFinishedRows = compact)

/// Everything a sample reports, on the host: completions, tokens, masks (completion and attention), sequences, log-probs.
let private record (r: GenerationBatch) =
    let longs (t: torch.Tensor) = t.to_type(torch.ScalarType.Int64).contiguous().data<int64>().ToArray()
    let floats (t: torch.Tensor) = t.to_type(torch.ScalarType.Float64).contiguous().data<float>().ToArray()
    (r.Completions, longs r.CompletionIds, floats r.CompletionMask, longs r.InputIds, longs r.AttentionMask), floats r.OldLogProbs

/// Same ids and masks exactly, log-probs within `tol` (absolute): batch sizes differ, so matmuls may round differently.
let private agree (tol: float) (ids, logProbs) (baseIds, baseLogProbs) =
    ids = baseIds && Array.forall2 (fun (a: float) b -> abs (a - b) <= tol) logProbs baseLogProbs

/// Each of the three feature settings against both off: identical ids and masks, log-probs within `tol` (absolute).
let private sameOutputs (dtype: torch.ScalarType) (tol: float) (case: Case) =
    let scale = if dtype = torch.ScalarType.Float64 then 0.5 else 0.2
    use model = scaledRandomModel scale case.Model.Config case.Model.Seed dtype
    let run share compact =
        use r = Sampler.Generate(model, case.Prompts, options case share compact)
        record r
    let plain = run false false
    [ true, false; false, true; true, true ] |> List.forall (fun (share, compact) -> agree tol (run share compact) plain)

let private fewer = { FsCheckConfig.defaultConfig with maxTest = 60 }

[<Tests>]
let tests =
    testList "engine/rollout/compaction" [
        testPropertyWithConfig fewer "shared prefill and compaction give the plain sampler's tokens, masks and log-probs (float64, 1e-12)" <|
            Prop.forAll (Arb.fromGen caseGen) (sameOutputs torch.ScalarType.Float64 1e-12)
        testPropertyWithConfig fewer "shared prefill and compaction give the plain sampler's tokens and masks (float32; log-probs 1e-5)" <|
            Prop.forAll (Arb.fromGen caseGen) (sameOutputs torch.ScalarType.Float32 1e-5)
        test "a long-tailed batch: rows end at their own limits, and every setting agrees" {
            // 3 prompts x 8 rows, no stop token: each row must run exactly its limit, which compaction reaches
            // through many row drops (24 rows, lengths 1..40).
            let config = ModelConfig(VocabSize = 60, HiddenSize = 16, IntermediateSize = 24, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2)
            use model = randomModel config 3 torch.ScalarType.Float64
            let prompts = Array.init 24 (fun r -> Array.init (2 + r / 8) (fun i -> (7 * (r / 8) + i) % 60))
            let rng = Random 5
            let limits = Array.init 24 (fun _ -> if rng.NextDouble() < 0.8 then rng.Next(1, 8) else rng.Next(8, 41))
            let run share compact =
                use r = Sampler.Generate(model, prompts, SamplerOptions(MaxNewTokens = 40, Seed = 2L, MaxNewTokensPerRow = ResizeArray limits, SharePromptPrefill = share, CompactFinishedRows = compact))
                record r
            let (completions, _, _, _, _), _ as plain = run false false
            Expect.equal (completions |> Array.map Array.length) limits "each row stops at its limit"
            Expect.isTrue (agree 1e-12 (run true true) plain) "both features on"
        }
        // Sequenced: Expecto runs these after the parallel tests, alone, so no other test draws from the global generator meanwhile.
        testSequenced <| test "the global generator (no seed) draws the same with and without compaction" {
            let config = ModelConfig(VocabSize = 12, HiddenSize = 8, IntermediateSize = 16, NumHiddenLayers = 1, NumAttentionHeads = 2, NumKeyValueHeads = 1)
            use model = randomModel config 8 torch.ScalarType.Float64
            let prompts = Array.init 6 (fun r -> [| r % 2; 3 |])
            let run share compact =
                torch.manual_seed 99L |> ignore
                use r = Sampler.Generate(model, prompts, SamplerOptions(MaxNewTokens = 15, StopTokenIds = ResizeArray [ 0; 1 ], SharePromptPrefill = share, CompactFinishedRows = compact))
                record r
            let plain = run false false
            let (completions, _, _, _, _), _ = plain
            Expect.isGreaterThan (completions |> Array.map Array.length |> Array.distinct |> Array.length) 1 "rows stop at different steps"
            Expect.isTrue (agree 1e-12 (run true true) plain) "same draws"
        }
        test "KvCache.SelectRows gathers filled positions row by row, repeats allowed, and feeds fewer rows after" {
            let config = ModelConfig(VocabSize = 10, HiddenSize = 8, IntermediateSize = 8, NumHiddenLayers = 2, NumAttentionHeads = 2, NumKeyValueHeads = 1)
            use scope = torch.NewDisposeScope()
            use model = randomModel config 1 torch.ScalarType.Float64
            use filled = model.NewCache(4L, 6)
            use noGrad = torch.no_grad ()
            model.ForwardHidden(torch.tensor([| 1L; 2L; 3L; 4L; 5L; 6L; 7L; 8L |]).view(4L, 2L), cache = filled) |> ignore
            let struct (before0, _) = filled.Append(0, torch.zeros(4L, 1L, 1L, 4L, dtype = torch.ScalarType.Float64), torch.zeros(4L, 1L, 1L, 4L, dtype = torch.ScalarType.Float64))
            let expected = before0.narrow(2, 0L, 2L).index_select(0L, torch.tensor [| 3L; 1L; 1L |]).clone()
            filled.SelectRows(torch.tensor [| 3L; 1L; 1L |])
            Expect.equal filled.Rows 3L "rows in use"
            let struct (after0, _) = filled.Append(0, torch.zeros(3L, 1L, 1L, 4L, dtype = torch.ScalarType.Float64), torch.zeros(3L, 1L, 1L, 4L, dtype = torch.ScalarType.Float64))
            Expect.isTrue (after0.narrow(2, 0L, 2L).eq(expected).all().item<bool>()) "row i holds old row index[i]"
            Expect.throws (fun () -> filled.Append(1, torch.zeros(4L, 1L, 1L, 4L, dtype = torch.ScalarType.Float64), torch.zeros(4L, 1L, 1L, 4L, dtype = torch.ScalarType.Float64)) |> ignore) "4 rows into a 3-row cache"
        }
        test "per-row limits must match the prompts and lie in [1, max_new_tokens]" {
            let config = ModelConfig(VocabSize = 10, HiddenSize = 8, IntermediateSize = 8, NumHiddenLayers = 1, NumAttentionHeads = 2, NumKeyValueHeads = 1)
            use model = randomModel config 1 torch.ScalarType.Float32
            let run (limits: int list) = Sampler.Generate(model, [| [| 1 |]; [| 2 |] |], SamplerOptions(MaxNewTokens = 4, MaxNewTokensPerRow = ResizeArray limits)).Dispose()
            Expect.throwsC (fun () -> run [ 1 ]) (fun e -> Expect.stringContains e.Message "1 entries for 2 prompts" "count")
            Expect.throwsC (fun () -> run [ 1; 5 ]) (fun e -> Expect.stringContains e.Message "got 5" "range")
            Expect.throwsC (fun () -> run [ 0; 1 ]) (fun e -> Expect.stringContains e.Message "got 0" "range")
        }
        test "compacting and sharing leave no live tensors behind" {
            let config = ModelConfig(VocabSize = 8, HiddenSize = 8, IntermediateSize = 8, NumHiddenLayers = 2, NumAttentionHeads = 2, NumKeyValueHeads = 1)
            use model = randomModel config 2 torch.ScalarType.Float32
            let live () = TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount
            let once () =
                let prompts = [| [| 1; 2 |]; [| 1; 2 |]; [| 3 |]; [| 3 |] |]
                use r = Sampler.Generate(model, prompts, SamplerOptions(MaxNewTokens = 12, StopTokenIds = ResizeArray [ 0; 5 ], TopP = 0.9, Seed = 1L, MaxNewTokensPerRow = ResizeArray [ 2; 12; 5; 9 ]))
                ()
            once ()
            let before = live ()
            for _ in 1..3 do once ()
            Expect.equal (live ()) before "live tensor count back to its baseline"
        }
    ]
