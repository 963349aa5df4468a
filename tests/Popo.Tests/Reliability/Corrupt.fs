/// Corrupt inputs through the `popo` command (issue 10): each gives an error naming the file and what is
/// wrong, a non-zero exit, and touches nothing: a fresh --out is not created, an existing one keeps its
/// files byte for byte, and a run that cannot resume keeps its logs and checkpoints. Parser-level detail
/// (each message's exact wording) is in Engine/ModelCheckpoint.fs, ModelTokenizer.fs and Dataset.fs.
module Popo.Tests.Reliability.Corrupt

open System
open System.IO
open System.Text
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open Popo.Engine.Checkpoints
open Popo.Engine.Model
open Popo.Engine.Training
open Popo.Tests.Cli.TrainCli
open Popo.Tests.Reliability.Harness

/// Every file under a folder with its bytes, by relative path.
let private snapshot (folder: string) =
    Directory.GetFiles(folder, "*", SearchOption.AllDirectories)
    |> Array.sort
    |> Array.map (fun f -> Path.GetRelativePath(folder, f), File.ReadAllBytes f)

/// A built-in model saved as a `--model` folder (config.json, model.safetensors, popo_tokenizer.json).
let private modelFolder (root: string) =
    let folder = Path.Combine(root, "model")
    let config = flagConfig [ [ "--hidden-size"; "16" ]; [ "--layers"; "1" ]; [ "--heads"; "2" ]; [ "--kv-heads"; "1" ]; [ "--intermediate-size"; "32" ] ]
    let struct (model, tokenizer) = ModelFactory.Create(config, torch.CPU)
    use _ = model
    ModelFactory.Save(model, tokenizer, folder, null)
    folder

/// Rewrites a safetensors header through `edit`, keeping the data bytes.
let private editHeader (file: string) (edit: JsonObject -> unit) =
    let bytes = File.ReadAllBytes file
    let n = int (BitConverter.ToUInt64(bytes, 0))
    let header = JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, n)).AsObject()
    edit header
    let text = Encoding.UTF8.GetBytes(header.ToJsonString())
    File.WriteAllBytes(file, Array.concat [ BitConverter.GetBytes(uint64 text.Length); text; bytes.[8 + n ..] ])

let private tensor (header: JsonObject) (name: string) : JsonObject = header.[name].AsObject()
let private offsets (header: JsonObject) (name: string) : JsonArray = (tensor header name).["data_offsets"].AsArray()
let private setOffsets (header: JsonObject) (name: string) (b: int64) (e: int64) =
    (tensor header name).["data_offsets"] <- JsonArray(JsonValue.Create b, JsonValue.Create e)

let private editJson (file: string) (edit: JsonObject -> unit) =
    let o = JsonNode.Parse(File.ReadAllText file).AsObject()
    edit o
    File.WriteAllText(file, o.ToJsonString())

/// `popo train` with `args` twice: into a fresh --out (must not be created) and into an existing folder
/// holding a file (must stay as it was). Both exit with `code`, stderr holding every fragment.
let private refused (code: int) (fragments: string list) (root: string) (args: string list) =
    let fresh = Path.Combine(root, "fresh")
    let exit, stderr = popoStderr ([ "train"; "--out"; fresh ] @ args)
    Expect.equal exit code $"exit code (stderr: {stderr})"
    for f in fragments do Expect.stringContains stderr f "the error names the file and what is wrong"
    Expect.isFalse (Directory.Exists fresh) "no output folder created"
    let existing = Path.Combine(root, "existing")
    Directory.CreateDirectory existing |> ignore
    File.WriteAllText(Path.Combine(existing, "keep.txt"), "precious")
    Expect.equal (fst (popoStderr ([ "train"; "--out"; existing ] @ args))) code "exit code into an existing folder"
    Expect.sequenceEqual (snapshot existing |> Array.map (fun (p, b) -> p, Encoding.UTF8.GetString b)) [ "keep.txt", "precious" ] "existing folder untouched"

let private short = [ "--steps"; "2"; "--sft-steps"; "0"; "--threads"; "1"; "--eval-problems"; "2" ]

