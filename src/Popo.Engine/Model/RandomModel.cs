using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

using Popo.Engine.Checkpoints;
using Popo.Engine.Runtime;

namespace Popo.Engine.Model;

/// <summary>
/// `popo init`: a randomly initialised model folder in the Hugging Face layout (config.json, safetensors,
/// the tokenizer files), from a preset of a real Qwen2.5 config or a config.json, with field overrides such
/// as num_hidden_layers=2. The weights are generated and written one tensor at a time (a tensor in row
/// chunks of at most <see cref="ChunkElements"/> values), so a 7B model never needs to be in memory; above
/// <see cref="HfCheckpoint.DefaultShardBytes"/> (transformers' 5 GB) the weights are sharded with an index.
/// Initialisation is transformers' for Qwen2: N(0, initializer_range^2) for projections and embeddings,
/// zero biases, unit norm weights; tensor k of the sorted names draws from its own generator seeded
/// (seed, k), so a tensor's values do not depend on the dtype or the shard layout.
/// </summary>
internal static class RandomModel
{
    public const long ChunkElements = 1L << 24;

    /// <summary>config.json values of the public Qwen2.5 checkpoints (Hugging Face Qwen/...), with sliding_window / max_window_layers as published.</summary>
    public static readonly IReadOnlyDictionary<string, (ModelConfig Config, int SlidingWindow, int MaxWindowLayers)> Presets =
        new Dictionary<string, (ModelConfig, int, int)>
        {
            ["qwen2.5-0.5b"] = (Qwen(896, 4864, 24, 14, 2, 151936, 32768, 1e6, tied: true), 32768, 24),
            ["qwen2.5-1.5b"] = (Qwen(1536, 8960, 28, 12, 2, 151936, 131072, 1e6, tied: true), 131072, 28),
            ["qwen2.5-7b"] = (Qwen(3584, 18944, 28, 28, 4, 152064, 131072, 1e6, tied: false), 131072, 28),
            ["qwen2.5-math-7b"] = (Qwen(3584, 18944, 28, 28, 4, 152064, 4096, 1e4, tied: false), 4096, 28),
        };

    private static ModelConfig Qwen(int hidden, int intermediate, int layers, int heads, int kvHeads, int vocab, int context, double ropeTheta, bool tied) => new()
    {
        HiddenSize = hidden, IntermediateSize = intermediate, NumHiddenLayers = layers, NumAttentionHeads = heads,
        NumKeyValueHeads = kvHeads, VocabSize = vocab, MaxPositionEmbeddings = context, RopeTheta = ropeTheta,
        RmsNormEps = 1e-6, TieWordEmbeddings = tied, TorchDtype = "bfloat16", BosTokenId = 151643, EosTokenId = 151643,
        InitializerRange = 0.02,
    };

    /// <summary>The fields an override may set, with how each is parsed.</summary>
    private static readonly Dictionary<string, Func<ModelConfig, string, ModelConfig>> Fields = new()
    {
        ["vocab_size"] = (c, v) => c with { VocabSize = Int(v) },
        ["hidden_size"] = (c, v) => c with { HiddenSize = Int(v) },
        ["intermediate_size"] = (c, v) => c with { IntermediateSize = Int(v) },
        ["num_hidden_layers"] = (c, v) => c with { NumHiddenLayers = Int(v) },
        ["num_attention_heads"] = (c, v) => c with { NumAttentionHeads = Int(v) },
        ["num_key_value_heads"] = (c, v) => c with { NumKeyValueHeads = Int(v) },
        ["max_position_embeddings"] = (c, v) => c with { MaxPositionEmbeddings = Int(v) },
        ["rope_theta"] = (c, v) => c with { RopeTheta = Double(v) },
        ["rms_norm_eps"] = (c, v) => c with { RmsNormEps = Double(v) },
        ["initializer_range"] = (c, v) => c with { InitializerRange = Double(v) },
        ["tie_word_embeddings"] = (c, v) => c with { TieWordEmbeddings = v switch { "true" => true, "false" => false, _ => throw new FormatException("expected true or false") } },
        ["bos_token_id"] = (c, v) => c with { BosTokenId = Int(v) },
        ["eos_token_id"] = (c, v) => c with { EosTokenId = Int(v) },
    };

    public static IEnumerable<string> OverridableFields => Fields.Keys;

