using System.Text.Json;
using System.Text.Json.Nodes;
using Popo.Engine.Checkpoints;
using TorchSharp;
using Popo.Engine.Runtime;

namespace Popo.Engine.Model;

/// <summary>
/// The Hugging Face Qwen2 config.json fields the decoder is sized from (docs/design.md §6). Property names
/// follow the C# convention; <see cref="Load"/> and <see cref="Save"/> use the HF snake_case names.
/// </summary>
internal sealed record ModelConfig
{
    public const string Qwen2Architecture = "Qwen2ForCausalLM";

    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int NumHiddenLayers { get; init; }
    public required int NumAttentionHeads { get; init; }
    public required int NumKeyValueHeads { get; init; }
    public int MaxPositionEmbeddings { get; init; } = 2048;
    public double RopeTheta { get; init; } = 10000.0;
    public double RmsNormEps { get; init; } = 1e-6;
    public bool TieWordEmbeddings { get; init; }
    /// <summary>HF dtype name: "float32", "float64", "bfloat16" or "float16".</summary>
    public string TorchDtype { get; init; } = "float32";
    public int? BosTokenId { get; init; }
    public int? EosTokenId { get; init; }
    public double InitializerRange { get; init; } = 0.02;
    public IReadOnlyList<string> Architectures { get; init; } = [Qwen2Architecture];

    public int HeadDim => HiddenSize / NumAttentionHeads;

    /// <summary>Value equality, the architecture list compared element by element.</summary>
    public bool Equals(ModelConfig? other) =>
        other is not null && VocabSize == other.VocabSize && HiddenSize == other.HiddenSize
        && IntermediateSize == other.IntermediateSize && NumHiddenLayers == other.NumHiddenLayers
        && NumAttentionHeads == other.NumAttentionHeads && NumKeyValueHeads == other.NumKeyValueHeads
        && MaxPositionEmbeddings == other.MaxPositionEmbeddings && RopeTheta == other.RopeTheta
        && RmsNormEps == other.RmsNormEps && TieWordEmbeddings == other.TieWordEmbeddings
        && TorchDtype == other.TorchDtype && BosTokenId == other.BosTokenId && EosTokenId == other.EosTokenId
        && InitializerRange == other.InitializerRange && Architectures.SequenceEqual(other.Architectures);

    public override int GetHashCode() => HashCode.Combine(VocabSize, HiddenSize, NumHiddenLayers, NumAttentionHeads, TorchDtype);

    /// <summary>Throws <see cref="ModelConfigException"/> naming <paramref name="source"/> and the field when the sizes cannot form a Qwen2 decoder.</summary>
    public void Validate(string source = "config")
    {
        void Positive(string field, long value)
        {
            if (value <= 0) throw new ModelConfigException($"{source}: field '{field}' must be positive, got {value}");
        }
        Positive("vocab_size", VocabSize);
        Positive("hidden_size", HiddenSize);
        Positive("intermediate_size", IntermediateSize);
        Positive("num_hidden_layers", NumHiddenLayers);
        Positive("num_attention_heads", NumAttentionHeads);
        Positive("num_key_value_heads", NumKeyValueHeads);
        Positive("max_position_embeddings", MaxPositionEmbeddings);
        if (HiddenSize % NumAttentionHeads != 0)
            throw new ModelConfigException($"{source}: field 'hidden_size' ({HiddenSize}) must be divisible by num_attention_heads ({NumAttentionHeads})");
        if (NumAttentionHeads % NumKeyValueHeads != 0)
            throw new ModelConfigException($"{source}: field 'num_attention_heads' ({NumAttentionHeads}) must be divisible by num_key_value_heads ({NumKeyValueHeads})");
        if (HeadDim % 2 != 0)
            throw new ModelConfigException($"{source}: head dimension hidden_size/num_attention_heads = {HeadDim} must be even for rotary embeddings");
        if (!(RopeTheta > 0)) throw new ModelConfigException($"{source}: field 'rope_theta' must be positive, got {RopeTheta}");
        if (!(RmsNormEps > 0)) throw new ModelConfigException($"{source}: field 'rms_norm_eps' must be positive, got {RmsNormEps}");
        if (!Architectures.Contains(Qwen2Architecture))
            throw new ModelConfigException(
                $"{source}: field 'architectures' is [{string.Join(", ", Architectures)}]; only {Qwen2Architecture} is supported");
        DtypeOf(TorchDtype, source);
    }

