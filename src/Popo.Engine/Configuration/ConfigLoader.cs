using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Popo.Engine.Lora;
using Popo.Engine.Objectives;
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
    public static TrainConfig Resolve(string? configFile, IReadOnlyList<(string Key, string Value)> flags, string? runKindModel = null) =>
        ResolveLayered(configFile is null ? [] : [configFile], flags, runKindModel);

    /// <summary>
    /// Resolves from several config files, later ones winning (then the flags), after the recipe <paramref name="preset"/>
    /// (<see cref="RecipePresets"/>). Files of TRL's or the POPO authors' keys are translated (<see cref="ForeignTranslation"/>);
    /// what each foreign key became and the keys left unmapped go to <paramref name="log"/>.
    /// </summary>
    public static TrainConfig ResolveLayered(IReadOnlyList<string> configFiles, IReadOnlyList<(string Key, string Value)> flags, string? runKindModel = null,
                                      string? preset = null, Action<string>? log = null)
    {
        var flagValues = flags.Select(f => (Entry: ConfigSchema.Find(f.Key, "--" + f.Key.Replace('_', '-')), f.Value)).ToList();
        var translation = ForeignTranslation.Run([.. configFiles.Select(f => (f, ConfigFiles.Read(f)))], [.. flagValues.Select(f => f.Entry.Key)]);
        if (log is not null)
        {
            foreach (var line in translation.Log) log("config: " + line);
            if (translation.Unmapped.Count > 0) log($"config: not mapped, ignored ({translation.Unmapped.Count}; none changes the math here): {string.Join("; ", translation.Unmapped)}");
        }

        var ordered = new List<(ConfigEntry Entry, object Value, string Source)>();
        foreach (var (key, raw, source) in translation.Settings)
        {
            var entry = ConfigSchema.Find(key, source);
            // A list key (reward_funcs, reward_weights) takes an array, and null (TRL's None) is its default, the empty list;
            // every other key takes a single value.
            var value = raw is null && entry.ItemType is not null ? new List<object?>() : raw;
            if (value is null or IReadOnlyDictionary<string, object?> || (value is IEnumerable<object?> && value is not string && entry.ItemType is null))
                throw new ConfigException($"{source}: key '{key}': expected a single value ({entry.Describe()}), got {ForeignKeys.Show(value)}");
            ordered.Add((entry, value, source));
        }
        ordered.AddRange(flagValues.Select(f => (f.Entry, (object)f.Value, f.Entry.Flag)));

        var converted = ordered.Select(o => (o.Entry, Value: o.Entry.Convert(o.Value, o.Source), o.Source)).ToList();
        var algo = converted.LastOrDefault(c => c.Entry.Key == "algo").Value as string
                   ?? (preset is null ? null : RecipePresets.Get(preset).LastOrDefault(p => p.Key == "algo").Value as string) ?? new TrainConfig().Algo;

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
        if (preset is not null)
            foreach (var (key, value) in RecipePresets.Get(preset))
                config = With(config, ConfigSchema.Find(key, "--preset " + preset), value);
        foreach (var (entry, value, _) in converted)
            config = With(config, entry, value);
        var given = converted.Select(c => c.Entry.Key).ToHashSet();
        if (peft is var (settings, _)) config = FromAdapter(config, settings, adapter, converted.Select(c => (c.Entry.Key, c.Source)).ToList());
        if (algo == "dapo" && !given.Contains("overlong_buffer"))
            config = config with { OverlongBuffer = Math.Max(1, config.MaxNewTokens / 4) };
        if (config.PromptTemplate == "qwen_math")
        {
            if (config.SystemPrompt == "") config = config with { SystemPrompt = RecipePresets.QwenMathSystemPrompt };
            else if (config.SystemPrompt != RecipePresets.QwenMathSystemPrompt)
                throw new ConfigException($"key 'prompt_template': qwen_math renders Qwen2.5-Math's system prompt, but system_prompt is set to '{config.SystemPrompt}'; drop one of them");
        }
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
        if (IsPopoFamily(c.Algo) && GrpoOnlyKey(c) is { } grpoOnly)
            throw new ConfigException($"key '{grpoOnly}': a GRPO-family option (it acts on the clipped surrogate's ratio or its token losses); " +
                                      $"{c.Algo} has no ratio and weighs its positives itself, so it does not apply (docs/design.md §3.1); drop it or pick a GRPO-family --algo");
        if (c.Delta > 0 && c.Delta <= 1)
            throw new ConfigException($"key 'delta': {c.Delta.ToString(CultureInfo.InvariantCulture)} would cap the ratio below 1, where every on-policy token sits; expected 0 (off) or above 1 (TRL recommends above 1 + eps_high)");
        if (c.Device is not ("cpu" or "cuda") && !System.Text.RegularExpressions.Regex.IsMatch(c.Device, "^cuda:[0-9]+$"))
            throw new ConfigException($"key 'device': '{c.Device}' is not a device this build knows; expected cpu, cuda or cuda:N" +
                                      (c.Device is "gpu" or "mps" ? $" ('{c.Device}' is not a torch device name{(c.Device == "gpu" ? "; an NVIDIA GPU is cuda" : "; Apple GPUs are not supported by TorchSharp on Linux")})" : ""));
        if (c.Bf16 && c.Dtype != "float32")
            throw new ConfigException($"key 'bf16': mixed precision keeps float32 master weights, so it needs dtype = float32 (got dtype = {c.Dtype})" +
                                      (c.LoraR > 0 && c.Dtype == "bfloat16" ? "; with LoRA, dtype = bfloat16 alone keeps the frozen base in bf16 and trains the adapters in float32 (drop --bf16)" : ""));
        LoraSettings.ParseTargets(c.LoraTargetModules, "key 'lora_target_modules'");
        if (c.LoraDropout >= 1)
            throw new ConfigException($"key 'lora_dropout': expected a number in [0, 1), got {c.LoraDropout.ToString(CultureInfo.InvariantCulture)} (dropout 1 would zero every adapter input)");
        if (c.AsyncRollouts && c.RolloutEngine != "server")
            throw new ConfigException("key 'async_rollouts': generation one step ahead needs rollout_engine = server " +
                                      "(the built-in sampler runs on the trainer's own cores and weights, so there is nothing to overlap); drop it or use --rollout-engine server");
        if (string.IsNullOrWhiteSpace(c.Out))
            throw new ConfigException("key 'out': expected a folder path, got ''");
    }

    /// <summary>The first GRPO-only key set away from its default, or null.</summary>
    private static string? GrpoOnlyKey(TrainConfig c) =>
        c.ImportanceSamplingLevel != "token" ? "importance_sampling_level"
        : c.Delta > 0 ? "delta"
        : c.TopEntropyQuantile < 1 ? "top_entropy_quantile"
        : c.MaskTruncatedCompletions ? "mask_truncated_completions"
        : null;

    private static TrainConfig With(TrainConfig config, ConfigEntry entry, object value)
    {
        var copy = config with { };
        entry.Property.SetValue(copy, value);
        return copy;
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
                ConfigList<string> l => new JsonArray(l.Select(x => (JsonNode?)JsonValue.Create(x)).ToArray()),
                ConfigList<double> l => new JsonArray(l.Select(x => (JsonNode?)JsonValue.Create(x)).ToArray()),
                var v => JsonValue.Create((string)v!),
            };
        return obj.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}
