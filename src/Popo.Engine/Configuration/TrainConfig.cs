using Popo.Engine.Policy;
using Popo.Engine.Lora;
using Popo.Engine.Objectives;
using Popo.Engine.Runtime;

namespace Popo.Engine.Configuration;

/// <summary>
/// Every setting of a `popo` run. Resolution order: defaults, then the algorithm preset, then the
/// config file, then command-line flags; the resolved record is written to OUT/config.json.
/// </summary>
public sealed record TrainConfig : IRunKeys
{
    // ---- what to train ------------------------------------------------------------------------
    /// <summary>Key <c>algo</c>: objective (each a preset over the keys below).</summary>
    [ConfigKey("algo", "objective (each a preset over the keys below)", OneOfAlgorithms = true)]
    public string Algo { get; init; } = "popo";

    /// <summary>Key <c>task</c>: built-in task: arithmetic | countdown (ignored with --dataset).</summary>
    [ConfigKey("task", "built-in task: arithmetic | countdown (ignored with --dataset)", OneOf = ["arithmetic", "countdown"])]
    public string Task { get; init; } = "arithmetic";

    /// <summary>Key <c>difficulty</c>: built-in task difficulty: a preset (arithmetic: tiny, add2, easy, medium, hard, mul, expert; countdown: tiny, easy, medium, hard, expert), key=value pairs such as digits=3,ops=+-, or default (the task's own default: add2 / medium).</summary>
    [ConfigKey("difficulty", "built-in task difficulty: a preset (arithmetic: tiny, add2, easy, medium, hard, mul, expert; countdown: tiny, easy, medium, hard, expert), key=value pairs such as digits=3,ops=+-, or default (the task's own default: add2 / medium)")]
    public string Difficulty { get; init; } = "default";

    /// <summary>Key <c>dataset</c>: JSONL or .parquet dataset (GSM8K, MATH/AIME/AMC or TRL prompt shape); empty = built-in task.</summary>
    [ConfigKey("dataset", "JSONL or .parquet dataset (GSM8K, MATH/AIME/AMC or TRL prompt shape); empty = built-in task")]
    public string Dataset { get; init; } = "";

    /// <summary>Key <c>answer_field</c>: answer field of a TRL-style dataset (empty = detect from the shape).</summary>
    [ConfigKey("answer_field", "answer field of a TRL-style dataset (empty = detect from the shape)")]
    public string AnswerField { get; init; } = "";

    /// <summary>Key <c>train_fraction</c>: share of a dataset's problems used for training, the rest held out (0 = the whole file is held out: eval only).</summary>
    [ConfigKey("train_fraction", "share of a dataset's problems used for training, the rest held out (0 = the whole file is held out: eval only)", Min = 0, Max = 1)]
    public double TrainFraction { get; init; } = 0.8;

    /// <summary>Key <c>skip_bad_lines</c>: skip malformed dataset lines (with a count) instead of stopping.</summary>
    [ConfigKey("skip_bad_lines", "skip malformed dataset lines (with a count) instead of stopping")]
    public bool SkipBadLines { get; init; }

    /// <summary>Key <c>answer_format</c>: answer marker a dataset completion must use: boxed (\\boxed{} only) | marked (a box, &lt;answer&gt; tags, '#### N' or 'the answer is') | any (also the last math span or whole-token number).</summary>
    [ConfigKey("answer_format", "answer marker a dataset completion must use: boxed (\\boxed{} only) | marked (a box, <answer> tags, '#### N' or 'the answer is') | any (also the last math span or whole-token number)",
        OneOf = ["boxed", "marked", "any"])]
    public string AnswerFormat { get; init; } = "marked";

    /// <summary>Key <c>task_seed</c>: seed of the generated task instances and the dataset split (fixed across run seeds so held-out sets match).</summary>
    [ConfigKey("task_seed", "seed of the generated task instances and the dataset split (fixed across run seeds so held-out sets match)", Min = 0, Max = int.MaxValue)]
    public int TaskSeed { get; init; }

    /// <summary>Key <c>model</c>: Hugging Face model folder (config.json + safetensors + tokenizer); empty = built-in small model.</summary>
    [ConfigKey("model", "Hugging Face model folder (config.json + safetensors + tokenizer); empty = built-in small model")]
    public string Model { get; init; } = "";

    /// <summary>Key <c>system_prompt</c>: system message put before every prompt that has none (empty = none); rendered by the model's chat template.</summary>
    [ConfigKey("system_prompt", "system message put before every prompt that has none (empty = none); rendered by the model's chat template")]
    public string SystemPrompt { get; init; } = "";

    /// <summary>Key <c>prompt_template</c>: how a dataset problem becomes a prompt: default (the question, then the step-by-step \boxed{} instruction in the user turn) | qwen_math (the question alone, after Qwen2.5-Math's system prompt, as the POPO authors' qwen_math template; sets system_prompt when it is empty).</summary>
    [ConfigKey("prompt_template", "how a dataset problem becomes a prompt: default (the question, then the step-by-step \\boxed{} instruction in the user turn) | qwen_math (the question alone, after Qwen2.5-Math's system prompt, as the POPO authors' qwen_math template; sets system_prompt when it is empty)",
        OneOf = ["default", "qwen_math"])]
    public string PromptTemplate { get; init; } = "default";

