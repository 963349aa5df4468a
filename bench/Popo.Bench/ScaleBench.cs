using Popo.Engine.Lora;
using Popo.Engine.Model;
using Popo.Engine.Objectives;
using Popo.Engine.Policy;
using Popo.Engine.Rollout;
using Popo.Engine.Runtime;
using Popo.Engine.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Popo.Bench;

/// <summary>
/// Real scale (issue 18): the Qwen2.5-0.5B layout (or a shallower one), G rollouts of P prompts, completions of a
/// long-tailed length distribution (log-normal, median 128, capped): seconds and peak RSS of the rollout phase and
/// of one POPO / GRPO update (Prepare, micro-batch forward/backward, clip, AdamW, EMA), in float32 and bf16, with
/// the memory features off and on; then the head alone (l and H of one micro-batch, forward + backward) with and
/// without chunking. Update rows run on synthetic completions (random tokens, the drawn lengths): a random model
/// never stops by itself, so only the update, not the sampler, can see the long tail. LoRA rows (issue 15) run the
/// same POPO update with r = 16 adapters on every linear of a bf16 base (no float32 masters: the base is frozen), its
/// EMA target the adapters' EMA on the shared base; they run first, before the float32 model exists, so their peak
/// RSS is theirs alone.
/// </summary>
internal static class ScaleBench
{
    public sealed record Setup(ModelConfig Config, string Name, int Prompts, int GroupSize, int PromptLength, int Cap, int MicroBatch);

    /// <summary>The Qwen2.5-0.5B layout with <paramref name="layers"/> decoder layers (24 = the real depth).</summary>
    public static ModelConfig Qwen05(int layers) => new()
    {
        VocabSize = 151936, HiddenSize = 896, IntermediateSize = 4864, NumHiddenLayers = layers,
        NumAttentionHeads = 14, NumKeyValueHeads = 2, TieWordEmbeddings = true, RopeTheta = 1e6,
        MaxPositionEmbeddings = 32768, RmsNormEps = 1e-6,
    };

    public static Setup Full(int layers) => new(Qwen05(layers), $"qwen2.5-0.5b-layout, {layers} layers", 4, 8, 128, 512, 8);

    /// <summary>
    /// One RL step at TRL's GRPOConfig defaults (issue 34): per_device_train_batch_size 8 with num_generations 8 and
    /// one accumulation step is one prompt's group of 8 per step, max_completion_length 256; prompts of 128 tokens as above.
    /// </summary>
    public static Setup TrlDefaults(int layers) => new(Qwen05(layers), $"qwen2.5-0.5b-layout, {layers} layers, TRL's defaults", 1, 8, 128, 256, 8);

    /// <summary>The name of <see cref="Full"/> in <see cref="Setups"/>: the step <c>popo bench</c> runs unless told otherwise.</summary>
    public const string DefaultSetup = "default";

    /// <summary>The steps <c>popo bench --scale-setup</c> names: "default" (<see cref="Full"/>) and "trl" (<see cref="TrlDefaults"/>).</summary>
    public static readonly IReadOnlyDictionary<string, Func<int, Setup>> Setups = new Dictionary<string, Func<int, Setup>>
    {
        [DefaultSetup] = Full,
        ["trl"] = TrlDefaults,
    };

    public static Setup Quick(int? layers) => new(
        new ModelConfig { VocabSize = 4096, HiddenSize = 64, IntermediateSize = 176, NumHiddenLayers = layers ?? 2, NumAttentionHeads = 4, NumKeyValueHeads = 2, TieWordEmbeddings = true, MaxPositionEmbeddings = 1024 },
        "quick (vocab 4096, hidden 64)", 2, 4, 16, 48, 4);

    /// <summary>Memory features of an update row.</summary>
    public sealed record Features(string Name, int LogitChunkSize, bool Checkpointing);

    public static readonly Features[] FeatureSets =
    [
        new("none (today)", 0, false),
        new("chunked head", -1, false),
        new("chunked head + checkpointing", -1, true),
    ];

