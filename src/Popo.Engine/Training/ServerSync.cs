using Popo.Engine.Lora;
using Popo.Engine.Model;
using Popo.Engine.Rollout;
using Popo.Engine.Tokenizers;

namespace Popo.Engine.Training;

/// <summary>
/// Weight sync with the rollout servers (issue 31): LoRA runs write the PEFT adapter to a fresh folder and load it under
/// a fresh name (the next requests use that name; the previous adapter is unloaded and its folder removed); full
/// fine-tuning writes a Hugging Face folder and asks the servers to load it from disk (sync_route). Each folder is written
/// atomically under sync_folder (default OUT/sync), which the servers must be able to read.
/// </summary>
internal sealed class ServerSync(ServerWeightSync client, ServerSampler sampler, string root, SyncRoute route,
                               Qwen2ForCausalLM model, LoraAdapters? adapters, ITokenizer tokenizer, string? tokenizerSource, string? baseModel)
{
    private string? previousName, previousFolder;

    /// <summary>Writes the current weights and loads them into every server; after it the sampler asks for them.</summary>
    public void Sync(int step)
    {
        var tag = $"step{step}-{Guid.NewGuid().ToString("N")[..8]}";
        var folder = Path.Combine(root, (adapters is null ? "model-" : "adapter-") + tag);
        if (adapters is not null)
        {
            AtomicFolder.Write(folder, temp => PeftAdapterFolder.Save(temp, adapters, baseModel));
            var name = "popo-" + tag;
            client.LoadAdapter(name, folder, previousName);
            sampler.Model = name;
            previousName = name;
        }
        else
        {
            AtomicFolder.Write(folder, temp => ModelFactory.Save(model, tokenizer, temp, tokenizerSource));
            client.LoadFromDisk(folder, route);
        }
        // The servers now read the new folder: the one before it is no longer needed.
        if (previousFolder is not null && Directory.Exists(previousFolder)) Directory.Delete(previousFolder, recursive: true);
        previousFolder = folder;
    }
}