    /// <summary>Key <c>enable_thinking</c>: passed to the model's chat template as enable_thinking (Qwen3: false opens the reply with an empty &lt;think&gt;&lt;/think&gt;).</summary>
    [ConfigKey("enable_thinking", "passed to the model's chat template as enable_thinking (Qwen3: false opens the reply with an empty <think></think>)")]
    public bool EnableThinking { get; init; } = true;

    // ---- built-in model (used when `model` is empty) -------------------------------------------
    /// <summary>Key <c>hidden_size</c>: built-in model width.</summary>
    [ConfigKey("hidden_size", "built-in model width", Min = 8, Max = 4096)]
    public int HiddenSize { get; init; } = 64;

    /// <summary>Key <c>layers</c>: built-in model depth.</summary>
    [ConfigKey("layers", "built-in model depth", Min = 1, Max = 64)]
    public int Layers { get; init; } = 2;

    /// <summary>Key <c>heads</c>: built-in model attention heads (must divide hidden_size).</summary>
    [ConfigKey("heads", "built-in model attention heads (must divide hidden_size)", Min = 1, Max = 64)]
    public int Heads { get; init; } = 4;

    /// <summary>Key <c>kv_heads</c>: built-in model key/value heads (must divide heads).</summary>
    [ConfigKey("kv_heads", "built-in model key/value heads (must divide heads)", Min = 1, Max = 64)]
    public int KvHeads { get; init; } = 2;

    /// <summary>Key <c>intermediate_size</c>: built-in model MLP width.</summary>
    [ConfigKey("intermediate_size", "built-in model MLP width", Min = 8, Max = 16384)]
    public int IntermediateSize { get; init; } = 192;

    /// <summary>Key <c>bf16</c>: mixed precision: bfloat16 matmuls, float32 master weights, gradients, AdamW state, log-softmax and losses (needs dtype = float32).</summary>
    [ConfigKey("bf16", "mixed precision: bfloat16 matmuls, float32 master weights, gradients, AdamW state, log-softmax and losses (needs dtype = float32)")]
    public bool Bf16 { get; init; }

    /// <summary>Key <c>gradient_checkpointing</c>: recompute each decoder layer in the backward instead of keeping its activations.</summary>
    [ConfigKey("gradient_checkpointing", "recompute each decoder layer in the backward instead of keeping its activations")]
    public bool GradientCheckpointing { get; init; }

    /// <summary>Key <c>padding_free</c>: run the policy's and the target's training forwards on the real tokens only, not the padded batch (verl's use_remove_padding); the attention core stays padded.</summary>
    [ConfigKey("padding_free", "run the policy's and the target's training forwards on the real tokens only, not the padded batch (verl's use_remove_padding); the attention core stays padded")]
    public bool PaddingFree { get; init; } = true;

    /// <summary>Key <c>logit_chunk_size</c>: positions per head chunk for token log-probs and entropies (0 = whole micro-batch at once; -1 = as many as fit 64 MiB of float32 logits).</summary>
    [ConfigKey("logit_chunk_size", "positions per head chunk for token log-probs and entropies (0 = whole micro-batch at once; -1 = as many as fit 64 MiB of float32 logits)", Min = -1, Max = 1_000_000)]
    public int LogitChunkSize { get; init; } = -1;

    // ---- LoRA (PEFT's LoraConfig names) --------------------------------------------------------
    /// <summary>Key <c>lora_r</c>: LoRA rank r: train adapters W + s B A on a frozen base instead of every weight (0 = off: full fine-tuning).</summary>
    [ConfigKey("lora_r", "LoRA rank r: train adapters W + s B A on a frozen base instead of every weight (0 = off: full fine-tuning)", Min = 0, Max = 65536)]
    public int LoraR { get; init; }

    /// <summary>Key <c>lora_alpha</c>: LoRA alpha: the adapters' scale s = alpha / r (alpha / sqrt(r) with use_rslora).</summary>
    [ConfigKey("lora_alpha", "LoRA alpha: the adapters' scale s = alpha / r (alpha / sqrt(r) with use_rslora)", Above = 0, Max = 1e6)]
    public double LoraAlpha { get; init; } = 8;

    /// <summary>Key <c>lora_dropout</c>: dropout on the adapters' input during training forwards (below 1).</summary>
    [ConfigKey("lora_dropout", "dropout on the adapters' input during training forwards (below 1)", Min = 0, Max = 1)]
    public double LoraDropout { get; init; }

    /// <summary>Key <c>lora_target_modules</c>: linear layers that get adapters: a comma list of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, or all-linear (PEFT's default for Qwen2: q_proj,v_proj).</summary>
    [ConfigKey("lora_target_modules", "linear layers that get adapters: a comma list of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, or all-linear (PEFT's default for Qwen2: q_proj,v_proj)")]
    public string LoraTargetModules { get; init; } = "q_proj,v_proj";

