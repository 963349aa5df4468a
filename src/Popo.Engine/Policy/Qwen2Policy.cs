using Popo.Engine.Model;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Stats = Popo.Engine.Policy.TokenStatistics;

namespace Popo.Engine.Policy;

/// <summary>The Qwen2-layout decoder as the objectives see it.</summary>
internal sealed class Qwen2Policy(Qwen2ForCausalLM model) : IPolicy
{
    public Qwen2ForCausalLM Model { get; } = model;

    public nn.Module Module => Model;

    public IEnumerable<Parameter> Parameters => Model.parameters();

    public Tensor ForwardHidden(Tensor inputIds, Tensor attentionMask, Tensor positionIds) =>
        Model.ForwardHidden(inputIds, attentionMask, positionIds);                               // [B,T,D]

    public Tensor Logits(Tensor hidden) => Model.LogitsOf(hidden);

    public (Tensor LogProbs, Tensor? Entropy) TokenStatistics(Tensor hidden, Tensor tokens, double temperature, EntropyNeed entropy, Tensor? mask = null)
    {
        var chunk = Model.HeadChunkPositions;
        if (chunk == 0 || tokens.numel() <= chunk) return Unchunked(hidden, tokens, temperature, entropy);
        using var scope = NewDisposeScope();
        var shape = tokens.shape;
        var flatHidden = hidden.reshape(-1, hidden.shape[^1]);
        var flatTokens = tokens.reshape(-1);
        var kept = KeptPositions(mask);
        if (kept is not null) { flatHidden = flatHidden.index_select(0, kept); flatTokens = flatTokens.index_select(0, kept); }
        var settings = new HeadSettings(temperature, chunk, hidden.dtype != Model.ComputeDtype ? Model.ComputeDtype : null, entropy != EntropyNeed.None);
        var (l, h) = ChunkedHead.Run(flatHidden, Model.HeadWeight, flatTokens, settings);
        if (kept is not null) { l = Spread(l, kept, tokens.numel()); h = Spread(h, kept, tokens.numel()); }
        var logProbs = l.view(shape).MoveToOuterDisposeScope();
        Tensor? entropies = entropy switch
        {
            EntropyNeed.Differentiable => h.view(shape).MoveToOuterDisposeScope(),
            EntropyNeed.Value => h.detach().view(shape).MoveToOuterDisposeScope(),
            _ => null,
        };
        return (logProbs, entropies);
    }

    /// <summary>The flat indices of the mask's positions, or null when every position counts (or none does: then the head runs as without a mask).</summary>
    private static Tensor? KeptPositions(Tensor? mask)
    {
        if (mask is null) return null;
        var kept = mask.reshape(-1).nonzero().squeeze(1);
        return kept.numel() == 0 || kept.numel() == mask.numel() ? null : kept;
    }

    /// <summary>Values at the kept positions of a flat [count] tensor, 0 elsewhere; differentiable in the values.</summary>
    private static Tensor Spread(Tensor values, Tensor kept, long count) =>
        zeros(count, dtype: values.dtype, device: values.device).index_copy(0, kept, values);

    /// <summary>The whole micro-batch's logits through one log-softmax, shared by l and H (the path of a micro-batch within one chunk).</summary>
    private (Tensor, Tensor?) Unchunked(Tensor hidden, Tensor tokens, double temperature, EntropyNeed entropy)
    {
        using var scope = NewDisposeScope();
        var logp = Stats.LogSoftmax(Model.LogitsOf(hidden), temperature);                        // [B,n,V]
        var l = Stats.Gather(logp, tokens).MoveToOuterDisposeScope();
        Tensor? h = null;
        if (entropy == EntropyNeed.Differentiable) h = Stats.EntropyOf(logp).MoveToOuterDisposeScope();
        else if (entropy == EntropyNeed.Value)
            using (no_grad()) h = Stats.EntropyOf(logp.detach()).MoveToOuterDisposeScope();
        return (l, h);
    }

    /// <summary>A same-architecture copy in float32 or wider (EMA target, GRPO reference), computing in the policy's precision without a cached copy.</summary>
    public Qwen2Policy FrozenClone()
    {
        var dtype = Model.Dtype is ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        var copy = new Qwen2ForCausalLM(Model.Config, Model.Device, dtype);
        FrozenCopy.Copy(Model, copy);
        copy.Precision.Dtype = Model.Precision.Dtype;
        copy.Precision.CacheWeights = false;
        copy.LogitChunkSize = Model.LogitChunkSize;
        copy.PaddingFree = Model.PaddingFree;
        return new Qwen2Policy(copy);
    }
}
