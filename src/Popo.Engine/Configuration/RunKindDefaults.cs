namespace Popo.Engine.Configuration;

/// <summary>
/// Defaults by kind of run, the layer between <see cref="TrainConfig"/>'s defaults (the built-in task: a
/// small model trained from scratch, warm-up then RL) and the algorithm preset. A run with `model` set
/// fine-tunes a pretrained policy the way TRL's GRPOTrainer does: RL only unless `sft_steps` is given, and
/// TRL GRPOConfig's defaults (learning_rate 1e-6, max_completion_length 256, num_generations 8,
/// per_device_train_batch_size 8 = one prompt of 8 generations per step on one device,
/// max_prompt_length 512, temperature 1, top_p 1, top_k off, beta 0, epsilon 0.2, num_iterations 1,
/// TrainingArguments' weight_decay 0, warmup_ratio 0, max_grad_norm 1, eval_strategy "no").
/// The algorithm preset, the config file and the flags all win over this layer.
/// </summary>
internal static class RunKindDefaults
{
    /// <summary>Where a pretrained-run default comes from, shown by `popo train --help`.</summary>
    public sealed record Default(string Key, object Value, string Source);

    public static readonly IReadOnlyList<Default> Pretrained =
    [
        new("sft_steps", 0, "RL only, as TRL; set sft_steps for a warm-up"),
        new("lr", 1e-6, "TRL GRPOConfig learning_rate"),
        new("max_new_tokens", 256, "TRL GRPOConfig max_completion_length"),
        new("max_prompt_length", 512, "TRL GRPOConfig max_prompt_length"),
        new("group_size", 8, "TRL GRPOConfig num_generations"),
        new("prompts_per_step", 1, "TRL GRPOConfig per_device_train_batch_size 8 / num_generations 8, one device"),
        new("micro_batch_size", 8, "TRL GRPOConfig per_device_train_batch_size"),
        new("temperature", 1.0, "TRL GRPOConfig temperature"),
        new("top_p", 1.0, "TRL GRPOConfig top_p"),
        new("top_k", 0, "TRL GRPOConfig top_k (off)"),
        new("beta", 0.0, "TRL GRPOConfig beta"),
        new("eps_low", 0.2, "TRL GRPOConfig epsilon"),
        new("eps_high", 0.2, "TRL GRPOConfig epsilon_high (= epsilon)"),
        new("num_iterations", 1, "TRL GRPOConfig num_iterations"),
        new("weight_decay", 0.0, "transformers TrainingArguments weight_decay"),
        new("warmup_ratio", 0.0, "transformers TrainingArguments warmup_ratio"),
        new("grad_clip", 1.0, "transformers TrainingArguments max_grad_norm"),
        new("eval_problems", 0, "TRL eval_strategy \"no\"; popo eval scores a model folder"),
    ];

    private static readonly Dictionary<string, Default> ByKey = Pretrained.ToDictionary(d => d.Key);

    /// <summary>The pretrained-run default of a key, or null when it is the same as the built-in one.</summary>
    public static Default? PretrainedDefault(string key) => ByKey.GetValueOrDefault(key);

    /// <summary>Applies the layer for a run whose resolved `model` is <paramref name="model"/>.</summary>
    public static TrainConfig Apply(TrainConfig config, string model, Func<TrainConfig, ConfigEntry, object, TrainConfig> with)
    {
        if (string.IsNullOrEmpty(model)) return config;
        foreach (var d in Pretrained)
            config = with(config, ConfigSchema.Find(d.Key, "pretrained-run defaults"), d.Value);
        return config;
    }
}
