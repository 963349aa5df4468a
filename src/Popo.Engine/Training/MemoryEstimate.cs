using System.Globalization;
using System.Text;
using Popo.Engine.Configuration;
using Popo.Engine.Lora;
using Popo.Engine.Model;
using Popo.Engine.Objectives;

namespace Popo.Engine.Training;

/// <summary>The estimated peak memory does not fit the machine; the message names the keys that would bring it down.</summary>
public sealed class MemoryPreflightException(string message) : Exception(message);

/// <summary>
/// What the peak-memory estimate of a run depends on. The precision keys of the mixed-precision work
/// (<c>bf16</c>: bf16 compute copy beside float32 master weights; <c>gradient_checkpointing</c>;
/// <c>logit_chunk_size</c>) each add their terms.
/// </summary>
internal sealed record MemoryInputs
{
    public required ModelConfig Model { get; init; }
    /// <summary>Bytes per element of the master weights (the `dtype` key).</summary>
    public required int WeightBytes { get; init; }
    /// <summary>bf16 compute: a 2-byte compute copy of the weights; activations in bf16, log-softmax in float32.</summary>
    public bool Bf16Compute { get; init; }
    public bool GradientCheckpointing { get; init; }
    /// <summary>Positions per head chunk (0 = the whole micro-batch's [b, n, V] at once).</summary>
    public int LogitChunkSize { get; init; }
    public required int RolloutRows { get; init; }
    public required int PromptTokens { get; init; }
    public required int MaxNewTokens { get; init; }
    public required int MicroBatchRows { get; init; }
    /// <summary>A full-vocabulary entropy term is back-propagated (POPO with beta_ent != 0).</summary>
    public bool Entropy { get; init; }
    /// <summary>Temperature != 1: the scaled logits are one more [b, n, V] tensor.</summary>
    public bool ScaledLogits { get; init; }
    /// <summary>A frozen copy of the policy in float32 or wider: POPO's EMA target or GRPO's reference (beta > 0).</summary>
    public bool FrozenCopy { get; init; }
    /// <summary>LoRA adapter parameters (0 = full fine-tuning): then only they have gradients and AdamW moments, POPO's target is an EMA of them, GRPO's reference is the base itself.</summary>
    public long LoraParameters { get; init; }
    public int PredictorHidden { get; init; }
    public int PredictorDepth { get; init; }
    /// <summary>Rows of one evaluation batch (0 = no held-out evaluation).</summary>
    public int EvalRows { get; init; }
    /// <summary>Rows of one warm-up batch (0 = no warm-up).</summary>
    public int SftRows { get; init; }
    /// <summary>Process baseline: .NET runtime, libtorch, tokenizer and data.</summary>
    public long BaselineBytes { get; init; }
}

/// <summary>
/// The peak resident memory of a run, estimated before any work from the model's shapes and the batch keys,
/// with the breakdown at the phase that peaks. The three phases of a step hold different tensors beside the
/// persistent state (weights, gradients, AdamW moments, frozen copy, predictor): the rollout holds the KV
/// cache and one layer's prefill activations; the update one micro-batch's saved activations and the head's
/// [b, n, V] tensors (logits, log-softmax, exp for the entropy, and their gradients in the backward pass);
/// the evaluation its own KV cache of up to 256 rows. Coefficients are counts of live tensors in this
/// engine's forward and backward (checked against measured peak RSS by tests/Popo.Tests/Cli/MemoryCli.fs).
/// TransientBytes is the largest phase's own tensors, those a step makes and frees (what a reused heap can fragment:
/// Runtime/NativeHeap.cs).
/// </summary>
internal sealed record MemoryEstimate(string Phase, long TotalBytes, IReadOnlyList<(string Item, long Bytes)> Breakdown, long TransientBytes)
{
    public const long GiB = 1L << 30;

    /// <summary>.NET runtime + libtorch CPU + the engine's managed state, measured on a run with a tiny model.</summary>
    public const long RuntimeBaseline = 330L << 20;

    /// <summary>A byte-level BPE tokenizer of ~150k tokens, as loaded by Microsoft.ML.Tokenizers (measured).</summary>
    public const long HfTokenizerBaseline = 300L << 20;

    public static long ParameterCount(ModelConfig m)
    {
        long d = m.HiddenSize, kv = (long)m.NumKeyValueHeads * m.HeadDim, i = m.IntermediateSize;
        long layer = d * d + d + 2 * (d * kv + kv) + d * d + 3 * d * i + 2 * d;
        return m.VocabSize * d * (m.TieWordEmbeddings ? 1 : 2) + m.NumHiddenLayers * layer + d;
    }

