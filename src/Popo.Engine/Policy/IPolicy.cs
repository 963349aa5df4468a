using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Engine.Policy;

/// <summary>What the objectives need of a causal language model: one full forward pass.</summary>
public interface IPolicy
{
    /// <summary>
    /// inputIds [B,T], attentionMask [B,T] (1 = real token), positionIds [B,T] -> the logits of positions
    /// [logitsFrom, logitsFrom + logitsCount) only, [B,logitsCount,V] (the head's cost grows with V: positions whose
    /// logits nobody reads are not projected), and the final post-norm hidden state of all positions, [B,T,D].
    /// </summary>
    (Tensor Logits, Tensor Hidden) Forward(Tensor inputIds, Tensor attentionMask, Tensor positionIds, long logitsFrom, long logitsCount);

    /// <summary>The trainable parameters.</summary>
    IEnumerable<TorchSharp.Modules.Parameter> Parameters { get; }

    /// <summary>The module itself (for train/eval mode, EMA copies, checkpoints).</summary>
    nn.Module Module { get; }
}
