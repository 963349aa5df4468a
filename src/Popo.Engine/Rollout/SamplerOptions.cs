using static TorchSharp.torch;

namespace Popo.Engine.Rollout;

/// <summary>
/// Decoding settings. Temperature 0 means greedy decoding (log-probs then reported under softmax(logits)).
/// TopK 0 and TopP 1 disable those filters. Randomness comes from <see cref="Generator"/> if given (its state
/// advances across calls), else from a fresh generator seeded with <see cref="Seed"/>, else torch's global one.
/// </summary>
internal sealed record SamplerOptions
{
    public double Temperature { get; init; } = 1.0;
    public double TopP { get; init; } = 1.0;
    public int TopK { get; init; }
    public int MaxNewTokens { get; init; } = 64;
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];
    /// <summary>Fills prompt padding and completion slots after a sequence has stopped.</summary>
    public int PadId { get; init; }
    public long? Seed { get; init; }
    public Generator? Generator { get; init; }
    /// <summary>
    /// Per-row completion limits (like vLLM's per-request max_tokens): row r stops after this many tokens even
    /// without a stop token. Null = <see cref="MaxNewTokens"/> for every row; else one entry per prompt, each in [1, MaxNewTokens].
    /// </summary>
    public IReadOnlyList<int>? MaxNewTokensPerRow { get; init; }
    /// <summary>Prefill each distinct prompt once and fan its KV cache out to the rows that repeat it (same outputs).</summary>
    public bool SharePromptPrefill { get; init; } = true;
    /// <summary>Drop finished rows from the batch and its KV cache, so a step costs only the live rows (same outputs).</summary>
    public bool CompactFinishedRows { get; init; } = true;

    public void Validate()
    {
        if (!(Temperature >= 0) || double.IsInfinity(Temperature)) throw new ArgumentException($"Temperature must be finite and >= 0, got {Temperature}");
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentException($"TopP must lie in (0, 1], got {TopP}");
        if (TopK < 0) throw new ArgumentException($"TopK must be >= 0 (0 = off), got {TopK}");
        if (MaxNewTokens < 1) throw new ArgumentException($"MaxNewTokens must be >= 1, got {MaxNewTokens}");
        foreach (var limit in MaxNewTokensPerRow ?? [])
            if (limit < 1 || limit > MaxNewTokens)
                throw new ArgumentException($"MaxNewTokensPerRow entries must lie in [1, MaxNewTokens = {MaxNewTokens}], got {limit}");
    }
}
