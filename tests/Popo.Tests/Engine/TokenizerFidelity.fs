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

/// Strings whose ids differed from Hugging Face's before the code-point pre-tokenizer (the first two from the
/// issue, the rest failing fuzz cases of the old .NET-regex pre-tokenizer): pinned regressions.
let private pinned =
    [ "\uD835\uDC65's value"
      "\uD835\uDC65\uD835\uDC66 and \uD835\uDFCF\uD835\uDFD03"
      "\u0301\uD835\uDF5A_id\r\n"
      "\u041F\u0440\u0438\u0432\u0435\u0442\uD83D\uDE7D\u6570\u5B66\n  "
      "\u1ED9\uD83C\uDFF3\uFE0F\u200D\uD83C\uDF08\uD835\uDC13   \uD835\uDFE3_id"
      "    \uD83E\uDDD0=.\uD835\uDF57_id\u6704\uD835\uDDE9\u9C0C\uD83D\uDC4D\uD83C\uDFFD"
      "\uD835\uDF80's\u3053\u3093\u306B\u3061\u306F23646\u2028<|im_end|>\u0301\uD83D\uDDDB"
      "\uD835\uDFCF\uD835\uDFD0\uD83D\uDC69\u200D\uD83D\uDC69\u200D\uD83D\uDC67\u5310\uD835\uDC65_id}"
      "<|im_end|>HTTPfoo.bar\uD83C\uDF37\uD835\uDE4E\uD835\uDF66,\uD835\uDDF9\uD835\uDC31's"
      "\uD835\uDE05\uD835\uDC65xI'MValue\u3000\n  \uD835\uDFCF\uD835\uDFD0foo.bar"
      "I'M\uD835\uDC66's\uD83D\uDC4D\uD83C\uDFFD\uD835\uDD2F40055+\uD835\uDFE9"
      "\u041F\u0440\u0438\u0432\u0435\u0442\u3000\uD835\uDD1A_id\u9358" ]

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
        test "pinned strings that split differently before the fix encode to Hugging Face's ids" {
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