    /// <summary>Key <c>use_rslora</c>: rank-stabilised LoRA: s = alpha / sqrt(r) instead of alpha / r.</summary>
    [ConfigKey("use_rslora", "rank-stabilised LoRA: s = alpha / sqrt(r) instead of alpha / r")]
    public bool UseRslora { get; init; }

    /// <summary>Key <c>adapter</c>: a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors) to start from; sets the lora_* keys from its config and, without --model, the base model from its base_model_name_or_path.</summary>
    [ConfigKey("adapter", "a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors) to start from; sets the lora_* keys from its config and, without --model, the base model from its base_model_name_or_path")]
    public string Adapter { get; init; } = "";

    // ---- supervised warm-up -------------------------------------------------------------------
    /// <summary>Key <c>sft_steps</c>: supervised warm-up steps on worked solutions before RL (0 = none).</summary>
    [ConfigKey("sft_steps", "supervised warm-up steps on worked solutions before RL (0 = none)", Min = 0, Max = 1_000_000)]
    public int SftSteps { get; init; } = 1000;

    /// <summary>Key <c>sft_batch_size</c>: warm-up batch size.</summary>
    [ConfigKey("sft_batch_size", "warm-up batch size", Min = 1, Max = 4096)]
    public int SftBatchSize { get; init; } = 64;

    /// <summary>Key <c>sft_noise</c>: fraction of warm-up demonstrations given one wrong digit (imperfect demonstrations, as a base model carries errors).</summary>
    [ConfigKey("sft_noise", "fraction of warm-up demonstrations given one wrong digit (imperfect demonstrations, as a base model carries errors)", Min = 0, Max = 1)]
    public double SftNoise { get; init; } = 0.5;

    /// <summary>Key <c>sft_lr</c>: warm-up learning rate.</summary>
    [ConfigKey("sft_lr", "warm-up learning rate", Above = 0, Max = 1)]
    public double SftLr { get; init; } = 3e-3;

    // ---- RL loop ------------------------------------------------------------------------------
    /// <summary>Key <c>steps</c>: RL steps (one generation batch each).</summary>
    [ConfigKey("steps", "RL steps (one generation batch each)", Min = 0, Max = 1_000_000, Resumable = true)]
    public int Steps { get; init; } = 200;

    /// <summary>Key <c>group_size</c>: G: rollouts per prompt.</summary>
    [ConfigKey("group_size", "G: rollouts per prompt", Min = 1, Max = 1024)]
    public int GroupSize { get; init; } = 8;

    /// <summary>Key <c>prompts_per_step</c>: prompts per generation batch.</summary>
    [ConfigKey("prompts_per_step", "prompts per generation batch", Min = 1, Max = 65536)]
    public int PromptsPerStep { get; init; } = 32;

    /// <summary>Key <c>micro_batch_size</c>: rollouts per forward/backward micro-batch.</summary>
    [ConfigKey("micro_batch_size", "rollouts per forward/backward micro-batch", Min = 1, Max = 65536)]
    public int MicroBatchSize { get; init; } = 128;

    /// <summary>Key <c>max_new_tokens</c>: completion length limit.</summary>
    [ConfigKey("max_new_tokens", "completion length limit", Min = 1, Max = 32768)]
    public int MaxNewTokens { get; init; } = 32;

    /// <summary>Key <c>max_prompt_length</c>: prompt length limit in tokens (0 = the model's context minus max_new_tokens); longer prompts follow overlong_prompts.</summary>
    [ConfigKey("max_prompt_length", "prompt length limit in tokens (0 = the model's context minus max_new_tokens); longer prompts follow overlong_prompts", Min = 0, Max = 1_000_000)]
    public int MaxPromptLength { get; init; }

    /// <summary>Key <c>overlong_prompts</c>: a prompt beyond max_prompt_length or the context: error | drop (the problem, with a count) | truncate (keep its last tokens, as TRL does).</summary>
    [ConfigKey("overlong_prompts", "a prompt beyond max_prompt_length or the context: error | drop (the problem, with a count) | truncate (keep its last tokens, as TRL does)", OneOf = ["error", "drop", "truncate"])]
    public string OverlongPrompts { get; init; } = "error";

    /// <summary>Key <c>temperature</c>: sampling temperature T (also the temperature of the training log-probs).</summary>
    [ConfigKey("temperature", "sampling temperature T (also the temperature of the training log-probs)", Above = 0, Max = 10)]
    public double Temperature { get; init; } = 1.0;

    /// <summary>Key <c>top_p</c>: nucleus sampling mass (1 = off).</summary>
    [ConfigKey("top_p", "nucleus sampling mass (1 = off)", Above = 0, Max = 1)]
    public double TopP { get; init; } = 1.0;