    /// <param name="filter">substrings a row label (e.g. "popo bf16 chunked head + checkpointing") must contain one of; null = every row.</param>
    /// <param name="peak">this run's float32 matmul rate and copy rate (the bf16 rate is measured here).</param>
    /// <param name="nativeHeap">lean or reuse: the C heap's setting, applied for this model as the trainer does.</param>
    public static BenchSection Run(Setup setup, IReadOnlyCollection<string>? filter, PeakResult peak, string nativeHeap)
    {
        int rows = setup.Prompts * setup.GroupSize;
        var s = new BenchSection("scale", $"Scale: {setup.Name}, G = {setup.GroupSize}, {setup.Prompts} prompts x {setup.PromptLength} tokens, completions log-normal (median {setup.Cap / 4}) capped at {setup.Cap}, micro-batch {setup.MicroBatch}");
        bool Wants(string label) => filter is null || filter.Any(f => label.Contains(f, StringComparison.OrdinalIgnoreCase));
        var lengths = Lengths(rows, setup.Cap, seed: 0);
        s.Facts["completion_lengths"] = string.Join(" ", lengths);
        s.Facts["completion_tokens"] = lengths.Sum();
        s.Facts["rows_x_longest"] = rows * lengths.Max();
        s.Facts["real_tokens"] = lengths.Sum(n => setup.PromptLength + n);
        s.Facts["threads"] = torch.get_num_threads();
        // The bf16 peak at the threads used, the size a second affords (a CPU without native bf16 takes a minute at 2048).
        var bf16Size = MatmulRate.AffordableSize(ScalarType.BFloat16, peak.MatmulSize, 1.0);
        var limits = new Limits(MatmulRate.Gflops(bf16Size, ScalarType.BFloat16, rounds: 10), peak.GflopsWall, peak.CopyBytesPerSecond, Bf16GflopsPerCpuSecond(bf16Size));
        s.Facts["matmul_gflops_bf16"] = limits.Bf16Gflops;
        s.Facts["matmul_gflops_bf16_per_cpu_s"] = limits.Bf16GflopsCpu;
        s.Facts["matmul_gflops_float32"] = limits.Float32Gflops;
        s.Facts["copy_gb_s"] = limits.CopyBytesPerSecond / 1e9;
        var positive = Enumerable.Range(0, rows).Select(i => i % 4 == 0).ToArray();   // SyntheticBatch's rewards

        NativeHeap.Apply(NativeHeap.Choose(MemoryEstimate.ParameterCount(setup.Config), nativeHeap));   // as the trainer does for this model
        ResidentMemory.ResetPeak();
        var baseline = ResidentMemory.CurrentMiB();
        LoraRows(s, setup, lengths, Wants, limits, positive);
        torch.manual_seed(0);
        using var model = new Qwen2ForCausalLM(setup.Config, torch.CPU, ScalarType.Float32);
        model.InitializeWeights(0);
        long parameters = model.parameters().Sum(p => p.numel());
        s.Facts["params_M"] = parameters / 1e6;
        s.Facts["process_baseline_mib"] = baseline;
        s.Facts["rss_with_weights_mib"] = ResidentMemory.CurrentMiB();
        var policy = new Qwen2Policy(model);
        var prompts = Prompts(setup);

        foreach (var bf16 in new[] { false, true })
        {
            var precision = bf16 ? "bf16" : "float32";
            model.Precision.Dtype = bf16 ? ScalarType.BFloat16 : null;
            string label;
            foreach (var (features, on) in new[] { ("none (today)", false), ("share_prompt_prefill + compact_finished_rows", true) })
            {
                label = $"rollout {precision} {features}";
                if (!Wants(label)) continue;
                model.eval();
                ResidentMemory.ResetPeak();
                // rows end at the drawn lengths (a random model rarely stops by itself)
                var sampling = new SamplerOptions { MaxNewTokens = lengths.Max(), MaxNewTokensPerRow = lengths, Seed = 1, SharePromptPrefill = on, CompactFinishedRows = on };
                var time = BenchClock.Time(() => { using var scope = NewDisposeScope(); Sampler.Generate(model, prompts, sampling).Dispose(); });
                model.Precision.Invalidate();
                var row = Row(label, "rollout", precision, features, time.Wall, ResidentMemory.PeakMiB(), double.NaN, lengths.Sum());
                var flops = ScaleFlops.Rollout(setup.Config, setup.PromptLength, lengths);
                var bound = ScaleFlops.RolloutBoundSeconds(setup.Config, setup.PromptLength, lengths, setup.GroupSize, bf16 ? 2 : 4, limits.CopyBytesPerSecond,
                                                           1e9 * (bf16 ? limits.Bf16Gflops : limits.Float32Gflops));
                row["gflop"] = flops / 1e9;
                row["gflops"] = flops / 1e9 / time.Wall;
                row["bound_s"] = bound;
                row["pct_of_bound"] = 100 * bound / time.Wall;
                s.Rows.Add(row);
            }
            foreach (var algo in new[] { "popo", "grpo" })
                foreach (var f in FeatureSets)
                {
                    label = $"{algo} {precision} {f.Name}";
                    if (!Wants(label)) continue;
                    model.LogitChunkSize = f.LogitChunkSize;
                    model.GradientCheckpointing = f.Checkpointing;
                    using var batch = SyntheticBatch(setup, prompts, lengths);
                    ResidentMemory.ResetPeak();
                    model.train();
                    Span time;
                    long extra;
                    using (var objective = algo == "popo"
                               ? (IObjective)new PopoObjective("popo", policy, policy.FrozenClone, setup.Config.HiddenSize, new PopoOptions(), 1.0, torch.CPU, ScalarType.Float32, 0)
                               : new GrpoObjective("grpo", policy, policy.FrozenClone, new GrpoOptions { MaxCompletionLength = setup.Cap }, 1.0))
                        (time, extra) = TimedUpdate(objective, model.parameters(), 1e-6, batch, setup.MicroBatch);
                    model.eval();
                    var peakMiB = ResidentMemory.PeakMiB();
                    // States by construction: float32 masters, float32 grads, AdamW's two float32 moments (policy + predictor),
                    // the bf16 compute copy, POPO's float32 EMA target (GRPO at beta = 0 has no reference).
                    double states = 16.0 * (parameters + extra) + (bf16 ? 2.0 * parameters : 0) + (algo == "popo" ? 4.0 * parameters : 0);
                    var row = Row(label, algo, precision, f.Name, time.Wall, peakMiB, states / (1 << 20), lengths.Sum());
                    AddRate(row, ScaleFlops.Update(setup.Config, setup.PromptLength, lengths, algo == "popo" ? positive : null, 0, f.Checkpointing, f.LogitChunkSize != 0),
                            time, bf16 ? limits.Bf16Gflops : limits.Float32Gflops, bf16 ? limits.Bf16GflopsCpu : peak.GflopsCpu);
                    s.Rows.Add(row);
                }
        }
        model.LogitChunkSize = -1;
        model.GradientCheckpointing = false;
        model.Precision.Dtype = null;
        HeadRows(s, model, setup, lengths, Wants);

        foreach (var row in s.Rows.Where(r => ((string)r["row"]).Contains(LoraLabel)))
            if (s.Rows.FirstOrDefault(r => (string)r["row"] == ((string)row["row"]).Replace(LoraLabel + " ", "")) is { } full)
                row["speedup_vs_full"] = (double)full["seconds"] / (double)row["seconds"];
        s.Notes.Add("seconds: one pass (no repeats: a full-depth update takes minutes); peak_rss_mib: VmHWM of the whole process after a reset (malloc_trim) before the row, so it includes the weights and the runtime.");
        s.Notes.Add($"{LoraLabel} rows: LoRA r = {LoraRank} (alpha {2 * LoraRank}) on all seven linears of every layer, the base stored in bf16 and frozen; states = bf16 base + adapter masters, gradients, AdamW moments and EMA + predictor; target = 1.2 x bf16 base + 1536 MiB (issue 15: no second base for the target); speedup_vs_full = seconds of the full fine-tuning row with the same features (float32 masters, bf16 compute) / the LoRA row's (issue 15: at least 1.5).");
        s.Notes.Add("states_mib: bytes a step needs by construction (masters 4 + grads 4 + AdamW 8 bytes per trained parameter, + 2 for the bf16 compute copy, + 4 for POPO's EMA target); target = 1.15 x states + 1024 MiB (issue 18; met is judged for bf16 rows with features on).");
        s.Notes.Add("gflop: the update's work by the bench's count (ScaleFlops.Update): 2 FLOPs per weight per token per matmul pass over the layers (forward, input gradient, weight gradient where trained, recomputation under checkpointing, POPO's EMA target over the positive rows), the tied head over completion positions only (forward, input gradient, weight gradient where trained, the chunked head's recomputation, the target's head over the positives), attention's QK^T and AV at 4 x hidden per attended pair per layer and pass (backward 2); pct_of_peak = gflops / the matmul peak of the row's compute dtype measured at the start of this section, same threads; pct_of_peak_cpu the same per process CPU-second on both sides (float32 rows: the peak section's GFLOP per CPU-second).");
        s.Notes.Add("rollout rows: gflop = prefill of every row's prompt + every generated token's forward; bound_s = the longest row's decode steps x (every weight once + the running rows' cached keys and values) at the copy rate + the distinct prompts' prefill at the matmul peak; pct_of_bound = bound_s / seconds.");
        s.Notes.Add("rollout rows: every row ends at its drawn length (SamplerOptions.MaxNewTokensPerRow); without compaction each step still runs all rows (rows_x_longest row-steps), with it the finished rows leave the batch; tokens = the completion tokens generated.");
        return s;
    }

