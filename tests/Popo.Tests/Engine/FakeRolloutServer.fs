/// An in-process stand-in for vLLM or SGLang in the server-rollout tests: answers /v1/completions in vLLM's shape
/// (tests/fixtures/server-rollout/) by sampling with one of the engine's own models, at the temperature asked times
/// a mismatch factor, and reports that sampler's log-probs; records every request. Served through an
/// HttpMessageHandler (unit tests) or an HttpListener on 127.0.0.1 (whole runs, which build their own HttpClient).
module Popo.Tests.Engine.FakeRolloutServer

open System
open System.Net
open System.Net.Http
open System.Net.Sockets
open System.Text
open System.Text.Json.Nodes
open System.Threading
open System.Threading.Tasks
open TorchSharp
open Popo.Engine.Model
open Popo.Engine.Rollout

/// One answer: HTTP status, body, and how long to wait before giving it.
type Reply = { Status: int; Body: string; Delay: TimeSpan }

let ok body = { Status = 200; Body = body; Delay = TimeSpan.Zero }

let private ints (node: JsonNode) = node.AsArray() |> Seq.map (fun n -> n.GetValue<int>()) |> Array.ofSeq

/// The choices of a vLLM completions answer, from completions and their log-probs (token ids both in `token_ids`
/// and as "token_id:N" in logprobs.tokens, as vLLM returns them with return_token_ids / return_tokens_as_token_ids).
let answer (model: string) (choices: (int[] * float[] * string) list) =
    let choice (i: int) (tokens: int[], logprobs: float[], finish: string) =
        JsonObject(
            [ Collections.Generic.KeyValuePair("index", JsonValue.Create i :> JsonNode)
              Collections.Generic.KeyValuePair("text", JsonValue.Create "" :> JsonNode)
              Collections.Generic.KeyValuePair("token_ids", JsonArray(tokens |> Array.map (fun t -> JsonValue.Create t :> JsonNode)) :> JsonNode)
              Collections.Generic.KeyValuePair(
                  "logprobs",
                  JsonObject(
                      [ Collections.Generic.KeyValuePair("tokens", JsonArray(tokens |> Array.map (fun t -> JsonValue.Create $"token_id:{t}" :> JsonNode)) :> JsonNode)
                        Collections.Generic.KeyValuePair("token_logprobs", JsonArray(logprobs |> Array.map (fun l -> JsonValue.Create l :> JsonNode)) :> JsonNode) ])
                  :> JsonNode)
              Collections.Generic.KeyValuePair("finish_reason", JsonValue.Create finish :> JsonNode) ])
        :> JsonNode
    let total = choices |> List.sumBy (fun (t, _, _) -> t.Length)
    JsonObject(
        [ Collections.Generic.KeyValuePair("id", JsonValue.Create "cmpl-fake" :> JsonNode)
          Collections.Generic.KeyValuePair("object", JsonValue.Create "text_completion" :> JsonNode)
          Collections.Generic.KeyValuePair("model", JsonValue.Create model :> JsonNode)
          Collections.Generic.KeyValuePair("choices", JsonArray(choices |> List.mapi choice |> Array.ofList) :> JsonNode)
          Collections.Generic.KeyValuePair("usage", JsonObject([ Collections.Generic.KeyValuePair("completion_tokens", JsonValue.Create total :> JsonNode) ]) :> JsonNode) ])
        .ToJsonString()

let private gate = obj ()

/// Samples one request's n completions with the model at temperature x factor (seeded by the prompt) and answers them.
let complete (model: Qwen2ForCausalLM) (factor: float) (body: JsonNode) =
    let prompt = ints body.["prompt"]
    let n = body.["n"].GetValue<int>()
    let stops = ints body.["stop_token_ids"]
    let options =
        SamplerOptions(
            Temperature = body.["temperature"].GetValue<float>() * factor, TopP = body.["top_p"].GetValue<float>(),
            MaxNewTokens = body.["max_tokens"].GetValue<int>(), StopTokenIds = ResizeArray stops,
            Seed = int64 (prompt |> Array.fold (fun h t -> h * 31 + t) 17))
    lock gate (fun () ->
        use scope = torch.NewDisposeScope()
        use batch = Sampler.Generate(model, Array.create n prompt, options)
        let width = int batch.CompletionIds.shape.[1]
        let lp = batch.OldLogProbs.to_type(torch.ScalarType.Float64).cpu().data<float>().ToArray()
        [ for i in 0 .. n - 1 ->
            let tokens = batch.Completions.[i]
            tokens, Array.sub lp (i * width) tokens.Length, (if tokens.Length > 0 && Array.contains tokens.[tokens.Length - 1] stops then "stop" else "length") ]
        |> answer (body.["model"].GetValue<string>()))

/// A request as the fake saw it: path and JSON body.
type Seen = { Url: string; Path: string; Body: JsonNode }

/// An HttpMessageHandler over a reply function (path, body -> reply); every request is recorded.
type FakeHandler(respond: string -> JsonNode -> Reply) =
    inherit HttpMessageHandler()
    member val Seen = Collections.Concurrent.ConcurrentQueue<Seen>()
    override this.SendAsync(request, cancel) =
        task {
            let! text = request.Content.ReadAsStringAsync(cancel)
            let body = JsonNode.Parse text
            this.Seen.Enqueue { Url = string request.RequestUri; Path = request.RequestUri.AbsolutePath; Body = body }
            let reply = respond request.RequestUri.AbsolutePath body
            if reply.Delay > TimeSpan.Zero then do! Task.Delay(reply.Delay, cancel)
            let response = new HttpResponseMessage(enum<HttpStatusCode> reply.Status)
            response.Content <- new StringContent(reply.Body, Encoding.UTF8, "application/json")
            return response
        }

/// The same reply function served over HTTP on 127.0.0.1 (a free port), for code that builds its own HttpClient.
type ListenerServer(respond: string -> JsonNode -> Reply) =
    let port =
        let probe = new TcpListener(IPAddress.Loopback, 0)
        probe.Start()
        let p = (probe.LocalEndpoint :?> IPEndPoint).Port
        probe.Stop()
        p
    let listener = new HttpListener()
    do listener.Prefixes.Add $"http://127.0.0.1:{port}/"
    do listener.Start()
    let stop = new CancellationTokenSource()
    let serve (context: HttpListenerContext) =
        task {
            try
                use reader = new IO.StreamReader(context.Request.InputStream)
                let! text = reader.ReadToEndAsync()
                let reply =
                    try respond context.Request.Url.AbsolutePath (JsonNode.Parse text)
                    with e -> { Status = 500; Body = e.ToString(); Delay = TimeSpan.Zero }
                if reply.Delay > TimeSpan.Zero then do! Task.Delay reply.Delay
                let bytes = Encoding.UTF8.GetBytes reply.Body
                context.Response.StatusCode <- reply.Status
                context.Response.ContentType <- "application/json"
                do! context.Response.OutputStream.WriteAsync(bytes, 0, bytes.Length)
                context.Response.Close()
            with _ -> ()
        }
    let loop =
        Task.Run(fun () ->
            task {
                while not stop.IsCancellationRequested do
                    let! context = listener.GetContextAsync()
                    serve context |> ignore
            } :> Task)
    /// The base URL the trainer takes (rollout_urls).
    member _.Url = $"http://127.0.0.1:{port}/v1"
    interface IDisposable with
        member _.Dispose() =
            stop.Cancel()
            (try listener.Stop() with _ -> ())
            listener.Close()