    /// <summary>Key <c>top_k</c>: top-k sampling (0 = off).</summary>
    [ConfigKey("top_k", "top-k sampling (0 = off)", Min = 0, Max = 1_000_000)]
    public int TopK { get; init; }

    /// <summary>Key <c>share_prompt_prefill</c>: prefill each distinct prompt once and share its KV cache with its G rollouts (same outputs, less work).</summary>
    [ConfigKey("share_prompt_prefill", "prefill each distinct prompt once and share its KV cache with its G rollouts (same outputs, less work)")]
    public bool SharePromptPrefill { get; init; } = true;

    /// <summary>Key <c>compact_finished_rows</c>: drop finished rollouts from the generation batch and its KV cache (same outputs, less work).</summary>
    [ConfigKey("compact_finished_rows", "drop finished rollouts from the generation batch and its KV cache (same outputs, less work)")]
    public bool CompactFinishedRows { get; init; } = true;

    /// <summary>Key <c>rollout_engine</c>: who generates the rollouts: builtin (the KV-cache sampler over the training model) | server (OpenAI-compatible servers: vLLM, SGLang, popo serve).</summary>
    [ConfigKey("rollout_engine", "who generates the rollouts: builtin (the KV-cache sampler over the training model) | server (OpenAI-compatible servers: vLLM, SGLang, popo serve)", OneOf = ["builtin", "server"])]
    public string RolloutEngine { get; init; } = "builtin";

    /// <summary>Key <c>rollout_urls</c>: with rollout_engine = server: the servers' base URLs, comma-separated (e.g. http://127.0.0.1:8000/v1); prompts are spread across them.</summary>
    [ConfigKey("rollout_urls", "with rollout_engine = server: the servers' base URLs, comma-separated (e.g. http://127.0.0.1:8000/v1); prompts are spread across them", Resumable = true)]
    public string RolloutUrls { get; init; } = "";

    /// <summary>Key <c>rollout_model</c>: with rollout_engine = server: the served model's name (the requests' model until a LoRA sync names the adapter).</summary>
    [ConfigKey("rollout_model", "with rollout_engine = server: the served model's name (the requests' model until a LoRA sync names the adapter)", Resumable = true)]
    public string RolloutModel { get; init; } = "";

    /// <summary>Key <c>rollout_api</c>: with rollout_engine = server: completions (the OpenAI-compatible /v1/completions: vLLM, popo serve) | sglang (SGLang's native /generate, which returns token ids).</summary>
    [ConfigKey("rollout_api", "with rollout_engine = server: completions (the OpenAI-compatible /v1/completions: vLLM, popo serve) | sglang (SGLang's native /generate, which returns token ids)", OneOf = ["completions", "sglang"])]
    public string RolloutApi { get; init; } = "completions";

    /// <summary>Key <c>rollout_timeout</c>: seconds one rollout request may take before it counts as failed.</summary>
    [ConfigKey("rollout_timeout", "seconds one rollout request may take before it counts as failed", Above = 0, Max = 86400, Resumable = true)]
    public double RolloutTimeout { get; init; } = 600;

    /// <summary>Key <c>rollout_max_inflight</c>: rollout requests in flight at once (one request = one prompt's G completions).</summary>
    [ConfigKey("rollout_max_inflight", "rollout requests in flight at once (one request = one prompt's G completions)", Min = 1, Max = 65536, Resumable = true)]
    public int RolloutMaxInflight { get; init; } = 64;

    /// <summary>Key <c>rollout_retries</c>: retries of a failed rollout request (exponential backoff from 1 s), then the run stops with an error.</summary>
    [ConfigKey("rollout_retries", "retries of a failed rollout request (exponential backoff from 1 s), then the run stops with an error", Min = 0, Max = 100, Resumable = true)]
    public int RolloutRetries { get; init; } = 3;

    /// <summary>Key <c>importance_correction</c>: with rollout_engine = server: weight each token's policy loss by the ratio of the trainer's to the server's log-probs (TRL's vllm_importance_sampling_correction); the built-in sampler needs none.</summary>
    [ConfigKey("importance_correction", "with rollout_engine = server: weight each token's policy loss by the ratio of the trainer's to the server's log-probs (TRL's vllm_importance_sampling_correction); the built-in sampler needs none")]
    public bool ImportanceCorrection { get; init; } = true;

    /// <summary>Key <c>importance_mode</c>: the correction's ratio and limit (TRL's vllm_importance_sampling_mode): token_truncate | token_mask | sequence_truncate | sequence_mask.</summary>
    [ConfigKey("importance_mode", "the correction's ratio and limit (TRL's vllm_importance_sampling_mode): token_truncate | token_mask | sequence_truncate | sequence_mask",
        OneOf = ["token_truncate", "token_mask", "sequence_truncate", "sequence_mask"])]
    public string ImportanceMode { get; init; } = "sequence_mask";