    /// <summary>This run's limits: bf16 and float32 matmul GFLOP/s at the threads used, the copy rate in bytes per second, the bf16 matmul's GFLOP per process CPU-second.</summary>
    private sealed record Limits(double Bf16Gflops, double Float32Gflops, double CopyBytesPerSecond, double Bf16GflopsCpu);

    /// <summary>The bf16 matmul's GFLOP per process CPU-second (all threads), the best of 5: on a shared machine the share of the peak
    /// per CPU-second discounts the other processes' time slices on both sides.</summary>
    private static double Bf16GflopsPerCpuSecond(int n)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var a = randn(n, n).to(ScalarType.BFloat16);
        var b = randn(n, n).to(ScalarType.BFloat16);
        var best = BenchClock.Best(5, () => a.matmul(b).Dispose());
        return 2.0 * n * n * (double)n / 1e9 / best.Cpu;
    }

    /// <summary>An update row's counted GFLOP (<see cref="ScaleFlops.Update"/>), achieved GFLOP/s and share of the matmul peak of its compute
    /// dtype, on the wall clock and per process CPU-second.</summary>
    private static void AddRate(Dictionary<string, object> row, double flops, Span time, double peakGflops, double peakGflopsCpu)
    {
        row["gflop"] = flops / 1e9;
        row["gflops"] = flops / 1e9 / time.Wall;
        row["pct_of_peak"] = 100 * flops / 1e9 / time.Wall / peakGflops;
        row["cpu_s"] = time.Cpu;
        row["pct_of_peak_cpu"] = 100 * flops / 1e9 / time.Cpu / peakGflopsCpu;
    }

    private const string LoraLabel = "lora-r16";
    private const int LoraRank = 16;

    /// <summary>One POPO update per feature set with LoRA r = 16 on all linears of a bf16 base (the base model built, measured and dropped here).</summary>
    private static void LoraRows(BenchSection s, Setup setup, int[] lengths, Func<string, bool> wants, Limits limits, bool[] positive)
    {
        var labels = FeatureSets.Select(f => (Features: f, Label: $"popo {LoraLabel} bf16 {f.Name}")).Where(x => wants(x.Label)).ToList();
        if (labels.Count == 0) return;
        torch.manual_seed(0);
        using var model = new Qwen2ForCausalLM(setup.Config, torch.CPU, ScalarType.BFloat16);
        model.InitializeWeights(0);
        long parameters = model.parameters().Sum(p => p.numel());
        var settings = new LoraSettings(LoraRank, 2 * LoraRank, 0, LoraSettings.AllLinear, false);
        using var adapters = LoraAdapters.Attach(model, settings, 0);
        long adapterParameters = adapters.parameters().Sum(p => p.numel());
        s.Facts["lora_adapter_params_M"] = adapterParameters / 1e6;
        s.Facts["lora_rss_with_bf16_base_mib"] = ResidentMemory.CurrentMiB();
        var policy = new LoraPolicy(new Qwen2Policy(model), adapters);
        var prompts = Prompts(setup);
        foreach (var (f, label) in labels)
        {
            model.LogitChunkSize = f.LogitChunkSize;
            model.GradientCheckpointing = f.Checkpointing;
            using var batch = SyntheticBatch(setup, prompts, lengths);
            ResidentMemory.ResetPeak();
            Span time;
            long extra;
            using (var objective = new PopoObjective("popo", policy, policy.FrozenClone, setup.Config.HiddenSize, new PopoOptions(), 1.0, torch.CPU, model.HiddenDtype, 0))
                (time, extra) = TimedUpdate(objective, policy.Parameters, 1e-4, batch, setup.MicroBatch);
            var peak = ResidentMemory.PeakMiB();
            // bf16 base, adapter masters + grads + AdamW (16 B) + EMA (4 B), predictor with its AdamW (16 B).
            double states = 2.0 * parameters + 20.0 * adapterParameters + 16.0 * extra;
            var row = Row(label, "popo", "bf16", f.Name, time.Wall, peak, states / (1 << 20), lengths.Sum(), 1.2 * 2.0 * parameters / (1 << 20) + 1536);
            AddRate(row, ScaleFlops.Update(setup.Config, setup.PromptLength, lengths, positive, LoraRank, f.Checkpointing, f.LogitChunkSize != 0), time, limits.Bf16Gflops, limits.Bf16GflopsCpu);
            s.Rows.Add(row);
        }
    }

    /// <summary>One timed update (Prepare, micro-batches, clip, AdamW, EMA) over the policy's and the objective's parameters; also the objective's parameter count.</summary>
    private static (Span Time, long Extra) TimedUpdate(IObjective objective, IEnumerable<Parameter> policy, double lr, GenerationBatch batch, int microBatch)
    {
        var trained = policy.Concat(objective.ExtraParameters).ToList();
        using var optimizer = new Optimizers.AdamW(trained, lr, 0.01);
        return (BenchClock.Time(() => PopoSavingBench.UpdateOnce(objective, optimizer, trained, batch, microBatch)), objective.ExtraParameters.Sum(p => p.numel()));
    }

    private static Dictionary<string, object> Row(string label, string phase, string precision, string features, double seconds, double peak, double statesMiB, int tokens,
                                                  double? targetMiB = null)
    {
        var target = targetMiB ?? 1.15 * statesMiB + 1024;
        return new()
        {
            ["row"] = label,
            ["phase"] = phase,
            ["precision"] = precision,
            ["features"] = features,
            ["seconds"] = seconds,
            ["tokens"] = tokens,
            ["tok_s"] = tokens / seconds,
            ["peak_rss_mib"] = peak,
            ["states_mib"] = statesMiB,
            ["target_mib"] = double.IsNaN(statesMiB) ? double.NaN : target,
            ["met"] = double.IsNaN(statesMiB) ? "" : peak <= target ? "yes" : "no",
        };
    }

    /// <summary>The head alone: l and H of one micro-batch of cap-long completions, forward + backward, peak RSS above the start.</summary>
    private static void HeadRows(BenchSection s, Qwen2ForCausalLM model, Setup setup, int[] lengths, Func<string, bool> wants)
    {
        var policy = new Qwen2Policy(model);
        foreach (var bf16 in new[] { false, true })
            foreach (var chunk in new[] { 0, -1 })
            {
                var precision = bf16 ? "bf16" : "float32";
                var label = $"head {precision} {(chunk == 0 ? "unchunked (today)" : "chunked")}";
                if (!wants(label)) continue;
                model.Precision.Dtype = bf16 ? ScalarType.BFloat16 : null;
                model.LogitChunkSize = chunk;
                foreach (var p in model.parameters()) p.grad = null;
                ResidentMemory.ResetPeak();
                var start = ResidentMemory.CurrentMiB();
                var time = BenchClock.Time(() =>
                {
                    using var scope = NewDisposeScope();
                    var h = randn([setup.MicroBatch, setup.Cap, setup.Config.HiddenSize]).requires_grad_(true);
                    var tokens = randint(setup.Config.VocabSize, [setup.MicroBatch, setup.Cap]);
                    var (l, entropy) = policy.TokenStatistics(h, tokens, 1.0, EntropyNeed.Differentiable);
                    (l.mean() + 0.01 * entropy!.mean()).backward();
                });
                var peak = ResidentMemory.PeakMiB() - start;
                var row = Row(label, "head", precision, chunk == 0 ? "none" : $"{model.HeadChunkPositions} positions per chunk", time.Wall, peak, double.NaN, setup.MicroBatch * setup.Cap);
                row["row"] = label + " (peak = above the start)";
                s.Rows.Add(row);
            }
        foreach (var p in model.parameters()) p.grad = null;
        model.Precision.Dtype = null;
        model.LogitChunkSize = -1;
    }

    /// <summary>Log-normal lengths (median cap/4, sigma 0.8), at least 8, at most cap; seeded.</summary>
    public static int[] Lengths(int rows, int cap, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, rows).Select(_ =>
        {
            double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
            var normal = Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
            return (int)Math.Clamp(Math.Round(cap / 4.0 * Math.Exp(0.8 * normal)), 8, cap);
        }).ToArray();
    }

    private static List<int[]> Prompts(Setup setup)
    {
        var random = new Random(0);
        return Enumerable.Range(0, setup.Prompts)
            .Select(_ => Enumerable.Range(0, setup.PromptLength).Select(_ => random.Next(setup.Config.VocabSize)).ToArray())
            .SelectMany(p => Enumerable.Repeat(p, setup.GroupSize)).ToList();
    }

    /// <summary>Prompt + random completion tokens of the drawn lengths, right-padded; 1 in 4 rows rewarded (2 per group of 8); old log-probs -log V (a random model's).</summary>
    private static GenerationBatch SyntheticBatch(Setup setup, List<int[]> prompts, int[] lengths)
    {
        using var scope = NewDisposeScope();
        var random = new Random(1);
        int b = prompts.Count, p = setup.PromptLength, n = lengths.Max();
        var ids = new long[b * (p + n)];
        var attention = new long[b * (p + n)];
        var completion = new long[b * n];
        var mask = new float[b * n];
        for (int i = 0; i < b; i++)
        {
            for (int t = 0; t < p; t++) { ids[i * (p + n) + t] = prompts[i][t]; attention[i * (p + n) + t] = 1; }
            for (int t = 0; t < lengths[i]; t++)
            {
                long token = random.Next(setup.Config.VocabSize);
                ids[i * (p + n) + p + t] = token;
                attention[i * (p + n) + p + t] = 1;
                completion[i * n + t] = token;
                mask[i * n + t] = 1;
            }
        }
        var attentionT = tensor(attention, [b, p + n]);
        var maskT = tensor(mask, [b, n]);
        var batch = new GenerationBatch
        {
            InputIds = tensor(ids, [b, p + n]).MoveToOuterDisposeScope(),
            AttentionMask = attentionT.MoveToOuterDisposeScope(),
            PositionIds = Qwen2ForCausalLM.DefaultPositions(attentionT, p + n).MoveToOuterDisposeScope(),
            PromptLength = p,
            CompletionIds = tensor(completion, [b, n]).MoveToOuterDisposeScope(),
            CompletionMask = maskT.MoveToOuterDisposeScope(),
            OldLogProbs = (maskT * -Math.Log(setup.Config.VocabSize)).MoveToOuterDisposeScope(),
            Rewards = Enumerable.Range(0, b).Select(i => i % 4 == 0 ? 1.0 : 0.0).ToArray(),
            Completions = Enumerable.Range(0, b).Select(i => Enumerable.Range(0, lengths[i]).Select(t => (int)completion[i * n + t]).ToArray()).ToArray(),
            GroupSize = setup.GroupSize,
        };
        return batch;
    }
}
