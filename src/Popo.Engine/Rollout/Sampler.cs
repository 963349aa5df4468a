using Popo.Engine.Runtime;
using Popo.Engine.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Engine.Rollout;

/// <summary>
/// Batched autoregressive sampling with a KV cache. Prompts are left-padded so every row's next token sits
/// in the last column; position ids count real tokens only, so padding changes nothing. One prefill pass
/// fills the cache, then each step feeds one token per row: the prefix is never recomputed. The only host
/// sync per step is the count of rows still running. Two savings leave every output unchanged: a prompt that
/// several rows share (GRPO's G rollouts) is prefilled once and its cache copied to those rows
/// (<see cref="SamplerOptions.SharePromptPrefill"/>), and rows that have stopped leave the batch and the cache
/// (<see cref="SamplerOptions.CompactFinishedRows"/>), so a step costs what its live rows need.
/// </summary>
internal static class Sampler
{
    public static GenerationBatch Generate(Qwen2ForCausalLM model, IReadOnlyList<int[]> prompts, SamplerOptions options)
    {
        options.Validate();
        if (prompts.Count == 0) throw new ArgumentException("no prompts to sample from");
        if (prompts.Any(p => p.Length == 0)) throw new ArgumentException("every prompt needs at least one token");
        if (options.MaxNewTokensPerRow is { } perRow && perRow.Count != prompts.Count)
            throw new ArgumentException($"MaxNewTokensPerRow has {perRow.Count} entries for {prompts.Count} prompts");
        var vocab = model.Config.VocabSize;
        foreach (var id in prompts.SelectMany(p => p).Concat(options.StopTokenIds).Append(options.PadId))
            if (id < 0 || id >= vocab) throw new ArgumentException($"token id {id} is outside the model's vocabulary [0, {vocab})");

        var device = model.Device;
        long b = prompts.Count;
        var p = prompts.Max(x => x.Length);
        var n = options.MaxNewTokens;
        var wide = model.Dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        using var ownGenerator = options.Generator is null && options.Seed is long seed ? new Generator((ulong)seed, device) : null;
        var generator = options.Generator ?? ownGenerator;

        // Every Scalar held across its native call (HeldScalars says why).
        using Scalar pad = options.PadId, zero = 0.0, yes = true;
        var (promptIds, promptMask) = LeftPad(prompts, p, options.PadId, device); // [B,P] each
        var keyMask = torch.ones(b, p + n, dtype: ScalarType.Int64, device: device); // generated slots always attendable
        keyMask.narrow(1, 0, p).copy_(promptMask);
        var tokens = torch.full(b, n, pad, dtype: ScalarType.Int64, device: device);
        var logProbs = torch.zeros(b, n, dtype: wide, device: device);
        var aliveHistory = torch.zeros(b, n, dtype: ScalarType.Bool, device: device);
        var isStop = torch.zeros(vocab, dtype: ScalarType.Bool, device: device);
        if (options.StopTokenIds.Count > 0)
            isStop.index_fill_(0, torch.tensor(options.StopTokenIds.Select(i => (long)i).ToArray(), device: device), yes);

        // The batch in flight. Until the first compaction it is all B rows in order (rows == null); after it,
        // batch row i is original row rows[i], and every per-row tensor below holds the live rows only.
        Tensor? rows = null;
        var alive = torch.ones(b, dtype: ScalarType.Bool, device: device);
        var mask = keyMask;
        var nextPosition = promptMask.sum(1, keepdim: true);                     // [B,1] real prompt tokens
        var limit = options.MaxNewTokensPerRow is { } limits
            ? torch.tensor(limits.Select(x => (long)x).ToArray(), device: device) : null;

        using var cache = model.NewCache(b, p + n);
        var logits = Prefill(model, promptIds, promptMask, p, cache, options.SharePromptPrefill ? PromptGroups.Of(prompts) : null); // [B,V]
        var steps = n;
        for (var step = 0; step < n; step++)
        {
            using var stepScope = torch.NewDisposeScope();
            using Scalar at = step, following = step + 1;
            var (next, logProb) = Choose(logits.to(wide), options, generator, b, rows); // [R], [R]
            next = next.masked_fill(alive.logical_not(), pad);
            Write(tokens, step, rows, next);
            Write(logProbs, step, rows, logProb.masked_fill(alive.logical_not(), zero));
            Write(aliveHistory, step, rows, alive);
            alive.logical_and_(isStop.index_select(0, next).logical_not());
            if (limit is not null) alive.logical_and_(limit.gt(following));
            if (step == n - 1) break;
            var live = alive.sum().item<long>();                                  // the step's one host sync
            if (live == 0)
            {
                steps = step + 1;
                break;
            }
            if (options.CompactFinishedRows && live < alive.shape[0])
            {
                // Finished rows leave: the cache and every per-row tensor keep the live rows only, in order.
                var keep = alive.nonzero().squeeze(1);
                rows = (rows is null ? keep : rows.index_select(0, keep)).MoveToOuterDisposeScope();
                alive = alive.index_select(0, keep).MoveToOuterDisposeScope();
                mask = mask.index_select(0, keep).MoveToOuterDisposeScope();
                nextPosition = nextPosition.index_select(0, keep).MoveToOuterDisposeScope();
                limit = limit?.index_select(0, keep).MoveToOuterDisposeScope();
                next = next.index_select(0, keep);
                cache.SelectRows(keep);
            }
            var newLogits = LastLogits(model, next.unsqueeze(1), mask.narrow(1, 0, p + step + 1), nextPosition.Plus(at), cache);
            logits.Dispose();
            logits = newLogits.MoveToOuterDisposeScope();
        }

        var completionTokens = tokens.narrow(1, 0, steps);
        var completionMask = aliveHistory.narrow(1, 0, steps);
        var sequences = torch.cat([promptIds, completionTokens], 1);             // [B,P+N]
        var attention = torch.cat([promptMask, completionMask.to(ScalarType.Int64)], 1); // [B,P+N]
        var completions = Rows(completionTokens, completionMask);
        return new GenerationBatch
        {
            CompletionIds = completionTokens.contiguous().MoveToOuterDisposeScope(),
            CompletionMask = completionMask.to(wide).MoveToOuterDisposeScope(),
            OldLogProbs = logProbs.narrow(1, 0, steps).contiguous().MoveToOuterDisposeScope(),
            InputIds = sequences.MoveToOuterDisposeScope(),
            AttentionMask = attention.MoveToOuterDisposeScope(),
            PositionIds = Qwen2ForCausalLM.DefaultPositions(attention, attention.shape[1]).MoveToOuterDisposeScope(),
            PromptLength = p,
            Completions = completions,
            Truncated = completions.Select(c => c.Length == 0 || !options.StopTokenIds.Contains(c[^1])).ToArray(),
        };
    }

