using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Engine.Policy;

/// <summary>What the objectives need of a causal language model: one full forward pass.</summary>
public interface IPolicy
{
    /// <summary>
    /// inputIds [B,T], attentionMask [B,T] (1 = real token), positionIds [B,T] ->
    /// logits [B,T,V] and the final post-norm hidden state [B,T,D].
    /// </summary>
    (Tensor Logits, Tensor Hidden) Forward(Tensor inputIds, Tensor attentionMask, Tensor positionIds);

    /// <summary>The trainable parameters.</summary>
    IEnumerable<TorchSharp.Modules.Parameter> Parameters { get; }

    /// <summary>The module itself (for train/eval mode, EMA copies, checkpoints).</summary>
    nn.Module Module { get; }
}