    /// <summary>Key <c>importance_cap</c>: the correction's cap C (TRL's vllm_importance_sampling_cap): ratios above it are truncated to C or masked to 0.</summary>
    [ConfigKey("importance_cap", "the correction's cap C (TRL's vllm_importance_sampling_cap): ratios above it are truncated to C or masked to 0", Above = 0, Max = 1e6)]
    public double ImportanceCap { get; init; } = 3.0;

    /// <summary>Key <c>sync_every</c>: with rollout_engine = server: put the trainer's weights into the servers every N steps (LoRA: a new adapter through /v1/load_lora_adapter; full: a Hugging Face folder loaded from disk).</summary>
    [ConfigKey("sync_every", "with rollout_engine = server: put the trainer's weights into the servers every N steps (LoRA: a new adapter through /v1/load_lora_adapter; full: a Hugging Face folder loaded from disk)", Min = 1, Max = 1_000_000)]
    public int SyncEvery { get; init; } = 1;

    /// <summary>Key <c>async_rollouts</c>: with rollout_engine = server: request the next step's rollouts before this step's update, so generation overlaps training; they come from weights one step older, which the importance correction covers.</summary>
    [ConfigKey("async_rollouts", "with rollout_engine = server: request the next step's rollouts before this step's update, so generation overlaps training; they come from weights one step older, which the importance correction covers")]
    public bool AsyncRollouts { get; init; }

    /// <summary>Key <c>sync_route</c>: full fine-tuning's load-from-disk route: sglang (/update_weights_from_disk) | vllm (/collective_rpc reload_weights, VLLM_SERVER_DEV_MODE=1).</summary>
    [ConfigKey("sync_route", "full fine-tuning's load-from-disk route: sglang (/update_weights_from_disk) | vllm (/collective_rpc reload_weights, VLLM_SERVER_DEV_MODE=1)", OneOf = ["sglang", "vllm"], Resumable = true)]
    public string SyncRoute { get; init; } = "vllm";

    /// <summary>Key <c>sync_folder</c>: where the synced weights are written for the servers to read (a folder both can see; empty = OUT/sync).</summary>
    [ConfigKey("sync_folder", "where the synced weights are written for the servers to read (a folder both can see; empty = OUT/sync)", Resumable = true)]
    public string SyncFolder { get; init; } = "";

    /// <summary>Key <c>lr</c>: RL learning rate.</summary>
    [ConfigKey("lr", "RL learning rate", Above = 0, Max = 1)]
    public double Lr { get; init; } = 3e-4;

    /// <summary>Key <c>weight_decay</c>: AdamW weight decay.</summary>
    [ConfigKey("weight_decay", "AdamW weight decay", Min = 0, Max = 1)]
    public double WeightDecay { get; init; } = 0.01;

    /// <summary>Key <c>grad_clip</c>: gradient-norm clip (0 = off).</summary>
    [ConfigKey("grad_clip", "gradient-norm clip (0 = off)", Min = 0, Max = 1e6)]
    public double GradClip { get; init; } = 1.0;

    /// <summary>Key <c>warmup_ratio</c>: fraction of RL steps of linear warm-up before the cosine decay.</summary>
    [ConfigKey("warmup_ratio", "fraction of RL steps of linear warm-up before the cosine decay", Min = 0, Max = 1)]
    public double WarmupRatio { get; init; } = 0.1;

    /// <summary>Key <c>lr_schedule</c>: learning-rate shape after the warm-up: cosine (decay to zero) | linear (decay to zero) | constant.</summary>
    [ConfigKey("lr_schedule", "learning-rate shape after the warm-up: cosine (decay to zero) | linear (decay to zero) | constant", OneOf = ["cosine", "linear", "constant"])]
    public string LrSchedule { get; init; } = "cosine";

    // ---- POPO ---------------------------------------------------------------------------------
    /// <summary>Key <c>weights</c>: POPO weights over the positives: softmax | uniform.</summary>
    [ConfigKey("weights", "POPO weights over the positives: softmax | uniform", OneOf = ["softmax", "uniform"])]
    public string Weights { get; init; } = "softmax";

    /// <summary>Key <c>weight_temperature</c>: T_w of the weight softmax.</summary>
    [ConfigKey("weight_temperature", "T_w of the weight softmax", Above = 0, Max = 1e6)]
    public double WeightTemperature { get; init; } = 1.0;

    /// <summary>Key <c>length_normalize_weights</c>: divide each weight by its completion length, then renormalise.</summary>
    [ConfigKey("length_normalize_weights", "divide each weight by its completion length, then renormalise")]
    public bool LengthNormalizeWeights { get; init; }

    /// <summary>Key <c>weight_cap</c>: cap on any one weight, by water-filling (0 = none).</summary>
    [ConfigKey("weight_cap", "cap on any one weight, by water-filling (0 = none)", Min = 0, Max = 1)]
    public double WeightCap { get; init; }

    /// <summary>Key <c>alpha</c>: weight of the similarity penalty (0 = no similarity).</summary>
    [ConfigKey("alpha", "weight of the similarity penalty (0 = no similarity)", Min = 0, Max = 1e6)]
    public double Alpha { get; init; } = 0.1;