    public static long LargestParameter(ModelConfig m) =>
        Math.Max((long)m.VocabSize * m.HiddenSize, (long)m.HiddenSize * m.IntermediateSize);

    public static MemoryEstimate Of(MemoryInputs x)
    {
        var m = x.Model;
        long p = ParameterCount(m), w = x.WeightBytes;
        long act = x.Bf16Compute ? 2 : w;                   // activations and KV cache
        long head = x.Bf16Compute ? 4 : w;                  // log-softmax in float32 under bf16
        long d = m.HiddenSize, inter = m.IntermediateSize, layers = m.NumHiddenLayers, v = m.VocabSize;
        long kvDim = (long)m.NumKeyValueHeads * m.HeadDim, heads = m.NumAttentionHeads;
        long t = x.PromptTokens + x.MaxNewTokens;
        // One layer's activations for `rows` sequences: saved for backward over t tokens, or a prefill's transients over the prompt.
        long SavedPerLayer(long rows) => rows * t * (10 * d + 4 * inter + 3 * kvDim) * act + 2 * rows * heads * t * t * act;
        long PrefillLayer(long rows) => rows * x.PromptTokens * (6 * d + 3 * inter) * act + 2 * rows * heads * x.PromptTokens * x.PromptTokens * act;

        bool lora = x.LoraParameters > 0;
        long trained = lora ? x.LoraParameters : p, tw = lora ? Math.Max(w, 4) : w;   // adapters are float32 masters even on a 16-bit base
        var persistent = new List<(string, long)> { ("baseline (runtime, libtorch, tokenizer)", x.BaselineBytes), (lora ? "weights (frozen base)" : "weights", p * w) };
        if (lora) persistent.Add(("LoRA adapters", trained * tw));
        if (x.Bf16Compute) persistent.Add(("bf16 compute copy of the weights", p * 2));
        if (x.FrozenCopy) persistent.Add(lora ? ("EMA target adapters (the base is shared)", trained * tw) : ("EMA target / reference (float32)", p * Math.Max(w, 4)));
        if (x.PredictorHidden > 0)
        {
            long h = x.PredictorHidden, pred = d * h + 3 * h + (long)Math.Max(0, x.PredictorDepth - 1) * (h * h + 3 * h) + h * d + d;
            persistent.Add(("predictor (weights, gradient, AdamW)", 4 * pred * Math.Max(w, 4)));
        }
        // TorchSharp's AdamW allocates its moments when it is built; gradients exist from the first backward on.
        var training = new List<(string, long)>
        {
            ("gradients", trained * tw),
            ("AdamW moments", 2 * trained * tw),
        };

        // Rollout: KV cache of every row, plus the prefill's transient activations of one layer.
        long rows = x.RolloutRows;
        var rollout = new List<(string, long)>
        {
            ("KV cache (rollout)", 2 * layers * rows * kvDim * t * act),
            ("prefill activations (one layer)", PrefillLayer(rows)),
            ("sampling [rows, V] tensors", 8 * rows * v * 4),
        };

        // Update: one micro-batch through the policy with gradient.
        long b = x.MicroBatchRows, n = x.MaxNewTokens;
        long perLayer = SavedPerLayer(b);
        long saved = x.GradientCheckpointing ? layers * b * t * d * act + perLayer : layers * perLayer;
        long positions = x.LogitChunkSize > 0 ? Math.Min(b * n, x.LogitChunkSize) : b * n;
        long live = 2 + (x.Entropy ? 1 : 0) + (x.ScaledLogits ? 1 : 0);   // logits, log-softmax, exp(log-softmax), logits / T
        long backward = x.Entropy ? 4 : 2;                               // gradient temporaries of the same shape
        var update = new List<(string, long)>
        {
            (x.GradientCheckpointing ? "activations (checkpointed per layer)" : "activations saved for backward", saved + 3 * b * t * d * act),
            ($"head: [{positions} positions, V] x {live + backward} (logits, log-softmax{(x.Entropy ? ", entropy" : "")}, backward)", (live + backward) * positions * v * head),
        };

        var phases = new List<(string Name, List<(string, long)> Items)>
        {
            ("rollout", [.. persistent, .. training, .. rollout]),
            ("update", [.. persistent, .. training, .. update]),
            ("optimizer step", [.. persistent, .. training, ("AdamW step temporaries (one piece)", Math.Min(Optimizers.AdamW.DefaultPieceElements, lora ? Math.Min(trained, LargestParameter(m)) : LargestParameter(m)) * tw)]),
        };
        if (x.EvalRows > 0)
            phases.Add(("evaluation", [.. persistent, .. training,
                ("KV cache (evaluation)", 2 * layers * x.EvalRows * kvDim * t * act),
                ("prefill activations (evaluation, one layer)", PrefillLayer(x.EvalRows)),
                ("sampling [rows, V] tensors", 8L * x.EvalRows * v * 4)]));
        if (x.SftRows > 0)
        {
            long sb = x.SftRows;
            phases.Add(("warm-up", [.. persistent, .. training,
                ("activations saved for backward (warm-up)", layers * SavedPerLayer(sb) + 3 * sb * t * d * act),
                ("head: [warm-up batch x tokens, V] x 4", 4 * sb * t * v * head)]));
        }
        var peak = phases.Select(ph => (ph.Name, ph.Items, Total: ph.Items.Sum(i => i.Item2))).MaxBy(ph => ph.Total);
        // Every phase holds the same persistent and training state, so the peak phase is also the one with the most of its own.
        long held = persistent.Sum(i => i.Item2) + training.Sum(i => i.Item2);
        return new MemoryEstimate(peak.Name, peak.Total, peak.Items.Where(i => i.Item2 > 0).OrderByDescending(i => i.Item2).ToList(), peak.Total - held);
    }

