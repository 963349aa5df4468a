using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Popo.Engine.Checkpoints;
using Popo.Engine.Runtime;

namespace Popo.Engine.Lora;

/// <summary>
/// adapter_config.json as PEFT's LoraConfig.save_pretrained writes it (keys sorted, inference_mode true), so PEFT's
/// PeftModel.from_pretrained and vLLM's LoRA loader (PEFTHelper: r, lora_alpha, target_modules required;
/// modules_to_save null, use_dora false) read it. Reading accepts what this engine can apply and names the field
/// of anything else (another PEFT method, DoRA, trained biases, per-layer rank patterns, ...).
/// </summary>
internal static class PeftAdapterConfig
{
    public const string FileName = "adapter_config.json";

    /// <summary>The fields PEFT writes, values for <paramref name="settings"/>; base_model_name_or_path as given (null when unknown).</summary>
    public static JsonObject ToJson(LoraSettings settings, string? baseModel)
    {
        var fields = new SortedDictionary<string, JsonNode?>(StringComparer.Ordinal)
        {
            ["alpha_pattern"] = new JsonObject(),
            ["auto_mapping"] = null,
            ["base_model_name_or_path"] = baseModel,
            ["bias"] = "none",
            ["fan_in_fan_out"] = false,
            ["inference_mode"] = true,
            ["init_lora_weights"] = true,
            ["layer_replication"] = null,
            ["layers_pattern"] = null,
            ["layers_to_transform"] = null,
            ["loftq_config"] = new JsonObject(),
            ["lora_alpha"] = Number(settings.Alpha),
            ["lora_dropout"] = settings.Dropout,
            ["megatron_config"] = null,
            ["megatron_core"] = "megatron.core",
            ["modules_to_save"] = null,
            ["peft_type"] = "LORA",
            ["r"] = settings.Rank,
            ["rank_pattern"] = new JsonObject(),
            ["revision"] = null,
            ["target_modules"] = new JsonArray(settings.Targets.Select(t => (JsonNode?)t).ToArray()),
            ["task_type"] = "CAUSAL_LM",
            ["use_dora"] = false,
            ["use_rslora"] = settings.UseRsLora,
        };
        var json = new JsonObject();
        foreach (var (key, value) in fields) json[key] = value;
        return json;
    }

    /// <summary>PEFT types lora_alpha as int: an integral alpha is written as one.</summary>
    private static JsonNode Number(double x) => x == Math.Floor(x) && Math.Abs(x) < 1e15 ? JsonValue.Create((long)x) : JsonValue.Create(x);

    public static void Write(string folder, LoraSettings settings, string? baseModel) =>
        AtomicFile.WriteAllText(Path.Combine(folder, FileName), ToJson(settings, baseModel).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

    /// <summary>
    /// Reads FOLDER/adapter_config.json: the LoRA settings and base_model_name_or_path (null when absent). Throws
    /// <see cref="CheckpointFormatException"/> naming the file and the field for a missing file, a missing or mistyped
    /// required field, or a feature this engine does not apply.
    /// </summary>
    public static (LoraSettings Settings, string? BaseModel) Read(string folder)
    {
        var path = Path.Combine(folder, FileName);
        if (!File.Exists(path)) throw new CheckpointFormatException($"{path}: file not found (not a PEFT adapter folder)");
        JsonObject root;
        try { root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new CheckpointFormatException($"{path}: expected a JSON object"); }
        catch (JsonException e) { throw new CheckpointFormatException($"{path}: not valid JSON ({e.Message})"); }

        CheckpointFormatException Field(string field, string problem) => new($"{path}: field '{field}' {problem}");
        JsonNode? Get(string field) => root.TryGetPropertyValue(field, out var v) ? v : null;
        string? Text(string field) => Get(field) switch
        {
            null => null,
            JsonValue v when v.TryGetValue<string>(out var s) => s,
            var other => throw Field(field, $"must be a string, got {other.ToJsonString()}"),
        };
        double Real(string field, double? fallback)
        {
            var node = Get(field);
            if (node is null) return fallback ?? throw Field(field, "is missing (PEFT and vLLM require it)");
            if (node is JsonValue v && v.TryGetValue<double>(out var d) && double.IsFinite(d)) return d;
            throw Field(field, $"must be a number, got {node.ToJsonString()}");
        }
        bool Flag(string field)
        {
            var node = Get(field);
            if (node is null) return false;
            if (node is JsonValue v && v.TryGetValue<bool>(out var b)) return b;
            throw Field(field, $"must be true or false, got {node.ToJsonString()}");
        }
        bool Empty(string field) => Get(field) is null or JsonObject { Count: 0 } or JsonArray { Count: 0 };

        if (Text("peft_type") is { } type && type != "LORA") throw Field("peft_type", $"is '{type}'; only LoRA adapters (\"LORA\") are supported");
        if (Text("bias") is { } bias && bias != "none") throw Field("bias", $"is '{bias}'; trained biases are not supported (\"none\")");
        if (Flag("use_dora")) throw Field("use_dora", "is true; DoRA is not supported");
        if (Flag("fan_in_fan_out")) throw Field("fan_in_fan_out", "is true; Qwen2's linear layers store W as [out, in] (false)");
        foreach (var field in new[] { "modules_to_save", "layers_to_transform", "rank_pattern", "alpha_pattern", "layer_replication" })
            if (!Empty(field)) throw Field(field, $"is {Get(field)!.ToJsonString()}; only one rank and alpha for every targeted layer of every layer is supported (null or empty)");

        var r = Real("r", null);
        if (r != Math.Floor(r) || r < 1 || r > 65536) throw Field("r", $"must be an integer in [1, 65536], got {r.ToString(CultureInfo.InvariantCulture)}");
        var alpha = Real("lora_alpha", null);
        if (alpha <= 0) throw Field("lora_alpha", $"must be positive, got {alpha.ToString(CultureInfo.InvariantCulture)}");
        var dropout = Real("lora_dropout", 0.0);
        if (dropout is < 0 or >= 1) throw Field("lora_dropout", $"must lie in [0, 1), got {dropout.ToString(CultureInfo.InvariantCulture)}");
        var targets = Get("target_modules") switch
        {
            null => throw Field("target_modules", "is missing (PEFT and vLLM require it)"),
            JsonValue v when v.TryGetValue<string>(out var s) => s,
            JsonArray a when a.All(n => n is JsonValue x && x.TryGetValue<string>(out _)) => string.Join(",", a.Select(n => n!.GetValue<string>())),
            var other => throw Field("target_modules", $"must be a list of module names or \"all-linear\", got {other.ToJsonString()}"),
        };
        IReadOnlyList<string> parsed;
        try { parsed = LoraSettings.ParseTargets(targets, "target_modules"); }
        catch (ConfigException e) { throw new CheckpointFormatException($"{path}: field {e.Message}"); }
        return (new LoraSettings((int)r, alpha, dropout, parsed, Flag("use_rslora")), Text("base_model_name_or_path"));
    }
}
