using System.Globalization;
using Popo.Engine.Runtime;

namespace Popo.Engine.Configuration;

/// <summary>
/// What one foreign key (TRL's GRPOConfig and TrainingArguments, TRL's script arguments, the POPO authors' keys)
/// becomes in Popo: mapped onto Popo keys, accepted and ignored with the reason (it does not change the math here),
/// or refused with the reason. <see cref="Help"/> is the line `popo train --help` shows.
/// </summary>
internal sealed record ForeignKey(string Name, string Origin, string Help, Action<ForeignKey, ConfigSetting, ForeignTranslation> Handle);

/// <summary>
/// The table of foreign keys (the only place they are named). A config file is read as TRL's or the authors' when it
/// holds a key only they have (<see cref="IsForeignOnly"/>); then a key that Popo also has (beta, temperature,
/// scale_rewards, max_prompt_length, ...) takes TRL's meaning. A mapped key whose Popo key is not in this build's
/// schema is "not supported yet": accepted when its value is TRL's default (nothing changes), refused otherwise.
/// </summary>
internal static class ForeignKeys
{
    public const string Trl = "TRL";
    public const string Trl027 = "TRL <= 0.27";
    public const string Transformers = "transformers TrainingArguments";
    public const string TrlScript = "TRL script/ModelConfig";
    public const string Authors = "POPO authors";

    /// <summary>The reason a server-engine key is refused on a build without it.</summary>
    public const string ServerEngine = "needs the server rollout engine (rollout_engine = server)";

    private static readonly List<ForeignKey> Table = [];

    public static IReadOnlyList<ForeignKey> All => Table;

    private static readonly Dictionary<string, ForeignKey> ByName;

    /// <summary>The foreign key of this name, or null.</summary>
    public static ForeignKey? Find(string name) => ByName.GetValueOrDefault(name);

    /// <summary>True for a foreign key that is not also a Popo key: its presence makes a file foreign.</summary>
    public static bool IsForeignOnly(string name) => ByName.ContainsKey(name) && !ConfigSchema.Entries.Any(e => e.Key == name);

