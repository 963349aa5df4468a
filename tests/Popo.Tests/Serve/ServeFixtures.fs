/// `popo serve` as a test peer: a tiny built-in model folder (hidden 64, 2 layers, the character tokenizer), a PEFT
/// adapter for it, the server started once as a separate process for every test of the route tests, and the engine's own
/// numbers to compare its answers with.
module Popo.Tests.Serve.ServeFixtures

open System
open System.Diagnostics
open System.IO
open System.Net.Http
open System.Runtime.InteropServices
open System.Text
open System.Text.Json.Nodes
open TorchSharp
open Popo.Engine.Lora
open Popo.Engine.Model
open Popo.Engine.Training
open Popo.Tests.Reliability.Harness

let modelFlags = [ [ "--hidden-size"; "64" ]; [ "--layers"; "2" ]; [ "--heads"; "4" ]; [ "--kv-heads"; "2" ]; [ "--intermediate-size"; "128" ] ]

/// A built-in model folder with weights from <paramref name="seed"/>.
let writeModel (folder: string) (seed: int) =
    let config = flagConfig (modelFlags @ [ [ "--seed"; string seed ] ])
    let struct (model, tokenizer) = ModelFactory.Create(config, torch.CPU)
    use _ = model
    ModelFactory.Save(model, tokenizer, folder, null)

let loraSettings = LoraSettings(4, 8.0, 0.0, [ "q_proj"; "v_proj"; "down_proj" ], false)

/// A PEFT adapter folder for the model in <paramref name="modelFolder"/> with B drawn at random (B = 0 would change nothing).
let writeAdapter (folder: string) (modelFolder: string) =
    let struct (model, _) = ModelFactory.Load(modelFolder, torch.CPU, Nullable())
    use _ = model
    use adapters = LoraAdapters.Attach(model, loraSettings, 5L)
    use _ = torch.no_grad ()
    use g = new torch.Generator(11UL, torch.CPU)
    for i in 0 .. adapters.Count - 1 do
        use noise = torch.randn(adapters.[i].B.shape, generator = g) * 0.3
        adapters.[i].B.copy_(noise) |> ignore
    PeftAdapterFolder.Save(folder, adapters, modelFolder)

/// log softmax(logits / T) of <paramref name="completion"/> after <paramref name="prompt"/>, from one forward pass of the
/// engine's model in float64 (the reference the server's log-probs must match).
let referenceLogProbs (model: Qwen2ForCausalLM) (prompt: int[]) (completion: int[]) (temperature: float) =
    use _ = torch.no_grad ()
    use scope = torch.NewDisposeScope()
    let all = Array.append prompt completion |> Array.map int64
    let ids = torch.tensor(all).view(1L, int64 all.Length)
    use out = model.Forward(ids)
    let logp = (out.Logits.select(0, 0L).narrow(0, int64 prompt.Length - 1L, int64 completion.Length).to_type(torch.float64) / temperature).log_softmax(-1L)
    let values = logp.gather(1L, torch.tensor(completion |> Array.map int64).unsqueeze(1L)).squeeze(1L)
    values.data<float>().ToArray()

/// The argmax of each completion position's logits (what greedy decoding must have chosen).
let referenceArgmax (model: Qwen2ForCausalLM) (prompt: int[]) (completion: int[]) =
    use _ = torch.no_grad ()
    use scope = torch.NewDisposeScope()
    let all = Array.append prompt completion |> Array.map int64
    use out = model.Forward(torch.tensor(all).view(1L, int64 all.Length))
    let best = out.Logits.select(0, 0L).narrow(0, int64 prompt.Length - 1L, int64 completion.Length).argmax(-1L)
    best.data<int64>().ToArray() |> Array.map int

[<DllImport("libc", SetLastError = true)>]
extern int kill(int pid, int signal)

/// A running `popo serve` child process and its folders.
type Server =
    { Url: string
      Process: Process
      Stderr: Threading.Tasks.Task<string>
      Root: string
      Model: string
      Other: string
      Adapter: string
      Client: HttpClient }