    /// <summary>The inputs of a resolved configuration; the longest prompt (in tokens) comes from the preflight's context check.</summary>
    public static MemoryInputs InputsOf(TrainConfig c, ModelConfig model, int promptTokens)
    {
        // The objective's own options say what it builds: POPO's target and predictor, its entropy term.
        var popo = ConfigLoader.IsPopoFamily(c.Algo) ? PopoOptions.From(c) : null;
        int evalRows = c.EvalProblems == 0 ? 0 : Math.Min(c.EvalProblems, 256 / 4) * 4;
        return new MemoryInputs
        {
            Model = model,
            WeightBytes = c.Dtype switch { "float64" => 8, "bfloat16" or "float16" => 2, _ => 4 },
            Bf16Compute = c.Bf16,
            GradientCheckpointing = c.GradientCheckpointing,
            LogitChunkSize = Model.Qwen2ForCausalLM.ChunkPositions(c.LogitChunkSize, model.VocabSize),
            RolloutRows = c.PromptsPerStep * c.GroupSize,
            PromptTokens = promptTokens,
            MaxNewTokens = c.MaxNewTokens,
            MicroBatchRows = Math.Min(c.MicroBatchSize, c.PromptsPerStep * c.GroupSize),
            Entropy = popo is { BetaEntropy: not 0.0 },
            ScaledLogits = c.Temperature != 1.0,
            FrozenCopy = popo?.UsesSimilarity ?? (c.Beta != 0 && c.LoraR == 0),   // GRPO's reference under LoRA is the base itself
            LoraParameters = c.ToLoraSettings()?.ParameterCount(model) ?? 0,
            PredictorHidden = popo is { UsesSimilarity: true } ? popo.PredictorHidden : 0,
            PredictorDepth = c.PredictorDepth,
            EvalRows = evalRows,
            SftRows = c.SftSteps > 0 ? c.SftBatchSize : 0,
            BaselineBytes = RuntimeBaseline + (string.IsNullOrEmpty(c.Model) ? 0 : HfTokenizerBaseline),
        };
    }

    /// <summary>Bytes the process may still use: MemAvailable of /proc/meminfo, capped by the cgroup's limit minus its usage.</summary>
    public static long? AvailableBytes()
    {
        long? available = null;
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
                if (line.StartsWith("MemAvailable:", StringComparison.Ordinal))
                    available = ProcBytes(line);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        foreach (var (limitFile, usageFile) in new[] { ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                                        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes") })
        {
            if (ReadLong(limitFile) is long limit && limit < (1L << 60) && ReadLong(usageFile) is long usage)
            {
                var room = Math.Max(0, limit - usage);
                available = available is long a ? Math.Min(a, room) : room;
                break;
            }
        }
        return available;
    }

    private static long? ReadLong(string path)
    {
        try { return File.Exists(path) && long.TryParse(File.ReadAllText(path).Trim(), out var v) ? v : null; }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    /// <summary>
    /// The bytes of a /proc line "Name: value kB". The kernel writes a tab after the colon and pads the value with spaces
    /// to eight digits, so a value of 10,000,000 kB or more follows the tab directly ("VmHWM:\t11433516 kB").
    /// </summary>
    internal static long ProcBytes(string line) =>
        long.Parse(line[(line.IndexOf(':') + 1)..].Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries)[0], CultureInfo.InvariantCulture) * 1024;

    /// <summary>Peak resident set of this process so far (VmHWM), or null where /proc is absent.</summary>
    public static long? PeakRss()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return ProcBytes(line);
        }
        catch (IOException) { }
        return null;
    }