    static ForeignKeys()
    {
        // ---- TRL GRPOConfig: the objective and sampling ------------------------------------------------------
        Map("num_generations", Trl, "group_size (and the batch arithmetic below)", (k, s, t) => t.Batch(k, s));
        Map("max_completion_length", Trl, "max_new_tokens", To("max_new_tokens"));
        Map("max_prompt_length", Trl027, "max_prompt_length with overlong_prompts = truncate (TRL keeps a long prompt's last tokens; the key is gone from 0.28, which no longer truncates)",
            (k, s, t) =>
            {
                if (s.Value is null) { t.Ignore(k, s, "null: no limit (TRL's 0.28 behaviour)"); return; }
                t.Set(k, s, "max_prompt_length", s.Value);
                t.Set(k, s, "overlong_prompts", "truncate");
            });
        Map("temperature", Trl, "temperature", To("temperature"));
        Map("top_p", Trl, "top_p", To("top_p"));
        Map("top_k", Trl, "top_k (null = 0, off)", (k, s, t) => t.Set(k, s, "top_k", s.Value ?? 0L));
        Map("min_p", Trl, "refused unless null or 0: Popo's sampler has no min-p", Default((object?)null, 0.0, 0L));
        Map("repetition_penalty", Trl, "refused unless 1: Popo's sampler has no repetition penalty", Default(1.0, 1L));
        Map("generation_kwargs", Trl, "refused unless empty: extra sampling arguments Popo's sampler does not have", Default((object?)null));
        Map("chat_template_kwargs", Trl, "enable_thinking (the only template argument Popo passes)", (k, s, t) =>
        {
            if (s.Value is null) { t.Ignore(k, s, "null"); return; }
            if (s.Value is not IReadOnlyDictionary<string, object?> d || d.Keys.Any(x => x != "enable_thinking"))
                { t.Refuse(k, s, "only {enable_thinking: true|false} is passed to the chat template"); return; }
            if (d.TryGetValue("enable_thinking", out var v)) t.Set(k, s, "enable_thinking", v);
        });
        Map("beta", Trl, "beta (k3 KL weight)", (k, s, t) => t.Set(k, s, "beta", s.Value ?? 0.0));
        Map("num_iterations", Trl, "num_iterations", To("num_iterations"));
        Map("epsilon", Trl, "eps_low (and eps_high when epsilon_high is not given, as TRL)", (k, s, t) => { t.Set(k, s, "eps_low", s.Value); t.Mark("epsilon", s); });
        Map("epsilon_high", Trl, "eps_high (null = epsilon)", (k, s, t) => { if (s.Value is null) t.Ignore(k, s, "null: = epsilon"); else { t.Set(k, s, "eps_high", s.Value); t.EpsilonHigh = true; } });
        Map("loss_type", Trl, "loss_type (TRL's default is dapo: a TRL file without it gets dapo)", (k, s, t) => { t.Set(k, s, "loss_type", s.Value); t.LossTypeGiven = true; });
        Map("scale_rewards", Trl, "scale_rewards (true = group, false = none, as TRL >= 0.22)", (k, s, t) => t.Set(k, s, "scale_rewards", s.Value switch
        {
            true => "group",
            false => "none",
            _ => s.Value,
        }));
        Map("mask_truncated_completions", Trl, "mask_truncated_completions (a key of the new objectives)", Soft("mask_truncated_completions", false));
        Map("importance_sampling_level", Trl, "importance_sampling_level (GSPO: a key of the new objectives)", Soft("importance_sampling_level", "token"));
        Map("delta", Trl, "delta (two-sided clip: a key of the new objectives)", Soft("delta", (object?)null));
        Map("top_entropy_quantile", Trl, "top_entropy_quantile (a key of the new objectives)", Soft("top_entropy_quantile", 1.0, 1L));
        Map("reward_weights", Trl, "reward_weights (the reward functions' key)", Soft("reward_weights", (object?)null));
        Map("multi_objective_aggregation", Trl, "ignored as sum_then_normalize (one weighted sum of the rewards); normalize_then_sum refused", Default("sum_then_normalize"));
        Map("sapo_temperature_neg", Trl, "ignored: used by loss_type = sapo only, which Popo does not have", Ignored("used by loss_type = sapo only"));
        Map("sapo_temperature_pos", Trl, "ignored: used by loss_type = sapo only, which Popo does not have", Ignored("used by loss_type = sapo only"));
        Map("sync_ref_model", Trl, "refused when true: TR-DPO's reference sync is not in Popo", Default(false));
        Map("ref_model_mixup_alpha", Trl, "ignored: used with sync_ref_model only", Ignored("used with sync_ref_model only"));
        Map("ref_model_sync_steps", Trl, "ignored: used with sync_ref_model only", Ignored("used with sync_ref_model only"));
        Map("off_policy_mask_threshold", Trl, "refused unless null: DeepSeek-V3.2's off-policy masking is not in Popo", Default((object?)null));
        Map("use_bias_correction_kl", Trl, "refused when true: the corrected KL estimator is not in Popo", Default(false));
        Map("max_tool_calling_iterations", Trl, "refused unless null: Popo has no tool calling", Default((object?)null));
        Map("use_liger_loss", Trl, "ignored: a fused kernel for the same loss (Popo's chunked head saves the same memory)", Ignored("a fused kernel for the same loss"));
        Map("cast_lm_head_to_fp32", Trl, "ignored: with bf16 Popo's head log-softmax is float32 already", Ignored("with bf16 Popo's log-softmax is float32 already"));
        Map("disable_dropout", Trl, "ignored: Popo's Qwen2 has no dropout (lora_dropout is separate)", Ignored("Popo's Qwen2 forward has no dropout"));
        Map("model_init_kwargs", Trl, "ignored when null or only dtype/torch_dtype (use dtype)", (k, s, t) =>
        {
            if (s.Value is IReadOnlyDictionary<string, object?> d && d.Keys.Any(x => x is not ("dtype" or "torch_dtype")))
                t.Refuse(k, s, $"Popo loads a model folder itself; only dtype/torch_dtype is understood (use the dtype key), got {string.Join(", ", d.Keys)}");
            else if (s.Value is IReadOnlyDictionary<string, object?> dt && (dt.GetValueOrDefault("dtype") ?? dt.GetValueOrDefault("torch_dtype")) is string dtype) t.Dtype(k, s, dtype);
            else t.Ignore(k, s, "no loading arguments Popo needs");
        });
        Map("remove_unused_columns", Trl, "ignored: Popo keeps every column of a row", Ignored("Popo keeps every column of a row"));
        Map("num_generations_eval", Trl, "ignored: the held-out samples are popo eval's --samples", Ignored("held-out samples are popo eval's --samples"));
        Map("ds3_gather_for_generation", Trl, "ignored: DeepSpeed ZeRO-3 only", Ignored("DeepSpeed ZeRO-3 only"));
        Map("shuffle_dataset", Trl, "ignored when true (Popo draws problems in a seeded shuffled order); false refused", Default(true));
        Map("generation_batch_size", Trl, "prompts_per_step (the batch arithmetic below)", (k, s, t) => t.Batch(k, s));
        Map("steps_per_generation", Trl, "must equal gradient_accumulation_steps (one optimizer step per generation batch and pass)", (k, s, t) => t.Batch(k, s));
        Map("use_transformers_paged", Trl, "ignored: a generation back-end of transformers", Ignored("a transformers generation back-end"));
        Map("cache_implementation", Trl, "ignored: Popo's sampler has its own KV cache", Ignored("Popo's sampler has its own KV cache"));
        Map("log_completions", Trl, "ignored: Popo writes samples.jsonl (samples_per_log)", Ignored("Popo writes samples.jsonl (samples_per_log)"));
        Map("num_completions_to_print", Trl, "ignored: printing only", Ignored("printing only"));
        Map("log_unique_prompts", Trl, "ignored: logging only", Ignored("logging only"));
        Map("wandb_log_unique_prompts", Trl, "ignored: logging only", Ignored("logging only"));
        Map("log_completions_hub_repo", Trl, "refused unless null: needs the network (the Hub)", Default((object?)null));
        // vLLM: the server engine's keys; without use_vllm TRL ignores them, and so does Popo.
        Map("use_vllm", Trl, "rollout_engine = server (true) | builtin (false); " + ServerEngine, (k, s, t) =>
        {
            if (s.Value is false or null) { t.Ignore(k, s, "false: Popo's built-in sampler"); return; }
            t.UseVllm = true;
            t.Soft(k, s, "rollout_engine", "server", ServerEngine);
        });
        Map("vllm_mode", Trl, "ignored without use_vllm; with it, server (the server engine) or colocate, refused (no in-process vLLM)", (k, s, t) => t.Vllm(k, s));
        Map("vllm_server_base_url", Trl, "rollout_urls; " + ServerEngine, (k, s, t) =>
        {
            if (s.Value is null) { t.Ignore(k, s, "null"); return; }
            t.ServerUrl = true;
            if (t.UseVllm || s.Value is string) t.Soft(k, s, "rollout_urls", s.Value, ServerEngine);
        });
        foreach (var vllm in new[]
                 {
                     "vllm_server_host", "vllm_server_port", "vllm_server_timeout", "vllm_group_port", "vllm_model_impl", "vllm_gpu_memory_utilization",
                     "vllm_max_model_length", "vllm_max_model_len", "vllm_tensor_parallel_size", "vllm_enable_sleep_mode", "vllm_importance_sampling_correction",
                     "vllm_importance_sampling_mode", "vllm_importance_sampling_cap", "vllm_structured_outputs_regex", "vllm_guided_decoding_regex", "vllm_device",
                     "vllm_dtype", "vllm_enable_prefix_caching",
                 })
            Map(vllm, Trl, "ignored without use_vllm (as TRL); with it, " + ServerEngine, (k, s, t) => t.Vllm(k, s));

        // ---- transformers TrainingArguments (GRPOConfig's parent) -------------------------------------------
        Map("learning_rate", Transformers, "lr", To("lr"));
        Map("weight_decay", Transformers, "weight_decay", To("weight_decay"));
        Map("max_grad_norm", Transformers, "grad_clip", To("grad_clip"));
        Map("warmup_ratio", Transformers, "warmup_ratio", To("warmup_ratio"));
        Map("warmup_steps", Transformers, "warmup_ratio = warmup_steps / max_steps (TRL: warmup_steps wins when > 0)", (k, s, t) => t.Mark("warmup_steps", s));
        Map("lr_scheduler_type", Transformers, "lr_schedule: cosine | linear | constant_with_warmup (constant); constant (no warm-up) sets warmup_ratio 0", (k, s, t) =>
        {
            switch (s.Value)
            {
                case "cosine" or "linear": t.Set(k, s, "lr_schedule", s.Value); break;
                case "constant_with_warmup": t.Set(k, s, "lr_schedule", "constant"); break;
                case "constant": t.Set(k, s, "lr_schedule", "constant"); t.Mark("constant", s); break;
                default: t.Refuse(k, s, $"'{s.Value}' is not one of Popo's schedules (cosine, linear, constant_with_warmup, constant)"); break;
            }
        });
        Map("lr_scheduler_kwargs", Transformers, "refused unless empty (cosine decays to zero)", Default((object?)null));
        Map("adam_beta1", Transformers, "refused unless 0.9 (Popo's AdamW)", Default(0.9));
        Map("adam_beta2", Transformers, "refused unless 0.999 (Popo's AdamW)", Default(0.999));
        Map("adam_epsilon", Transformers, "refused unless 1e-8 (Popo's AdamW)", Default(1e-8));
        Map("optim", Transformers, "ignored as adamw_torch / adamw_torch_fused (Popo's AdamW); others refused", Default("adamw_torch", "adamw_torch_fused", "adamw_hf"));
        Map("max_steps", Transformers, "steps = max_steps / num_iterations (TRL counts optimizer steps; a Popo step is one generation batch with num_iterations optimizer steps)", (k, s, t) => t.Mark("max_steps", s));
        Map("num_train_epochs", Transformers, "ignored when max_steps is given (as TRL); refused otherwise (Popo counts steps)", (k, s, t) => t.Mark("num_train_epochs", s));
        Map("per_device_train_batch_size", Transformers, "micro_batch_size (and the batch arithmetic below)", (k, s, t) => t.Batch(k, s));
        Map("gradient_accumulation_steps", Transformers, "the batch arithmetic below", (k, s, t) => t.Batch(k, s));
        Map("per_device_eval_batch_size", Transformers, "ignored: evaluation batch size", Ignored("evaluation batch size"));
        Map("seed", Transformers, "seed", To("seed"));
        Map("data_seed", Transformers, "ignored: Popo's problem order follows seed and task_seed", Ignored("Popo's problem order follows seed and task_seed"));
        Map("bf16", Transformers, "bf16 (with dtype bfloat16 weights: dtype bfloat16 alone)", (k, s, t) => t.Mark("bf16", s));
        Map("fp16", Transformers, "refused when true: Popo has no float16 (use bf16)", Default(false));
        Map("tf32", Transformers, "ignored: a cuBLAS matmul precision switch of the GPU", Ignored("a cuBLAS matmul precision switch"));
        Map("gradient_checkpointing", Transformers, "gradient_checkpointing", To("gradient_checkpointing"));
        Map("gradient_checkpointing_kwargs", Transformers, "ignored: Popo checkpoints each decoder layer", Ignored("Popo checkpoints each decoder layer"));
        Map("output_dir", Transformers, "out", To("out"));
        Map("overwrite_output_dir", Transformers, "refused when true: Popo never overwrites a run folder", Default(false));
        Map("save_steps", Transformers, "save_every", (k, s, t) => t.Set(k, s, "save_every", s.Value is double d && d < 1 ? throw t.Error(k, s, "a fraction of the run is not supported; give a step count") : s.Value));
        Map("save_total_limit", Transformers, "save_total_limit (null = 0, keep all)", (k, s, t) => t.Set(k, s, "save_total_limit", s.Value ?? 0L));
        Map("save_strategy", Transformers, "steps (save_every) | no (save_every 0: the final model only); epoch refused", (k, s, t) =>
        {
            if (s.Value is "no") t.Set(k, s, "save_every", 0L);
            else if (s.Value is "steps" or "best" or null) t.Ignore(k, s, "checkpoints every save_steps");
            else t.Refuse(k, s, $"'{s.Value}': Popo counts steps, not epochs");
        });
        Map("save_only_model", Transformers, "ignored: Popo's checkpoints always hold the optimizer state for --resume", Ignored("checkpoints always hold the state for --resume"));
        Map("save_safetensors", Transformers, "ignored: Popo writes safetensors", Ignored("Popo writes safetensors"));
        Map("eval_strategy", Transformers, "no (no held-out evaluation) | steps (eval_every = eval_steps); epoch refused", (k, s, t) => t.EvalStrategy(k, s));
        Map("evaluation_strategy", Transformers, "as eval_strategy (its old name)", (k, s, t) => t.EvalStrategy(k, s));
        Map("eval_steps", Transformers, "eval_every", To("eval_every"));
        Map("eval_on_start", Transformers, "ignored: Popo evaluates at the start whenever it evaluates", Ignored("Popo evaluates at the start whenever it evaluates"));
        Map("do_train", Transformers, "ignored: popo train trains", Ignored("popo train trains"));
        Map("do_eval", Transformers, "ignored: see eval_strategy", Ignored("see eval_strategy"));
        Map("do_predict", Transformers, "ignored", Ignored("no predictions"));
        Map("logging_steps", Transformers, "ignored: Popo logs every step (metrics.jsonl)", Ignored("Popo logs every step"));
        Map("logging_strategy", Transformers, "ignored: Popo logs every step", Ignored("Popo logs every step"));
        Map("logging_first_step", Transformers, "ignored: Popo logs every step", Ignored("Popo logs every step"));
        Map("logging_dir", Transformers, "ignored: logs go to the run folder", Ignored("logs go to the run folder"));
        Map("logging_nan_inf_filter", Transformers, "ignored: Popo skips a non-finite step and counts it (max_bad_steps)", Ignored("see max_bad_steps"));
        Map("log_level", Transformers, "ignored: logging only", Ignored("logging only"));
        Map("report_to", Transformers, "ignored: Popo writes metrics.jsonl/csv, no tracker", Ignored("Popo writes metrics.jsonl/csv, no tracker"));
        Map("run_name", Transformers, "ignored: logging only", Ignored("logging only"));
        Map("disable_tqdm", Transformers, "ignored: progress display", Ignored("progress display"));
        Map("push_to_hub", Transformers, "ignored when false; true refused: needs the network (the Hub)", Default(false));
        Map("hub_model_id", Transformers, "ignored unless push_to_hub", Ignored("used by push_to_hub only"));
        Map("hub_strategy", Transformers, "ignored unless push_to_hub", Ignored("used by push_to_hub only"));
        Map("hub_private_repo", Transformers, "ignored unless push_to_hub", Ignored("used by push_to_hub only"));
        Map("hub_token", Transformers, "refused unless null: needs the network (the Hub)", Default((object?)null));
        Map("resume_from_checkpoint", Transformers, "refused unless null: use popo train --resume FOLDER", Default((object?)null));
        Map("deepspeed", Transformers, "refused unless null: one process, no DeepSpeed", Default((object?)null));
        Map("fsdp", Transformers, "refused unless empty: one process, no FSDP", Default((object?)null, "", false));
        Map("use_cpu", Transformers, "device = cpu when true", (k, s, t) => { if (s.Value is true) t.Set(k, s, "device", "cpu"); else t.Ignore(k, s, "false: device decides"); });
        Map("torch_compile", Transformers, "ignored: no compilation in TorchSharp", Ignored("no torch.compile in TorchSharp"));
        Map("use_liger_kernel", Transformers, "ignored: fused kernels for the same math", Ignored("fused kernels for the same math"));
        Map("neftune_noise_alpha", Transformers, "refused unless null: no embedding noise in Popo", Default((object?)null));
        Map("dataloader_num_workers", Transformers, "ignored: data loading", Ignored("data loading"));
        Map("dataloader_pin_memory", Transformers, "ignored: data loading", Ignored("data loading"));
        Map("dataloader_drop_last", Transformers, "ignored: Popo draws whole batches", Ignored("Popo draws whole batches"));
        Map("ddp_find_unused_parameters", Transformers, "ignored: one process", Ignored("one process"));
        Map("ddp_timeout", Transformers, "ignored: one process", Ignored("one process"));
        Map("local_rank", Transformers, "ignored: one process", Ignored("one process"));
        Map("group_by_length", Transformers, "ignored: supervised batching", Ignored("supervised batching"));
        Map("full_determinism", Transformers, "ignored: a seeded Popo run is reproducible", Ignored("a seeded run is reproducible"));
        Map("torch_empty_cache_steps", Transformers, "ignored: memory housekeeping", Ignored("memory housekeeping"));
        Map("average_tokens_across_devices", Transformers, "ignored: one process", Ignored("one process"));
        Map("include_num_input_tokens_seen", Transformers, "ignored: logging only", Ignored("logging only"));

        // ---- TRL's script arguments and ModelConfig (trl grpo --config recipe.yaml) -------------------------
        Map("model_name_or_path", TrlScript, "model, when a local folder; a hub name is refused: needs the network (use --model DIR)",
            (k, s, t) => t.Local(k, s, "model", Directory.Exists, "a Hugging Face hub model name", "--model DIR"));
        Map("dataset_name", TrlScript, "dataset, when a local JSONL file; a hub name is refused: needs the network (use --dataset FILE)",
            (k, s, t) => t.Local(k, s, "dataset", File.Exists, "a Hugging Face hub dataset name", "--dataset FILE"));
        Map("dataset_config", TrlScript, "ignored: a local file is one subset", Ignored("a local file is one subset"));
        Map("dataset_train_split", TrlScript, "ignored: Popo holds out 1 - train_fraction of the file", Ignored("Popo holds out 1 - train_fraction of the file"));
        Map("dataset_test_split", TrlScript, "ignored: Popo holds out 1 - train_fraction of the file", Ignored("Popo holds out 1 - train_fraction of the file"));
        Map("dataset_streaming", TrlScript, "refused when true: needs the network", Default(false));
        Map("reward_funcs", TrlScript, "reward_funcs (the reward functions' key)", Soft("reward_funcs", (object?)null));
        Map("model_revision", TrlScript, "ignored as main; another revision needs the network", Default("main"));
        Map("torch_dtype", TrlScript, "dtype (bfloat16 | float32; auto = the folder's)", (k, s, t) => t.Dtype(k, s, s.Value as string));
        Map("dtype", TrlScript, "dtype (bfloat16 | float32; auto = the folder's)", (k, s, t) => t.Dtype(k, s, s.Value as string));
        Map("attn_implementation", TrlScript, "ignored: the same attention computed by Popo's kernel", Ignored("the same attention, Popo's kernel"));
        Map("trust_remote_code", TrlScript, "ignored: Popo runs no model code from a folder", Ignored("Popo runs no code from a model folder"));
        Map("load_in_4bit", TrlScript, "refused when true: no quantised training", Default(false));
        Map("load_in_8bit", TrlScript, "refused when true: no quantised training", Default(false));
        Map("use_peft", TrlScript, "LoRA on (lora_r, TRL's default 16) when true", (k, s, t) => t.Mark("use_peft", s));
        Map("lora_target_modules", TrlScript, "lora_target_modules (a list becomes a comma list)", (k, s, t) => t.Set(k, s, "lora_target_modules", s.Value is IEnumerable<object?> l ? string.Join(",", l) : s.Value));
        Map("lora_task_type", TrlScript, "ignored: CAUSAL_LM", Default("CAUSAL_LM"));

        // ---- the POPO authors' keys ------------------------------------------------------------------------
        Map("beta_entropy", Authors, "beta_ent", To("beta_ent"));
        Map("tau_r", Authors, "reward_threshold (positives: reward > tau_r; 0 is Popo's built-in rule)", Soft("reward_threshold", 0.0, 0L));
        Map("predictor_hidden_dim", Authors, "predictor_hidden", To("predictor_hidden"));
        Map("predictor_layers", Authors, "predictor_depth = predictor_layers - 1 (Linear layers counted; Popo counts the Linear-LayerNorm-ReLU blocks before the last Linear)",
            (k, s, t) => t.Set(k, s, "predictor_depth", s.Value is long n && n >= 1 ? n - 1 : throw t.Error(k, s, "expected an integer >= 1 (the predictor's Linear layers)")));
        Map("feature_noise_std", Authors, "feature_noise", To("feature_noise"));
        Map("weight_mode", Authors, "weights (softmax | uniform)", To("weights"));
        Map("prompt_template", Authors, "prompt_template (qwen_math: Qwen2.5-Math's system prompt)", To("prompt_template"));
        Map("algorithm", Authors, "algo", To("algo"));

        ByName = Table.ToDictionary(k => k.Name);
    }

