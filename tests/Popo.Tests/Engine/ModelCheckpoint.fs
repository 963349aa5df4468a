/// Hugging Face checkpoint folders: save -> load round trips and every malformed-input error (docs/design.md §6).
module Popo.Tests.Engine.ModelCheckpoint

open System
open System.IO
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open Popo.Engine.Model
open Popo.Engine.Checkpoints
open Popo.Engine.Runtime
open Popo.Tests.Engine.ModelFixtures

let private withFolder f =
    let dir = Path.Combine(Path.GetTempPath(), "popo-ckpt-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory dir |> ignore
    try f dir finally Directory.Delete(dir, true)

let private tiny tied =
    ModelConfig(
        VocabSize = 11, HiddenSize = 8, IntermediateSize = 12, NumHiddenLayers = 2,
        NumAttentionHeads = 2, NumKeyValueHeads = 1, TieWordEmbeddings = tied)

let private logitsOf (model: Qwen2ForCausalLM) (vocab: int) =
    use scope = torch.NewDisposeScope()
    let ids, mask = leftPad 0 [| [| 1; 0; 1; 1; 0 |] |> Array.map (fun i -> i % vocab); [| 1 % vocab; 0 |] |]
    use out = model.Forward(ids, mask)
    out.Logits.detach().cpu().to_type(torch.ScalarType.Float64).data<float>().ToArray()

/// Writes a raw safetensors file: 8-byte little-endian header length, header text, data bytes.
let private rawSafetensors (path: string) (header: string) (data: byte[]) =
    let h = Encoding.UTF8.GetBytes header
    use f = File.Create path
    f.Write(BitConverter.GetBytes(uint64 h.Length), 0, 8)
    f.Write(h, 0, h.Length)
    f.Write(data, 0, data.Length)

/// Runs `action`, expects a CheckpointFormatException or ModelConfigException containing every fragment.
let private expectError (fragments: string list) (action: unit -> unit) =
    let message =
        try
            action ()
            failtest "expected a checkpoint error, got none"
        with
        | :? CheckpointFormatException as e -> e.Message
        | :? ModelConfigException as e -> e.Message
    for f in fragments do
        Expect.stringContains message f "the error message names it"

/// Saves a tiny float32 model, rewrites its weight file through `edit`, then loads the folder.
let private loadEdited (edit: (string * torch.Tensor) list -> (string * torch.Tensor) list) (dir: string) =
    use model = new Qwen2ForCausalLM(tiny false, torch.CPU, torch.ScalarType.Float32)
    HfCheckpoint.Save(model, dir)
    let tensors = model.NamedParameters() |> Seq.map (fun struct (n, p) -> n, p.detach()) |> List.ofSeq
    SafeTensorsFile.Write(Path.Combine(dir, HfCheckpoint.SingleFile), edit tensors |> Seq.map (fun (n, t) -> struct (n, t)))
    use loaded = HfCheckpoint.Load(dir, torch.CPU)
    ()

let private roundTrip (sharded: bool) (case: TinyModel) =
    withFolder (fun dir ->
        use model = randomModel case.Config case.Seed torch.ScalarType.Float32
        let total = model.NamedParameters() |> Seq.sumBy (fun struct (_, p) -> p.numel() * 4L)
        let limit = if sharded then Nullable(max 1L (total / 3L)) else Nullable()
        HfCheckpoint.Save(model, dir, maxShardBytes = limit)
        use loaded = HfCheckpoint.Load(dir, torch.CPU)
        let v = case.Config.VocabSize
        logitsOf loaded v = logitsOf model v
        && File.Exists(Path.Combine(dir, HfCheckpoint.IndexFile)) = sharded
        && File.Exists(Path.Combine(dir, HfCheckpoint.SingleFile)) = not sharded
        && loaded.Config = case.Config
        && (loaded.NamedParameters() |> Seq.map (fun struct (n, _) -> n) |> Set.ofSeq)
           = (model.NamedParameters() |> Seq.map (fun struct (n, _) -> n) |> Set.ofSeq))

let private smallRuns = { FsCheckConfig.defaultConfig with maxTest = 25 }

let private header (entries: string) = "{\"__metadata__\":{\"format\":\"pt\"}," + entries + "}"

[<Tests>]
let tests =
    testList "engine/model/checkpoint" [
        testPropertyWithConfig smallRuns "save then load gives identical logits, single file" <|
            Prop.forAll (Arb.fromGen tinyModelGen) (roundTrip false)
        testPropertyWithConfig smallRuns "save then load gives identical logits, sharded with an index" <|
            Prop.forAll (Arb.fromGen tinyModelGen) (roundTrip true)

        test "a tied model saves no lm_head and reloads tied" {
            withFolder (fun dir ->
                use model = new Qwen2ForCausalLM(tiny true, torch.CPU, torch.ScalarType.Float32)
                HfCheckpoint.Save(model, dir)
                let file = SafeTensorsFile.Open(Path.Combine(dir, HfCheckpoint.SingleFile))
                Expect.isFalse (file.Tensors.ContainsKey "lm_head.weight") "no lm_head tensor"
                Expect.equal file.Metadata.["format"] "pt" "transformers needs format = pt"
                use loaded = HfCheckpoint.Load(dir, torch.CPU)
                Expect.isTrue loaded.Config.TieWordEmbeddings "tied"
                Expect.equal (logitsOf loaded 11) (logitsOf model 11) "same logits")
        }
        test "a tied checkpoint carrying a copy of the embedding as lm_head loads" {
            withFolder (fun dir ->
                use model = new Qwen2ForCausalLM(tiny true, torch.CPU, torch.ScalarType.Float32)
                HfCheckpoint.Save(model, dir)
                let tensors = model.NamedParameters() |> Seq.map (fun struct (n, p) -> struct (n, p.detach())) |> List.ofSeq
                let embed = tensors |> List.pick (fun struct (n, t) -> if n = "model.embed_tokens.weight" then Some t else None)
                SafeTensorsFile.Write(Path.Combine(dir, HfCheckpoint.SingleFile), struct ("lm_head.weight", embed) :: tensors)
                use loaded = HfCheckpoint.Load(dir, torch.CPU)
                Expect.equal (logitsOf loaded 11) (logitsOf model 11) "same logits")
        }
        test "bfloat16 storage loads into float32 as the rounded weights" {
            withFolder (fun dir ->
                use model = new Qwen2ForCausalLM(tiny false, torch.CPU, torch.ScalarType.Float32)
                HfCheckpoint.Save(model, dir, dtype = torch.ScalarType.BFloat16)
                let config = ModelConfig.Load(Path.Combine(dir, HfCheckpoint.ConfigFile))
                Expect.equal config.TorchDtype "bfloat16" "config records the stored dtype"
                use loaded = HfCheckpoint.Load(dir, torch.CPU, torch.ScalarType.Float32)
                for struct (name, p) in model.NamedParameters() do
                    let q = loaded.NamedParameters() |> Seq.pick (fun struct (n, t) -> if n = name then Some t else None)
                    use rounded = p.detach().to_type(torch.ScalarType.BFloat16).to_type(torch.ScalarType.Float32)
                    Expect.isTrue (q.equal(rounded).all().item<bool>()) $"{name} is its bfloat16 rounding")
        }
        test "a bfloat16 model runs and its logits are close to float32's" {
            use model = randomModel (tiny false) 3 torch.ScalarType.Float32
            use half = model.Clone(dtype = torch.ScalarType.BFloat16)
            let a, b = logitsOf model 11, logitsOf half 11
            Expect.isTrue (Array.forall2 (fun x y -> abs (x - y) <= 0.1 * max 1.0 (abs x)) a b) "bfloat16 within 10%"
        }

        test "an unknown tensor name is reported with the file and tensor" {
            withFolder (fun dir ->
                expectError [ "model.safetensors"; "model.layers.0.self_attn.rotary.weight"; "unknown" ] (fun () ->
                    loadEdited (fun ts -> ("model.layers.0.self_attn.rotary.weight", torch.zeros(2L)) :: ts) dir))
        }
        test "a missing tensor is reported by name" {
            withFolder (fun dir ->
                expectError [ "missing"; "model.layers.1.mlp.up_proj.weight" ] (fun () ->
                    loadEdited (List.filter (fun (n, _) -> n <> "model.layers.1.mlp.up_proj.weight")) dir))
        }
        test "a shape mismatch is reported with file, tensor and both shapes" {
            withFolder (fun dir ->
                expectError [ "model.safetensors"; "model.norm.weight"; "[9]"; "[8]" ] (fun () ->
                    loadEdited (List.map (fun (n, t) -> if n = "model.norm.weight" then n, torch.ones(9L) else n, t)) dir))
        }
        test "an integer tensor where a weight belongs is a wrong-dtype error" {
            withFolder (fun dir ->
                expectError [ "model.safetensors"; "model.norm.weight"; "I64" ] (fun () ->
                    loadEdited (List.map (fun (n, t) -> if n = "model.norm.weight" then n, torch.ones(8L, dtype = torch.ScalarType.Int64) else n, t)) dir))
        }
        test "a truncated weight file is reported as truncated" {
            withFolder (fun dir ->
                use model = new Qwen2ForCausalLM(tiny false, torch.CPU, torch.ScalarType.Float32)
                HfCheckpoint.Save(model, dir)
                let file = Path.Combine(dir, HfCheckpoint.SingleFile)
                let bytes = File.ReadAllBytes file
                File.WriteAllBytes(file, bytes.[.. bytes.Length - 5])
                expectError [ "model.safetensors"; "truncated" ] (fun () -> HfCheckpoint.Load(dir, torch.CPU).Dispose()))
        }
        test "a header length beyond the file is rejected before allocating" {
            withFolder (fun dir ->
                let file = Path.Combine(dir, "x.safetensors")
                File.WriteAllBytes(file, Array.append (BitConverter.GetBytes(uint64 (1L <<< 40))) (Array.zeroCreate 16))
                expectError [ "x.safetensors"; "header length" ] (fun () -> SafeTensorsFile.Open file |> ignore))
        }
        test "a header length just past the end of the file is truncation" {
            withFolder (fun dir ->
                let file = Path.Combine(dir, "x.safetensors")
                File.WriteAllBytes(file, Array.append (BitConverter.GetBytes(100UL)) (Array.zeroCreate 16))
                expectError [ "x.safetensors"; "truncated" ] (fun () -> SafeTensorsFile.Open file |> ignore))
        }
        test "offsets outside the data section are rejected" {
            withFolder (fun dir ->
                let file = Path.Combine(dir, "x.safetensors")
                rawSafetensors file (header "\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}") (Array.zeroCreate 8)
                expectError [ "x.safetensors"; "'a'"; "data_offsets" ] (fun () -> SafeTensorsFile.Open file |> ignore))
        }
        test "overlapping tensors are rejected" {
            withFolder (fun dir ->
                let file = Path.Combine(dir, "x.safetensors")
                rawSafetensors file
                    (header "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}")
                    (Array.zeroCreate 12)
                expectError [ "x.safetensors"; "'b'"; "overlap" ] (fun () -> SafeTensorsFile.Open file |> ignore))
        }
        test "an unknown dtype is rejected" {
            withFolder (fun dir ->
                let file = Path.Combine(dir, "x.safetensors")
                rawSafetensors file (header "\"a\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,16]}") (Array.zeroCreate 16)
                expectError [ "x.safetensors"; "'a'"; "F128" ] (fun () -> SafeTensorsFile.Open file |> ignore))
        }
        test "a byte range that does not match dtype times shape is rejected" {
            withFolder (fun dir ->
                let file = Path.Combine(dir, "x.safetensors")
                rawSafetensors file (header "\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}") (Array.zeroCreate 8)
                expectError [ "x.safetensors"; "'a'"; "12 bytes" ] (fun () -> SafeTensorsFile.Open file |> ignore))
        }
        test "a header that is not JSON is rejected" {
            withFolder (fun dir ->
                let file = Path.Combine(dir, "x.safetensors")
                rawSafetensors file "{not json" [||]
                expectError [ "x.safetensors"; "JSON" ] (fun () -> SafeTensorsFile.Open file |> ignore))
        }
        test "an unsupported architecture is reported with the file and field" {
            withFolder (fun dir ->
                use model = new Qwen2ForCausalLM(tiny false, torch.CPU, torch.ScalarType.Float32)
                HfCheckpoint.Save(model, dir)
                let path = Path.Combine(dir, HfCheckpoint.ConfigFile)
                File.WriteAllText(path, File.ReadAllText(path).Replace("Qwen2ForCausalLM", "LlamaForCausalLM"))
                expectError [ "config.json"; "architectures"; "LlamaForCausalLM" ] (fun () -> HfCheckpoint.Load(dir, torch.CPU).Dispose()))
        }
        test "a config.json without hidden_size names the field" {
            withFolder (fun dir ->
                let path = Path.Combine(dir, HfCheckpoint.ConfigFile)
                File.WriteAllText(path, """{"vocab_size": 4, "intermediate_size": 4, "num_hidden_layers": 1, "num_attention_heads": 1}""")
                expectError [ "config.json"; "'hidden_size'"; "missing" ] (fun () -> ModelConfig.Load path |> ignore))
        }
        test "a config.json field of the wrong type names the field" {
            withFolder (fun dir ->
                let path = Path.Combine(dir, HfCheckpoint.ConfigFile)
                File.WriteAllText(path, """{"vocab_size": "big", "hidden_size": 4, "intermediate_size": 4, "num_hidden_layers": 1, "num_attention_heads": 1}""")
                expectError [ "config.json"; "'vocab_size'"; "integer" ] (fun () -> ModelConfig.Load path |> ignore))
        }
        test "a pickled checkpoint is refused, not loaded" {
            withFolder (fun dir ->
                use model = new Qwen2ForCausalLM(tiny false, torch.CPU, torch.ScalarType.Float32)
                HfCheckpoint.Save(model, dir)
                File.Move(Path.Combine(dir, HfCheckpoint.SingleFile), Path.Combine(dir, "pytorch_model.bin"))
                expectError [ "pytorch_model.bin"; "pickle" ] (fun () -> HfCheckpoint.Load(dir, torch.CPU).Dispose()))
        }
        test "an index naming a missing shard is reported with the shard and tensor" {
            withFolder (fun dir ->
                use model = new Qwen2ForCausalLM(tiny false, torch.CPU, torch.ScalarType.Float32)
                HfCheckpoint.Save(model, dir, maxShardBytes = Nullable 200L)
                let shard = Directory.GetFiles(dir, "model-00002-*.safetensors") |> Array.exactlyOne
                File.Delete shard
                expectError [ Path.GetFileName shard; "not found" ] (fun () -> HfCheckpoint.Load(dir, torch.CPU).Dispose()))
        }
        test "a shard holding a tensor the index assigns elsewhere is reported" {
            withFolder (fun dir ->
                use model = new Qwen2ForCausalLM(tiny false, torch.CPU, torch.ScalarType.Float32)
                HfCheckpoint.Save(model, dir, maxShardBytes = Nullable 200L)
                let first = Directory.GetFiles(dir, "model-00001-*.safetensors") |> Array.exactlyOne
                let st = SafeTensorsFile.Open first
                let tensors = st.Tensors.Keys |> Seq.map (fun n -> struct (n, st.Read n)) |> List.ofSeq
                SafeTensorsFile.Write(first, struct ("model.extra.weight", torch.zeros(1L)) :: tensors)
                expectError [ Path.GetFileName first; "model.extra.weight"; "index" ] (fun () -> HfCheckpoint.Load(dir, torch.CPU).Dispose()))
        }
        test "saving leaves no temporary files behind" {
            withFolder (fun dir ->
                use model = new Qwen2ForCausalLM(tiny false, torch.CPU, torch.ScalarType.Float32)
                HfCheckpoint.Save(model, dir)
                HfCheckpoint.Save(model, dir, maxShardBytes = Nullable 200L)
                let files = Directory.GetFiles dir |> Array.map Path.GetFileName |> Set.ofArray
                Expect.isTrue (files |> Set.forall (fun f -> not (f.EndsWith ".tmp"))) "no .tmp files"
                Expect.isFalse (files.Contains HfCheckpoint.SingleFile) "the single file was replaced by shards")
        }
        test "config.json round-trips through Save and Load" {
            withFolder (fun dir ->
                let path = Path.Combine(dir, HfCheckpoint.ConfigFile)
                let config = ModelConfig(VocabSize = 7, HiddenSize = 12, IntermediateSize = 5, NumHiddenLayers = 3, NumAttentionHeads = 3, NumKeyValueHeads = 1,
                                         RopeTheta = 1e6, RmsNormEps = 1e-5, TieWordEmbeddings = true, TorchDtype = "bfloat16", BosTokenId = Nullable 1, EosTokenId = Nullable 2)
                config.Save path
                Expect.equal (ModelConfig.Load path) config "same config")
        }
        test "config.json accepts an eos_token_id list and the newer dtype key" {
            withFolder (fun dir ->
                let path = Path.Combine(dir, HfCheckpoint.ConfigFile)
                File.WriteAllText(path, """{"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","vocab_size":8,"hidden_size":4,"intermediate_size":4,
                    "num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1,"eos_token_id":[5,6],"dtype":"bfloat16"}""")
                let config = ModelConfig.Load path
                Expect.equal (config.EosTokenId, config.TorchDtype) (Nullable 5, "bfloat16") "first eos, dtype")
        }
        test "a clone has the same logits and its own parameters" {
            use model = randomModel (tiny false) 4 torch.ScalarType.Float32
            use clone = model.Clone()
            Expect.equal (logitsOf clone 11) (logitsOf model 11) "same logits"
            do
                use noGrad = torch.no_grad ()
                for struct (_, p) in clone.NamedParameters() do p.add_(torch.tensor 1.0f) |> ignore
            Expect.notEqual (logitsOf clone 11) (logitsOf model 11) "changing the clone leaves the original"
            use wide = model.Clone(dtype = torch.ScalarType.Float64)
            Expect.isTrue (Array.forall2 (fun a b -> Popo.Tests.Accuracy.close Popo.Tests.Accuracy.engine32 a b) (logitsOf wide 11) (logitsOf model 11)) "float64 copy agrees"
        }
    ]
