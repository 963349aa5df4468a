/// `popo serve` end to end: one server process on the tiny built-in model, every route called over HTTP, and its answers
/// compared with the engine's own forward pass (log-probs to 1e-5, greedy tokens exactly).
module Popo.Tests.Serve.ServeRoutes

open System
open System.IO
open System.Net.Sockets
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open Popo.Engine.Lora
open Popo.Engine.Tokenizers
open Popo.Engine.Training
open Popo.Cli.Serve
open Popo.Tests.Cli.TrainCli
open Popo.Tests.Serve.ServeFixtures

let private chars = CharTokenizer()
let private promptOf (text: string) = Array.append [| CharTokenizer.Bos |] (chars.Encode text)

/// Every choice's token ids, log-probs and prompt ids of a completions answer.
let private choicesOf (answer: JsonObject) =
    answer.["choices"].AsArray()
    |> Seq.map (fun c -> ints c.["token_ids"], floats c.["logprobs"].["token_logprobs"], ints c.["prompt_token_ids"], c)
    |> Array.ofSeq

/// Each choice's log-probs agree with the engine's log softmax(logits / T) of the same tokens.
let private expectLogProbs (model: Popo.Engine.Model.Qwen2ForCausalLM) (answer: JsonObject) (temperature: float) =
    for ids, logProbs, prompt, _ in choicesOf answer do
        let expected = referenceLogProbs model prompt ids temperature
        Expect.equal logProbs.Length ids.Length "one log-prob per token"
        for a, e in Array.zip logProbs expected do
            Expect.floatClose { absolute = 1e-5; relative = 1e-5 } a e "log-prob of the sampled token"

let private tokenIdRequest seed =
    let list (ids: int[]) = "[" + String.Join(",", ids) + "]"
    sprintf """{"model": "tiny", "prompt": [%s, %s], "n": 3, "temperature": 0.8, "max_tokens": 12, "seed": %d, "logprobs": 2, "return_token_ids": true}"""
        (list (promptOf "12+3=")) (list (promptOf "7*8=")) seed

