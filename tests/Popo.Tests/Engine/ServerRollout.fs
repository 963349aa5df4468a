/// The server rollout engine (issue 31): the answers of vLLM and SGLang (fixtures written from their documentation)
/// parse; a fake server's answers fill the built-in sampler's batch layout; the importance correction agrees with the
/// spec in float64 in its four modes and weighs the objectives' token terms; every fault ends in bounded retries and
/// an error naming the server and the prompt; weight sync calls the routes with folders that load.
module Popo.Tests.Engine.ServerRollout

open System
open System.IO
open System.Net.Http
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open Popo.Engine.Lora
open Popo.Engine.Model
open Popo.Engine.Objectives
open Popo.Engine.Policy
open Popo.Engine.Rollout
open Popo.Engine.Tokenizers
open Popo.Engine.Training
open Popo.Tests.Engine.ModelFixtures
open Popo.Tests.Engine.ObjectiveFixtures
open Popo.Tests.Engine.FakeRolloutServer
module Spec = Popo.Spec.ImportanceCorrection

let private fixture name = File.ReadAllText(SharedData.fixture ("server-rollout/" + name))
let private stops = Collections.Generic.HashSet [ 2 ]

/// A tiny float64 model over 24 token ids.
let private tinyModel (seed: int) =
    let config = ModelConfig(VocabSize = 24, HiddenSize = 16, IntermediateSize = 32, NumHiddenLayers = 1,
                             NumAttentionHeads = 2, NumKeyValueHeads = 1, MaxPositionEmbeddings = 64)
    randomModel config seed ScalarType.Float64

let private options (urls: string list) retries (timeoutMs: int) =
    ServerRolloutOptions(Urls = ResizeArray urls, Model = "policy", VocabSize = 24, Retries = retries,
                         Backoff = TimeSpan.FromMilliseconds 1.0, Timeout = TimeSpan.FromMilliseconds(float timeoutMs))

let private sampling maxNew = SamplerOptions(Temperature = 1.0, MaxNewTokens = maxNew, StopTokenIds = ResizeArray [ 2 ], PadId = 0)

let private prompts = [| [| 3; 5; 7 |]; [| 4; 9 |]; [| 11; 12; 13; 14 |] |]

/// Same shape and the same values, element for element.
let private same (a: torch.Tensor) (b: torch.Tensor) =
    Seq.toList a.shape = Seq.toList b.shape && torch.eq(a, b).all().item<bool>()

let private tensorsEqual (what: string) (a: torch.Tensor) (b: torch.Tensor) =
    Expect.equal a.dtype b.dtype $"{what}: dtype"
    Expect.sequenceEqual a.shape b.shape $"{what}: shape"
    Expect.isTrue (same a b) $"{what}: values"

/// A reply that is one fixed body.
let private always status body = fun (_: string) (_: JsonNode) -> { Status = status; Body = body; Delay = TimeSpan.Zero }

/// Runs the sampler over a fake handler and returns the error it ends with.
let private failure (handler: FakeHandler) retries timeoutMs =
    use sampler = new ServerSampler(options [ "http://fake/v1" ] retries timeoutMs, torch.CPU, ScalarType.Float64, null, handler)
    let e = Expect.throwsC (fun () -> sampler.Generate(prompts, 2, sampling 6) |> ignore) id
    Expect.isTrue (e :? RolloutServerException) $"a RolloutServerException, not {e}"
    Expect.stringContains e.Message "http://fake/v1/completions" "names the server"
    e.Message

let private completionsOf (handler: FakeHandler) = handler.Seen |> Seq.filter (fun s -> s.Path.EndsWith "/completions") |> Seq.length

