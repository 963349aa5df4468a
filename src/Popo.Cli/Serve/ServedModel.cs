using Popo.Engine.Checkpoints;
using Popo.Engine.Lora;
using Popo.Engine.Model;
using Popo.Engine.Tokenizers;
using Popo.Engine.Training;
using static TorchSharp.torch;

namespace Popo.Cli.Serve;

/// <summary>
/// What `popo serve` serves: one base model (loaded as `popo train` and `popo eval` load a folder) and the LoRA adapters
/// loaded onto it by name, each a set of its own on the model's adapter slot (one frozen base, no copies). One request
/// runs at a time (<see cref="Gate"/>); loading, unloading and reloading take the same gate, so no request sees a half-changed model.
/// </summary>
internal sealed class ServedModel : IDisposable
{
    private readonly Dictionary<string, (string Path, LoraAdapters Set)> adapters = new(StringComparer.Ordinal);
    private readonly Device device;
    private readonly ScalarType? dtype;

    /// <summary>Held while a request uses or changes the model.</summary>
    public SemaphoreSlim Gate { get; } = new(1, 1);

    /// <summary>The base model's name in requests and /v1/models (vLLM's --served-model-name; default the --model argument).</summary>
    public string Name { get; }

    /// <summary>The folder the weights came from (the latest load-from-disk's folder after one).</summary>
    public string Root { get; private set; }

    public Qwen2ForCausalLM Model { get; private set; }

    public ITokenizer Tokenizer { get; }

    /// <summary>The model folder's prompt format: its chat template (or ChatML, or the character tokenizer's BOS + text) and stop tokens.</summary>
    public PromptFormat Format { get; }

    /// <summary>The longest prompt + completion a request may ask for.</summary>
    public int MaxModelLen { get; }

    /// <summary>Log-probs as vLLM's --logprobs-mode: raw (before temperature, vLLM's default) or processed.</summary>
    public LogprobsMode LogprobsMode { get; }

    /// <summary>
    /// Each request is sampled, and its processed log-probs reported, at this multiple of the temperature it asks for (1 =
    /// as asked). Anything else makes a deliberately mismatched server, the test peer of a trainer's importance correction.
    /// </summary>
    public double TemperatureFactor { get; init; } = 1.0;

    /// <summary>Seconds since the epoch at start (the `created` of /v1/models).</summary>
    public long Created { get; } = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    public ServedModel(string name, string folder, Device device, ScalarType? dtype, int? maxModelLen, LogprobsMode mode)
    {
        this.device = device;
        this.dtype = dtype;
        Name = name;
        Root = Path.GetFullPath(folder);
        (Model, Tokenizer) = ModelFactory.Load(folder, device, dtype);
        Format = new PromptFormat(Tokenizer);
        var context = Model.Config.MaxPositionEmbeddings;
        if (maxModelLen is int m && (m < 2 || m > context))
        {
            Model.Dispose();
            throw new ArgumentException($"--max-model-len: expected an integer in [2, {context}] (the model's max_position_embeddings), got {m}");
        }
        MaxModelLen = maxModelLen ?? context;
        LogprobsMode = mode;
    }

    /// <summary>The loaded adapters by name, with their folders.</summary>
    public IReadOnlyList<(string Name, string Path)> Adapters => adapters.Select(a => (a.Key, a.Value.Path)).ToList();

    /// <summary>
    /// The adapter set a request's `model` names: null for the base (or no name), the named adapter's set, else a 404
    /// naming the model as vLLM words it.
    /// </summary>
    public LoraAdapters? Resolve(string? model)
    {
        if (model is null || model == Name) return null;
        if (adapters.TryGetValue(model, out var a)) return a.Set;
        throw new ApiException(404, $"The model `{model}` does not exist.", "model");
    }

