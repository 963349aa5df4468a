using Popo.Engine.Checkpoints;
using Popo.Engine.Lora;
using Popo.Engine.Model;
using static TorchSharp.torch;
using Popo.Engine.Runtime;

namespace Popo.Engine.Training;

/// <summary>
/// `popo export --merge`: a PEFT adapter folder and its base become one Hugging Face model folder with W' = W + s B A
/// (PEFT's merge_and_unload), loadable by `popo train --model`, `popo eval` and transformers without PEFT. The merge
/// runs in float32 (float64 for a float64 base) and the result is stored in the base's dtype, tokenizer files copied.
/// </summary>
internal static class MergedExport
{
    /// <param name="baseModel">The base folder; null = the adapter's base_model_name_or_path.</param>
    /// <returns>The base folder used.</returns>
    public static string Run(string adapterFolder, string? baseModel, string outFolder)
    {
        var (settings, recorded) = PeftAdapterConfig.Read(adapterFolder);
        var basePath = baseModel ?? recorded
            ?? throw new ConfigException($"--model: {Path.Combine(adapterFolder, PeftAdapterConfig.FileName)} has no base_model_name_or_path; pass the base folder");
        if (Directory.Exists(outFolder) && Directory.EnumerateFileSystemEntries(outFolder).Any())
            throw new ConfigException($"--out: {outFolder} already holds files; choose another folder");
        var (model, tokenizer) = ModelFactory.Load(basePath, CPU, MergeDtype(basePath));
        using (model)
        using (var adapters = LoraAdapters.Attach(model, settings, seed: 0))
        {
            PeftAdapterFolder.Load(adapterFolder, adapters);
            adapters.MergeInto(model);
            if (Directory.Exists(outFolder)) Directory.Delete(outFolder);   // empty (checked above): AtomicFolder renames into place
            AtomicFolder.Write(outFolder, temp => ModelFactory.Save(model, tokenizer, temp, basePath));
        }
        return basePath;
    }

    /// <summary>Float64 stays float64; anything else merges in float32 (a bf16 base is read up, merged, and written back as bf16).</summary>
    private static ScalarType MergeDtype(string folder)
    {
        var path = Path.Combine(folder, HfCheckpoint.ConfigFile);
        if (!File.Exists(path)) throw new CheckpointFormatException($"{path}: file not found (the adapter's base must be a Hugging Face model folder; pass --model BASE)");
        return ModelConfig.DtypeOf(ModelConfig.Load(path).TorchDtype, path) == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
    }
}