    /// <summary>Maps an HF dtype name to a TorchSharp scalar type.</summary>
    public static torch.ScalarType DtypeOf(string name, string source = "config") => name switch
    {
        "float32" => torch.ScalarType.Float32,
        "float64" => torch.ScalarType.Float64,
        "bfloat16" => torch.ScalarType.BFloat16,
        "float16" => torch.ScalarType.Float16,
        _ => throw new ModelConfigException($"{source}: field 'torch_dtype' is '{name}'; expected float32, float64, bfloat16 or float16"),
    };

    /// <summary>The HF dtype name of a TorchSharp scalar type.</summary>
    public static string DtypeName(torch.ScalarType dtype) => dtype switch
    {
        torch.ScalarType.Float32 => "float32",
        torch.ScalarType.Float64 => "float64",
        torch.ScalarType.BFloat16 => "bfloat16",
        torch.ScalarType.Float16 => "float16",
        _ => throw new ArgumentException($"{dtype} is not a floating-point model dtype"),
    };

    /// <summary>Reads an HF config.json; every error names the file and the field.</summary>
    public static ModelConfig Load(string path)
    {
        JsonObject root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                ?? throw new ModelConfigException($"{path}: expected a JSON object at the top level");
        }
        catch (JsonException e)
        {
            throw new ModelConfigException($"{path}: not valid JSON ({e.Message})");
        }
        catch (FileNotFoundException)
        {
            throw new ModelConfigException($"{path}: file not found");
        }

        if (root["model_type"] is JsonNode mt && mt.GetValueKind() == JsonValueKind.String && mt.GetValue<string>() != "qwen2")
            throw new ModelConfigException($"{path}: field 'model_type' is '{mt.GetValue<string>()}'; only qwen2 is supported");
        if (root["hidden_act"] is JsonNode act && act.GetValueKind() == JsonValueKind.String && act.GetValue<string>() != "silu")
            throw new ModelConfigException($"{path}: field 'hidden_act' is '{act.GetValue<string>()}'; only silu is supported");
        if (root["use_sliding_window"] is JsonNode sw && sw.GetValueKind() == JsonValueKind.True)
            throw new ModelConfigException($"{path}: field 'use_sliding_window' is true; sliding-window attention is not supported");
        if (root["rope_scaling"] is JsonNode rs && rs.GetValueKind() != JsonValueKind.Null)
            throw new ModelConfigException($"{path}: field 'rope_scaling' is set; only plain rotary embeddings are supported");