[<Tests>]
let tests =
    testSequenced <| testList "serve/routes" [
        testCase "health answers 200 and /v1/models lists the base model" <| fun () ->
            let status, _ = get "/health"
            Expect.equal status 200 "health"
            let status, text = get "/v1/models"
            Expect.equal status 200 "models"
            let data = JsonNode.Parse(text).["data"].AsArray()
            Expect.equal (data.[0].["id"].GetValue<string>()) "tiny" "the served name"
            Expect.equal (data.[0].["object"].GetValue<string>()) "model" "object"
            Expect.equal (data.[0].["max_model_len"].GetValue<int>()) ModelFactory.BuiltInContext "max_model_len"

        testCase "completions by token ids: n choices per prompt, token ids back, raw log-probs = the engine's log softmax(logits)" <| fun () ->
            let answer = postOk "/v1/completions" (tokenIdRequest 7)
            let choices = choicesOf answer
            Expect.equal choices.Length 6 "2 prompts x n = 3"
            let model, _ = load server.Value.Model
            use _ = model
            for i, (ids, _, prompt, c) in Array.indexed choices do
                Expect.equal (c.["index"].GetValue<int>()) i "index"
                Expect.equal prompt (if i < 3 then promptOf "12+3=" else promptOf "7*8=") "choices come prompt by prompt"
                let finish = c.["finish_reason"].GetValue<string>()
                if ids.[ids.Length - 1] = CharTokenizer.Eos then Expect.equal finish "stop" "ended at EOS"
                else
                    Expect.equal finish "length" "ran to max_tokens"
                    Expect.equal ids.Length 12 "max_tokens"
                Expect.equal (c.["text"].GetValue<string>()) (chars.Decode(ids, true)) "text = the decoded ids"
                let tops = c.["logprobs"].["top_logprobs"].AsArray()
                let tokens = c.["logprobs"].["tokens"].AsArray()
                for t in 0 .. ids.Length - 1 do
                    let top = tops.[t].AsObject()
                    Expect.isTrue (top.Count >= 2 && top.Count <= 3) "the sampled token and the top 2"
                    Expect.isTrue (top.ContainsKey(tokens.[t].GetValue<string>())) "the sampled token is among them"
            // vLLM's default mode: log softmax of the raw logits, not of logits / T
            expectLogProbs model answer 1.0
            let ids, logProbs, prompt, _ = choices.[0]
            let scaled = referenceLogProbs model prompt ids 0.8
            Expect.isGreaterThan (Array.map2 (fun a b -> abs (a - b)) logProbs scaled |> Array.max) 1e-3 "the temperature changes the numbers"
            let usage = answer.["usage"]
            Expect.equal (usage.["prompt_tokens"].GetValue<int>()) ((promptOf "12+3=").Length + (promptOf "7*8=").Length) "usage: prompt tokens"
            Expect.equal (usage.["completion_tokens"].GetValue<int>()) (choices |> Array.sumBy (fun (ids, _, _, _) -> ids.Length)) "usage: completion tokens"

        testCase "the documentation fixtures show the fields the server answers with now" <| fun () ->
            for name, path in [ "completions-token-ids", "/v1/completions"; "chat-completions", "/v1/chat/completions" ] do
                let saved = fixture name
                let live = postOk path (saved.["request"].ToJsonString())
                let response = saved.["response"]
                Expect.equal (keys live) (keys response) $"{name}: response fields"
                Expect.equal (keys live.["choices"].[0]) (keys response.["choices"].[0]) $"{name}: choice fields"
                Expect.equal (keys live.["choices"].[0].["logprobs"]) (keys response.["choices"].[0].["logprobs"]) $"{name}: log-prob fields"
            let saved = fixture "error-unknown-model"
            let status, text = post "/v1/completions" (saved.["request"].ToJsonString())
            Expect.equal status 404 text
            Expect.equal (JsonNode.Parse(text).["error"].ToJsonString()) (saved.["response"].["error"].ToJsonString()) "the same error"

        testCase "a seeded request repeats exactly; another seed samples other tokens" <| fun () ->
            let tokens seed = choicesOf (postOk "/v1/completions" (tokenIdRequest seed)) |> Array.map (fun (ids, lp, _, _) -> ids, lp)
            let first, again, other = tokens 7, tokens 7, tokens 8
            Expect.equal again first "same seed, same tokens and log-probs"
            Expect.notEqual (Array.map fst other) (Array.map fst first) "another seed (6 rows x 12 tokens at T = 0.8: equal by chance with negligible probability)"

        testCase "completions by text and by a list of texts; return_tokens_as_token_ids names tokens by id" <| fun () ->
            let one = postOk "/v1/completions" """{"prompt": "12+3=", "temperature": 0, "max_tokens": 6, "return_token_ids": true, "logprobs": 0, "return_tokens_as_token_ids": true}"""
            let ids, _, prompt, c = (choicesOf one).[0]
            Expect.equal prompt (promptOf "12+3=") "a text is BOS + its characters"
            Expect.equal (one.["model"].GetValue<string>()) "tiny" "no model: the base"
            Expect.equal (c.["logprobs"].["tokens"].AsArray() |> Seq.map (fun t -> t.GetValue<string>()) |> Array.ofSeq) (ids |> Array.map (sprintf "token_id:%d")) "token_id:N"
            let model, _ = load server.Value.Model
            use _ = model
            Expect.equal ids (referenceArgmax model prompt ids) "greedy = the engine's argmax"
            let two = postOk "/v1/completions" """{"prompt": ["12+3=", "7*8="], "n": 2, "temperature": 0, "max_tokens": 6, "return_token_ids": true, "logprobs": 0}"""
            let choices = choicesOf two
            Expect.equal choices.Length 4 "2 texts x n = 2"
            let first, _, _, _ = choices.[0]
            Expect.equal first ids "the same greedy completion as the single text"

        testCase "stop strings cut the text and stop_token_ids end the completion, each named in stop_reason" <| fun () ->
            let greedy = postOk "/v1/completions" """{"prompt": "12+3=", "temperature": 0, "max_tokens": 10, "return_token_ids": true, "logprobs": 0}"""
            let ids, _, _, c = (choicesOf greedy).[0]
            let text = c.["text"].GetValue<string>()
            Expect.isGreaterThanOrEqual text.Length 4 "the greedy completion has text to cut"
            let stop = text.Substring(2, 2)
            let cut = postOk "/v1/completions" (sprintf """{"prompt": "12+3=", "temperature": 0, "max_tokens": 10, "stop": [%s], "return_token_ids": true, "logprobs": 0}""" (JsonValue.Create(stop).ToJsonString()))
            let cutIds, _, _, cc = (choicesOf cut).[0]
            let at = text.IndexOf(stop, StringComparison.Ordinal)
            Expect.equal (cc.["text"].GetValue<string>()) (text.Substring(0, at)) "text ends before the stop string"
            Expect.equal (cc.["finish_reason"].GetValue<string>()) "stop" "finish_reason"
            Expect.equal (cc.["stop_reason"].GetValue<string>()) stop "stop_reason = the string"
            Expect.equal cutIds ids.[.. at + stop.Length - 1] "token ids up to the token that completes the stop string (one character per token)"
            let stopId = ids.[2]
            let byId = postOk "/v1/completions" (sprintf """{"prompt": "12+3=", "temperature": 0, "max_tokens": 10, "stop_token_ids": [%d], "return_token_ids": true, "logprobs": 0}""" stopId)
            let idIds, _, _, ic = (choicesOf byId).[0]
            let first = Array.IndexOf(ids, stopId)
            Expect.equal idIds ids.[.. first] "the completion ends with the stop token"
            Expect.equal (ic.["stop_reason"].GetValue<int>()) stopId "stop_reason = the token id"
            Expect.equal (ic.["finish_reason"].GetValue<string>()) "stop" "finish_reason"

        testCase "chat completions: one user message, the same tokens as its prompt, per-token log-probs" <| fun () ->
            let chat = postOk "/v1/chat/completions" """{"model": "tiny", "messages": [{"role": "user", "content": "12+3="}], "temperature": 0, "max_tokens": 6, "logprobs": true, "top_logprobs": 2, "return_token_ids": true}"""
            let c = chat.["choices"].[0]
            Expect.equal (chat.["object"].GetValue<string>()) "chat.completion" "object"
            Expect.equal (c.["message"].["role"].GetValue<string>()) "assistant" "role"
            let ids = ints c.["token_ids"]
            Expect.equal (ints chat.["prompt_token_ids"]) (promptOf "12+3=") "the built-in model's prompt: BOS + the message"
            let content = c.["logprobs"].["content"].AsArray()
            Expect.equal content.Count ids.Length "one entry per token"
            Expect.equal (content.[0].["top_logprobs"].AsArray().Count) 2 "top_logprobs = 2"
            let completion = postOk "/v1/completions" """{"prompt": "12+3=", "temperature": 0, "max_tokens": 6, "return_token_ids": true, "logprobs": 0}"""
            let cids, clp, _, _ = (choicesOf completion).[0]
            Expect.equal ids cids "same prompt, same greedy tokens"
            // Two float32 paths (top_logprobs rescores with a full forward; logprobs 0 takes the KV-cache sampler's own):
            // they agree to float32 rounding, not to the last bit (4e-7 relative seen on a loaded machine).
            for e, lp in Seq.zip content clp do
                Expect.floatClose { absolute = 1e-5; relative = 1e-5 } (e.["logprob"].GetValue<float>()) lp "same log-probs"
            Expect.equal (c.["message"].["content"].GetValue<string>()) (chars.Decode(ids, true)) "content"

        testCase "LoRA: load by name, listed, outputs = the engine's adapted forward and differ from the base, unload" <| fun () ->
            let s = server.Value
            let status, text = post "/v1/load_lora_adapter" (sprintf """{"lora_name": "ad", "lora_path": %s}""" (JsonValue.Create(s.Adapter).ToJsonString()))
            Expect.equal status 200 text
            Expect.stringContains text "Success" "vLLM's answer"
            let _, models = get "/v1/models"
            let data = JsonNode.Parse(models).["data"].AsArray()
            Expect.equal (data.Count) 2 "base + adapter"
            Expect.equal (data.[1].["id"].GetValue<string>()) "ad" "adapter id"
            Expect.equal (data.[1].["parent"].GetValue<string>()) "tiny" "parent = the base"
            let request name = sprintf """{"model": "%s", "prompt": "12+3=", "temperature": 0, "max_tokens": 8, "return_token_ids": true, "logprobs": 0}""" name
            let adapted = postOk "/v1/completions" (request "ad")
            let baseAnswer = postOk "/v1/completions" (request "tiny")
            let ids, logProbs, prompt, _ = (choicesOf adapted).[0]
            let baseIds, baseLogProbs, _, _ = (choicesOf baseAnswer).[0]
            Expect.isTrue (ids <> baseIds || Array.map2 (fun a b -> abs (a - b)) logProbs baseLogProbs.[.. logProbs.Length - 1] |> Array.max > 1e-3) "the adapter changes the outputs"
            let model, _ = load s.Model
            use _ = model
            let struct (settings, _) = PeftAdapterConfig.Read s.Adapter
            use adapters = LoraAdapters.Attach(model, settings, 0L)
            PeftAdapterFolder.Load(s.Adapter, adapters)
            Expect.equal ids (referenceArgmax model prompt ids) "greedy tokens = the adapted model's argmax"
            expectLogProbs model adapted 1.0
            let status, text = post "/v1/load_lora_adapter" (sprintf """{"lora_name": "ad", "lora_path": %s}""" (JsonValue.Create(s.Adapter).ToJsonString()))
            Expect.equal status 400 "a name already loaded"
            Expect.stringContains text "already been loaded" text
            let status, text = post "/v1/unload_lora_adapter" """{"lora_name": "ad"}"""
            Expect.equal status 200 text
            let status, text = post "/v1/completions" (request "ad")
            Expect.equal status 404 "an unloaded adapter is an unknown model"
            Expect.stringContains text "does not exist" text
            let status, _ = post "/v1/unload_lora_adapter" """{"lora_name": "ad"}"""
            Expect.equal status 404 "unloading it again"
            let status, text = post "/v1/load_lora_adapter" (sprintf """{"lora_name": "bad", "lora_path": %s}""" (JsonValue.Create(s.Model).ToJsonString()))
            Expect.equal status 400 "a model folder is no adapter"
            Expect.stringContains text "lora_path" text
            let after = postOk "/v1/completions" (request "tiny")
            let afterIds, _, _, _ = (choicesOf after).[0]
            Expect.equal afterIds baseIds "the base is untouched by loading and unloading"

        testCase "bad requests answer 400 naming the field; an unknown model 404; both as OpenAI error JSON" <| fun () ->
            let cases =
                [ """{"max_tokens": 4}""", "prompt"
                  """{"prompt": [1, 999]}""", "prompt[1]"
                  """{"prompt": [[1, 5], []]}""", "prompt[1]"
                  """{"prompt": "12", "n": 0}""", "n"
                  """{"prompt": "12", "temperature": -1}""", "temperature"
                  """{"prompt": "12", "top_p": 0}""", "top_p"
                  """{"prompt": "12", "logprobs": 21}""", "logprobs"
                  """{"prompt": "12", "max_tokens": 5000}""", "max_tokens"
                  """{"prompt": "12", "stream": true}""", "stream"
                  """{"prompt": "12", "stop_token_ids": [100]}""", "stop_token_ids[0]"
                  """{"prompt": "\u00e9"}""", "prompt"
                  """{"prompt": "12", "seed": "x"}""", "seed" ]
            for body, field in cases do
                let status, text = post "/v1/completions" body
                Expect.equal status 400 $"{body}: {text}"
                let error = JsonNode.Parse(text).["error"]
                Expect.stringContains (error.["message"].GetValue<string>()) field $"{body}: the message names the field"
                Expect.equal (error.["code"].GetValue<int>()) 400 "code"
            let status, text = post "/v1/completions" "{not json"
            Expect.equal status 400 text
            let status, text = post "/v1/chat/completions" """{"messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "1"}]}"""
            Expect.equal status 400 text
            Expect.stringContains text "messages" text
            let status, text = post "/v1/completions" """{"model": "nope", "prompt": "12"}"""
            Expect.equal status 404 text
            let error = JsonNode.Parse(text).["error"]
            Expect.equal (error.["type"].GetValue<string>()) "NotFoundError" "type"
            Expect.stringContains (error.["message"].GetValue<string>()) "nope" "names the model"

        testCase "concurrent requests are queued and each answers as it would alone" <| fun () ->
            let body seed = sprintf """{"prompt": "12+3=", "n": 2, "temperature": 1.0, "max_tokens": 8, "seed": %d, "return_token_ids": true, "logprobs": 0}""" seed
            let alone = [ for seed in 1 .. 4 -> choicesOf (postOk "/v1/completions" (body seed)) |> Array.map (fun (ids, _, _, _) -> ids) ]
            let together =
                [ for seed in 1 .. 4 -> Threading.Tasks.Task.Run(fun () -> choicesOf (postOk "/v1/completions" (body seed)) |> Array.map (fun (ids, _, _, _) -> ids)) ]
                |> List.map (fun t -> t.Result)
            Expect.equal together alone "same answers in parallel"

        testCase "update_weights_from_disk swaps in another folder's weights; a bad folder leaves them" <| fun () ->
            let s = server.Value
            let status, text = post "/update_weights_from_disk" """{"model_path": "/nonexistent/folder"}"""
            Expect.equal status 400 text
            Expect.isFalse (JsonNode.Parse(text).["success"].GetValue<bool>()) "success false"
            let answer = postOk "/update_weights_from_disk" (sprintf """{"model_path": %s}""" (JsonValue.Create(s.Other).ToJsonString()))
            Expect.isTrue (answer.["success"].GetValue<bool>()) "success"
            let after = postOk "/v1/completions" """{"prompt": "12+3=", "temperature": 0, "max_tokens": 8, "return_token_ids": true, "logprobs": 0}"""
            let model, _ = load s.Other
            use _ = model
            let ids, _, prompt, _ = (choicesOf after).[0]
            Expect.equal ids (referenceArgmax model prompt ids) "greedy = the new weights' argmax"
            expectLogProbs model after 1.0
            // The other route tests share this server and may run after this one (dotnet test orders them its own way).
            let back = postOk "/update_weights_from_disk" (sprintf """{"model_path": %s}""" (JsonValue.Create(s.Model).ToJsonString()))
            Expect.isTrue (back.["success"].GetValue<bool>()) "the shared server's weights restored"

        testCase "SIGTERM stops the server cleanly with exit code 0" <| fun () ->
            // A server of its own: the shared one serves the other route tests, in whatever order they run.
            let s = server.Value
            let p, _, stderr = startServe [ "--model"; s.Model; "--port"; "0"; "--threads"; "1" ]
            use _ = p
            Expect.equal (kill (p.Id, 15)) 0 "signal sent"
            Expect.isTrue (p.WaitForExit 30000) "the server exits"
            Expect.equal p.ExitCode 0 $"exit code (stderr: {stderr.Result})"
            Expect.stringContains stderr.Result "stopped" "it says so"
    ]

