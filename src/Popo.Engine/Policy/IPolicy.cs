using static TorchSharp.torch;

namespace Popo.Engine.Policy;

/// <summary>What the objectives need of a causal language model: the decoder's hidden states and its head.</summary>
internal interface IPolicy
{
    /// <summary>inputIds [B,T], attentionMask [B,T] (1 = real token), positionIds [B,T] -> the final post-norm hidden state of all positions, [B,T,D].</summary>
    Tensor ForwardHidden(Tensor inputIds, Tensor attentionMask, Tensor positionIds);

    /// <summary>The head's logits [...,V] of hidden states [...,D] (materialised in full: for callers that need every logit).</summary>
    Tensor Logits(Tensor hidden);

    /// <summary>
    /// l = log softmax(head(h) / T)[y] and, as asked, H = the entropy of that softmax, for hidden states [B,n,D] and
    /// tokens [B,n] -> [B,n] each; computed without holding [B,n,V] logits when the micro-batch exceeds the head's chunk.
    /// With a <paramref name="mask"/> [B,n] the chunked head runs over its positions only (the padding of a micro-batch
    /// of uneven completions never reaches the head), and l = H = 0 elsewhere.
    /// </summary>
    (Tensor LogProbs, Tensor? Entropy) TokenStatistics(Tensor hidden, Tensor tokens, double temperature, EntropyNeed entropy, Tensor? mask = null);

    /// <summary>The trainable parameters.</summary>
    IEnumerable<TorchSharp.Modules.Parameter> Parameters { get; }

    /// <summary>The module itself (for train/eval mode, EMA copies, checkpoints).</summary>
    nn.Module Module { get; }
}
