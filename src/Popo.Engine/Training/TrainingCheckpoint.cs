using System.Text.Json;
using Popo.Engine.Checkpoints;
using Popo.Engine.Lora;
using Popo.Engine.Model;
using Popo.Engine.Objectives;
using Popo.Engine.Tokenizers;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Popo.Engine.Training;

/// <summary>Progress counters saved with a checkpoint, so a resumed run continues exactly.</summary>
internal sealed record TrainerProgress(int Step, long Rollouts, double WallTime, int BadSteps, double WarmupPass1);

/// <summary>
/// The live state of a run that a checkpoint holds, as one record: the model (a LoRA run: its adapters), the optimizer, the
/// objective's state, the sampler's generator; and, for writing the model folder, its tokenizer (with the folder its files
/// come from) and, for a LoRA run, the frozen base's folder (base_model_name_or_path).
/// </summary>
internal sealed record RunState(Qwen2ForCausalLM Model, AdamW Optimizer, IObjective Objective, Generator Sampler, LoraAdapters? Adapters = null,
                              ITokenizer? Tokenizer = null, string? TokenizerSource = null, string? BaseModel = null);

/// <summary>
/// checkpoints/step-N/: model/ (HF layout + tokenizer), optimizer.bin (AdamW moments and step counts),
/// objective.safetensors (predictor, EMA target or reference, noise RNG), rng.safetensors (the sampler's
/// generator), trainer_state.json (counters). A LoRA run writes, instead of model/, the PEFT adapter files
/// (adapter_config.json, adapter_model.safetensors) beside the others, and its EMA target is the EMA adapters; the
/// frozen base is never rewritten, and the adapters' dropout generator joins rng.safetensors. The folder is written
/// beside its final place and renamed in, so it is either complete or absent.
/// </summary>
internal static class TrainingCheckpoint
{
    public const string Prefix = "step-";

    public static string FolderFor(string runFolder, int step) => Path.Combine(runFolder, "checkpoints", $"{Prefix}{step}");

    /// <summary>
    /// Writes checkpoints/step-N atomically. A write that fails (disk full, folder unwritable) leaves no
    /// trace and throws an <see cref="IOException"/> naming the folder, the cause and the intact previous checkpoint.
    /// </summary>
    public static void Save(string runFolder, TrainerProgress progress, RunState state)
    {
        var folder = FolderFor(runFolder, progress.Step);
        var previous = Latest(runFolder);
        try
        {
            Write(folder, progress, state);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            var intact = previous is var (p, _) ? $"the previous checkpoint {p} is intact" : "no earlier checkpoint exists";
            throw new IOException($"{folder}: cannot write the checkpoint ({e.Message}); nothing was overwritten and {intact}. " +
                                  $"Free space or fix permissions, then continue with `popo train --resume {runFolder}`", e);
        }
    }

    private static void Write(string folder, TrainerProgress progress, RunState state)
    {
        var adapters = state.Adapters;
        AtomicFolder.Write(folder, temp =>
        {
            if (adapters is null)
                ModelFactory.Save(state.Model, state.Tokenizer ?? throw new ArgumentException("a full fine-tuning checkpoint writes the tokenizer files: RunState.Tokenizer is null"),
                                  Path.Combine(temp, "model"), state.TokenizerSource);
            else PeftAdapterFolder.Save(temp, adapters, state.BaseModel);
            using (var stream = File.Create(Path.Combine(temp, "optimizer.bin")))
            using (var writer = new BinaryWriter(stream))
                state.Optimizer.save_state_dict(writer);
            using (var scope = NewDisposeScope())   // State() makes new tensors (RNG states) beside the live parameters
                SafeTensorsFile.Write(Path.Combine(temp, "objective.safetensors"), state.Objective.State().Select(kv => (kv.Key, kv.Value)));
            using (var scope = NewDisposeScope())
            {
                var states = new List<(string, Tensor)> { ("sampler", state.Sampler.get_state()) };
                if (adapters?.DropoutState() is { } dropout) states.Add((LoraDropoutRng, dropout));
                SafeTensorsFile.Write(Path.Combine(temp, "rng.safetensors"), states);
            }
            File.WriteAllText(Path.Combine(temp, "trainer_state.json"), JsonSerializer.Serialize(progress, Trainer.Json));
        });
    }

