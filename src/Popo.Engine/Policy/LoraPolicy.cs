using Popo.Engine.Lora;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Popo.Engine.Policy;

/// <summary>
/// The shared frozen base seen through one adapter set: the online policy (its trainable adapters), POPO's
/// siamese target (an EMA set, <see cref="FrozenClone"/>) or GRPO's reference (no adapters, <see cref="WithoutAdapters"/>).
/// Each view switches the model's <see cref="Model.AdapterSlot"/> for its own forward only; the head is the base's in every view.
/// </summary>
internal sealed class LoraPolicy(Qwen2Policy basePolicy, LoraAdapters adapters) : IPolicy
{
    public Qwen2Policy Base { get; } = basePolicy;

    public LoraAdapters Adapters { get; } = adapters;

    /// <summary>The adapter set: what the optimizer trains, the EMA copies and the checkpoint saves.</summary>
    public nn.Module Module => Adapters;

    public IEnumerable<Parameter> Parameters => Adapters.parameters();

    public Tensor ForwardHidden(Tensor inputIds, Tensor attentionMask, Tensor positionIds)
    {
        using var use = Base.Model.Adapters.Use(Adapters);
        return Base.ForwardHidden(inputIds, attentionMask, positionIds);
    }

    public Tensor Logits(Tensor hidden) => Base.Logits(hidden);

    public (Tensor LogProbs, Tensor? Entropy) TokenStatistics(Tensor hidden, Tensor tokens, double temperature, EntropyNeed entropy, Tensor? mask = null) =>
        Base.TokenStatistics(hidden, tokens, temperature, entropy, mask);

    /// <summary>The EMA target's view: a same-shape adapter set (its values are the online ones once <see cref="Objectives.EmaTarget"/> copies them), no second base.</summary>
    public LoraPolicy FrozenClone() => new(Base, Adapters.Like());

    /// <summary>The base with the adapters switched off, as TRL's reference model is under PEFT.</summary>
    public LoraPolicy WithoutAdapters() => new(Base, LoraAdapters.None(Adapters.Settings));
}