    /// <summary>
    /// Fills the cache with the prompts and returns each row's first-token logits [B,V]. With groups, each
    /// distinct prompt runs once and its cache rows and logits are copied out to the rows that repeat it.
    /// </summary>
    private static Tensor Prefill(Qwen2ForCausalLM model, Tensor ids, Tensor mask, int p, KvCache cache, PromptGroups? groups)
    {
        if (groups is null || groups.Distinct.Length == ids.shape[0])
            return LastLogits(model, ids, mask, Qwen2ForCausalLM.DefaultPositions(mask, p), cache);
        using var scope = torch.NewDisposeScope();
        var device = ids.device;
        var distinct = torch.tensor(groups.Distinct.Select(r => (long)r).ToArray(), device: device);
        var map = torch.tensor(groups.RowToDistinct, device: device);
        cache.SelectRows(torch.arange(groups.Distinct.Length, dtype: ScalarType.Int64, device: device)); // empty cache: no copy
        var distinctMask = mask.index_select(0, distinct);
        var logits = LastLogits(model, ids.index_select(0, distinct), distinctMask, Qwen2ForCausalLM.DefaultPositions(distinctMask, p), cache);
        cache.SelectRows(map);
        return logits.index_select(0, map).MoveToOuterDisposeScope();
    }

    /// <summary>Writes column <paramref name="step"/> of a [B,N] record from the batch's rows (rows null = all B in order).</summary>
    private static void Write(Tensor record, int step, Tensor? rows, Tensor values)
    {
        using var column = record.select(1, step);
        if (rows is null) column.copy_(values);
        else column.index_copy_(0, rows, values);
    }

