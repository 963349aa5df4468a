using Popo.Engine.Checkpoints;
using Popo.Engine.Model;
using static TorchSharp.torch;

namespace Popo.Engine.Lora;

/// <summary>
/// A PEFT adapter folder: adapter_config.json (<see cref="PeftAdapterConfig"/>) and adapter_model.safetensors with
/// PEFT's tensor names, `base_model.model.` + the base model's module path + `.lora_A.weight` ([r, in]) or
/// `.lora_B.weight` ([out, r]), the adapter name ("default") left out as get_peft_model_state_dict leaves it out;
/// vLLM's parse_fine_tuned_lora_name reads the same names. Weights are stored in the adapters' dtype (float32).
/// </summary>
internal static class PeftAdapterFolder
{
    public const string WeightsFile = "adapter_model.safetensors";

    /// <summary>The PEFT tensor name of an adapter's matrix: part is "lora_A" or "lora_B".</summary>
    public static string TensorName(string module, string part) => $"base_model.model.{module}.{part}.weight";

    /// <summary>The adapters' tensors by PEFT name (live tensors, not copies).</summary>
    public static IEnumerable<(string Name, Tensor Tensor)> Tensors(LoraAdapters adapters) =>
        Enumerable.Range(0, adapters.Count).SelectMany(i => new[]
        {
            (TensorName(adapters.ModuleNames[i], "lora_A"), (Tensor)adapters[i].A),
            (TensorName(adapters.ModuleNames[i], "lora_B"), (Tensor)adapters[i].B),
        });

    /// <summary>Writes both files into <paramref name="folder"/> (each atomically); <paramref name="baseModel"/> goes to base_model_name_or_path.</summary>
    public static void Save(string folder, LoraAdapters adapters, string? baseModel)
    {
        Directory.CreateDirectory(folder);
        SafeTensorsFile.Write(Path.Combine(folder, WeightsFile), Tensors(adapters), new Dictionary<string, string> { ["format"] = "pt" });
        PeftAdapterConfig.Write(folder, adapters.Settings, baseModel);
    }

    /// <summary>
    /// Copies FOLDER/adapter_model.safetensors into <paramref name="adapters"/> (built from the same config). Throws
    /// <see cref="CheckpointFormatException"/> naming the file and tensor for a missing, unknown, misshapen, non-float
    /// or non-finite tensor.
    /// </summary>
    public static void Load(string folder, LoraAdapters adapters)
    {
        var expected = Tensors(adapters).ToDictionary(t => t.Name, t => t.Tensor);
        var (path, file) = Open(folder, expected.ToDictionary(e => e.Key, e => e.Value.shape), adapters.Settings);
        using var noGrad = no_grad();
        foreach (var (name, target) in expected)
        {
            using var data = file.Read(name);
            target.copy_(data);
        }
    }

    /// <summary>
    /// Everything <see cref="Load"/> checks, from the model's config.json alone (no model is built): the preflight runs
    /// it so that a truncated, misshapen or non-finite adapter is refused before a run makes its output folder.
    /// </summary>
    public static void Check(string folder, LoraSettings settings, ModelConfig model)
    {
        var expected = new Dictionary<string, long[]>(StringComparer.Ordinal);
        for (var layer = 0; layer < model.NumHiddenLayers; layer++)
            foreach (var target in settings.Targets)
            {
                var (inFeatures, outFeatures) = LoraSettings.Shape(model, target);
                var module = LoraSettings.ModulePath(layer, target);
                expected[TensorName(module, "lora_A")] = [settings.Rank, inFeatures];
                expected[TensorName(module, "lora_B")] = [outFeatures, settings.Rank];
            }
        var (_, file) = Open(folder, expected, settings);
        foreach (var name in expected.Keys) file.Read(name).Dispose();
    }

    private static (string Path, SafeTensorsFile File) Open(string folder, IReadOnlyDictionary<string, long[]> expected, LoraSettings settings)
    {
        var path = Path.Combine(folder, WeightsFile);
        if (!File.Exists(path)) throw new CheckpointFormatException($"{path}: file not found (a PEFT adapter folder holds {PeftAdapterConfig.FileName} and {WeightsFile})");
        var file = SafeTensorsFile.Open(path);
        foreach (var name in file.Tensors.Keys.Where(n => !expected.ContainsKey(n)))
            throw new CheckpointFormatException($"{path}: unknown tensor '{name}' (adapter_config.json targets {settings.TargetsKey} with r = {settings.Rank})");
        foreach (var (name, shape) in expected)
        {
            if (!file.Tensors.TryGetValue(name, out var entry)) throw new CheckpointFormatException($"{path}: missing tensor '{name}'");
            if (!SafeTensorsDtypes.IsFloat(entry.Dtype))
                throw new CheckpointFormatException($"{path}: tensor '{name}' has dtype {SafeTensorsDtypes.Code(entry.Dtype)}; adapter weights must be F64, F32, F16 or BF16");
            if (!entry.Shape.SequenceEqual(shape))
                throw new CheckpointFormatException($"{path}: tensor '{name}' has shape [{string.Join(", ", entry.Shape)}], the base model and r imply [{string.Join(", ", shape)}]");
        }
        return (path, file);
    }
}
