/// LoRA files as PEFT writes them: adapter_config.json's fields and adapter_model.safetensors' tensor names and shapes
/// against fixtures written from PEFT's documented format (tests/Popo.Tests/fixtures/peft/), a save/load round trip,
/// errors that name the file and the field or tensor, and `export --merge` giving the adapted model's logits.
module Popo.Tests.Engine.LoraFiles

open System
open System.IO
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open Popo.Engine.Checkpoints
open Popo.Engine.Lora
open Popo.Engine.Model
open Popo.Engine.Tokenizers
open Popo.Engine.Training
open Popo.Tests
open Popo.Tests.Engine.ModelFixtures
open Popo.Tests.Engine.ObjectiveFixtures
open Popo.Tests.Engine.LoraFixtures

let private withTemp (f: string -> unit) =
    let dir = Path.Combine(Path.GetTempPath(), "popo-lora-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory dir |> ignore
    try f dir finally Directory.Delete(dir, true)

let private fixtureJson name = JsonNode.Parse(File.ReadAllText(SharedData.fixture ("peft/" + name))).AsObject()

/// The fixtures' model: hidden 16, 2 heads, 1 key/value head, 2 layers; LoRA r = 8 on q_proj, v_proj.
let private fixtureModel () =
    let m = (fixtureJson "adapter_tensors.json").["model"]
    let config =
        ModelConfig(VocabSize = 11, HiddenSize = m.["hidden_size"].GetValue<int>(), IntermediateSize = m.["intermediate_size"].GetValue<int>(),
                    NumHiddenLayers = m.["num_hidden_layers"].GetValue<int>(), NumAttentionHeads = m.["num_attention_heads"].GetValue<int>(),
                    NumKeyValueHeads = m.["num_key_value_heads"].GetValue<int>(), MaxPositionEmbeddings = 64)
    randomModel config 1 ScalarType.Float32

let private fixtureSettings () = settingsOf 8 16.0 "q_proj,v_proj" 0.05 false

/// An adapter folder: the config as written, with one field replaced (or removed when the value is null).
let private withField (folder: string) (field: string) (value: JsonNode) =
    let path = Path.Combine(folder, PeftAdapterConfig.FileName)
    let json = JsonNode.Parse(File.ReadAllText path).AsObject()
    json.Remove field |> ignore
    if not (isNull value) then json.[field] <- value
    File.WriteAllText(path, json.ToJsonString())

[<Tests>]
let tests =
    testSequenced <| testList "engine/lora/files" [
        testCase "adapter_config.json has exactly PEFT's fields with PEFT's values (fixture)" <| fun () ->
            let expected = fixtureJson "adapter_config.json"
            let written = PeftAdapterConfig.ToJson(fixtureSettings (), "BASE")
            Expect.sequenceEqual (written |> Seq.map (fun kv -> kv.Key)) (expected |> Seq.map (fun kv -> kv.Key) |> Seq.sort) "the same fields, sorted as PEFT writes them"
            for kv in expected do
                if kv.Key = "target_modules" then
                    let names (n: JsonNode) = n.AsArray() |> Seq.map (fun x -> x.GetValue<string>()) |> Set.ofSeq
                    Expect.equal (names written.[kv.Key]) (names kv.Value) "target_modules (a set in PEFT)"
                else Expect.isTrue (JsonNode.DeepEquals(written.[kv.Key], kv.Value)) $"field {kv.Key}: {written.[kv.Key]} vs {kv.Value}"

        testCase "adapter_model.safetensors holds PEFT's tensor names and shapes, in float32 (fixture)" <| fun () ->
            let expected = (fixtureJson "adapter_tensors.json").["tensors"].AsObject() |> Seq.map (fun kv -> kv.Key, kv.Value.AsArray() |> Seq.map (fun x -> x.GetValue<int64>()) |> List.ofSeq) |> Map.ofSeq
            use model = fixtureModel ()
            use adapters = LoraAdapters.Attach(model, fixtureSettings (), 1L)
            withTemp (fun dir ->
                PeftAdapterFolder.Save(dir, adapters, "BASE")
                let file = SafeTensorsFile.Open(Path.Combine(dir, PeftAdapterFolder.WeightsFile))
                let written = file.Tensors.Values |> Seq.map (fun e -> e.Name, List.ofArray e.Shape) |> Map.ofSeq
                Expect.equal written expected "names and shapes"
                Expect.isTrue (file.Tensors.Values |> Seq.forall (fun e -> e.Dtype = ScalarType.Float32)) "F32")

        testCase "a saved adapter folder loads back bit for bit with its settings and base" <| fun () ->
            use model = fixtureModel ()
            use adapters = LoraAdapters.Attach(model, settingsOf 3 5.5 "all-linear" 0.1 true, 1L)
            randomizeB adapters 4
            withTemp (fun dir ->
                PeftAdapterFolder.Save(dir, adapters, "/models/base")
                let struct (settings, baseModel) = PeftAdapterConfig.Read dir
                Expect.equal baseModel "/models/base" "base_model_name_or_path"
                Expect.equal (settings.Rank, settings.Alpha, settings.Dropout, settings.UseRsLora) (3, 5.5, 0.1, true) "r, alpha, dropout, rsLoRA"
                Expect.sequenceEqual settings.Targets LoraSettings.AllLinear "targets"
                use other = fixtureModel ()
                use loaded = LoraAdapters.Attach(other, settings, 9L)
                PeftAdapterFolder.Load(dir, loaded)
                Expect.equal (flatParameters loaded) (flatParameters adapters) "the same values")

        testList "a malformed adapter folder is refused, naming the file and the field or tensor" [
            for name, field, value, fragment in
                [ "another PEFT method", "peft_type", JsonValue.Create "IA3" :> JsonNode, "peft_type"
                  "DoRA", "use_dora", JsonValue.Create true, "use_dora"
                  "trained biases", "bias", JsonValue.Create "all", "bias"
                  "no rank", "r", null, "'r'"
                  "a fractional rank", "r", JsonValue.Create 2.5, "'r'"
                  "an unknown target", "target_modules", JsonArray(JsonValue.Create "q_proj", JsonValue.Create "fc1"), "'fc1'"
                  "modules to save", "modules_to_save", JsonArray(JsonValue.Create "lm_head"), "modules_to_save"
                  "a rank pattern", "rank_pattern", JsonObject(dict [ "q_proj", JsonValue.Create 4 :> JsonNode ]), "rank_pattern" ] do
                testCase name <| fun () ->
                    use model = fixtureModel ()
                    use adapters = LoraAdapters.Attach(model, fixtureSettings (), 1L)
                    withTemp (fun dir ->
                        PeftAdapterFolder.Save(dir, adapters, "BASE")
                        withField dir field value
                        let e = Expect.throwsC (fun () -> PeftAdapterConfig.Read dir |> ignore) id
                        Expect.isTrue (e :? CheckpointFormatException) "a checkpoint format error"
                        Expect.stringContains e.Message PeftAdapterConfig.FileName "names the file"
                        Expect.stringContains e.Message fragment "names the field")
            testCase "missing, misshapen and unknown tensors" <| fun () ->
                use model = fixtureModel ()
                use adapters = LoraAdapters.Attach(model, fixtureSettings (), 1L)
                withTemp (fun dir ->
                    let weights = Path.Combine(dir, PeftAdapterFolder.WeightsFile)
                    let tensors = PeftAdapterFolder.Tensors adapters |> Seq.map (fun struct (n, t) -> n, t) |> List.ofSeq
                    let write (entries: (string * torch.Tensor) list) =
                        SafeTensorsFile.Write(weights, entries |> Seq.map (fun (n, t) -> struct (n, t)))
                    let refused (fragment: string) =
                        let e = Expect.throwsC (fun () -> PeftAdapterFolder.Load(dir, adapters)) id
                        Expect.stringContains e.Message PeftAdapterFolder.WeightsFile "names the file"
                        Expect.stringContains e.Message fragment "names the tensor"
                    let first = fst tensors.Head
                    write tensors.Tail
                    refused $"missing tensor '{first}'"
                    use wrong = torch.zeros(3L, 3L)
                    write ((first, wrong) :: tensors.Tail)
                    refused $"'{first}' has shape [3, 3]"
                    use extra = torch.zeros(2L)
                    write (("base_model.model.lm_head.lora_A.weight", extra) :: tensors)
                    refused "unknown tensor 'base_model.model.lm_head.lora_A.weight'")
        ]

        testCase "export --merge writes a model folder that loads with --model and gives the adapted logits" <| fun () ->
            withTemp (fun dir ->
                let tokenizer = CharTokenizer()
                use model = randomModel (tinyConfig () |> fun c -> ModelConfig(VocabSize = tokenizer.VocabSize, HiddenSize = c.HiddenSize, IntermediateSize = c.IntermediateSize,
                                                                              NumHiddenLayers = c.NumHiddenLayers, NumAttentionHeads = c.NumAttentionHeads,
                                                                              NumKeyValueHeads = c.NumKeyValueHeads, MaxPositionEmbeddings = 64)) 8 ScalarType.Float32
                let baseFolder = Path.Combine(dir, "base")
                ModelFactory.Save(model, tokenizer, baseFolder, null)
                use adapters = LoraAdapters.Attach(model, allLinear 4, 2L)
                randomizeB adapters 3
                let adapterFolder = Path.Combine(dir, "adapter")
                PeftAdapterFolder.Save(adapterFolder, adapters, baseFolder)
                let merged = Path.Combine(dir, "merged")
                Expect.equal (MergedExport.Run(adapterFolder, null, merged)) baseFolder "the adapter's base_model_name_or_path"
                for file in [ HfCheckpoint.ConfigFile; HfCheckpoint.SingleFile ] do
                    Expect.isTrue (File.Exists(Path.Combine(merged, file))) file
                let struct (loaded, _) = ModelFactory.Load(merged, torch.CPU, Nullable())
                use _ = loaded
                use input = ids ()
                Expect.isTrue (allClose Accuracy.engine32 (logitsOf loaded input) (logitsOf model input)) "merged logits = base + adapter"
                Expect.throws (fun () -> MergedExport.Run(adapterFolder, null, merged) |> ignore) "an existing output folder is refused")
    ]
