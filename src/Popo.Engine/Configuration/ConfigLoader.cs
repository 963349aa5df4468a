using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Popo.Engine.Lora;
using Popo.Engine.Objectives;
using Tomlyn;
using Tomlyn.Model;
using Popo.Engine.Runtime;

namespace Popo.Engine.Configuration;

/// <summary>
/// Resolves a <see cref="TrainConfig"/>: defaults, then the kind-of-run defaults (a pretrained `model`:
/// <see cref="RunKindDefaults"/>), then the algorithm preset, then a TOML or JSON config file, then flags. Every value is checked before any work starts; errors name the file or flag, the
/// key, the value and the allowed range.
/// </summary>
public static class ConfigLoader
{
    /// <summary>Keys each algorithm preset sets (its registration's); anything the file or flags give wins over them.</summary>
    public static readonly IReadOnlyDictionary<string, IReadOnlyList<(string Key, object Value)>> Presets =
        ObjectiveRegistry.All.ToDictionary(a => a.Name, a => a.Preset);

    /// <summary>Whether the algorithm belongs to the POPO family (positive-only), not the GRPO family.</summary>
    public static bool IsPopoFamily(string algo) => ObjectiveRegistry.Get(algo).Family == AlgorithmFamily.Popo;

    /// <summary>
    /// A run's configuration, as <c>popo train</c> builds it: the defaults of the run kind (built-in or pretrained model),
    /// the algorithm's preset, then the file's keys, then the flags. Each value is converted and checked against its key.
    /// </summary>
    /// <param name="configFile">a TOML or JSON file of keys, or null</param>
    /// <param name="flags">(key, value) pairs with snake_case keys, as on the command line; later ones win</param>
    /// <param name="runKindModel">the model that decides the run kind, when it is not the run's own `model`: `popo compare`
    /// trains each arm from its warm-up checkpoint, which does not make a built-in comparison a pretrained run.</param>
    public static TrainConfig Resolve(string? configFile, IReadOnlyList<(string Key, string Value)> flags, string? runKindModel = null)
    {
        var fileValues = configFile is null ? [] : ReadFile(configFile);
        var flagValues = flags.Select(f => (Entry: ConfigSchema.Find(f.Key, "--" + f.Key.Replace('_', '-')), f.Value)).ToList();

        string FileSource() => configFile!;
        var ordered = new List<(ConfigEntry Entry, object Value, string Source)>();
        ordered.AddRange(fileValues.Select(v => (ConfigSchema.Find(v.Key, FileSource()), v.Value, FileSource())));
        ordered.AddRange(flagValues.Select(f => (f.Entry, (object)f.Value, f.Entry.Flag)));

        var converted = ordered.Select(o => (o.Entry, Value: o.Entry.Convert(o.Value, o.Source), o.Source)).ToList();
        var algo = converted.LastOrDefault(c => c.Entry.Key == "algo").Value as string ?? new TrainConfig().Algo;

        var model = converted.LastOrDefault(c => c.Entry.Key == "model").Value as string ?? "";
        var adapter = converted.LastOrDefault(c => c.Entry.Key == "adapter").Value as string ?? "";
        var peft = adapter == "" ? ((LoraSettings, string?)?)null : PeftAdapterConfig.Read(adapter);
        if (peft is var (_, baseModel) && model == "")
        {
            if (baseModel is null || !Directory.Exists(baseModel))
                throw new ConfigException($"key 'adapter': {Path.Combine(adapter, PeftAdapterConfig.FileName)} names base model '{baseModel ?? "(none)"}', " +
                                          "which is not a model folder here; pass --model BASE");
            model = baseModel;
            converted.Add((ConfigSchema.Find("model", "adapter"), model, adapter));
        }

        var config = RunKindDefaults.Apply(new TrainConfig(), runKindModel ?? model, With);
        foreach (var (key, value) in Presets[algo])
            config = With(config, ConfigSchema.Find(key, "preset " + algo), value);
        foreach (var (entry, value, _) in converted)
            config = With(config, entry, value);
        var given = converted.Select(c => c.Entry.Key).ToHashSet();
        if (peft is var (settings, _)) config = FromAdapter(config, settings, adapter, converted.Select(c => (c.Entry.Key, c.Source)).ToList());
        if (algo == "dapo" && !given.Contains("overlong_buffer"))
            config = config with { OverlongBuffer = Math.Max(1, config.MaxNewTokens / 4) };
        Validate(config);
        return config;
    }

