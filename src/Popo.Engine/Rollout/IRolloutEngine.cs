namespace Popo.Engine.Rollout;

/// <summary>
/// Where rollouts come from: the built-in KV-cache sampler (<see cref="BuiltinRollout"/>) or an inference server
/// (<see cref="ServerSampler"/>). Both fill the same <see cref="GenerationBatch"/> layout.
/// </summary>
internal interface IRolloutEngine : IDisposable
{
    /// <summary>
    /// G completions of each distinct prompt, rows grouped per prompt (prompt p's rollouts are rows p G .. p G + G - 1),
    /// OldLogProbs holding the sampling engine's own log-probs.
    /// </summary>
    GenerationBatch Generate(IReadOnlyList<int[]> prompts, int groupSize, SamplerOptions options);

    /// <summary>
    /// The same batch, started: a server's requests go out now and run while the caller goes on (async_rollouts);
    /// the built-in sampler generates at once.
    /// </summary>
    PendingGeneration Begin(IReadOnlyList<int[]> prompts, int groupSize, SamplerOptions options) => PendingGeneration.Done(Generate(prompts, groupSize, options));

    /// <summary>True when another engine samples: its log-probs are not the trainer's, so the trainer recomputes them.</summary>
    bool Remote { get; }
}