    /// <summary>Logits of the last position only, [B,V]: the head runs on one position per row, not all T.</summary>
    private static Tensor LastLogits(Qwen2ForCausalLM model, Tensor ids, Tensor mask, Tensor positions, KvCache cache)
    {
        using var scope = torch.NewDisposeScope();
        var hidden = model.ForwardHidden(ids, mask, positions, cache);             // [B,T,D]
        return model.LogitsOf(hidden.select(1, hidden.shape[1] - 1)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Picks next tokens from logits [B,V]: argmax for T = 0, else a draw from softmax(logits/T) restricted to
    /// the top-k and the top-p nucleus. The log-prob is always that of the unrestricted softmax(logits/T).
    /// </summary>
    private static (Tensor Next, Tensor LogProb) Choose(Tensor logits, SamplerOptions options, Generator? generator, long batch, Tensor? rows)
    {
        using var scope = torch.NewDisposeScope();
        var greedy = options.Temperature == 0;
        using Scalar temperature = options.Temperature, topP = options.TopP, minusInfinity = double.NegativeInfinity;
        var scaled = greedy || options.Temperature == 1.0 ? logits : logits.div(temperature);   // x / 1 == x exactly
        var logp = scaled.log_softmax(-1);                                        // [B,V]
        Tensor next;
        if (greedy) next = scaled.argmax(-1);
        else
        {
            var filtered = scaled;
            var v = scaled.shape[1];
            if (options.TopK > 0 && options.TopK < v)
            {
                var kth = scaled.topk(options.TopK, -1).values.narrow(1, options.TopK - 1, 1); // [B,1]
                filtered = filtered.masked_fill(filtered < kth, minusInfinity);
            }
            if (options.TopP < 1)
            {
                var (sorted, order) = filtered.sort(-1, descending: true);       // [B,V]
                var probs = sorted.softmax(-1);
                // Drop a token once the mass before it already reaches p; the most likely token always stays.
                var drop = (probs.cumsum(-1) - probs).ge(topP);
                filtered = filtered.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), minusInfinity);
            }
            // A row with NaN/Inf probabilities draws uniformly and keeps its non-finite log-prob, which the
            // trainer detects as a bad step.
            var distribution = filtered.softmax(-1).nan_to_num(1.0, 1.0, 0.0);
            next = Draw(distribution, generator, batch, rows);
        }
        var logProb = logp.gather(1, next.unsqueeze(1)).squeeze(1);
        return (next.MoveToOuterDisposeScope(), logProb.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// One token per row by inverse CDF: the first token whose cumulative probability exceeds u x total, u ~ U[0,1)
    /// (float64 sums, so every token keeps its probability up to float64 rounding; the last token of positive
    /// probability bounds the search, so a zero-probability token is never drawn). One uniform per row of the whole
    /// batch, live or not, every step: the generator's stream, and so every row's token, is the same with and
    /// without compaction, and a step draws B numbers instead of the B x V exponentials torch.multinomial draws.
    /// </summary>
    private static Tensor Draw(Tensor probs, Generator? generator, long batch, Tensor? rows)
    {
        using var scope = torch.NewDisposeScope();
        var u = torch.rand([batch, 1], dtype: ScalarType.Float64, device: probs.device, generator: generator); // [B,1]
        if (rows is not null) u = u.index_select(0, rows);                           // [R,1]
        var cdf = probs.to(ScalarType.Float64).cumsum(-1);                            // [R,V]
        var total = cdf.narrow(1, cdf.shape[1] - 1, 1).contiguous();                  // [R,1]
        var drawn = torch.searchsorted(cdf, u * total, right: true);                  // first cdf > u x total
        var lastPositive = torch.searchsorted(cdf, total);                            // first cdf == total
        return drawn.minimum(lastPositive).squeeze(1).MoveToOuterDisposeScope();
    }

    /// <summary>Left-padded prompt ids and their mask, [B,P] int64 each: block copies per row, widened to int64 in one tensor op.</summary>
    internal static (Tensor Ids, Tensor Mask) LeftPad(IReadOnlyList<int[]> prompts, int length, int pad, Device device)
    {
        var ids = new int[prompts.Count * length];
        var mask = new long[prompts.Count * length];
        for (var r = 0; r < prompts.Count; r++)
        {
            var padding = length - prompts[r].Length;
            Array.Fill(ids, pad, r * length, padding);
            Array.Copy(prompts[r], 0, ids, r * length + padding, prompts[r].Length);
            Array.Fill(mask, 1L, r * length + padding, prompts[r].Length);
        }
        long[] shape = [prompts.Count, length];
        using var narrowIds = torch.tensor(ids, shape);
        return (narrowIds.to(ScalarType.Int64, device), torch.tensor(mask, shape, device: device));
    }

    /// <summary>Each row's completion tokens (the first mask-count columns) as host arrays: one narrowing copy per row.</summary>
    private static int[][] Rows(Tensor tokens, Tensor mask)
    {
        using var cpuTokens = tokens.to(ScalarType.Int32).cpu().contiguous();
        using var lengths = mask.to(ScalarType.Int64).sum(1).cpu();
        var flat = cpuTokens.data<int>().ToArray();
        var counts = lengths.data<long>().ToArray();
        var width = (int)tokens.shape[1];
        return counts.Select((count, r) => flat.AsSpan(r * width, (int)count).ToArray()).ToArray();
    }
}