/// A corrupted `--model` folder.
let private badModel (fragments: string list) (corrupt: string -> unit) =
    withTemp (fun root ->
        let model = modelFolder root
        corrupt model
        refused 1 fragments root ([ "--model"; model ] @ short))

let private weights model = Path.Combine(model, HfCheckpoint.SingleFile)

/// A run stopped after its step-2 checkpoint, then a corruption of that checkpoint; --resume must fail
/// naming the file and leave every file of the run as it was.
let private badResume (fragments: string list) (corrupt: string -> unit) =
    withTemp (fun root ->
        let run = Path.Combine(root, "run")
        let flags = tinyFlags run |> List.chunkBySize 2 |> List.map (function [ "--save-every"; _ ] -> [ "--save-every"; "1" ] | p -> p)
        // Only the simulated crash may stop the first run: any other failure is this test's real finding.
        let crash = Expect.throwsC (fun () -> Trainer.Start(flagConfig flags, Recorder(crashAt = 3)) |> ignore) id
        Expect.equal crash.Message "simulated crash" $"stopped at step 3 by the simulated crash, not by: {crash}"
        corrupt (TrainingCheckpoint.FolderFor(run, 2))
        let before = snapshot run
        let code, stderr = popoStderr [ "train"; "--resume"; run ]
        Expect.equal code 1 $"exit code (stderr: {stderr})"
        for f in fragments do Expect.stringContains stderr f "the error names the file and what is wrong"
        Expect.isTrue (snapshot run = before) "every file of the run unchanged (logs not cut back, no checkpoint touched)")

