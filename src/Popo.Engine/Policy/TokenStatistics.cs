using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Engine.Policy;

/// <summary>How a rollout's representation is pooled from the final post-norm hidden states (docs/design.md §2.4).</summary>
internal enum FeaturePooling { Mean, LastToken }

/// <summary>Per-token quantities every objective reads off the policy's logits (docs/design.md §2.1, §2.6).</summary>
internal static class TokenStatistics
{
    /// <summary>
    /// log softmax(logits / T) over the vocabulary, [B,N,V] -> [B,N,V]. The objectives take both the token
    /// log-probs and the entropy from this one tensor, so the vocabulary-wide softmax runs (and back-propagates) once.
    /// </summary>
    public static Tensor LogSoftmax(Tensor logits, double temperature) =>
        (temperature == 1.0 ? logits : logits / temperature).log_softmax(-1);   // x / 1 == x exactly: skip the pass

    /// <summary>l_{i,t} = logp[y_{i,t}]: logp [B,N,V] from <see cref="LogSoftmax"/>, tokens [B,N] int64 -> [B,N].</summary>
    public static Tensor Gather(Tensor logp, Tensor tokens) =>
        logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1);                      // [B,N,1] -> [B,N]

    /// <summary>H_{i,t} = -sum_v p_v log p_v with p = exp(logp): logp [B,N,V] from <see cref="LogSoftmax"/> -> [B,N].</summary>
    public static Tensor EntropyOf(Tensor logp)
    {
        using var scope = NewDisposeScope();
        return (-(logp.exp() * logp).sum(-1)).MoveToOuterDisposeScope();
    }

    /// <summary>l_{i,t} = log softmax(logits / T)[y_{i,t}]. logits [B,N,V], tokens [B,N] int64 -> [B,N].</summary>
    public static Tensor LogProbs(Tensor logits, Tensor tokens, double temperature)
    {
        using var logp = LogSoftmax(logits, temperature);
        return Gather(logp, tokens);
    }

    /// <summary>H_{i,t} = -sum_v p_v log p_v of softmax(logits / T) over the full vocabulary. [B,N,V] -> [B,N].</summary>
    public static Tensor Entropy(Tensor logits, double temperature)
    {
        using var logp = LogSoftmax(logits, temperature);
        return EntropyOf(logp);
    }

    /// <summary>
    /// f(i): the mean over completion positions (or the last completion position) of the final post-norm
    /// hidden state. hidden [B,N,D] at completion positions, mask [B,N] -> [B,D].
    /// </summary>
    public static Tensor PoolFeatures(Tensor hidden, Tensor mask, FeaturePooling pooling)
    {
        using var scope = NewDisposeScope();
        var m = mask.to(hidden.dtype);
        Tensor pooled;
        if (pooling == FeaturePooling.Mean)
        {
            var count = m.sum(1, keepdim: true).clamp_min(1.0);                  // [B,1]
            pooled = (hidden * m.unsqueeze(-1)).sum(1) / count;                   // [B,D]
        }
        else
        {
            var last = (m.sum(1).to(ScalarType.Int64) - 1).clamp_min(0);          // [B]
            var index = last.view(-1, 1, 1).expand(-1, 1, hidden.shape[2]);        // [B,1,D]
            pooled = hidden.gather(1, index).squeeze(1);                          // [B,D]
        }
        return pooled.MoveToOuterDisposeScope();
    }
}