[<Tests>]
let tests =
    testList "engine/server-rollout" [
        testList "fixtures" [
            testCase "vLLM's completions answer (token_ids and token_id:N) parses into ids and log-probs" <| fun () ->
                let c = CompletionsProtocol.Parse(fixture "vllm-completions-response.json", 2, 64, 16, stops)
                Expect.equal c.[0].Tokens [| 17; 18; 2 |] "choice 0 ids"
                Expect.equal c.[0].LogProbs [| -0.25; -1.5; -0.125 |] "choice 0 log-probs"
                Expect.equal c.[0].FinishReason "stop" "choice 0 stopped"
                Expect.equal c.[1].Tokens [| 23; 40 |] "choice 1 ids"
                Expect.equal c.[1].FinishReason "length" "choice 1 ran to max_tokens"
                Expect.equal (CompletionsProtocol.CompletionTokens(fixture "vllm-completions-response.json")) (Nullable 5L) "usage"

            testCase "vLLM's answer with ids only as \"token_id:N\" parses, in choice-index order" <| fun () ->
                let c = CompletionsProtocol.Parse(fixture "vllm-completions-response-tokens-only.json", 2, 64, 16, stops)
                Expect.equal c.[0].Tokens [| 26 |] "index 0 (listed second)"
                Expect.equal c.[1].Tokens [| 21; 2 |] "index 1"
                Expect.equal c.[1].LogProbs [| -0.75; -0.0625 |] "log-probs follow their choice"

            testCase "SGLang's native /generate answer parses from output_token_logprobs" <| fun () ->
                let c = CompletionsProtocol.ParseGenerate(fixture "sglang-generate-response.json", 2, 64, 16, stops)
                Expect.equal c.[0].Tokens [| 19; 2 |] "answer 0"
                Expect.equal c.[0].LogProbs [| -0.375; -0.25 |] "answer 0 log-probs"
                Expect.equal c.[1].Tokens [| 24; 24; 30 |] "answer 1"
                Expect.equal c.[1].FinishReason "length" "finish_reason.type"

            testCase "SGLang's OpenAI completions answer (token text, no ids) is refused, pointing at rollout_api = sglang" <| fun () ->
                let e = Expect.throwsC (fun () -> CompletionsProtocol.Parse(fixture "sglang-completions-response.json", 1, 64, 16, stops) |> ignore) id
                Expect.stringContains e.Message "rollout_api = sglang" e.Message

            testCase "the requests are the fixtures' shapes: vLLM's completions and SGLang's /generate" <| fun () ->
                let o = SamplerOptions(Temperature = 1.0, TopP = 0.95, TopK = 20, MaxNewTokens = 16, StopTokenIds = ResizeArray [ 2 ])
                let vllm = CompletionsProtocol.Request("policy", [| 5; 9; 14; 3 |], 4, o)
                Expect.isTrue (JsonNode.DeepEquals(vllm, JsonNode.Parse(fixture "vllm-completions-request.json"))) (vllm.ToJsonString())
                let sglang = CompletionsProtocol.GenerateRequest([| 5; 9; 14; 3 |], 2, o)
                Expect.isTrue (JsonNode.DeepEquals(sglang, JsonNode.Parse(fixture "sglang-generate-request.json"))) (sglang.ToJsonString())
        ]

        testCase "a batch built from a server's answers has the built-in sampler's layout for the same tokens" <| fun () ->
            use model = tinyModel 3
            let rows = prompts |> Array.collect (fun p -> Array.create 2 p)
            use builtin = Sampler.Generate(model, rows, SamplerOptions(Temperature = 1.0, MaxNewTokens = 6, StopTokenIds = ResizeArray [ 2; 5 ], PadId = 1, Seed = 11L))
            let width = int builtin.CompletionIds.shape.[1]
            let lp = values builtin.OldLogProbs
            let perRow = builtin.Completions |> Array.mapi (fun r c -> Array.sub lp (r * width) c.Length)
            use rebuilt = GenerationBatch.FromCompletions(rows, builtin.Completions, perRow, 1, torch.CPU, ScalarType.Float64)
            Expect.isTrue (builtin.Completions |> Array.exists (fun c -> c.Length < width)) "some row stopped early (the case that pads)"
            tensorsEqual "InputIds" builtin.InputIds rebuilt.InputIds
            tensorsEqual "AttentionMask" builtin.AttentionMask rebuilt.AttentionMask
            tensorsEqual "PositionIds" builtin.PositionIds rebuilt.PositionIds
            tensorsEqual "CompletionIds" builtin.CompletionIds rebuilt.CompletionIds
            tensorsEqual "CompletionMask" builtin.CompletionMask rebuilt.CompletionMask
            tensorsEqual "OldLogProbs" builtin.OldLogProbs rebuilt.OldLogProbs
            Expect.equal rebuilt.PromptLength builtin.PromptLength "P"
            Expect.equal rebuilt.Completions builtin.Completions "completions"

        testCase "the sampler spreads prompts over the servers, keeps at most max_inflight requests, groups rows per prompt" <| fun () ->
            use model = tinyModel 4
            let live = ref 0
            let peak = ref 0
            let handler =
                new FakeHandler(fun _ body ->
                    let now = Threading.Interlocked.Increment live
                    lock peak (fun () -> peak.Value <- max peak.Value now)
                    Threading.Thread.Sleep 30
                    let reply = ok (complete model 1.0 body)
                    Threading.Interlocked.Decrement live |> ignore
                    reply)
            let o = ServerRolloutOptions(Urls = ResizeArray [ "http://a/v1"; "http://b/v1/" ], Model = "policy", VocabSize = 24, MaxInflight = 2)
            use sampler = new ServerSampler(o, torch.CPU, ScalarType.Float64, null, handler)
            let four = Array.append prompts [| [| 6; 6 |] |]
            use batch = sampler.Generate(four, 3, sampling 5)
            let seen = handler.Seen |> Array.ofSeq
            Expect.equal seen.Length 4 "one request per prompt"
            let index (s: Seen) = four |> Array.findIndex (fun p -> s.Body.["prompt"].ToJsonString() = JsonArray(p |> Array.map (fun t -> JsonValue.Create t :> JsonNode)).ToJsonString())
            for s in seen do
                Expect.equal (Uri(s.Url).Host) (if index s % 2 = 0 then "a" else "b") $"prompt {index s} goes to server {index s % 2}"
            Expect.isLessThanOrEqual peak.Value 2 "max_inflight"
            Expect.equal batch.Rows 12 "4 prompts x G = 3"
            for s in seen do Expect.equal (s.Body.["n"].GetValue<int>()) 3 "n = G"
            // Row p G + g holds prompt p: its input ids end with that prompt.
            for r in 0 .. 11 do
                let p = four.[r / 3]
                let ids = values (batch.InputIds.select(0, int64 r).narrow(0, int64 (batch.PromptLength - p.Length), int64 p.Length)) |> Array.map int
                Expect.equal ids p $"row {r} is prompt {r / 3}"
            Expect.isGreaterThan sampler.LastTokensPerSecond 0.0 "tokens/s measured"

        testCase "a matched server agrees with the trainer (no correction); a mismatched temperature shows in the metrics" <| fun () ->
            use model = tinyModel 5
            let policy = Qwen2Policy(model)
            let measure factor =
                let handler = new FakeHandler(fun _ body -> ok (complete model factor body))
                use sampler = new ServerSampler(options [ "http://fake/v1" ] 0 60_000, torch.CPU, ScalarType.Float64, null, handler)
                let remote = sampler.Generate(prompts, 4, sampling 6)
                use batch = remote.WithTrainerLogProbs(TrainerLogProbs.Of(policy, remote, 1.0, 5))
                let metrics = StepMetrics()
                use weights = ImportanceCorrection.Weights(batch, ImportanceOptions(ImportanceMode.TokenMask, 3.0), metrics)
                metrics.ToDictionary()
            let same = measure 1.0
            Expect.isLessThan same.["is_logp_diff"] 1e-9 "the trainer's forward equals the KV-cache sampler's log-probs"
            Expect.equal same.["is_corrected"] 0.0 "nothing masked"
            let off = measure 2.5
            Expect.isGreaterThan off.["is_logp_diff"] 0.05 "sampling at 2.5 T shows as a log-prob gap"
            Expect.isGreaterThan off.["is_kl"] 0.01 "and as a KL estimate"

        testCase "the correction equals the spec in float64, in all four modes" <| fun () ->
            let rng = Random 17
            let lengths = [| 3; 1; 5; 2 |]
            let trainer = lengths |> Array.map (fun n -> Array.init n (fun _ -> -3.0 * rng.NextDouble()))
            let sampler = trainer |> Array.map (Array.map (fun x -> x + 2.0 * rng.NextDouble() - 1.0))
            let tokens = lengths |> Array.map (fun n -> Array.init n (fun _ -> rng.Next(3, 20)))
            for mode, specMode in [ ImportanceMode.TokenTruncate, Spec.Mode.TokenTruncate; ImportanceMode.TokenMask, Spec.Mode.TokenMask
                                    ImportanceMode.SequenceTruncate, Spec.Mode.SequenceTruncate; ImportanceMode.SequenceMask, Spec.Mode.SequenceMask ] do
                let remote = GenerationBatch.FromCompletions(lengths |> Array.map (fun _ -> [| 1; 2 |]), tokens, sampler, 0, torch.CPU, ScalarType.Float64)
                use batch = remote.WithTrainerLogProbs(padded ScalarType.Float64 trainer)
                let metrics = StepMetrics()
                use c = ImportanceCorrection.Weights(batch, ImportanceOptions(mode, 1.5), metrics)
                let rows, pads = unpad lengths (values c)
                let expected = Spec.weights specMode 1.5 trainer sampler
                Expect.isTrue (raggedClose 1e-12 rows expected) $"{mode}: {rows} vs {expected}"
                Expect.isTrue (pads |> Array.forall ((=) 0.0)) "0 on padding"
                let m = metrics.ToDictionary()
                let s = Spec.metrics specMode 1.5 trainer sampler
                Popo.Tests.Spec.Check.expectClose 1e-12 m.["is_logp_diff"] s.MeanAbsDiff "mean |d|"
                Popo.Tests.Spec.Check.expectClose 1e-12 m.["is_kl"] s.K3 "k3"
                Popo.Tests.Spec.Check.expectClose 1e-12 m.["is_corrected"] s.Corrected "corrected share"

        testCase "the built-in sampler's batch gets no correction" <| fun () ->
            use model = tinyModel 6
            use batch = (new BuiltinRollout(model)).Generate(prompts, 2, sampling 4)
            Expect.isNull (ImportanceCorrection.Weights(batch, ImportanceOptions(ImportanceMode.TokenTruncate, 3.0), StepMetrics())) "no weights"

        testCase "POPO's NLL under the correction: dL/dl_{i,t} = -w_i c_{i,t} / N+ (float64)" <| fun () ->
            let lengths = [| 2; 3; 1 |]
            let l0 = [| [| -0.5; -1.0 |]; [| -0.2; -0.3; -0.4 |]; [| -2.0 |] |]
            let c = [| [| 1.0; 0.0 |]; [| 2.5; 0.5; 3.0 |]; [| 1.0 |] |]
            let w = [| 0.25; 0.75; 0.0 |]
            use l = (padded ScalarType.Float64 l0).requires_grad_()
            use terms = PopoLoss.Compute(l, null, maskOf ScalarType.Float64 lengths, vectorTensor ScalarType.Float64 w, null, null,
                                         PopoOptions(Alpha = 0.0, BetaEntropy = 0.0), 1, padded ScalarType.Float64 c)
            terms.Total.backward()
            let grads, _ = unpad lengths (gradValues l)
            let nPlus = 5.0
            let expected = Spec.popoTokenWeights w c |> Array.map (Array.map (fun e -> -e / nPlus))
            Expect.isTrue (raggedClose 1e-14 grads expected) $"{grads} vs {expected}"

        testCase "GRPO's surrogate under the correction: on-policy, dL/dl_{i,t} = -A_i c_{i,t} / (B |y_i|) (float64)" <| fun () ->
            let lengths = [| 2; 3 |]
            let l0 = [| [| -0.5; -1.0 |]; [| -0.2; -0.3; -0.4 |] |]
            let c = [| [| 1.0; 0.0 |]; [| 2.5; 0.5; 3.0 |] |]
            let a = [| 1.0; -0.5 |]
            use l = (padded ScalarType.Float64 l0).requires_grad_()
            use old = padded ScalarType.Float64 l0
            use terms = GrpoLoss.Compute(l, old, null, maskOf ScalarType.Float64 lengths, vectorTensor ScalarType.Float64 a, GrpoOptions(),
                                         16, 5.0, 1, tokenWeights = padded ScalarType.Float64 c)
            terms.Total.backward()
            let grads, _ = unpad lengths (gradValues l)
            let expected = Array.init 2 (fun i -> c.[i] |> Array.map (fun x -> -a.[i] * x / (2.0 * float lengths.[i])))
            Expect.isTrue (raggedClose 1e-14 grads expected) $"{grads} vs {expected}"

        testList "faults" [
            testCase "5xx twice, then an answer: the retries succeed" <| fun () ->
                use model = tinyModel 7
                let count = ref 0
                let handler = new FakeHandler(fun _ body ->
                    if Threading.Interlocked.Increment count <= 2 then { Status = 503; Body = "busy"; Delay = TimeSpan.Zero } else ok (complete model 1.0 body))
                use sampler = new ServerSampler(options [ "http://fake/v1" ] 2 60_000, torch.CPU, ScalarType.Float64, null, handler)
                use batch = sampler.Generate([| prompts.[0] |], 2, sampling 4)
                Expect.equal batch.Rows 2 "generated"
                Expect.equal (completionsOf handler) 3 "two failures and one success"

            testCase "always 5xx: 1 + rollout_retries attempts, then an error naming the server and the prompt" <| fun () ->
                use model = tinyModel 7
                // Prompt 1 ([4; 9]) always fails; the others answer.
                let handler = new FakeHandler(fun _ body ->
                    if body.["prompt"].ToJsonString() = "[4,9]" then { Status = 500; Body = "boom"; Delay = TimeSpan.Zero } else ok (complete model 1.0 body))
                use sampler = new ServerSampler(options [ "http://fake/v1" ] 2 60_000, torch.CPU, ScalarType.Float64, null, handler)
                let e = Expect.throwsC (fun () -> sampler.Generate(prompts, 2, sampling 4) |> ignore) id
                Expect.isTrue (e :? RolloutServerException) (string e)
                Expect.stringContains e.Message "http://fake/v1/completions" "names the server"
                Expect.stringContains e.Message "prompt 1" "names the request"
                Expect.stringContains e.Message "3 attempt" "1 + 2 retries"
                Expect.stringContains e.Message "HTTP 500" "says what came back"
                Expect.equal (handler.Seen |> Seq.filter (fun s -> s.Body.["prompt"].ToJsonString() = "[4,9]") |> Seq.length) 3 "bounded retries"

            testCase "a 4xx answer is not retried" <| fun () ->
                let handler = new FakeHandler(always 400 "{\"error\": \"bad request\"}")
                let message = failure handler 3 60_000
                Expect.stringContains message "HTTP 400" message
                Expect.stringContains message "1 attempt" message

            testCase "server down: connection refused, then an error" <| fun () ->
                // Nothing listens on port 9 of the loopback: the connection is refused at once.
                use sampler = new ServerSampler(ServerRolloutOptions(Urls = ResizeArray [ "http://127.0.0.1:9/v1" ], Model = "policy", VocabSize = 24,
                                                                     Retries = 1, Backoff = TimeSpan.FromMilliseconds 1.0), torch.CPU, ScalarType.Float64)
                let e = Expect.throwsC (fun () -> sampler.Generate(prompts, 2, sampling 4) |> ignore) id
                Expect.isTrue (e :? RolloutServerException) (string e)
                Expect.stringContains e.Message "connection failed" e.Message
                Expect.stringContains e.Message "http://127.0.0.1:9/v1/completions" e.Message

            testCase "a slow server: every request has a timeout, no hang" <| fun () ->
                let handler = new FakeHandler(fun _ _ -> { Status = 200; Body = "{}"; Delay = TimeSpan.FromSeconds 30.0 })
                let clock = Diagnostics.Stopwatch.StartNew()
                let message = failure handler 1 100
                Expect.stringContains message "no answer within rollout_timeout" message
                Expect.isLessThan clock.Elapsed.TotalSeconds 10.0 "two batches of two 0.1 s attempts"

            testCase "malformed JSON" <| fun () ->
                Expect.stringContains (failure (new FakeHandler(always 200 "{\"choices\": [")) 1 60_000) "not JSON" "parse error"

            testCase "fewer choices than asked" <| fun () ->
                let one = answer "policy" [ [| 3; 2 |], [| -0.5; -0.5 |], "stop" ]
                Expect.stringContains (failure (new FakeHandler(always 200 one)) 1 60_000) "1 choices for n = 2" "n"

            testCase "a token id outside the vocabulary" <| fun () ->
                let bad = answer "policy" [ [| 3; 99 |], [| -0.5; -0.5 |], "length"; [| 3 |], [| -0.5 |], "length" ]
                Expect.stringContains (failure (new FakeHandler(always 200 bad)) 1 60_000) "id 99 is outside the vocabulary [0, 24)" "vocab"

            testCase "log-probs of the wrong length" <| fun () ->
                let bad = answer "policy" [ [| 3; 4 |], [| -0.5 |], "length"; [| 3 |], [| -0.5 |], "length" ]
                Expect.stringContains (failure (new FakeHandler(always 200 bad)) 1 60_000) "1 log-probs for 2 tokens" "length"
        ]

        testList "weight sync" [
            testCase "LoRA: a valid PEFT folder under a new name per sync; the requests then name it; the old one is unloaded" <| fun () ->
                use model = tinyModel 8
                let settings = Popo.Tests.Engine.LoraFixtures.allLinear 2
                use adapters = LoraAdapters.Attach(model, settings, 3L)
                Popo.Tests.Engine.LoraFixtures.randomizeB adapters 5
                let handler = new FakeHandler(always 200 "Success: LoRA adapter added successfully.")
                let o = options [ "http://fake/v1" ] 0 60_000
                use sampler = new ServerSampler(o, torch.CPU, ScalarType.Float64, null, handler)
                use client = new ServerWeightSync(o, handler)
                let root = Path.Combine(Path.GetTempPath(), "popo-sync-" + Guid.NewGuid().ToString("N"))
                try
                    let sync = ServerSync(client, sampler, root, SyncRoute.Vllm, model, adapters, CharTokenizer(), null, "/base")
                    sync.Sync 1
                    let first = handler.Seen |> Seq.exactlyOne
                    Expect.equal first.Path "/v1/load_lora_adapter" "vLLM's runtime LoRA route"
                    let name = first.Body.["lora_name"].GetValue<string>()
                    let folder = first.Body.["lora_path"].GetValue<string>()
                    Expect.equal sampler.Model name "the next requests use the new adapter"
                    PeftAdapterFolder.Check(folder, settings, model.Config)
                    use fresh = tinyModel 8
                    use loaded = LoraAdapters.Attach(fresh, settings, 99L)
                    PeftAdapterFolder.Load(folder, loaded)
                    for i in 0 .. adapters.Count - 1 do
                        Expect.isTrue (same loaded.[i].B adapters.[i].B) $"adapter {i}: B round-trips"
                    sync.Sync 2
                    let seen = handler.Seen |> Array.ofSeq
                    Expect.equal (seen |> Array.map (fun s -> s.Path)) [| "/v1/load_lora_adapter"; "/v1/load_lora_adapter"; "/v1/unload_lora_adapter" |] "load the new, unload the old"
                    Expect.notEqual (seen.[1].Body.["lora_name"].GetValue<string>()) name "a new name per sync"
                    Expect.equal (seen.[2].Body.["lora_name"].GetValue<string>()) name "the previous adapter unloaded"
                    Expect.isFalse (Directory.Exists folder) "the previous folder removed"
                finally if Directory.Exists root then Directory.Delete(root, true)

            testCase "full fine-tuning: SGLang's and vLLM's load-from-disk routes get a Hugging Face folder that loads" <| fun () ->
                let tokenizer = CharTokenizer()
                let config = ModelConfig(VocabSize = tokenizer.VocabSize, HiddenSize = 16, IntermediateSize = 32, NumHiddenLayers = 1,
                                         NumAttentionHeads = 2, NumKeyValueHeads = 1, MaxPositionEmbeddings = 64)
                use model = randomModel config 9 ScalarType.Float32
                let root = Path.Combine(Path.GetTempPath(), "popo-sync-" + Guid.NewGuid().ToString("N"))
                try
                    for route, path in [ SyncRoute.Sglang, "/update_weights_from_disk"; SyncRoute.Vllm, "/collective_rpc" ] do
                        let handler = new FakeHandler(always 200 (fixture "sglang-update-weights-from-disk-response.json"))
                        let o = ServerRolloutOptions(Urls = ResizeArray [ "http://fake:30000/v1" ], Model = "policy", VocabSize = config.VocabSize)
                        use sampler = new ServerSampler(o, torch.CPU, ScalarType.Float32, null, handler)
                        use client = new ServerWeightSync(o, handler)
                        ServerSync(client, sampler, root, route, model, null, tokenizer, null, null).Sync 1
                        let seen = handler.Seen |> Seq.exactlyOne
                        Expect.equal seen.Path path $"{route}: the route at the server's root"
                        let folder =
                            if route = SyncRoute.Sglang then seen.Body.["model_path"].GetValue<string>()
                            else
                                Expect.equal (seen.Body.["method"].GetValue<string>()) "reload_weights" "vLLM's reload"
                                seen.Body.["kwargs"].["weights_path"].GetValue<string>()
                        let struct (loaded, _) = ModelFactory.Load(folder, torch.CPU, Nullable ScalarType.Float32)
                        use loaded = loaded
                        for struct (name, p) in model.NamedParameters() do
                            let q = loaded.NamedParameters() |> Seq.find (fun struct (n, _) -> n = name) |> fun struct (_, t) -> t
                            Expect.isTrue (same p q) $"{name} round-trips"
                finally if Directory.Exists root then Directory.Delete(root, true)

            testCase "SGLang's {success: false} answer is an error naming the server" <| fun () ->
                let handler = new FakeHandler(always 200 (fixture "sglang-update-weights-from-disk-failed.json"))
                use client = new ServerWeightSync(options [ "http://fake:30000/v1" ] 0 60_000, handler)
                let e = Expect.throwsC (fun () -> client.LoadFromDisk(Path.GetTempPath(), SyncRoute.Sglang)) id
                Expect.stringContains e.Message "http://fake:30000/update_weights_from_disk" e.Message
                Expect.stringContains e.Message "reported failure" e.Message
        ]
    ]
