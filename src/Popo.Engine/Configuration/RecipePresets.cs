namespace Popo.Engine.Configuration;

/// <summary>
/// Named recipes (`--preset NAME`): the values of a published run, applied after the algorithm's preset and before
/// the config files and flags, which win over them.
/// </summary>
internal static class RecipePresets
{
    /// <summary>Qwen2.5-Math's system prompt, which the POPO authors' prompt_template qwen_math renders.</summary>
    public const string QwenMathSystemPrompt = "Please reason step by step, and put your final answer within \\boxed{}.";

    /// <summary>
    /// popo-paper: the POPO authors' full-training command. Learning rate 1e-7 with a cosine schedule and 10% warm-up,
    /// EMA tau 0.999, target feature noise 0.01, a predictor 4096 wide of 2 Linear layers (predictor_depth 1), G = 8,
    /// prompts of up to 512 tokens and completions of up to 1024, the qwen_math prompt.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, IReadOnlyList<(string Key, object Value)>> All =
        new Dictionary<string, IReadOnlyList<(string Key, object Value)>>
        {
            ["popo-paper"] =
            [
                ("algo", "popo"), ("lr", 1e-7), ("lr_schedule", "cosine"), ("warmup_ratio", 0.1), ("tau", 0.999), ("feature_noise", 0.01),
                ("predictor_hidden", 4096), ("predictor_depth", 1), ("group_size", 8), ("max_prompt_length", 512), ("max_new_tokens", 1024),
                ("prompt_template", "qwen_math"),
            ],
        };

    public static IReadOnlyList<(string Key, object Value)> Get(string name) =>
        All.TryGetValue(name, out var preset) ? preset
        : throw new Runtime.ConfigException($"--preset: unknown preset '{name}'; expected one of {string.Join(", ", All.Keys)}");
}