    /// <summary>
    /// The lora_* keys of a run started from a PEFT adapter are the adapter's own: each is taken from its adapter_config.json, and
    /// one also given by a flag or file must agree with it (naming both).
    /// </summary>
    private static TrainConfig FromAdapter(TrainConfig config, LoraSettings settings, string adapter, IReadOnlyList<(string Key, string Source)> given)
    {
        var file = Path.Combine(adapter, PeftAdapterConfig.FileName);
        var fromFile = new (string Key, string Field, object Value, object Current)[]
        {
            ("lora_r", "r", settings.Rank, config.LoraR),
            ("lora_alpha", "lora_alpha", settings.Alpha, config.LoraAlpha),
            ("lora_dropout", "lora_dropout", settings.Dropout, config.LoraDropout),
            ("lora_target_modules", "target_modules", settings.TargetsKey, LoraSettings.KeyOf(LoraSettings.ParseTargets(config.LoraTargetModules, "key 'lora_target_modules'"))),
            ("use_rslora", "use_rslora", settings.UseRsLora, config.UseRslora),
        };
        foreach (var (key, field, value, current) in fromFile)
        {
            if (given.LastOrDefault(g => g.Key == key) is { Source: { } source } && !Equals(value, current))
                throw new ConfigException($"{source}: key '{key}' is {Show(current)} but the adapter's {file} has {field} = {Show(value)}; " +
                                          "a run started from an adapter keeps its LoRA settings (drop the key)");
            config = With(config, ConfigSchema.Find(key, file), value);
        }
        return config;
    }

    private static string Show(object value) => value switch
    {
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => $"'{value}'",
    };

    /// <summary>Checks relations between keys that single-key ranges cannot express.</summary>
    public static void Validate(TrainConfig c)
    {
        if (c.HiddenSize % c.Heads != 0)
            throw new ConfigException($"key 'heads': {c.Heads} must divide hidden_size {c.HiddenSize}");
        if (c.Heads % c.KvHeads != 0)
            throw new ConfigException($"key 'kv_heads': {c.KvHeads} must divide heads {c.Heads}");
        if ((c.HiddenSize / c.Heads) % 2 != 0)
            throw new ConfigException($"key 'heads': head size hidden_size/heads = {c.HiddenSize / c.Heads} must be even for rotary embeddings");
        if (c.WeightCap > 0 && c.WeightCap * c.GroupSize < 1)
            throw new ConfigException($"key 'weight_cap': {c.WeightCap.ToString(CultureInfo.InvariantCulture)} x group_size {c.GroupSize} < 1, so no group of positives could sum to one");
        if (c.OverlongBuffer >= c.MaxNewTokens && c.OverlongBuffer > 0)
            throw new ConfigException($"key 'overlong_buffer': {c.OverlongBuffer} must be below max_new_tokens {c.MaxNewTokens}");
        if (!IsPopoFamily(c.Algo) && c.GroupSize < 2)
            throw new ConfigException($"key 'group_size': {c.Algo} needs at least 2 rollouts per prompt (its advantage is the reward minus the group's mean, so one rollout always gets 0); got {c.GroupSize}");
        if (IsPopoFamily(c.Algo) && c.Beta > 0)
            throw new ConfigException($"key 'beta': {c.Beta.ToString(CultureInfo.InvariantCulture)} is GRPO's KL weight against a reference model; {c.Algo} has no KL term " +
                                      "(its regulariser is the similarity penalty: alpha); drop --beta or use --algo grpo");
        if (c.Device is not ("cpu" or "cuda") && !System.Text.RegularExpressions.Regex.IsMatch(c.Device, "^cuda:[0-9]+$"))
            throw new ConfigException($"key 'device': '{c.Device}' is not a device this build knows; expected cpu, cuda or cuda:N" +
                                      (c.Device is "gpu" or "mps" ? $" ('{c.Device}' is not a torch device name{(c.Device == "gpu" ? "; an NVIDIA GPU is cuda" : "; Apple GPUs are not supported by TorchSharp on Linux")})" : ""));
        if (c.Bf16 && c.Dtype != "float32")
            throw new ConfigException($"key 'bf16': mixed precision keeps float32 master weights, so it needs dtype = float32 (got dtype = {c.Dtype})" +
                                      (c.LoraR > 0 && c.Dtype == "bfloat16" ? "; with LoRA, dtype = bfloat16 alone keeps the frozen base in bf16 and trains the adapters in float32 (drop --bf16)" : ""));
        LoraSettings.ParseTargets(c.LoraTargetModules, "key 'lora_target_modules'");
        if (c.LoraDropout >= 1)
            throw new ConfigException($"key 'lora_dropout': expected a number in [0, 1), got {c.LoraDropout.ToString(CultureInfo.InvariantCulture)} (dropout 1 would zero every adapter input)");
        if (string.IsNullOrWhiteSpace(c.Out))
            throw new ConfigException("key 'out': expected a folder path, got ''");
    }

