using Popo.Engine.Runtime;
using Popo.Kernels;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Popo.Engine.Model;

/// <summary>
/// Qwen2 decoder with its language-model head (docs/design.md §6). Parameters carry the HF tensor names
/// ("model.layers.0.self_attn.q_proj.weight", ...). With tied embeddings there is no lm_head parameter and
/// the logits are h · E^T.
/// </summary>
internal sealed class Qwen2ForCausalLM : nn.Module
{
#pragma warning disable IDE1006 // field names are the HF tensor names
    private readonly Qwen2Model model;
    private readonly Linear? lm_head;
#pragma warning restore IDE1006

    public ModelConfig Config { get; }
    public Device Device { get; }
    public ScalarType Dtype { get; }

    /// <summary>Mixed precision: the matmul dtype (null = <see cref="Dtype"/>) and the no-grad weight cache.</summary>
    public ComputePrecision Precision { get; } = new();

    /// <summary>The dtype activations, logits of the matmuls and the KV cache are computed in.</summary>
    public ScalarType ComputeDtype => Precision.Dtype ?? Dtype;

    /// <summary>The adapter set the linear layers apply (none unless a run attaches one: <see cref="AttachAdapters"/>).</summary>
    public AdapterSlot Adapters { get; } = new();

    /// <summary>
    /// The dtype hidden states and logits leave the model in: the storage dtype, except float32 for a 16-bit base under
    /// float32 adapters (<see cref="AttachAdapters"/>), so that the predictor and the losses train in float32.
    /// </summary>
    public ScalarType HiddenDtype { get; private set; }

    /// <summary>
    /// Makes <paramref name="adapters"/> the model's set from now on and freezes the base (no gradient is computed for its
    /// weights); a base stored in 16 bits then hands float32 hidden states on, to train in float32 like the adapters.
    /// </summary>
    public void AttachAdapters(IAdapterSet adapters)
    {
        foreach (var p in parameters()) p.requires_grad_(false);
        if (Dtype is ScalarType.BFloat16 or ScalarType.Float16) HiddenDtype = ScalarType.Float32;
        Adapters.Install(adapters);
    }

    /// <summary>Per-layer activation checkpointing in training forwards (`gradient_checkpointing`).</summary>
    public bool GradientCheckpointing { get => model.GradientCheckpointing; set => model.GradientCheckpointing = value; }

    /// <summary>Forwards without a KV cache skip the padding outside the attention core (`padding_free`, see <see cref="Packing"/>).</summary>
    public bool PaddingFree { get => model.PaddingFree; set => model.PaddingFree = value; }

    /// <summary>
    /// Positions per head chunk for token log-probs and entropies (`logit_chunk_size`): 0 = the whole micro-batch at
    /// once; -1 = as many positions as fit 64 MiB of float32 logits. A micro-batch of at most one chunk takes the
    /// unchunked path (the ordinary autograd graph).
    /// </summary>
    public int LogitChunkSize { get; set; } = -1;

    /// <summary><see cref="LogitChunkSize"/> resolved to positions (0 = never chunk).</summary>
    public int HeadChunkPositions => ChunkPositions(LogitChunkSize, Config.VocabSize);

    /// <summary>A `logit_chunk_size` resolved to positions for a vocabulary of <paramref name="vocabSize"/> (0 = never chunk).</summary>
    public static int ChunkPositions(int logitChunkSize, int vocabSize) => logitChunkSize switch
    {
        0 => 0,
        > 0 => logitChunkSize,
        _ => (int)Math.Max(1, Math.Min(int.MaxValue, AutoChunkBytes / (4L * vocabSize))),
    };

    private const long AutoChunkBytes = 64L << 20;

    public Qwen2ForCausalLM(ModelConfig config, Device device, ScalarType dtype) : base(nameof(Qwen2ForCausalLM))
    {
        config.Validate();
        ModelConfig.DtypeName(dtype); // throws for a non-floating dtype
        Config = config;
        Device = device;
        Dtype = dtype;
        HiddenDtype = dtype;
        model = new Qwen2Model(config, device, dtype, Precision, Adapters);
        lm_head = config.TieWordEmbeddings ? null
            : nn.Linear(config.HiddenSize, config.VocabSize, hasBias: false, device: device, dtype: dtype);
        RegisterComponents();
        InitializeWeights(seed: 0);
    }

    /// <summary>HF initialisation: N(0, initializer_range^2) for projections and embeddings, zero biases, unit norm weights.</summary>
    public void InitializeWeights(long seed)
    {
        using var noGrad = torch.no_grad();
        Precision.Invalidate();
        using var generator = new Generator((ulong)seed, Device);
        foreach (var (name, p) in named_parameters())
        {
            if (name.EndsWith("norm.weight", StringComparison.Ordinal)) nn.init.ones_(p);
            else if (name.EndsWith(".bias", StringComparison.Ordinal)) nn.init.zeros_(p);
            else nn.init.normal_(p, 0.0, Config.InitializerRange, generator);
        }
    }

    /// <summary>
    /// Full forward pass. ids [B,T] (int64); attentionMask [B,L] over cached + new positions (1 = real token;
    /// null = all real); positionIds [B,T] (null = number of real tokens before each position, so left
    /// padding is handled); cache (null = no cache). Returns logits [B,T,V] and post-norm hidden [B,T,D].
    /// </summary>
    public ModelOutput Forward(Tensor ids, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null)
    {
        using var scope = torch.NewDisposeScope();
        var hidden = ForwardHidden(ids, attentionMask, positionIds, cache);
        var logits = LogitsOf(hidden);
        return new ModelOutput(logits.MoveToOuterDisposeScope(), hidden.MoveToOuterDisposeScope());
    }

