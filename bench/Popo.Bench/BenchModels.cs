using Popo.Engine.Model;

namespace Popo.Bench;

/// <summary>The model sizes the benchmarks use (random Qwen2-layout weights) and their FLOP and byte counts.</summary>
internal static class BenchModels
{
    public sealed record Size(string Name, ModelConfig Config);

    public static readonly Size Tiny = new("tiny-0.4M", new ModelConfig { VocabSize = 100, HiddenSize = 128, IntermediateSize = 352, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2, TieWordEmbeddings = true });
    public static readonly Size Small = new("small-3M", new ModelConfig { VocabSize = 100, HiddenSize = 256, IntermediateSize = 704, NumHiddenLayers = 4, NumAttentionHeads = 8, NumKeyValueHeads = 4, TieWordEmbeddings = true });
    public static readonly Size Medium = new("medium-24M", new ModelConfig { VocabSize = 1000, HiddenSize = 512, IntermediateSize = 1408, NumHiddenLayers = 8, NumAttentionHeads = 8, NumKeyValueHeads = 2 });
    public static readonly Size Large = new("large-80M", new ModelConfig { VocabSize = 4000, HiddenSize = 768, IntermediateSize = 2048, NumHiddenLayers = 12, NumAttentionHeads = 12, NumKeyValueHeads = 4 });

    /// <summary>The seven linears of one decoder layer as [out, in] with how often each shape occurs: q and o, k and v, gate and up, down.</summary>
    public static (long Out, long In, int Count)[] LayerLinears(ModelConfig c)
    {
        long d = c.HiddenSize, q = c.NumAttentionHeads * c.HeadDim, kv = c.NumKeyValueHeads * c.HeadDim, i = c.IntermediateSize;
        return [(q, d, 1), (d, q, 1), (kv, d, 2), (i, d, 2), (d, i, 1)];
    }

    /// <summary>Weights a token's forward pass multiplies by: projections, MLP and the head (the embedding lookup is not a matmul).</summary>
    public static long MatmulWeights(ModelConfig c) =>
        c.NumHiddenLayers * LayerLinears(c).Sum(l => l.Out * l.In * l.Count) + (long)c.VocabSize * c.HiddenSize;

    /// <summary>Forward FLOPs per token: 2 x matmul weights + 4 x layers x context x hidden (attention scores and values).</summary>
    public static double ForwardFlopsPerToken(ModelConfig c, double context) =>
        2.0 * MatmulWeights(c) + 4.0 * c.NumHiddenLayers * context * c.HiddenSize;

    /// <summary>
    /// Training FLOPs per token (forward + backward = 3 x forward): 6 x matmul weights + 12 x layers x context x hidden.
    /// For a causal sequence of T tokens the mean context is (T + 1) / 2: only the attended (lower-triangle) work counts.
    /// </summary>
    public static double TrainFlopsPerToken(ModelConfig c, double context) => 3.0 * ForwardFlopsPerToken(c, context);

    /// <summary>
    /// Bytes one cached decode step must read at least: every weight a token multiplies by (the embedding table only
    /// when tied, as the head), plus the keys and values of <paramref name="context"/> positions for each of B rows.
    /// </summary>
    public static double DecodeBytesPerStep(ModelConfig c, long batch, double context, int bytesPerElement = 4)
    {
        var kvPerPosition = 2.0 * c.NumHiddenLayers * c.NumKeyValueHeads * c.HeadDim;
        return bytesPerElement * (MatmulWeights(c) + batch * context * kvPerPosition);
    }
}