    private static TrainConfig With(TrainConfig config, ConfigEntry entry, object value)
    {
        var copy = config with { };
        entry.Property.SetValue(copy, value);
        return copy;
    }

    private static List<(string Key, object Value)> ReadFile(string path)
    {
        if (!File.Exists(path)) throw new ConfigException($"{path}: config file not found");
        var text = File.ReadAllText(path);
        return Path.GetExtension(path).ToLowerInvariant() switch
        {
            ".toml" => ReadToml(path, text),
            ".json" => ReadJson(path, text),
            var ext => throw new ConfigException($"{path}: unknown config format '{ext}'; expected .toml or .json"),
        };
    }

    private static List<(string, object)> ReadToml(string path, string text)
    {
        TomlTable table;
        try { table = TomlSerializer.Deserialize<TomlTable>(text)!; }
        catch (TomlException e) { throw new ConfigException($"{path}: not valid TOML: {e.Message}"); }
        RefuseDuplicateKeys(path, text);
        var values = new List<(string, object)>();
        foreach (var (key, value) in table)
        {
            if (value is TomlTable or TomlTableArray or TomlArray)
                throw new ConfigException($"{path}: key '{key}': expected a single value (keys are flat, see `popo train --help`)");
            values.Add((key, value));
        }
        return values;
    }

    /// <summary>
    /// The TOML specification makes a key defined twice an invalid document; Tomlyn's deserializer keeps the last
    /// value (`steps = 3` then `steps = 5` gave 5, DuplicateKeyHandling = Error notwithstanding), so its token reader is
    /// walked here, a set of keys per table. A table defined twice ([a] ... [a]) reaches the reader merged; the keys
    /// are flat, so any table is refused after this anyway, naming it.
    /// </summary>
    private static void RefuseDuplicateKeys(string path, string text)
    {
        var reader = Tomlyn.Serialization.TomlReader.Create(text, new TomlSerializerOptions());
        var tables = new Stack<Dictionary<string, int>>();
        while (reader.Read())
        {
            switch (reader.TokenType)
            {
                case Tomlyn.Serialization.TomlTokenType.StartTable: tables.Push(new(StringComparer.Ordinal)); break;
                case Tomlyn.Serialization.TomlTokenType.EndTable: tables.Pop(); break;
                case Tomlyn.Serialization.TomlTokenType.PropertyName when tables.Count > 0:
                    if (tables.Peek().TryGetValue(reader.PropertyName!, out var first))
                        throw new ConfigException($"{path}:{reader.Line}: key '{reader.PropertyName}' is defined twice (first on line {first}); a TOML document may define a key once");
                    tables.Peek()[reader.PropertyName!] = reader.Line;
                    break;
            }
        }
    }

    private static List<(string, object)> ReadJson(string path, string text)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(text); }
        catch (JsonException e) { throw new ConfigException($"{path}: not valid JSON (line {e.LineNumber + 1}): {e.Message}"); }
        // JsonObject refuses a repeated name only when first enumerated, as an ArgumentException naming no file.
        using (var document = JsonDocument.Parse(text))
            if (document.RootElement.ValueKind == JsonValueKind.Object
                && document.RootElement.EnumerateObject().GroupBy(p => p.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1) is { } twice)
                throw new ConfigException($"{path}: key '{twice.Key}' is defined {twice.Count()} times; a config file may define a key once");
        if (root is not JsonObject obj) throw new ConfigException($"{path}: expected a JSON object of key: value pairs");
        var values = new List<(string, object)>();
        foreach (var (key, node) in obj)
        {
            object value = node switch
            {
                JsonValue v when v.TryGetValue<bool>(out var b) => b,
                JsonValue v when v.TryGetValue<long>(out var l) => l,
                JsonValue v when v.TryGetValue<double>(out var d) => d,
                JsonValue v when v.TryGetValue<string>(out var s) => s,
                _ => throw new ConfigException($"{path}: key '{key}': expected a single value, got {node?.ToJsonString() ?? "null"}"),
            };
            values.Add((key, value));
        }
        return values;
    }

    /// <summary>The resolved configuration as a flat JSON object with the config-file keys.</summary>
    public static string ToJson(TrainConfig config)
    {
        var obj = new JsonObject();
        foreach (var e in ConfigSchema.Entries)
            obj[e.Key] = e.Property.GetValue(config) switch
            {
                int i => JsonValue.Create(i),
                double d => JsonValue.Create(d),
                bool b => JsonValue.Create(b),
                var v => JsonValue.Create((string)v!),
            };
        return obj.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}