    /// <summary>Key <c>beta_ent</c>: weight of the entropy bonus (0 = no entropy).</summary>
    [ConfigKey("beta_ent", "weight of the entropy bonus (0 = no entropy)", Min = 0, Max = 1e6)]
    public double BetaEnt { get; init; } = 0.01;

    /// <summary>Key <c>entropy_scope</c>: entropy over all rollouts or the positives only: all | positive.</summary>
    [ConfigKey("entropy_scope", "entropy over all rollouts or the positives only: all | positive", OneOf = ["all", "positive"])]
    public string EntropyScope { get; init; } = "all";

    /// <summary>Key <c>tau</c>: EMA momentum of the target (0 = target is the policy, 1 = frozen).</summary>
    [ConfigKey("tau", "EMA momentum of the target (0 = target is the policy, 1 = frozen)", Min = 0, Max = 1)]
    public double Tau { get; init; } = 0.995;

    /// <summary>Key <c>feature_noise</c>: sigma of the Gaussian noise on target features.</summary>
    [ConfigKey("feature_noise", "sigma of the Gaussian noise on target features", Min = 0, Max = 1e3)]
    public double FeatureNoise { get; init; } = 0.02;

    /// <summary>Key <c>pooling</c>: siamese feature pooling: mean | last.</summary>
    [ConfigKey("pooling", "siamese feature pooling: mean | last", OneOf = ["mean", "last"])]
    public string Pooling { get; init; } = "mean";

    /// <summary>Key <c>predictor_hidden</c>: predictor hidden width H.</summary>
    [ConfigKey("predictor_hidden", "predictor hidden width H", Min = 1, Max = 65536)]
    public int PredictorHidden { get; init; } = 1024;

    /// <summary>Key <c>predictor_depth</c>: predictor Linear-LayerNorm-ReLU blocks (0 = one Linear).</summary>
    [ConfigKey("predictor_depth", "predictor Linear-LayerNorm-ReLU blocks (0 = one Linear)", Min = 0, Max = 16)]
    public int PredictorDepth { get; init; } = 1;

    // ---- GRPO family ----------------------------------------------------------------------------
    /// <summary>Key <c>loss_type</c>: GRPO aggregation: grpo | bnpo | dr_grpo | dapo | cispo (CISPO's clipped stop-gradient weight min(rho, eps_high) times A l, aggregated as dapo; eps_high is then the cap itself, TRL's).</summary>
    [ConfigKey("loss_type", "GRPO aggregation: grpo | bnpo | dr_grpo | dapo | cispo (CISPO's clipped stop-gradient weight min(rho, eps_high) times A l, aggregated as dapo; eps_high is then the cap itself, TRL's)",
               OneOf = ["grpo", "bnpo", "dr_grpo", "dapo", "cispo"])]
    public string LossType { get; init; } = "grpo";

    /// <summary>Key <c>scale_rewards</c>: GRPO advantage scaling: group | batch | none.</summary>
    [ConfigKey("scale_rewards", "GRPO advantage scaling: group | batch | none", OneOf = ["group", "batch", "none"])]
    public string ScaleRewards { get; init; } = "group";

    /// <summary>Key <c>eps_low</c>: lower clip range epsilon.</summary>
    [ConfigKey("eps_low", "lower clip range epsilon", Min = 0, Max = 1)]
    public double EpsLow { get; init; } = 0.2;

    /// <summary>Key <c>eps_high</c>: upper clip range epsilon.</summary>
    [ConfigKey("eps_high", "upper clip range epsilon", Min = 0, Max = 10)]
    public double EpsHigh { get; init; } = 0.2;

    /// <summary>Key <c>beta</c>: k3 KL weight against the frozen reference (0 = no reference model).</summary>
    [ConfigKey("beta", "k3 KL weight against the frozen reference (0 = no reference model)", Min = 0, Max = 1e3)]
    public double Beta { get; init; }

    /// <summary>Key <c>num_iterations</c>: mu: optimisation passes per generation batch.</summary>
    [ConfigKey("num_iterations", "mu: optimisation passes per generation batch", Min = 1, Max = 64)]
    public int NumIterations { get; init; } = 1;

    /// <summary>Key <c>dynamic_sampling</c>: DAPO: drop groups whose rewards are all equal.</summary>
    [ConfigKey("dynamic_sampling", "DAPO: drop groups whose rewards are all equal")]
    public bool DynamicSampling { get; init; }

    /// <summary>Key <c>overlong_buffer</c>: DAPO soft overlong penalty buffer in tokens (0 = off).</summary>
    [ConfigKey("overlong_buffer", "DAPO soft overlong penalty buffer in tokens (0 = off)", Min = 0, Max = 32768)]
    public int OverlongBuffer { get; init; }

    /// <summary>Key <c>overlong_penalty</c>: DAPO soft overlong penalty factor.</summary>
    [ConfigKey("overlong_penalty", "DAPO soft overlong penalty factor", Min = 0, Max = 1e3)]
    public double OverlongPenalty { get; init; } = 1.0;

