/// HfBpeTokenizer against Hugging Face's own tokenizer (the Rust `tokenizers` library through the test-only
/// NuGet package Tokenizers.DotNet) on the real Qwen tokenizer.json from the fetched cache: the same ids for
/// fuzzed text mixing ASCII, digits, whitespace runs, punctuation, CJK, combining marks, characters outside the
/// BMP (math alphanumerics, emoji with ZWJ sequences, flags, skin tones) and added-token strings, and the same
/// text back from those ids.
module Popo.Tests.Engine.TokenizerFidelity

open System
open System.IO
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open Popo.Engine.Tokenizers

let private folder () = TokenizerCache.qwen3 ()
let private ours = lazy (HfBpeTokenizer.Load(folder ()))
let private reference = lazy (new Tokenizers.DotNet.Tokenizer(Path.Combine(folder (), "tokenizer.json")))

let private hfEncode (text: string) = reference.Value.Encode text |> Array.map int
/// Tokenizers.DotNet decodes with skip_special_tokens = true, so it is compared with our decode that skips them.
let private hfDecode (ids: int[]) = reference.Value.Decode(ids |> Array.map uint32)
let private ourDecode (ids: int[]) = ours.Value.Decode(ids, skipSpecialTokens = true)

/// Code points as strings (so generators never split a surrogate pair).
let private cp (c: int) = Char.ConvertFromUtf32 c

let private pieces =
    [ // ASCII words, contractions and case
      Gen.elements [ "the"; "Value"; "x"; "HTTP"; "it's"; "we'll"; "I'M"; "don't"; "'s"; "abc123"; "_id"; "foo.bar" ]
      Gen.choose (0, 99999) |> Gen.map string
      // whitespace runs and line ends
      Gen.elements [ " "; "  "; "   "; "\t"; "\n"; "\n\n"; "\r\n"; " \n"; "\n  "; "\u00A0"; "\u3000"; "\u2028" ]
      Gen.elements [ "."; ","; "!"; "?"; "'"; "\""; "("; ")"; "{"; "}"; "$"; "\\"; "+"; "="; "->"; "..."; "—"; "«"; "»"; "¿" ]
      // CJK and other scripts
      Gen.choose (0x4E00, 0x9FFF) |> Gen.map cp
      Gen.elements [ "数学"; "こんにちは"; "한국어"; "Привет"; "مرحبا"; "नमस्ते"; "ไทย" ]
      // combining marks (decomposed and stacked)
      Gen.elements [ "e\u0301"; "a\u0308"; "n\u0303"; "\u0301"; "o\u0302\u0323"; "क\u094D\u0937" ]
      // outside the BMP: math alphanumerics (letters and digits), emoji, symbols
      Gen.choose (0x1D400, 0x1D7FF) |> Gen.map cp
      Gen.choose (0x1F300, 0x1FAFF) |> Gen.map cp
      Gen.elements [ "𝑥"; "𝑦"; "𝟏𝟐"; "😀"; "👩‍👩‍👧"; "👍🏽"; "🇫🇷"; "🧮"; "𐍈"; "𓂀"; "🏳️‍🌈"; "𝔘𝔫𝔦" ]
      // added tokens, special (<|im_end|>) and not (<think>)
      Gen.elements [ "<think>"; "</think>"; "<tool_call>"; "</tool_call>"; "<|im_start|>"; "<|im_end|>"; "<|endoftext|>"; "<tool_response>" ] ]

let private textGen =
    Gen.oneof pieces |> Gen.listOf |> Gen.map (String.concat "")

/// Strings that split differently from Hugging Face before the code-point pre-tokenizer (pinned regressions).
let private pinned =
    [ "𝑥's value"
      "Let 𝑥 = 3"
      "𝑥𝑦 and 𝟏𝟐3"
      "🧮abc"
      "a😀b"
      "👩‍👩‍👧 family"
      "𝑥\n\n𝑦"
      "x² + 𝑦² = 𝑧²"
      "  🇫🇷  "
      "'𝑠 'S 'll"
      "<think>\n𝑥\n</think>\n\n𝑥"
      "😀😀😀123" ]

let private sameAsHf (text: string) =
    let hf = hfEncode text
    let mine = ours.Value.Encode text
    mine = hf && ourDecode mine = hfDecode hf

let private config = { FsCheckConfig.defaultConfig with maxTest = 2000 }

[<Tests>]
let tests =
    testList "Engine.TokenizerFidelity" [
        test "Hugging Face's reference tokenizer loads and encodes the real Qwen tokenizer" {
            Expect.equal (hfEncode "Hello world") [| 9707; 1879 |] "the reference encodes a known pair"
        }
        test "pinned strings that split differently before encode to Hugging Face's ids" {
            for s in pinned do
                Expect.equal (ours.Value.Encode s) (hfEncode s) (sprintf "ids of %A" s)
                Expect.equal (ourDecode (ours.Value.Encode s)) (hfDecode (hfEncode s)) (sprintf "decode of %A" s)
        }
        testPropertyWithConfig config "fuzzed text encodes to Hugging Face's ids and decodes to Hugging Face's text" <|
            Prop.forAll (Arb.fromGen textGen) sameAsHf
        testPropertyWithConfig config "NFC-normalised fuzzed text encodes to Hugging Face's ids too" <|
            Prop.forAll (Arb.fromGen (textGen |> Gen.map (fun s -> s.Normalize NormalizationForm.FormC))) sameAsHf
        test "the reference drops special added tokens and keeps the others when decoding" {
            Expect.equal (hfDecode (hfEncode "<|im_start|>a<think>b</think><|im_end|>")) "a<think>b</think>" "Hugging Face's skip_special_tokens behaviour"
        }
        test "decoding keeps non-special added tokens (<think>, <tool_call>) and drops special ones when skipping specials" {
            let ids = ours.Value.Encode "<|im_start|>assistant\n<think>\nhm\n</think>\n\n<tool_call>x</tool_call><|im_end|>"
            Expect.equal (ours.Value.Decode(ids, skipSpecialTokens = true)) "assistant\n<think>\nhm\n</think>\n\n<tool_call>x</tool_call>" "only <|im_start|> and <|im_end|> dropped"
            Expect.equal (ours.Value.Decode(ids, skipSpecialTokens = false)) "<|im_start|>assistant\n<think>\nhm\n</think>\n\n<tool_call>x</tool_call><|im_end|>" "everything kept"
        }
        testPropertyWithConfig { config with maxTest = 500 } "decoding random id sequences gives Hugging Face's text" <|
            Prop.forAll (Arb.fromGen (Gen.choose (0, 151668) |> Gen.arrayOf)) (fun ids ->
                ourDecode ids = hfDecode ids)
    ]