/// A processed_logprobs server over a fresh tiny model that samples at factor x the temperature asked: a seeded request
/// at `asked` gets the engine sampler's tokens and log-probs at asked x factor. Then `rest` with the folder and server.
let private samplesAt (factor: float) (asked: float) (rest: string -> ServedModel -> unit) =
    let root = Path.Combine(Path.GetTempPath(), "popo-serve-mode-" + Guid.NewGuid().ToString("N"))
    try
        let folder = Path.Combine(root, "model")
        writeModel folder 1
        use served = new ServedModel("tiny", folder, torch.CPU, Nullable(), Nullable(), LogprobsMode.ProcessedLogprobs, TemperatureFactor = factor)
        let request = sprintf """{"prompt": "12+3=", "n": 4, "temperature": %s, "max_tokens": 10, "seed": 3, "return_token_ids": true, "logprobs": 0}""" (asked.ToString("R", Globalization.CultureInfo.InvariantCulture))
        let answer = CompletionsRoute.Handle(served, RequestFields.Parse request)
        let t = asked * factor
        expectLogProbs served.Model answer t
        let options = Popo.Engine.Rollout.SamplerOptions(Temperature = t, MaxNewTokens = 10, StopTokenIds = served.Format.StopTokens, Seed = Nullable 3L)
        use batch = Popo.Engine.Rollout.Sampler.Generate(served.Model, Array.create 4 (promptOf "12+3="), options)
        Expect.equal (choicesOf answer |> Array.map (fun (ids, _, _, _) -> ids)) batch.Completions $"the engine's sampler at T = {t}, same seed"
        rest folder served
    finally
        try Directory.Delete(root, true) with _ -> ()