    /// <summary>The post-norm hidden state [B,T,D] only (see <see cref="Forward"/>); pair with <see cref="LogitsOf"/>.</summary>
    public Tensor ForwardHidden(Tensor ids, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null)
    {
        using var scope = torch.NewDisposeScope();
        long b = ids.shape[0], t = ids.shape[1];
        var past = cache?.Length ?? 0;
        var mask = attentionMask ?? torch.ones(b, past + t, dtype: ScalarType.Int64, device: Device);
        var positions = positionIds ?? DefaultPositions(mask, t);
        // A forward that builds a graph precedes a weight update: the cached compute copy goes stale, drop it now.
        var training = torch.is_grad_enabled();
        if (training) Precision.Invalidate();
        Precision.Training = training;
        Adapters.Training = training;
        try
        {
            var hidden = model.Forward(ids, mask, positions, cache);
            return (hidden.dtype == HiddenDtype ? hidden : hidden.to(HiddenDtype)).MoveToOuterDisposeScope();
        }
        finally
        {
            Precision.Training = false;
            Adapters.Training = false;
        }
    }

    /// <summary>
    /// Logits [...,V] of hidden states [...,D]: lm_head(h), or h · E^T with tied embeddings; in the hidden states' dtype
    /// (computed in <see cref="ComputeDtype"/>). The few rows of a decode step without a graph on the CPU are computed in
    /// float32 from the head's weights (<see cref="FewRowProduct"/>; on CPUs without AVX-512, one or two rows of a bf16
    /// head: <see cref="WidenedHead"/>).
    /// </summary>
    public Tensor LogitsOf(Tensor hidden)
    {
        var rows = hidden.numel() / hidden.shape[^1];
        var few = FewRowProduct.Applies(rows, Config.VocabSize, hidden.shape[^1], ComputeDtype, Device);
        var widened = !few && WidenedHead.Applies(rows, ComputeDtype, Device);
        if (!few && !widened && hidden.dtype == Dtype && !Precision.Casts(Dtype))
            return lm_head is not null ? lm_head.forward(hidden) : nn.functional.linear(hidden, model.EmbeddingWeight);
        using var scope = torch.NewDisposeScope();
        var weight = Precision.Weight(HeadWeight);
        if (few && FewRowProduct.Reads(weight)) return FewRowProduct.Multiply(hidden, weight).to(hidden.dtype).MoveToOuterDisposeScope();
        if (widened) return widenedHead.Logits(hidden, weight).to(hidden.dtype).MoveToOuterDisposeScope();
        return nn.functional.linear(hidden.to(ComputeDtype), weight).to(hidden.dtype).MoveToOuterDisposeScope();
    }

    private readonly WidenedHead widenedHead = new();

    /// <summary>The head's weight [V,D]: lm_head's, or the embedding table when tied. Held once: Embedding.weight hands out a new wrapper per call, which would defeat the compute cache's identity keys.</summary>
    public Parameter HeadWeight
    {
        get
        {
            if (headWeight is null)
            {
                headWeight = lm_head?.weight ?? model.EmbeddingWeight;
                headWeight.DetachFromDisposeScope();   // a wrapper made inside a caller's scope would die with it
            }
            return headWeight;
        }
    }

    private Parameter? headWeight;

    /// <summary>position = (real tokens up to and including this one) - 1, at least 0; mask [B,L] -> [B,T] for the last T.</summary>
    public static Tensor DefaultPositions(Tensor mask, long t)
    {
        using var scope = torch.NewDisposeScope();
        var l = mask.shape[1];
        var counts = mask.to(ScalarType.Int64).cumsum(1).sub(HeldScalars.One);
        return counts.narrow(1, l - t, t).clamp_min(0).MoveToOuterDisposeScope();
    }

    /// <summary>A cache for <paramref name="batchSize"/> sequences of up to <paramref name="capacity"/> positions, on this model's device and dtype.</summary>
    public KvCache NewCache(long batchSize, int capacity) => new(Config, batchSize, capacity, Device, ComputeDtype);

    /// <summary>Parameters by HF tensor name.</summary>
    public IReadOnlyList<(string Name, Parameter Parameter)> NamedParameters() => named_parameters().ToList();

    /// <summary>Copies every parameter of <paramref name="source"/> (same config; any device/dtype) into this model, without gradient.</summary>
    public void CopyParametersFrom(Qwen2ForCausalLM source)
    {
        using var noGrad = torch.no_grad();
        var mine = named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var theirs = source.NamedParameters();
        if (theirs.Count != mine.Count)
            throw new ArgumentException($"cannot copy parameters: source has {theirs.Count}, target {mine.Count}");
        foreach (var (name, p) in theirs)
        {
            if (!mine.TryGetValue(name, out var target))
                throw new ArgumentException($"cannot copy parameters: target has no '{name}'");
            if (!target.shape.SequenceEqual(p.shape))
                throw new ArgumentException($"cannot copy parameters: '{name}' is [{string.Join(",", p.shape)}] in the source, [{string.Join(",", target.shape)}] in the target");
            target.copy_(p);
        }
        Precision.Invalidate();
    }

    /// <summary>A deep copy (e.g. the EMA target), optionally on another device or in another dtype.</summary>
    public Qwen2ForCausalLM Clone(Device? device = null, ScalarType? dtype = null)
    {
        var copy = new Qwen2ForCausalLM(Config, device ?? Device, dtype ?? Dtype);
        copy.CopyParametersFrom(this);
        return copy;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) { Precision.Dispose(); widenedHead.Dispose(); }
        base.Dispose(disposing);
    }
}