    public static string Gb(long bytes) => (bytes / (double)GiB).ToString("F2", CultureInfo.InvariantCulture) + " GiB";

    public string Describe()
    {
        var text = new StringBuilder($"memory estimate: peak {Gb(TotalBytes)} (during the {Phase}; a phase's own tensors, made and freed within a step, at most {Gb(TransientBytes)})");
        foreach (var (item, bytes) in Breakdown) text.Append($"\n  {Gb(bytes),10}  {item}");
        return text.ToString();
    }

    /// <summary>
    /// Keys that lower the estimate, each with the saving it alone would give: the batch keys halved (to 1),
    /// max_new_tokens halved, no similarity term (no EMA target), and the precision keys (bf16,
    /// gradient_checkpointing, a chunked head).
    /// </summary>
    public static List<(string Change, long Saving)> Reductions(TrainConfig c, ModelConfig model, int promptTokens)
    {
        long baseTotal = Of(InputsOf(c, model, promptTokens)).TotalBytes;
        var options = new List<(string, TrainConfig)>();
        if (c.MicroBatchSize > 1 && c.PromptsPerStep * c.GroupSize > 1)
        {
            int mb = Math.Min(c.MicroBatchSize, c.PromptsPerStep * c.GroupSize);
            options.Add(($"--micro-batch-size {Math.Max(1, mb / 2)}", c with { MicroBatchSize = Math.Max(1, mb / 2) }));
            options.Add(("--micro-batch-size 1", c with { MicroBatchSize = 1 }));
        }
        if (c.PromptsPerStep > 1) options.Add(($"--prompts-per-step {c.PromptsPerStep / 2}", c with { PromptsPerStep = c.PromptsPerStep / 2 }));
        if (c.GroupSize > 2) options.Add(($"--group-size {Math.Max(2, c.GroupSize / 2)}", c with { GroupSize = Math.Max(2, c.GroupSize / 2) }));
        if (c.MaxNewTokens > 1) options.Add(($"--max-new-tokens {c.MaxNewTokens / 2}", c with { MaxNewTokens = c.MaxNewTokens / 2 }));
        if (c.EvalProblems > 8) options.Add(("--eval-problems 8", c with { EvalProblems = 8 }));
        if (c.SftSteps > 0 && c.SftBatchSize > 1) options.Add(($"--sft-batch-size {c.SftBatchSize / 2}", c with { SftBatchSize = c.SftBatchSize / 2 }));
        if (ConfigLoader.IsPopoFamily(c.Algo) && PopoOptions.From(c).UsesSimilarity) options.Add(("--alpha 0 (no similarity term: no EMA target)", c with { Alpha = 0 }));
        if (!c.Bf16 && c.Dtype == "float32") options.Add(("--bf16", c with { Bf16 = true }));
        if (!c.GradientCheckpointing) options.Add(("--gradient-checkpointing", c with { GradientCheckpointing = true }));
        if (c.LogitChunkSize == 0) options.Add(("--logit-chunk-size -1 (64 MiB of logits per head chunk)", c with { LogitChunkSize = -1 }));
        return options
            .Select(o => (o.Item1, Saving: baseTotal - Of(InputsOf(o.Item2, model, promptTokens)).TotalBytes))
            .Where(o => o.Saving > 0)
            .OrderByDescending(o => o.Saving)
            .ToList();
    }

    /// <summary>Throws <see cref="MemoryPreflightException"/> when the estimate exceeds the available memory and the check is on.</summary>
    public void Check(TrainConfig c, ModelConfig model, int promptTokens, long? available, Action<string> log)
    {
        if (available is not long room) { log("memory check: the machine's available memory is unknown (no /proc/meminfo); not checked"); return; }
        if (c.Device != "cpu") { log($"memory check: device {c.Device}: the estimate is for the device's memory, not checked against host RAM"); return; }
        if (TotalBytes <= room) return;
        var text = new StringBuilder($"the run needs an estimated {Gb(TotalBytes)} at its peak (during the {Phase}) but this machine has {Gb(room)} available " +
                                     "(MemAvailable in /proc/meminfo, capped by the cgroup limit). ");
        var reductions = Reductions(c, model, promptTokens);
        if (reductions.Count > 0)
            text.Append("Each of these lowers the estimate by: " + string.Join("; ", reductions.Select(r => $"{r.Change}: -{Gb(r.Saving)}")) + ". ");
        text.Append("Pass --memory-check false to run anyway.");
        if (c.MemoryCheck) throw new MemoryPreflightException(text.ToString());
        log("warning: " + text);
    }
}