/// Starts `dotnet popo.dll serve args` and returns the process, the first stdout line (the URL) and stderr's reader.
let startServe (args: string list) =
    let info = ProcessStartInfo("dotnet", RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false)
    info.ArgumentList.Add popoDll
    info.ArgumentList.Add "serve"
    for a in args do info.ArgumentList.Add a
    let p = Process.Start info
    let stderr = p.StandardError.ReadToEndAsync()
    let line = p.StandardOutput.ReadLineAsync()
    if not (line.Wait(TimeSpan.FromSeconds 120.0)) || isNull line.Result then
        (try p.Kill true with _ -> ())
        failwithf "popo serve printed no URL: %s" (if stderr.Wait 5000 then stderr.Result else "")
    p, line.Result.Trim(), stderr

/// The one server of the route tests (a model folder, a second one for load-from-disk, an adapter), started on first use
/// and killed at exit if a test did not stop it.
let server =
    lazy (
        let root = Path.Combine(Path.GetTempPath(), "popo-serve-" + Guid.NewGuid().ToString("N"))
        let model, other, adapter = Path.Combine(root, "model"), Path.Combine(root, "other"), Path.Combine(root, "adapter")
        writeModel model 1
        writeModel other 2
        writeAdapter adapter model
        let p, url, stderr = startServe [ "--model"; model; "--port"; "0"; "--threads"; "1"; "--served-model-name"; "tiny" ]
        AppDomain.CurrentDomain.ProcessExit.Add(fun _ ->
            (try if not p.HasExited then p.Kill true with _ -> ())
            try Directory.Delete(root, true) with _ -> ())
        { Url = url; Process = p; Stderr = stderr; Root = root; Model = model; Other = other; Adapter = adapter
          Client = new HttpClient(BaseAddress = Uri url, Timeout = TimeSpan.FromSeconds 120.0) })

/// POSTs a JSON body; returns the status and the body text.
let post (path: string) (body: string) =
    let s = server.Value
    use content = new StringContent(body, Encoding.UTF8, "application/json")
    use response = s.Client.PostAsync(path, content).Result
    int response.StatusCode, response.Content.ReadAsStringAsync().Result

let get (path: string) =
    use response = server.Value.Client.GetAsync(path).Result
    int response.StatusCode, response.Content.ReadAsStringAsync().Result

/// POSTs and parses a 200 answer as JSON (failing with the body otherwise).
let postOk (path: string) (body: string) =
    let status, text = post path body
    if status <> 200 then failwithf "%s answered %d: %s" path status text
    JsonNode.Parse(text).AsObject()

let ints (node: JsonNode) = node.AsArray() |> Seq.map (fun n -> n.GetValue<int>()) |> Array.ofSeq
let floats (node: JsonNode) = node.AsArray() |> Seq.map (fun n -> n.GetValue<float>()) |> Array.ofSeq

/// The model of a folder, loaded in this process as the server loads it.
let load (folder: string) =
    let struct (model, tokenizer) = ModelFactory.Load(folder, torch.CPU, Nullable())
    model, tokenizer

/// The documentation fixture tests/fixtures/serve/NAME.json (a request and the server's response) as JSON.
let fixture (name: string) =
    let rec up (dir: DirectoryInfo) =
        if isNull dir then failwith "cannot find the repository root (Popo.sln) above the test binaries"
        elif File.Exists(Path.Combine(dir.FullName, "Popo.sln")) then dir.FullName
        else up dir.Parent
    JsonNode.Parse(File.ReadAllText(Path.Combine(up (DirectoryInfo AppContext.BaseDirectory), "tests", "fixtures", "serve", name + ".json"))).AsObject()

/// The field names of a JSON object, in order.
let keys (node: JsonNode) = node.AsObject() |> Seq.map (fun kv -> kv.Key) |> List.ofSeq
