using Popo.Engine.Configuration;
using Popo.Engine.Rollout;
using Popo.Engine.Tokenizers;

namespace Popo.Engine.Training;

/// <summary>The sampling and prompt options a run's keys give, built here once for the trainer, the preflight and `popo eval`.</summary>
internal static class RunOptions
{
    /// <summary>`temperature`, `top_p`, `top_k`, `max_new_tokens`, `share_prompt_prefill`, `compact_finished_rows`, with the tokenizer's pad id.</summary>
    public static SamplerOptions Sampling(TrainConfig c, ITokenizer tokenizer) => new()
    {
        Temperature = c.Temperature, TopP = c.TopP, TopK = c.TopK, MaxNewTokens = c.MaxNewTokens, PadId = tokenizer.PadId,
        SharePromptPrefill = c.SharePromptPrefill, CompactFinishedRows = c.CompactFinishedRows,
    };

    /// <summary>`system_prompt` and `enable_thinking` over the tokenizer (and the model folder's chat template); prompts cut to their last <paramref name="truncateTo"/> tokens when given.</summary>
    public static PromptFormat Prompts(TrainConfig c, ITokenizer tokenizer, int? truncateTo = null) =>
        new(tokenizer, c.SystemPrompt, c.EnableThinking) { TruncateTo = truncateTo };
}
