using Popo.Engine.Model;

namespace Popo.Bench;

/// <summary>
/// The work a scale row does by the bench's own count (issue 34), to set its time against the machine's limits.
/// Update: 2 FLOPs per weight per token per matmul pass over the decoder layers' weights, for the forward, the input
/// gradient, the weight gradient where the weights are trained (LoRA: the adapters' only), the recomputation under
/// checkpointing and the EMA target's forward over the positive rows (POPO); the tied head the same over completion
/// positions only (forward, input gradient, weight gradient where trained, the chunked head's recomputation in its
/// backward, the target's head over the positives' completions); plus attention's QK^T and AV, 4 x hidden FLOPs per
/// attended (query, key) pair per layer and pass (the backward counts two passes). Padding and masked pairs are not counted.
/// Rollout: its bound is reading every weight once per decode step (plus each step's cached keys and values) at the copy
/// rate, plus the prompts' prefill at the matmul peak.
/// </summary>
internal static class ScaleFlops
{
    /// <summary>Matmul weights of the decoder layers (no head).</summary>
    public static double LayerWeights(ModelConfig c) => BenchModels.MatmulWeights(c) - (double)c.VocabSize * c.HiddenSize;

    /// <summary>LoRA adapter weights of the decoder layers at rank r on all seven linears: r x (in + out) each.</summary>
    public static double AdapterWeights(ModelConfig c, int rank) =>
        c.NumHiddenLayers * rank * BenchModels.LayerLinears(c).Sum(l => (double)(l.In + l.Out) * l.Count);

    /// <summary>(query, key) pairs a causal forward over sequences of these lengths attends to: n (n + 1) / 2 each.</summary>
    public static double CausalPairs(IEnumerable<int> sequenceLengths) => sequenceLengths.Sum(n => n * (n + 1.0) / 2);

    /// <summary>One update's FLOPs; every row is a prompt of <paramref name="promptLength"/> then its completion.</summary>
    /// <param name="positive">rows the EMA target forwards (POPO; null = no target, GRPO at beta 0).</param>
    /// <param name="loraRank">0 = full fine-tuning (every weight trained, the tied head too); else LoRA on a frozen base.</param>
    public static double Update(ModelConfig c, int promptLength, int[] lengths, bool[]? positive, int loraRank, bool checkpointing, bool chunkedHead)
    {
        double tokens = lengths.Sum(n => (double)promptLength + n), completions = lengths.Sum(n => (double)n);
        var positives = Enumerable.Range(0, lengths.Length).Where(i => positive?[i] == true).ToList();
        double targetTokens = positives.Sum(i => (double)promptLength + lengths[i]), targetCompletions = positives.Sum(i => (double)lengths[i]);
        var trained = loraRank == 0;
        // Passes over the layers: forward, input gradient, weight gradient (full), recomputation.
        var layerPasses = 2 + (trained ? 1 : 0) + (checkpointing ? 1 : 0);
        var flops = 2 * LayerWeights(c) * (layerPasses * tokens + targetTokens);
        if (!trained) flops += 2 * AdapterWeights(c, loraRank) * ((3 + (checkpointing ? 1 : 0)) * tokens);
        double head = (double)c.VocabSize * c.HiddenSize;
        var headPasses = 2 + (trained ? 1 : 0) + (chunkedHead ? 1 : 0);
        flops += 2 * head * (headPasses * completions + targetCompletions);
        // Attention: forward 1, backward 2, recomputation 1; the target's forward over the positives.
        var pairs = CausalPairs(lengths.Select(n => promptLength + n));
        var targetPairs = CausalPairs(positives.Select(i => promptLength + lengths[i]));
        flops += 4.0 * c.HiddenSize * c.NumHiddenLayers * ((3 + (checkpointing ? 1 : 0)) * pairs + targetPairs);
        return flops;
    }

    /// <summary>The rollout's FLOPs: every prompt row's prefill (head at its last position) and every generated token's forward.</summary>
    public static double Rollout(ModelConfig c, int promptLength, int[] lengths)
    {
        double head = (double)c.VocabSize * c.HiddenSize, layers = LayerWeights(c);
        double prefill = lengths.Length * (2 * layers * promptLength + 2 * head);
        double decode = lengths.Sum(n => (n - 1.0) * 2 * (layers + head));
        var pairs = CausalPairs(lengths.Select(n => promptLength + n - 1));
        return prefill + decode + 4.0 * c.HiddenSize * c.NumHiddenLayers * pairs;
    }

    /// <summary>
    /// The rollout's bound in seconds: each of the longest row's decode steps reads every weight once (bytesPerWeight each) and
    /// the cached keys and values of the rows still running, at <paramref name="copyBytesPerSecond"/>; the distinct prompts'
    /// prefill (one per group, as share_prompt_prefill runs it) at <paramref name="matmulFlopsPerSecond"/>.
    /// </summary>
    public static double RolloutBoundSeconds(ModelConfig c, int promptLength, int[] lengths, int groupSize, double bytesPerWeight, double copyBytesPerSecond, double matmulFlopsPerSecond)
    {
        double head = (double)c.VocabSize * c.HiddenSize, layers = LayerWeights(c);
        double kvPerPosition = 2.0 * c.NumHiddenLayers * c.NumKeyValueHeads * c.HeadDim;
        var steps = lengths.Max() - 1;
        double cacheReads = lengths.Sum(n => Enumerable.Range(1, Math.Max(n - 1, 0)).Sum(t => (double)promptLength + t));
        var bytes = bytesPerWeight * (steps * (layers + head) + cacheReads * kvPerPosition);
        double prefill = lengths.Length / groupSize * (2 * layers * promptLength + 2 * head);
        return bytes / copyBytesPerSecond + prefill / matmulFlopsPerSecond;
    }
}