    /// <summary>
    /// save_total_limit (TRL's name): keeps the newest <paramref name="limit"/> complete step checkpoints and deletes
    /// the older ones (0 = keep all). Called after a save has completed, so the newest is never at risk.
    /// </summary>
    public static void Prune(string runFolder, int limit)
    {
        if (limit <= 0) return;
        var root = Path.Combine(runFolder, "checkpoints");
        if (!Directory.Exists(root)) return;
        var old = Directory.GetDirectories(root, Prefix + "*")
            .Select(d => (Folder: d, Ok: int.TryParse(Path.GetFileName(d)[Prefix.Length..], out var s), Step: s))
            .Where(x => x.Ok)
            .OrderByDescending(x => x.Step)
            .Skip(limit);
        foreach (var (folder, _, _) in old) Directory.Delete(folder, recursive: true);
    }

    /// <summary>The newest complete checkpoint folder of a run, or null.</summary>
    public static (string Folder, int Step)? Latest(string runFolder)
    {
        var root = Path.Combine(runFolder, "checkpoints");
        if (!Directory.Exists(root)) return null;
        return Directory.GetDirectories(root, Prefix + "*")
            .Select(d => (Folder: d, Ok: int.TryParse(Path.GetFileName(d)[Prefix.Length..], out var s), Step: s))
            .Where(x => x.Ok)
            .OrderByDescending(x => x.Step)
            .Select(x => ((string, int)?)(x.Folder, x.Step))
            .FirstOrDefault();
    }

    private const string LoraDropoutRng = "lora_dropout";

    /// <summary>Restores model weights (a LoRA run: its adapters), optimizer, objective state and sampler RNG; returns the counters.</summary>
    public static TrainerProgress Load(string folder, RunState state)
    {
        var (model, optimizer, objective, sampler, adapters) = (state.Model, state.Optimizer, state.Objective, state.Sampler, state.Adapters);
        if (adapters is null) HfCheckpoint.LoadWeights(model, Path.Combine(folder, "model"));
        else PeftAdapterFolder.Load(folder, adapters);
        var optimizerFile = Path.Combine(folder, "optimizer.bin");
        try
        {
            using var stream = File.OpenRead(optimizerFile);
            using var reader = new BinaryReader(stream);
            optimizer.load_state_dict(reader);
        }
        catch (Exception e) when (e is IOException or ArgumentException or InvalidOperationException or EndOfStreamException)
        {
            throw new CheckpointFormatException($"{optimizerFile}: cannot restore the optimizer state: {e.Message}");
        }
        using (var scope = NewDisposeScope())
        {
            var objectiveFile = SafeTensorsFile.Open(Path.Combine(folder, "objective.safetensors"));
            objective.LoadState(objectiveFile.Tensors.Keys.ToDictionary(k => k, k => objectiveFile.Read(k)));
            var rng = SafeTensorsFile.Open(Path.Combine(folder, "rng.safetensors"));
            sampler.set_state(rng.Read("sampler"));
            if (adapters?.DropoutState() is not null) adapters.SetDropoutState(rng.Read(LoraDropoutRng));
        }
        var stateFile = Path.Combine(folder, "trainer_state.json");
        try
        {
            return JsonSerializer.Deserialize<TrainerProgress>(File.ReadAllText(stateFile), Trainer.Json)
                   ?? throw new CheckpointFormatException($"{stateFile}: empty trainer state");
        }
        catch (JsonException e) { throw new CheckpointFormatException($"{stateFile}: not a valid trainer state: {e.Message}"); }
    }
}