    private static void Map(string name, string origin, string help, Action<ForeignKey, ConfigSetting, ForeignTranslation> handle) =>
        Table.Add(new(name, origin, help, handle));

    private static Action<ForeignKey, ConfigSetting, ForeignTranslation> To(string popoKey) => (k, s, t) => t.Set(k, s, popoKey, s.Value);

    private static Action<ForeignKey, ConfigSetting, ForeignTranslation> Ignored(string reason) => (k, s, t) => t.Ignore(k, s, reason);

    /// <summary>Accepted (ignored) when the value is one of <paramref name="accepted"/>, refused otherwise with the key's help as reason.</summary>
    private static Action<ForeignKey, ConfigSetting, ForeignTranslation> Default(params object?[] accepted) => (k, s, t) =>
    {
        var value = s.Value is IReadOnlyDictionary<string, object?> { Count: 0 } or List<object?> { Count: 0 } ? null : s.Value;   // {} and [] are null
        if (accepted.Any(a => Same(a, value))) t.Ignore(k, s, $"{Show(s.Value)}: nothing to do here");
        else t.Refuse(k, s, k.Help);
    };

    /// <summary>A key of a feature another part of Popo adds: mapped when the schema has it, else accepted at TRL's default and refused otherwise.</summary>
    private static Action<ForeignKey, ConfigSetting, ForeignTranslation> Soft(string popoKey, params object?[] defaults) => (k, s, t) =>
    {
        if (ConfigSchema.Entries.All(e => e.Key != popoKey) && defaults.Any(d => Same(d, s.Value))) t.Ignore(k, s, $"{Show(s.Value)}: TRL's default, what Popo does");
        else t.Soft(k, s, popoKey, s.Value is IEnumerable<object?> l ? string.Join(",", l.Select(Show)) : s.Value ?? DefaultOf(popoKey),
                    $"not supported yet: Popo key '{popoKey}' is not in this build");
    };

    /// <summary>Popo's default of <paramref name="popoKey"/>: what TRL's None (off, unset) becomes; null when the key is not in this build.</summary>
    private static object? DefaultOf(string popoKey) =>
        ConfigSchema.Entries.FirstOrDefault(e => e.Key == popoKey) is { } entry && entry.ItemType is null ? entry.Property.GetValue(new TrainConfig()) : null;

    internal static bool Same(object? a, object? b) => (a, b) switch
    {
        (null, (object?)null) => true,
        (null, _) or (_, (object?)null) => false,
        (string x, string y) => x == y,
        (bool x, bool y) => x == y,
        (IConvertible x, IConvertible y) when a is not (string or bool) && b is not (string or bool) =>
            System.Convert.ToDouble(x, CultureInfo.InvariantCulture) == System.Convert.ToDouble(y, CultureInfo.InvariantCulture),
        _ => false,
    };

    internal static string Show(object? value) => value switch
    {
        null => "null",
        bool b => b ? "true" : "false",
        string s => s,
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        IEnumerable<object?> l => "[" + string.Join(", ", l.Select(Show)) + "]",
        _ => value.ToString() ?? "",
    };
}