[<Tests>]
let startup =
    testSequenced <| testList "serve/startup" [
        testCase "a missing model folder, a mismatched adapter or a port in use: a clear error and a non-zero exit before listening" <| fun () ->
            let root = Path.Combine(Path.GetTempPath(), "popo-serve-start-" + Guid.NewGuid().ToString("N"))
            try
                let code, err = popoStderr [ "serve"; "--model"; Path.Combine(root, "missing"); "--port"; "0" ]
                Expect.notEqual code 0 err
                Expect.stringContains err "missing" "names the folder"
                let model, narrow, adapter = Path.Combine(root, "model"), Path.Combine(root, "narrow"), Path.Combine(root, "adapter")
                writeModel model 1
                // an adapter written for a model of another width does not fit this base
                let config = Popo.Tests.Reliability.Harness.flagConfig [ [ "--hidden-size"; "32" ]; [ "--layers"; "2" ]; [ "--heads"; "4" ]; [ "--kv-heads"; "2" ]; [ "--intermediate-size"; "64" ] ]
                let struct (small, tokenizer) = ModelFactory.Create(config, torch.CPU)
                do use _ = small in ModelFactory.Save(small, tokenizer, narrow, null)
                writeAdapter adapter narrow
                let code, err = popoStderr [ "serve"; "--model"; model; "--adapter"; adapter; "--port"; "0" ]
                Expect.notEqual code 0 err
                Expect.stringContains err "adapter_model.safetensors" "names the adapter file"
                let listener = new TcpListener(Net.IPAddress.Loopback, 0)
                listener.Start()
                try
                    let port = (listener.LocalEndpoint :?> Net.IPEndPoint).Port
                    let code, err = popoStderr [ "serve"; "--model"; model; "--port"; string port ]
                    Expect.equal code 1 err
                    Expect.stringContains err $"cannot listen on 127.0.0.1:{port}" "names the address"
                finally listener.Stop()
            finally
                try Directory.Delete(root, true) with _ -> ()

        testCase "processed_logprobs: the sampler's own log softmax(logits / T), the same tokens as the engine's sampler with the seed" <| fun () ->
            samplesAt 1.0 0.7 (fun _ served ->
                let top = CompletionsRoute.Handle(served, RequestFields.Parse """{"prompt": "12+3=", "temperature": 0.7, "max_tokens": 10, "seed": 3, "logprobs": 3, "return_token_ids": true}""")
                expectLogProbs served.Model top 0.7)

        testCase "--temperature-factor: a deliberately mismatched server samples at factor x the temperature asked and reports those log-probs" <| fun () ->
            samplesAt 1.5 0.6 (fun folder _ ->
                let code, err = popoStderr [ "serve"; "--model"; folder; "--port"; "0"; "--temperature-factor"; "0" ]
                Expect.equal code 2 err
                Expect.stringContains err "--temperature-factor" "names the flag")

        testCase "--model takes a model folder, a checkpoint step-N (full or LoRA) or a run folder (its newest checkpoint)" <| fun () ->
            let root = Path.Combine(Path.GetTempPath(), "popo-serve-folders-" + Guid.NewGuid().ToString("N"))
            try
                let touch (path: string) =
                    Directory.CreateDirectory(Path.GetDirectoryName path) |> ignore
                    File.WriteAllText(path, "{}")
                let full = Path.Combine(root, "full")
                for step in [ 2; 10 ] do touch (Path.Combine(full, "checkpoints", $"step-{step}", "model", "config.json"))
                touch (Path.Combine(full, "config.json"))   // the run's own config.json is no model
                let newest = Path.Combine(full, "checkpoints", "step-10", "model")
                Expect.equal (Popo.Cli.Commands.ServeCommand.Folders(full, null).ToTuple()) (newest, null) "a run folder: its newest step's model/"
                Expect.equal (Popo.Cli.Commands.ServeCommand.Folders(Path.Combine(full, "checkpoints", "step-2"), "").ToTuple()) (Path.Combine(full, "checkpoints", "step-2", "model"), null) "a step-N: its model/"
                Expect.equal (Popo.Cli.Commands.ServeCommand.Folders(newest, null).ToTuple()) (newest, null) "a model folder"
                let baseModel = Path.Combine(root, "base")
                Directory.CreateDirectory baseModel |> ignore
                let lora = Path.Combine(root, "lora", "checkpoints", "step-3")
                Directory.CreateDirectory lora |> ignore
                PeftAdapterConfig.Write(lora, loraSettings, baseModel)
                Expect.equal (Popo.Cli.Commands.ServeCommand.Folders(Path.Combine(root, "lora"), null).ToTuple()) (baseModel, lora) "a LoRA run: its newest adapter over its base"
                Expect.equal (Popo.Cli.Commands.ServeCommand.Folders(null, lora).ToTuple()) (baseModel, lora) "--adapter alone: its base"
                Expect.throwsT<Popo.Engine.Runtime.ConfigException> (fun () -> Popo.Cli.Commands.ServeCommand.Folders(Path.Combine(root, "none"), null) |> ignore) "a missing folder"
                Expect.throwsT<Popo.Engine.Runtime.ConfigException> (fun () -> Popo.Cli.Commands.ServeCommand.Folders(baseModel, null) |> ignore) "a folder with nothing to serve"
            finally
                try Directory.Delete(root, true) with _ -> ()

        testCase "the engine does not reference ASP.NET Core (only the CLI's server does)" <| fun () ->
            let engine = typeof<Popo.Engine.Model.Qwen2ForCausalLM>.Assembly.GetReferencedAssemblies() |> Array.map (fun a -> a.Name)
            Expect.isFalse (engine |> Array.exists (fun n -> n.StartsWith("Microsoft.AspNetCore", StringComparison.Ordinal))) (String.Join(", ", engine))
            let cli = typeof<ServedModel>.Assembly.GetReferencedAssemblies() |> Array.map (fun a -> a.Name)
            Expect.isTrue (cli |> Array.exists (fun n -> n.StartsWith("Microsoft.AspNetCore", StringComparison.Ordinal))) "the premise: the CLI's server does"
    ]
