using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Popo.Engine.Model;

/// <summary>The decoder stack without the head: embedding, layers, final RMSNorm (HF prefix "model.").</summary>
internal sealed class Qwen2Model : nn.Module
{
#pragma warning disable IDE1006 // field names are the HF tensor names
    private readonly Embedding embed_tokens;
    private readonly ModuleList<Qwen2DecoderLayer> layers;
    private readonly RmsNorm norm;
#pragma warning restore IDE1006
    private readonly RotaryEmbedding rotary;
    private readonly ComputePrecision? precision;
    private readonly AdapterSlot? lora;

    public Qwen2Model(ModelConfig config, Device device, ScalarType dtype, ComputePrecision? precision = null, AdapterSlot? lora = null) : base(nameof(Qwen2Model))
    {
        this.precision = precision;
        this.lora = lora;
        embed_tokens = nn.Embedding(config.VocabSize, config.HiddenSize, device: device, dtype: dtype);
        layers = nn.ModuleList(Enumerable.Range(0, config.NumHiddenLayers)
            .Select(_ => new Qwen2DecoderLayer(config, device, dtype, precision, lora)).ToArray());
        norm = new RmsNorm(config.HiddenSize, config.RmsNormEps, device, dtype, precision);
        rotary = new RotaryEmbedding(config.HeadDim, config.RopeTheta, device, dtype);
        RegisterComponents();
    }

    internal Parameter EmbeddingWeight => embed_tokens.weight!;

    /// <summary>Per-layer activation checkpointing in forwards that build a graph (see <see cref="CheckpointedLayer"/>).</summary>
    public bool GradientCheckpointing { get; set; }

    /// <summary>Forwards without a cache skip the padding in every per-token op (see <see cref="Packing"/>).</summary>
    public bool PaddingFree { get; set; } = true;

    /// <summary>
    /// ids [B,T]; keyMask [B,L] with L = cached + T (1 = real token); positionIds [B,T]. Returns the
    /// post-norm hidden state [B,T,D].
    /// </summary>
    public Tensor Forward(Tensor ids, Tensor keyMask, Tensor positionIds, KvCache? cache)
    {
        using var scope = torch.NewDisposeScope();
        long b = ids.shape[0], t = ids.shape[1];
        var past = cache?.Length ?? 0;
        var allowed = AttentionMask(keyMask, past, t);
        var (cos, sin) = rotary.Tables(positionIds);
        // With a cache the keys of earlier steps are padded [B,L]: the padded layout stays.
        var packing = PaddingFree && cache is null ? Packing.Of(keyMask) : null;
        var tokens = packing is null ? ids : packing.Pack(ids);                            // [B,T] or [1,L]
        var x = is_grad_enabled() && EmbeddingWeight.requires_grad ? EmbeddingLookup.Run(EmbeddingWeight, tokens) : embed_tokens.forward(tokens);
        var storage = x.dtype;
        if (precision is not null && precision.Casts(storage))
            (x, cos, sin) = (precision.Input(x), precision.Input(cos), precision.Input(sin));
        var checkpoint = GradientCheckpointing && cache is null && is_grad_enabled();
        // A frozen embedding (LoRA) gives an input without gradient, and a reentrant checkpoint whose input needs no gradient
        // builds no graph, so the adapters inside would get none: the input is made a leaf that asks for one (what
        // transformers' enable_input_require_grads does for PEFT with gradient checkpointing).
        if (checkpoint && !x.requires_grad) x = x.detach().requires_grad_(true);
        for (var l = 0; l < layers.Count; l++)
            x = checkpoint ? CheckpointedLayer.Run(layers[l], l, x, cos, sin, allowed, lora, packing) : layers[l].Forward(x, cos, sin, allowed, cache, l, packing);
        cache?.Advance((int)t);
        var hidden = norm.forward(x);
        if (packing is not null) hidden = packing.Unpack(hidden);   // [B,T,D], zeros at padding
        // The hidden state leaves in the storage dtype: pooling, the predictor and the losses run in float32.
        return (hidden.dtype == storage ? hidden : hidden.to(storage)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// allowed[b, 0, i, j] = (j &lt;= past + i and keyMask[b, j]) or j == past + i: causal, padding keys hidden.
    /// A query always sees itself, so padding queries never get an all-masked row (which would give NaN
    /// that 0 * NaN would then carry into real positions). Shape [B,1,T,L]; each query head reads the same row.
    /// </summary>
    private static Tensor AttentionMask(Tensor keyMask, int past, long t)
    {
        var l = keyMask.shape[1];
        if (l != past + t)
            throw new ArgumentException($"attention mask covers {l} positions but the cache holds {past} and the input {t}");
        var device = keyMask.device;
        var query = torch.arange(past, past + t, dtype: ScalarType.Int64, device: device).unsqueeze(1); // [T,1]
        var key = torch.arange(0, l, dtype: ScalarType.Int64, device: device).unsqueeze(0);            // [1,L]
        var causal = key.le(query);                                                                     // [T,L]
        var self = key.eq(query);                                                                       // [T,L]
        var valid = keyMask.to(ScalarType.Bool).unsqueeze(1);                                          // [B,1,L]
        return causal.unsqueeze(0).logical_and(valid).logical_or(self.unsqueeze(0)).unsqueeze(1);      // [B,1,T,L]
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) rotary.Dispose();
        base.Dispose(disposing);
    }
}