[<Tests>]
let tests =
    testSequenced <| testList "reliability/corrupt" [
        testList "a corrupt --model folder is refused before any output is written" [
            testCase "safetensors header length beyond the file" <| fun () ->
                badModel [ "model.safetensors"; "header length" ] (fun m ->
                    let bytes = File.ReadAllBytes(weights m)
                    File.WriteAllBytes(weights m, Array.append (BitConverter.GetBytes(uint64 bytes.Length)) bytes.[8..]))
            testCase "truncated safetensors" <| fun () ->
                badModel [ "model.safetensors"; "truncated" ] (fun m ->
                    let bytes = File.ReadAllBytes(weights m)
                    File.WriteAllBytes(weights m, bytes.[.. bytes.Length - 100]))
            testCase "a bit flip in the header" <| fun () ->
                badModel [ "model.safetensors" ] (fun m ->
                    let bytes = File.ReadAllBytes(weights m)
                    bytes.[20] <- bytes.[20] ^^^ 0x80uy   // inside the JSON: invalid UTF-8
                    File.WriteAllBytes(weights m, bytes))
            testCase "tensor offsets out of range" <| fun () ->
                badModel [ "model.safetensors"; "'model.norm.weight'"; "data_offsets" ] (fun m ->
                    editHeader (weights m) (fun h ->
                        let o = offsets h "model.norm.weight"
                        setOffsets h "model.norm.weight" (o.[0].GetValue<int64>() + 1_000_000L) (o.[1].GetValue<int64>() + 1_000_000L)))
            testCase "overlapping tensors" <| fun () ->
                badModel [ "model.safetensors"; "overlap" ] (fun m ->
                    editHeader (weights m) (fun h ->
                        let o = offsets h "model.norm.weight"
                        setOffsets h "model.norm.weight" (o.[0].GetValue<int64>() - 4L) (o.[1].GetValue<int64>() - 4L)))
            testCase "an unknown dtype" <| fun () ->
                badModel [ "model.safetensors"; "'model.norm.weight'"; "F128" ] (fun m ->
                    editHeader (weights m) (fun h -> (tensor h "model.norm.weight").["dtype"] <- JsonValue.Create "F128"))
            testCase "an integer dtype where a float weight belongs" <| fun () ->
                badModel [ "model.safetensors"; "'model.norm.weight'"; "I32" ] (fun m ->
                    editHeader (weights m) (fun h -> (tensor h "model.norm.weight").["dtype"] <- JsonValue.Create "I32"))
            testCase "config.json with a field of the wrong type" <| fun () ->
                badModel [ "config.json"; "'vocab_size'" ] (fun m ->
                    editJson (Path.Combine(m, "config.json")) (fun o -> o.["vocab_size"] <- JsonValue.Create "ninety-nine"))
            testCase "config.json with a missing field" <| fun () ->
                badModel [ "config.json"; "'hidden_size'"; "missing" ] (fun m ->
                    editJson (Path.Combine(m, "config.json")) (fun o -> o.Remove "hidden_size" |> ignore))
            testCase "a tokenizer marker that does not parse" <| fun () ->
                badModel [ "popo_tokenizer.json"; "JSON" ] (fun m -> File.WriteAllText(Path.Combine(m, "popo_tokenizer.json"), "{\"type\": "))
            testCase "a tokenizer.json that does not parse" <| fun () ->
                badModel [ "tokenizer.json" ] (fun m ->
                    File.Delete(Path.Combine(m, "popo_tokenizer.json"))
                    File.WriteAllText(Path.Combine(m, "tokenizer.json"), "{\"model\": {\"type\": \"BPE\", \"vocab\": [1, 2"))
        ]

        testCase "a JSONL dataset with a bad line names file, line and field" <| fun () ->
            withTemp (fun root ->
                let data = Path.Combine(root, "data.jsonl")
                File.WriteAllLines(data, [ "{\"question\": \"1+1?\", \"answer\": \"#### 2\"}"; "{\"question\": \"2+2?\", \"answer\": 4}" ])
                refused 1 [ "data.jsonl:2"; "'answer'" ] root ([ "--dataset"; data; "--train-fraction"; "0.5" ] @ short))

        testCase "a config file with an unknown key is refused with a did-you-mean" <| fun () ->
            withTemp (fun root ->
                let file = Path.Combine(root, "run.toml")
                File.WriteAllText(file, "steps = 2\ngroup_sise = 8\n")
                refused 2 [ "run.toml"; "group_sise"; "did you mean 'group_size'" ] root [ "--config"; file ])

        testCase "prompts plus max_new_tokens longer than the built-in model's context are refused" <| fun () ->
            withTemp (fun root -> refused 1 [ "max_new_tokens = 1020"; "context of 1024"; "built-in model" ] root ([ "--max-new-tokens"; "1020" ] @ short))

        testCase "a dataset prompt longer than a model's max_position_embeddings names the file and problem" <| fun () ->
            withTemp (fun root ->
                let model = modelFolder root
                editJson (Path.Combine(model, "config.json")) (fun o -> o.["max_position_embeddings"] <- JsonValue.Create 100)
                let data = Path.Combine(root, "data.jsonl")
                File.WriteAllLines(data, [ "{\"question\": \"1+1?\", \"answer\": \"#### 2\"}"
                                           "{\"question\": \"" + String.replicate 10 "What is 1+1? " + "\", \"answer\": \"#### 2\"}" ])
                refused 1 [ "data.jsonl"; "problem data.jsonl:2"; "max_position_embeddings"; "config.json" ] root
                    ([ "--model"; model; "--dataset"; data; "--train-fraction"; "0.5"; "--max-new-tokens"; "8" ] @ short))

        testList "a corrupt last checkpoint stops --resume and changes nothing" [
            testCase "truncated optimizer state" <| fun () ->
                badResume [ "optimizer.bin" ] (fun ck ->
                    let f = Path.Combine(ck, "optimizer.bin")
                    File.WriteAllBytes(f, (File.ReadAllBytes f).[.. 99]))
            testCase "trainer_state.json that does not parse" <| fun () ->
                badResume [ "trainer_state.json"; "not a valid trainer state" ] (fun ck -> File.WriteAllText(Path.Combine(ck, "trainer_state.json"), "{\"Step\": "))
            testCase "truncated model weights" <| fun () ->
                badResume [ "step-2"; "model.safetensors"; "truncated" ] (fun ck ->
                    let f = Path.Combine(ck, "model", "model.safetensors")
                    File.WriteAllBytes(f, (File.ReadAllBytes f).[.. 999]))
        ]
    ]