    /// <summary>Key <c>importance_sampling_level</c>: GRPO family ratio: token (rho_t) | sequence (GSPO: one ratio per rollout, the geometric mean of its token ratios, clipped as one) | sequence_token (GSPO-token: that value, each token's own gradient).</summary>
    [ConfigKey("importance_sampling_level", "GRPO family ratio: token (rho_t) | sequence (GSPO: one ratio per rollout, the geometric mean of its token ratios, clipped as one) | sequence_token (GSPO-token: that value, each token's own gradient)",
               OneOf = ["token", "sequence", "sequence_token"])]
    public string ImportanceSamplingLevel { get; init; } = "token";

    /// <summary>Key <c>delta</c>: GRPO family two-sided clip (INTELLECT-2, TRL's delta): the unclipped ratio is also capped at delta, above 1 (0 = off).</summary>
    [ConfigKey("delta", "GRPO family two-sided clip (INTELLECT-2, TRL's delta): the unclipped ratio is also capped at delta, above 1 (0 = off)", Min = 0, Max = 1e6)]
    public double Delta { get; init; }

    /// <summary>Key <c>top_entropy_quantile</c>: GRPO family: only tokens at or above the (1 - q) entropy quantile of each micro-batch carry the policy loss (1 = all tokens).</summary>
    [ConfigKey("top_entropy_quantile", "GRPO family: only tokens at or above the (1 - q) entropy quantile of each micro-batch carry the policy loss (1 = all tokens)", Above = 0, Max = 1)]
    public double TopEntropyQuantile { get; init; } = 1.0;

    /// <summary>Key <c>mask_truncated_completions</c>: GRPO family: completions that hit max_new_tokens without a stop token carry no loss (they still count in the advantages).</summary>
    [ConfigKey("mask_truncated_completions", "GRPO family: completions that hit max_new_tokens without a stop token carry no loss (they still count in the advantages)")]
    public bool MaskTruncatedCompletions { get; init; }

    /// <summary>Key <c>w_reinforce_lambda</c>: W-REINFORCE: weight lambda of the positive samples (negatives at 1).</summary>
    [ConfigKey("w_reinforce_lambda", "W-REINFORCE: weight lambda of the positive samples (negatives at 1)", Min = 0, Max = 1)]
    public double WReinforceLambda { get; init; } = 0.1;

    // ---- rewards (README "Bring your own reward") -----------------------------------------------
    /// <summary>Key <c>reward_funcs</c>: reward functions: built-in names (accuracy, format, overlong, arithmetic, countdown) or specs (FILE.dll:Type, FILE.fsx, command:PROGRAM ARGS); empty = the task's own check (accuracy).</summary>
    [ConfigKey("reward_funcs", "reward functions: built-in names (accuracy, format, overlong, arithmetic, countdown) or specs (FILE.dll:Type, FILE.fsx, command:PROGRAM ARGS); empty = the task's own check (accuracy)")]
    public IReadOnlyList<string> RewardFuncs { get; init; } = ConfigList<string>.Empty;

    /// <summary>Key <c>reward_weights</c>: weight of each reward function, in order (empty = 1 each); the reward is the weighted sum over the functions that apply.</summary>
    [ConfigKey("reward_weights", "weight of each reward function, in order (empty = 1 each); the reward is the weighted sum over the functions that apply")]
    public IReadOnlyList<double> RewardWeights { get; init; } = ConfigList<double>.Empty;

    /// <summary>Key <c>reward_threshold</c>: tau_r: POPO's positive set is reward &gt; reward_threshold (pass_rate counts the same).</summary>
    [ConfigKey("reward_threshold", "tau_r: POPO's positive set is reward > reward_threshold (pass_rate counts the same)", Min = -1e9, Max = 1e9)]
    public double RewardThreshold { get; init; }

    /// <summary>Key <c>reward_errors</c>: a reward function that throws, returns NaN/inf or the wrong count, or times out: fail (stop the run) | zero (count the value as 0) | skip (count it as not applicable).</summary>
    [ConfigKey("reward_errors", "a reward function that throws, returns NaN/inf or the wrong count, or times out: fail (stop the run) | zero (count the value as 0) | skip (count it as not applicable)",
        OneOf = ["fail", "zero", "skip"])]
    public string RewardErrors { get; init; } = "fail";

    /// <summary>Key <c>reward_timeout</c>: seconds one call of a reward function may take.</summary>
    [ConfigKey("reward_timeout", "seconds one call of a reward function may take", Above = 0, Max = 86400)]
    public double RewardTimeout { get; init; } = 60;

    /// <summary>Key <c>reward_workers</c>: processes of a command reward function (command:...) scoring at once.</summary>
    [ConfigKey("reward_workers", "processes of a command reward function (command:...) scoring at once", Min = 1, Max = 256)]
    public int RewardWorkers { get; init; } = 4;