        var config = new ModelConfig
        {
            VocabSize = Int(root, "vocab_size", path),
            HiddenSize = Int(root, "hidden_size", path),
            IntermediateSize = Int(root, "intermediate_size", path),
            NumHiddenLayers = Int(root, "num_hidden_layers", path),
            NumAttentionHeads = Int(root, "num_attention_heads", path),
            NumKeyValueHeads = root.ContainsKey("num_key_value_heads")
                ? Int(root, "num_key_value_heads", path) : Int(root, "num_attention_heads", path),
            MaxPositionEmbeddings = OptionalInt(root, "max_position_embeddings", path) ?? 2048,
            RopeTheta = OptionalDouble(root, "rope_theta", path) ?? 10000.0,
            RmsNormEps = OptionalDouble(root, "rms_norm_eps", path) ?? 1e-6,
            TieWordEmbeddings = OptionalBool(root, "tie_word_embeddings", path) ?? false,
            // Recent transformers write "dtype"; older ones "torch_dtype".
            TorchDtype = OptionalString(root, "torch_dtype", path) ?? OptionalString(root, "dtype", path) ?? "float32",
            BosTokenId = OptionalInt(root, "bos_token_id", path),
            EosTokenId = OptionalEos(root, path),
            InitializerRange = OptionalDouble(root, "initializer_range", path) ?? 0.02,
            Architectures = root["architectures"] is JsonArray arr
                ? arr.Select((n, i) => n is JsonValue v && v.TryGetValue<string>(out var s)
                    ? s : throw new ModelConfigException($"{path}: field 'architectures[{i}]' must be a string")).ToArray()
                : root.ContainsKey("architectures")
                    ? throw new ModelConfigException($"{path}: field 'architectures' must be an array of strings")
                    : [Qwen2Architecture],
        };
        config.Validate(path);
        return config;
    }

    /// <summary>Writes config.json in the HF Qwen2 layout (loadable by transformers' Qwen2Config), atomically.</summary>
    public void Save(string path)
    {
        var root = new JsonObject
        {
            ["architectures"] = new JsonArray(Architectures.Select(a => (JsonNode)JsonValue.Create(a)!).ToArray()),
            ["model_type"] = "qwen2",
            ["hidden_act"] = "silu",
            ["vocab_size"] = VocabSize,
            ["hidden_size"] = HiddenSize,
            ["intermediate_size"] = IntermediateSize,
            ["num_hidden_layers"] = NumHiddenLayers,
            ["num_attention_heads"] = NumAttentionHeads,
            ["num_key_value_heads"] = NumKeyValueHeads,
            ["max_position_embeddings"] = MaxPositionEmbeddings,
            ["rope_theta"] = RopeTheta,
            ["rms_norm_eps"] = RmsNormEps,
            ["tie_word_embeddings"] = TieWordEmbeddings,
            ["torch_dtype"] = TorchDtype,
            ["initializer_range"] = InitializerRange,
            ["attention_dropout"] = 0.0,
            ["use_sliding_window"] = false,
            ["use_cache"] = true,
            ["rope_scaling"] = null,
        };
        if (BosTokenId is int bos) root["bos_token_id"] = bos;
        if (EosTokenId is int eos) root["eos_token_id"] = eos;
        AtomicFile.WriteAllText(path, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    private static JsonNode Field(JsonObject root, string field, string path) =>
        root[field] ?? throw new ModelConfigException($"{path}: field '{field}' is missing");

    private static int Int(JsonObject root, string field, string path) =>
        AsInt(Field(root, field, path), field, path);

    private static int AsInt(JsonNode node, string field, string path) =>
        node is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<int>(out var i)
            ? i : throw new ModelConfigException($"{path}: field '{field}' must be an integer, got {node.ToJsonString()}");

    private static int? OptionalInt(JsonObject root, string field, string path) =>
        root[field] is JsonNode n ? AsInt(n, field, path) : null;

    /// <summary>HF allows eos_token_id to be a list; the first entry is the one generation stops on by default.</summary>
    private static int? OptionalEos(JsonObject root, string path) => root["eos_token_id"] switch
    {
        null => null,
        JsonArray { Count: > 0 } a => AsInt(a[0]!, "eos_token_id[0]", path),
        JsonNode n => AsInt(n, "eos_token_id", path),
    };

    private static double? OptionalDouble(JsonObject root, string field, string path) =>
        root[field] is JsonNode n
            ? n is JsonValue v && v.GetValueKind() == JsonValueKind.Number ? v.GetValue<double>()
                : throw new ModelConfigException($"{path}: field '{field}' must be a number, got {n.ToJsonString()}")
            : null;

    private static bool? OptionalBool(JsonObject root, string field, string path) =>
        root[field] is JsonNode n
            ? n.GetValueKind() switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw new ModelConfigException($"{path}: field '{field}' must be true or false, got {n.ToJsonString()}"),
            }
            : null;

    private static string? OptionalString(JsonObject root, string field, string path) =>
        root[field] is JsonNode n
            ? n is JsonValue v && v.TryGetValue<string>(out var s) ? s
                : throw new ModelConfigException($"{path}: field '{field}' must be a string, got {n.ToJsonString()}")
            : null;
}
