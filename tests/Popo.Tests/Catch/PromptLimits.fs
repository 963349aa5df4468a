/// Prompt limits at the boundary (issue 28, group 3): a prompt of exactly the limit passes and one token more is
/// overlong, for max_prompt_length and for the model's context minus max_new_tokens; truncation keeps a prompt's
/// LAST tokens (TRL's left truncation), so the chat template's generation prompt survives it.
module Popo.Tests.Catch.PromptLimits

open System
open Expecto
open Popo.Engine.Data
open Popo.Engine.Configuration
open Popo.Engine.Tasks
open Popo.Engine.Tokenizers
open Popo.Engine.Training

/// A dataset-like task whose problems are the given prompts (both splits alike).
type private Prompts(prompts: string list) =
    interface ITask with
        member _.Name = "prompts"
        member _.Count(_) = Nullable(int64 prompts.Length)
        member _.Get(_, i) = Problem(sprintf "p%d" i, prompts.[int (i % int64 prompts.Length)], "1", null)
        member _.Judge(_, _, _) = Judgement(0.0)

let private chars = CharTokenizer()
let private format = PromptFormat(chars)

/// Prompts whose token counts (BOS + one per character) are 5, 9 and 12.
let private task = Prompts [ "abcd"; "abcdefgh"; "abcdefghijk" ]
let private longest = 12

let private apply (config: TrainConfig) (context: int) = PromptLimit.Apply(task, format, config, context, "test context")

let private count (t: ITask) = (t.Count Split.Train).Value

[<Tests>]
let tests =
    testList "catch/prompt-limits" [
        test "the character prompts have the lengths the boundaries below assume" {
            Expect.equal [ for p in [ "abcd"; "abcdefgh"; "abcdefghijk" ] -> format.Prompt(Problem("p", p, "1", null)).Length ] [ 5; 9; 12 ] "BOS + characters"
        }

        test "a prompt of exactly max_prompt_length tokens passes; the limit one below makes it overlong" {
            let at = apply (TrainConfig(MaxPromptLength = longest, MaxNewTokens = 4)) 1000
            Expect.equal (at.Overlong, at.LongestPrompt, at.Limit) (0, longest, longest) "at the limit: no overlong prompt"
            Expect.isNull (box at.TruncateTo) "nothing to truncate"
            Expect.throwsT<ContextLengthException> (fun () -> apply (TrainConfig(MaxPromptLength = longest - 1, MaxNewTokens = 4)) 1000 |> ignore)
                "one token beyond: error (the default)"
            let cut = apply (TrainConfig(MaxPromptLength = longest - 1, MaxNewTokens = 4, OverlongPrompts = "truncate")) 1000
            Expect.equal (cut.Overlong, cut.TruncateTo) (2, Nullable(longest - 1)) "one beyond, in each split: truncated to the limit"
            let drop = apply (TrainConfig(MaxPromptLength = 9, MaxNewTokens = 4, OverlongPrompts = "drop")) 1000
            Expect.equal (drop.Overlong, count drop.Task) (2, 2L) "the 9-token prompt is kept, the 12-token one dropped"
        }

        test "a prompt of exactly context minus max_new_tokens passes; one token more of max_new_tokens makes it overlong" {
            let at = apply (TrainConfig(MaxPromptLength = 0, MaxNewTokens = 20)) (longest + 20)
            Expect.equal (at.Overlong, at.Limit) (0, longest) "room = context - max_new_tokens = the longest prompt"
            Expect.throwsT<ContextLengthException> (fun () -> apply (TrainConfig(MaxPromptLength = 0, MaxNewTokens = 21)) (longest + 20) |> ignore)
                "one token less room"
            let smaller = apply (TrainConfig(MaxPromptLength = 50, MaxNewTokens = 20)) (longest + 20)
            Expect.equal smaller.Limit longest "the smaller of max_prompt_length and the room"
        }

        test "truncation keeps the last tokens, the chat template's generation prompt included" {
            let qwen = TokenizerFolder.Load(Popo.Tests.Engine.TokenizerCache.folder "qwen3")
            let problem = Problem("p", String.replicate 30 "What is 1 + 1? ", "2", null)
            let full = PromptFormat(qwen).Prompt problem
            let k = 12
            let cut = PromptFormat(qwen, TruncateTo = Nullable k).Prompt problem
            Expect.isGreaterThan full.Length k "the prompt is longer than the limit"
            Expect.sequenceEqual cut full.[full.Length - k ..] "the last k tokens, in order"
            Expect.stringEnds (qwen.Decode cut) "<|im_end|>\n<|im_start|>assistant\n" "the generation prompt survives"
            let short = PromptFormat(qwen, TruncateTo = Nullable(full.Length)).Prompt problem
            Expect.sequenceEqual short full "a prompt at the limit is kept whole"
        }
    ]