    // ---- run ----------------------------------------------------------------------------------
    /// <summary>Key <c>seed</c>: random seed (data, init, sampling).</summary>
    [ConfigKey("seed", "random seed (data, init, sampling)", Min = 0, Max = int.MaxValue)]
    public int Seed { get; init; } = 1;

    /// <summary>Key <c>device</c>: torch device: cpu | cuda | cuda:N.</summary>
    [ConfigKey("device", "torch device: cpu | cuda | cuda:N", Resumable = true)]
    public string Device { get; init; } = "cpu";

    /// <summary>Key <c>dtype</c>: policy precision: float32 | float64 | bfloat16.</summary>
    [ConfigKey("dtype", "policy precision: float32 | float64 | bfloat16", OneOf = ["float32", "float64", "bfloat16"])]
    public string Dtype { get; init; } = "float32";

    /// <summary>Key <c>threads</c>: CPU threads for libtorch (0 = libtorch's default).</summary>
    [ConfigKey("threads", "CPU threads for libtorch (0 = libtorch's default)", Min = 0, Max = 1024, Resumable = true)]
    public int Threads { get; init; }

    /// <summary>Key <c>native_heap</c>: how glibc's heap serves libtorch's tensors (Runtime/NativeHeap.cs).</summary>
    [ConfigKey("native_heap", "how the C heap serves tensors at 100M+ parameters: lean (each tensor of 2 MiB+ goes back to the system when freed: least memory) | reuse (freed memory is kept and reused: no page faults for fresh tensors, about 2x the real-scale update on this machine, peak RSS up to about 1.7 GiB higher at the 0.5B layout) | auto (reuse when the memory estimate plus twice its tensors made and freed within a step fits in the memory available, else lean); the results are the same bits", OneOf = [Runtime.NativeHeap.ModeAuto, Runtime.NativeHeap.ModeLean, Runtime.NativeHeap.ModeReuse], Resumable = true)]
    public string NativeHeap { get; init; } = Runtime.NativeHeap.ModeAuto;

    /// <summary>Key <c>out</c>: output folder (must not hold another run unless --resume).</summary>
    [ConfigKey("out", "output folder (must not hold another run unless --resume)")]
    public string Out { get; init; } = "runs/default";

    /// <summary>Key <c>eval_every</c>: held-out evaluation every N RL steps (0 = only at the start and end).</summary>
    [ConfigKey("eval_every", "held-out evaluation every N RL steps (0 = only at the start and end)", Min = 0, Max = 1_000_000, Resumable = true)]
    public int EvalEvery { get; init; } = 50;

    /// <summary>Key <c>eval_problems</c>: held-out problems per evaluation (0 = no held-out evaluation).</summary>
    [ConfigKey("eval_problems", "held-out problems per evaluation (0 = no held-out evaluation)", Min = 0, Max = 1_000_000)]
    public int EvalProblems { get; init; } = 256;

    /// <summary>Key <c>save_every</c>: checkpoint every N RL steps (0 = only at the end).</summary>
    [ConfigKey("save_every", "checkpoint every N RL steps (0 = only at the end)", Min = 0, Max = 1_000_000, Resumable = true)]
    public int SaveEvery { get; init; } = 50;

    /// <summary>Key <c>save_total_limit</c>: keep only the newest N step checkpoints (0 = keep all); an older one is deleted only once the new one is complete.</summary>
    [ConfigKey("save_total_limit", "keep only the newest N step checkpoints (0 = keep all); an older one is deleted only once the new one is complete", Min = 0, Max = 1_000_000, Resumable = true)]
    public int SaveTotalLimit { get; init; }

    /// <summary>Key <c>memory_check</c>: refuse a run whose estimated peak memory exceeds the machine's available memory (false = warn only).</summary>
    [ConfigKey("memory_check", "refuse a run whose estimated peak memory exceeds the machine's available memory (false = warn only)", Resumable = true)]
    public bool MemoryCheck { get; init; } = true;

    /// <summary>Key <c>samples_per_log</c>: rollouts written to samples.jsonl per logged step.</summary>
    [ConfigKey("samples_per_log", "rollouts written to samples.jsonl per logged step", Min = 0, Max = 1024)]
    public int SamplesPerLog { get; init; } = 4;

    /// <summary>Key <c>max_bad_steps</c>: stop after this many steps with a non-finite loss (each is skipped).</summary>
    [ConfigKey("max_bad_steps", "stop after this many steps with a non-finite loss (each is skipped)", Min = 0, Max = 1_000_000)]
    public int MaxBadSteps { get; init; } = 3;

    /// <summary>The run's LoRA settings, or null when `lora_r` is 0 (full fine-tuning).</summary>
    internal LoraSettings? ToLoraSettings() =>
        LoraR == 0 ? null : new(LoraR, LoraAlpha, LoraDropout, LoraSettings.ParseTargets(LoraTargetModules, "key 'lora_target_modules'"), UseRslora);

    /// <summary>A key's value by name, for the stages that read their own keys (<see cref="IRunKeys"/>).</summary>
    public T Get<T>(string key) => ConfigSchema.Value<T>(this, key);
}
