using Popo.Engine.Model;
using Popo.Engine.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Popo.Engine.Lora;

/// <summary>
/// The adapters of one model: a <see cref="LoraAdapter"/> per target linear, keyed by that linear (the base
/// model's own layer object, so no copy of W exists). The set is a module of its own: its parameters are the
/// trainable ones, an EMA target is a second set of the same shapes (<see cref="Like"/>), and the empty set is
/// the base model (GRPO's reference). Which set a forward pass uses is the model's <see cref="AdapterSlot"/>.
/// </summary>
internal sealed class LoraAdapters : nn.Module, IAdapterSet
{
    private readonly ModuleList<LoraAdapter> adapters;
    private readonly Dictionary<Linear, LoraAdapter> byLayer = new(ReferenceEqualityComparer.Instance);
    private readonly IReadOnlyList<(string Name, Linear Layer)> targets;
    private readonly Scalar scale, dropout, keep;
    private readonly Generator? dropoutGenerator;

    public LoraSettings Settings { get; }

    /// <summary>The base model's module path of each adapter ("model.layers.0.self_attn.q_proj"), in parameter order.</summary>
    public IReadOnlyList<string> ModuleNames { get; }

    private LoraAdapters(LoraSettings settings, IReadOnlyList<(string Name, Linear Layer)> targets, ScalarType dtype, long? dropoutSeed)
        : base(nameof(LoraAdapters))
    {
        Settings = settings;
        this.targets = targets;
        ModuleNames = targets.Select(t => t.Name).ToList();
        var list = new List<LoraAdapter>();
        foreach (var (_, layer) in targets)
        {
            var w = layer.weight!;
            var adapter = new LoraAdapter(w.shape[1], w.shape[0], settings.Rank, w.device, dtype);
            byLayer[layer] = adapter;
            list.Add(adapter);
        }
        adapters = nn.ModuleList(list.ToArray());
        scale = settings.Scale;
        dropout = settings.Dropout;
        keep = settings.Dropout < 1 ? 1.0 / (1.0 - settings.Dropout) : 0.0;
        if (dropoutSeed is long seed && settings.Dropout > 0 && targets.Count > 0)
            dropoutGenerator = new Generator((ulong)seed, targets[0].Layer.weight!.device);
        RegisterComponents();
    }

    /// <summary>Float32 masters, float64 for a float64 model (the agreement tests): never the 16-bit storage of a frozen base.</summary>
    public static ScalarType AdapterDtype(Qwen2ForCausalLM model) => model.Dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;

    /// <summary>
    /// Fresh adapters for <paramref name="model"/> (A Kaiming-uniform from <paramref name="seed"/>, B = 0), with their own dropout
    /// generator (seed + 1), made the model's active set; the base is frozen (no gradient is computed for it) and, stored in 16 bits,
    /// hands float32 hidden states to the objectives, which train in float32 like the adapters.
    /// </summary>
    public static LoraAdapters Attach(Qwen2ForCausalLM model, LoraSettings settings, long seed)
    {
        var adapters = new LoraAdapters(settings, Targets(model, settings), AdapterDtype(model), SeedStreams.LoraDropout(seed));
        using (var generator = new Generator((ulong)seed, model.Device))
            foreach (var a in adapters.adapters) a.Initialize(generator);
        model.AttachAdapters(adapters);
        return adapters;
    }

    /// <summary>
    /// A run's adapters attached to <paramref name="model"/> (null for full fine-tuning, <paramref name="settings"/> null): fresh
    /// ones from the run's seed, or with <paramref name="adapterFolder"/>, that PEFT folder's weights.
    /// </summary>
    public static LoraAdapters? ForRun(Qwen2ForCausalLM model, LoraSettings? settings, long runSeed, string? adapterFolder)
    {
        if (settings is null) return null;
        var adapters = Attach(model, settings, SeedStreams.LoraInit(runSeed));
        if (!string.IsNullOrEmpty(adapterFolder)) PeftAdapterFolder.Load(adapterFolder, adapters);
        return adapters;
    }