    /// <summary>Loads the PEFT adapter folder under <paramref name="name"/> (a 400 when the name is taken or the folder does not fit this base).</summary>
    public void LoadAdapter(string name, string folder)
    {
        if (name == Name || adapters.ContainsKey(name)) throw ApiException.Field("lora_name", $"the adapter '{name}' has already been loaded");
        adapters[name] = (folder, Attach(Model, folder, "lora_path"));
    }

    /// <summary>Removes the named adapter (a 404 when none has that name).</summary>
    public void UnloadAdapter(string name)
    {
        if (!adapters.Remove(name, out var a)) throw new ApiException(404, $"The adapter '{name}' cannot be found.", "lora_name");
        a.Set.Dispose();
    }

    /// <summary>
    /// Replaces the weights with a Hugging Face folder's (SGLang's update_weights_from_disk): the new model is loaded and every
    /// loaded adapter re-attached to it before anything is swapped, so a folder that fails leaves the served model as it was.
    /// The tokenizer stays, so the folder's config must keep the vocabulary size.
    /// </summary>
    public void ReloadWeights(string folder)
    {
        const string field = "model_path";
        if (!File.Exists(Path.Combine(folder, HfCheckpoint.ConfigFile))) throw ApiException.Field(field, $"{folder}: not a model folder (no {HfCheckpoint.ConfigFile})");
        Qwen2ForCausalLM next;
        try { next = HfCheckpoint.Load(folder, device, dtype); }
        catch (Exception e) when (Commands.CommandRunner.Reports(e)) { throw ApiException.Field(field, e.Message); }
        var reattached = new Dictionary<string, (string Path, LoraAdapters Set)>(StringComparer.Ordinal);
        try
        {
            if (next.Config.VocabSize != Model.Config.VocabSize)
                throw ApiException.Field(field, $"{folder}: vocab_size {next.Config.VocabSize} differs from the served model's {Model.Config.VocabSize}");
            foreach (var (name, (path, _)) in adapters) reattached[name] = (path, Attach(next, path, field));
        }
        catch
        {
            foreach (var a in reattached.Values) a.Set.Dispose();
            next.Dispose();
            throw;
        }
        foreach (var a in adapters.Values) a.Set.Dispose();
        adapters.Clear();
        foreach (var (name, a) in reattached) adapters[name] = a;
        Model.Dispose();
        Model = next;
        Root = Path.GetFullPath(folder);
    }

    /// <summary>A PEFT folder's adapters as a set on <paramref name="model"/>; the model's base stays the active set.</summary>
    private static LoraAdapters Attach(Qwen2ForCausalLM model, string folder, string field)
    {
        if (!File.Exists(Path.Combine(folder, PeftAdapterConfig.FileName)))
            throw ApiException.Field(field, $"{folder}: not a PEFT adapter folder (no {PeftAdapterConfig.FileName})");
        LoraAdapters? set = null;
        var previous = model.Adapters.Active;
        try
        {
            var (settings, _) = PeftAdapterConfig.Read(folder);
            PeftAdapterFolder.Check(folder, settings, model.Config);
            set = LoraAdapters.Attach(model, settings, 0);
            PeftAdapterFolder.Load(folder, set);
            return set;
        }
        catch (Exception e) when (e is not ApiException && Commands.CommandRunner.Reports(e))
        {
            set?.Dispose();
            throw ApiException.Field(field, e.Message);
        }
        finally
        {
            model.Adapters.Use(previous);   // attaching installs the new set; requests choose theirs per call
        }
    }

    public void Dispose()
    {
        foreach (var a in adapters.Values) a.Set.Dispose();
        Model.Dispose();
        Gate.Dispose();
    }
}

/// <summary>vLLM's --logprobs-mode values popo serve implements.</summary>
internal enum LogprobsMode
{
    /// <summary>log softmax(logits): before temperature and the top-k/top-p filters (vLLM's default).</summary>
    RawLogprobs,
    /// <summary>log softmax(logits / T): after temperature (T = 1 for greedy), the distribution the engine's sampler and trainer use.</summary>
    ProcessedLogprobs,
}
