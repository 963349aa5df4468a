using Popo.Engine.Rollout;
using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Engine.Objectives;

/// <summary>TRL's vllm_importance_sampling_mode: per token or per sequence, truncated at the cap or masked above it.</summary>
internal enum ImportanceMode { TokenTruncate, TokenMask, SequenceTruncate, SequenceMask }

/// <summary>The correction's keys: importance_correction (with a server), importance_mode, importance_cap.</summary>
internal sealed record ImportanceOptions(ImportanceMode Mode, double Cap)
{
    public static ImportanceMode ParseMode(string word) => word switch
    {
        "token_truncate" => ImportanceMode.TokenTruncate,
        "token_mask" => ImportanceMode.TokenMask,
        "sequence_truncate" => ImportanceMode.SequenceTruncate,
        "sequence_mask" => ImportanceMode.SequenceMask,
        _ => throw new ArgumentException($"importance_mode: '{word}' is not one of token_truncate, token_mask, sequence_truncate, sequence_mask"),
    };
}

/// <summary>
/// The importance correction for a sampler that is not the trainer (TRL's vllm_importance_sampling_correction;
/// spec: Popo.Spec.ImportanceCorrection). With d_{i,t} = l_old - l_sampler on completion tokens (0 elsewhere):
///   token modes:    rho_{i,t} = exp(d_{i,t});   sequence modes: rho_i = exp(sum_t d_{i,t}) for every token of row i;
///   truncate: c = min(rho, cap);                 mask: c = rho where rho &lt;= cap, else 0.
/// c multiplies each token's policy-loss term in every objective (carried as <see cref="PreparedBatch.TokenWeights"/>).
/// Metrics: is_logp_diff = mean |d| over tokens, is_kl = mean over tokens of exp(d) - d - 1 (k3 estimate of
/// KL(sampler || trainer) on the sampler's tokens), is_corrected = share of tokens (token modes) or rows (sequence
/// modes) truncated or masked.
/// </summary>
internal static class ImportanceCorrection
{
    /// <summary>The metric columns the correction writes.</summary>
    public static readonly IReadOnlyList<string> Columns = ["is_logp_diff", "is_kl", "is_corrected"];

    /// <summary>c [B,N] (0 off the mask) for the batch, or null when its log-probs are the trainer's own (built-in sampler).</summary>
    public static Tensor? Weights(GenerationBatch batch, ImportanceOptions options, StepMetrics metrics)
    {
        if (batch.SamplerLogProbs is null) return null;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var m = batch.CompletionMask.to(ScalarType.Float64);
        var d = (batch.OldLogProbs.to(ScalarType.Float64) - batch.SamplerLogProbs.to(ScalarType.Float64)) * m;   // [B,N]
        var tokens = m.sum().clamp_min(1.0);
        metrics.Set("is_logp_diff", (d.abs().sum() / tokens).ToDouble());
        metrics.Set("is_kl", (((d.exp() - d - 1.0) * m).sum() / tokens).ToDouble());

        bool sequence = options.Mode is ImportanceMode.SequenceTruncate or ImportanceMode.SequenceMask;
        var rho = sequence ? d.sum(1, keepdim: true).exp().expand_as(d) : d.exp();
        var over = rho > options.Cap;
        var c = options.Mode is ImportanceMode.TokenTruncate or ImportanceMode.SequenceTruncate
            ? rho.clamp_max(options.Cap) : rho.masked_fill(over, 0.0);
        var rows = (m.sum(1) > 0).to(ScalarType.Float64);
        metrics.Set("is_corrected", sequence
            ? ((over.select(1, 0).to(ScalarType.Float64) * rows).sum() / rows.sum().clamp_min(1.0)).ToDouble()
            : ((over.to(ScalarType.Float64) * m).sum() / tokens).ToDouble());
        return (c * m).to(batch.OldLogProbs.dtype).MoveToOuterDisposeScope();
    }
}