    private static int Int(string v) => int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var i) ? i : throw new FormatException("expected an integer");

    private static double Double(string v) => double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d : throw new FormatException("expected a number");

    /// <summary>A preset name or a config.json path, then the overrides (field=value), validated.</summary>
    public static (ModelConfig Config, int? SlidingWindow, int? MaxWindowLayers) Resolve(string configOrPreset, IEnumerable<string> overrides)
    {
        ModelConfig config;
        int? window = null, windowLayers = null;
        if (Presets.TryGetValue(configOrPreset.ToLowerInvariant(), out var preset)) (config, window, windowLayers) = preset;
        else if (File.Exists(configOrPreset)) config = ModelConfig.Load(configOrPreset);
        else throw new ConfigException(
            $"--config: '{configOrPreset}' is neither a preset ({string.Join(", ", Presets.Keys)}) nor a config.json file");
        foreach (var o in overrides)
        {
            var eq = o.IndexOf('=');
            if (eq <= 0) throw new ConfigException($"override '{o}': expected field=value, e.g. num_hidden_layers=2");
            string field = o[..eq].Trim(), value = o[(eq + 1)..].Trim();
            if (!Fields.TryGetValue(field, out var set))
                throw new ConfigException($"override '{o}': unknown field '{field}'; the fields are {string.Join(", ", Fields.Keys)}");
            try { config = set(config, value); }
            catch (FormatException e) { throw new ConfigException($"override '{o}': field '{field}': {e.Message}, got '{value}'"); }
            if (field == "num_hidden_layers" && windowLayers is not null) windowLayers = config.NumHiddenLayers;
        }
        config.Validate("--config " + configOrPreset);
        return (config, window, windowLayers);
    }

    /// <summary>
    /// Writes config.json and the weights into <paramref name="outFolder"/> (which must not hold files yet); the caller adds
    /// the tokenizer files (whose ids it has checked against vocab_size).
    /// </summary>
    public static long Write(ModelConfig config, int? slidingWindow, int? maxWindowLayers, string outFolder,
                             ScalarType dtype, long seed, Action<string>? log = null)
    {
        if (File.Exists(outFolder)) throw new IOException($"--out: {outFolder} is a file");
        if (Directory.Exists(outFolder) && Directory.EnumerateFileSystemEntries(outFolder).Any())
            throw new IOException($"--out: {outFolder} already holds files; choose an empty or new folder");

        config = config with { TorchDtype = ModelConfig.DtypeName(dtype) };
        var shapes = Shapes(config);
        var tensors = shapes.Select((s, k) => new PendingTensor(s.Name, dtype, s.Shape, () => Generate(s.Name, s.Shape, dtype, config.InitializerRange, seed, k))).ToList();
        long bytes = tensors.Sum(t => t.Bytes);
        log?.Invoke($"writing {shapes.Sum(s => s.Shape.Aggregate(1L, (a, b) => a * b)):N0} parameters ({bytes / 1e9:F2} GB in {ModelConfig.DtypeName(dtype)}) to {outFolder}");
        HfCheckpoint.SaveTensors(outFolder, config, tensors, HfCheckpoint.DefaultShardBytes);
        AddPublishedFields(Path.Combine(outFolder, HfCheckpoint.ConfigFile), slidingWindow, maxWindowLayers);
        return bytes;
    }

    /// <summary>Tensor names and shapes of a Qwen2ForCausalLM with this config, in name order (HF names).</summary>
    public static List<(string Name, long[] Shape)> Shapes(ModelConfig c)
    {
        long d = c.HiddenSize, kv = (long)c.NumKeyValueHeads * c.HeadDim, i = c.IntermediateSize, v = c.VocabSize;
        var list = new List<(string, long[])> { ("model.embed_tokens.weight", [v, d]), ("model.norm.weight", [d]) };
        if (!c.TieWordEmbeddings) list.Add(("lm_head.weight", [v, d]));
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            var p = $"model.layers.{l}.";
            list.AddRange([
                (p + "input_layernorm.weight", [d]), (p + "post_attention_layernorm.weight", [d]),
                (p + "self_attn.q_proj.weight", [d, d]), (p + "self_attn.q_proj.bias", [d]),
                (p + "self_attn.k_proj.weight", [kv, d]), (p + "self_attn.k_proj.bias", [kv]),
                (p + "self_attn.v_proj.weight", [kv, d]), (p + "self_attn.v_proj.bias", [kv]),
                (p + "self_attn.o_proj.weight", [d, d]),
                (p + "mlp.gate_proj.weight", [i, d]), (p + "mlp.up_proj.weight", [i, d]), (p + "mlp.down_proj.weight", [d, i]),
            ]);
        }
        return list.OrderBy(t => t.Item1, StringComparer.Ordinal).ToList();
    }

    private static Tensor Generate(string name, long[] shape, ScalarType dtype, double std, long seed, int index)
    {
        if (name.EndsWith("norm.weight", StringComparison.Ordinal)) return torch.ones(shape, dtype: dtype);
        if (name.EndsWith(".bias", StringComparison.Ordinal)) return torch.zeros(shape, dtype: dtype);
        using var generator = new Generator((ulong)seed * 1_000_003UL + (ulong)index);
        var result = torch.empty(shape, dtype: dtype);
        long rowLength = shape.Length > 1 ? shape[1] : 1;
        long rowsPerChunk = Math.Max(1, ChunkElements / rowLength);
        using var flat = result.view(shape[0], rowLength);
        for (long row = 0; row < shape[0]; row += rowsPerChunk)
        {
            using var scope = torch.NewDisposeScope();
            long rows = Math.Min(rowsPerChunk, shape[0] - row);
            var chunk = torch.empty([rows, rowLength], dtype: ScalarType.Float32).normal_(0.0, std, generator);
            flat.narrow(0, row, rows).copy_(chunk);
        }
        return result;
    }

    /// <summary>sliding_window and max_window_layers as the published config.json carries them (informational: use_sliding_window is false).</summary>
    private static void AddPublishedFields(string path, int? slidingWindow, int? maxWindowLayers)
    {
        if (slidingWindow is null && maxWindowLayers is null) return;
        var root = (JsonObject)JsonNode.Parse(File.ReadAllText(path))!;
        if (slidingWindow is int w) root["sliding_window"] = w;
        if (maxWindowLayers is int m) root["max_window_layers"] = m;
        AtomicFile.WriteAllText(path, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }
}