    /// <summary>A zero-filled set of the same shapes on the same layers, without dropout (the EMA target, filled by its first copy).</summary>
    public LoraAdapters Like() =>
        new(Settings, targets, adapters.Count > 0 ? adapters[0].A.dtype : ScalarType.Float32, null);

    /// <summary>No adapter at all: the forward pass is the base model's (GRPO's reference with the adapters switched off).</summary>
    public static LoraAdapters None(LoraSettings settings) => new(settings, [], ScalarType.Float32, null);

    /// <summary>The model's linear layers named by the settings' targets, in layer order (model.layers.N.self_attn.q_proj ...).</summary>
    private static List<(string, Linear)> Targets(Qwen2ForCausalLM model, LoraSettings settings) =>
        model.named_modules()
            .Where(m => m.module is Linear && m.name.StartsWith("model.layers.", StringComparison.Ordinal)
                        && settings.Targets.Contains(m.name[(m.name.LastIndexOf('.') + 1)..]))
            .Select(m => (m.name, (Linear)m.module))
            .ToList();

    public int Count => adapters.Count;

    public LoraAdapter this[int index] => adapters[index];

    /// <summary>This set's adapter of <paramref name="layer"/>, or null when the layer is not a target.</summary>
    public LoraAdapter? For(Linear layer) => byLayer.GetValueOrDefault(layer);

    /// <summary>The layer's output with its adapter, y += s B A dropout(x) in place (y itself when the layer has none); dropout only in a training forward.</summary>
    public Tensor Apply(Linear layer, Tensor y, Tensor x, bool training)
    {
        if (For(layer) is not { } adapter) return y;
        if (!(training && DropsOut)) return adapter.Add(y, x, scale);
        using var scope = NewDisposeScope();
        // The mask is drawn in float32 whatever the compute dtype, so the same seed gives the same mask under bf16.
        var mask = rand(x.shape, dtype: ScalarType.Float32, device: x.device, generator: dropoutGenerator).ge_(dropout);
        return adapter.Add(y, x.mul(mask).mul_(keep), scale);
    }

    /// <summary>True when a training forward applies dropout (this set has a dropout generator and p > 0).</summary>
    public bool DropsOut => dropoutGenerator is not null;

    /// <summary>The dropout generator's state (null without dropout): saved with a checkpoint, replayed by a recomputed layer.</summary>
    public Tensor? DropoutState() => dropoutGenerator?.get_state();

    public void SetDropoutState(Tensor state) =>
        (dropoutGenerator ?? throw new InvalidOperationException("these adapters have no dropout")).set_state(state);

    /// <summary>W &lt;- W + s B A for every target of <paramref name="model"/> (same layers as this set), the product in float64, without gradient.</summary>
    public void MergeInto(Qwen2ForCausalLM model)
    {
        using var noGrad = no_grad();
        using Scalar s = Settings.Scale;   // held across the native calls (Optimizers.AdamW says why)
        var layers = model.named_modules().Where(m => m.module is Linear).ToDictionary(m => m.name, m => (Linear)m.module);
        for (int i = 0; i < adapters.Count; i++)
        {
            using var scope = NewDisposeScope();
            if (!layers.TryGetValue(ModuleNames[i], out var layer))
                throw new ArgumentException($"the model has no layer '{ModuleNames[i]}' to merge an adapter into");
            var w = layer.weight!;
            var delta = adapters[i].B.to(ScalarType.Float64).matmul(adapters[i].A.to(ScalarType.Float64)).mul_(s);   // [out,in]
            w.copy_(w.to(ScalarType.Float64).add_(delta));
        }
        model.Precision.Invalidate();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            scale.Dispose();
            dropout.Dispose();
            keep.Dispose();
            dropoutGenerator?.Dispose();
        }
        base.Dispose(disposing);
    }
}
