using Popo.Engine.Lora;
using Popo.Engine.Rollout;
using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Cli.Serve;

/// <summary>One sampled completion: its token ids (the stop token included, as vLLM's token_ids), the sampled tokens'
/// log-probs, the top alternatives when asked, its text, and why it ended.</summary>
internal sealed record GeneratedChoice(
    int PromptIndex, int[] TokenIds, double[] LogProbs, IReadOnlyList<(int Id, double LogProb)[]>? Top, string Text,
    string FinishReason, object? StopReason);

/// <summary>
/// Runs a request's prompts through the engine's sampler (<see cref="Sampler"/>): each prompt n times in one batch (the
/// sampler prefills a shared prompt once), then stop strings, finish reasons and log-probs as vLLM reports them. Log-probs:
/// in <see cref="LogprobsMode.ProcessedLogprobs"/> the sampler's own, log softmax(logits / T) of the sampled token (T = 1 for
/// greedy), unrestricted by top-k/top-p as the engine's trainer computes them; in <see cref="LogprobsMode.RawLogprobs"/>
/// (vLLM's default) log softmax(logits). Where the sampler's numbers are not the ones asked for (raw at T other than 0 or 1,
/// or top alternatives), a forward pass over prompt + completion scores the sampled tokens.
/// </summary>
internal static class Generation
{
    public static IReadOnlyList<GeneratedChoice> Run(ServedModel served, LoraAdapters? adapter, IReadOnlyList<int[]> prompts, SamplingRequest request)
    {
        var model = served.Model;
        request = request with { Temperature = request.Temperature * served.TemperatureFactor };   // 1 unless --temperature-factor
        var rows = new List<int[]>();
        var limits = new List<int>();
        for (var i = 0; i < prompts.Count; i++)
        {
            var prompt = prompts[i];
            if (prompt.Length == 0) throw ApiException.Field("prompt", $"prompt {i} is empty");
            var room = served.MaxModelLen - prompt.Length;
            if (room < 1) throw ApiException.Field("prompt", $"prompt {i} has {prompt.Length} tokens; this model's maximum context length is {served.MaxModelLen} tokens");
            var limit = request.MaxTokens ?? room;
            if (limit > room)
                throw ApiException.Field("max_tokens", $"{limit} completion tokens after prompt {i}'s {prompt.Length} exceed this model's maximum context length of {served.MaxModelLen} tokens");
            for (var j = 0; j < request.N; j++)
            {
                rows.Add(prompt);
                limits.Add(limit);
            }
        }
        var stops = served.Format.StopTokens.Concat(request.StopTokenIds).Distinct().ToList();
        var options = new SamplerOptions
        {
            Temperature = request.Temperature,
            TopP = request.TopP,
            TopK = request.TopK,
            MaxNewTokens = limits.Max(),
            MaxNewTokensPerRow = limits.Distinct().Count() > 1 ? limits : null,
            StopTokenIds = stops,
            PadId = served.Tokenizer.PadId,
            Seed = request.Seed ?? Random.Shared.NextInt64(),
        };
        using var use = model.Adapters.Use(adapter);
        using var batch = Sampler.Generate(model, rows, options);
        var logProbs = LogProbs(served, batch, request);
        var choices = new List<GeneratedChoice>();
        for (var r = 0; r < rows.Count; r++)
            choices.Add(Finish(served, request, r / request.N, batch.Completions[r], logProbs.Sampled[r], logProbs.Top?[r], limits[r]));
        return choices;
    }

    /// <summary>Where and why a row ended: a stop string (the text cut before it), a stop token, or the length limit.</summary>
    private static GeneratedChoice Finish(ServedModel served, SamplingRequest request, int promptIndex, int[] ids, double[] logProbs,
                                         (int, double)[][]? top, int limit)
    {
        var tokenizer = served.Tokenizer;
        string Decode(int count) => tokenizer.Decode(ids.Take(count), request.SkipSpecialTokens);
        if (request.Stop.Count > 0)
            for (var k = 1; k <= ids.Length; k++)
            {
                var text = Decode(k);
                var hit = request.Stop.Select(s => (Stop: s, At: text.IndexOf(s, StringComparison.Ordinal))).Where(h => h.At >= 0).OrderBy(h => h.At).FirstOrDefault();
                if (hit.Stop is null) continue;
                var kept = request.IncludeStopStrInOutput ? text[..(hit.At + hit.Stop.Length)] : text[..hit.At];
                return new GeneratedChoice(promptIndex, ids[..k], logProbs[..k], top?[..k], kept, "stop", hit.Stop);
            }
        var last = ids.Length > 0 ? ids[^1] : -1;
        var (finish, reason) = served.Format.StopTokens.Contains(last) ? ("stop", (object?)null)
            : request.StopTokenIds.Contains(last) ? ("stop", last)
            : ("length", null);
        return new GeneratedChoice(promptIndex, ids, logProbs, top, Decode(ids.Length), finish, reason);
    }

    /// <summary>The sampled tokens' log-probs per row (and the top alternatives when asked), in the server's mode.</summary>
    private static (double[][] Sampled, (int, double)[][][]? Top) LogProbs(ServedModel served, GenerationBatch batch, SamplingRequest request)
    {
        var lengths = batch.Completions.Select(c => c.Length).ToArray();
        var temperature = served.LogprobsMode == LogprobsMode.RawLogprobs || request.Temperature == 0 ? 1.0 : request.Temperature;
        var samplerHasThem = request.Temperature == 0 || request.Temperature == temperature;
        var topK = request.Logprobs ?? 0;
        if (samplerHasThem && topK == 0)
        {
            using var cpu = batch.OldLogProbs.to(ScalarType.Float64).cpu();
            var width = (int)cpu.shape[1];
            var flat = cpu.data<double>().ToArray();
            return (lengths.Select((n, r) => flat.AsSpan(r * width, n).ToArray()).ToArray(), null);
        }
        return Rescore(served.Model, batch, lengths, temperature, topK);
    }

    /// <summary>
    /// log softmax(logits / T) of each row's sampled tokens from one forward pass over prompt + completion, a row at a time
    /// (no [B, T, V] tensor), with the <paramref name="topK"/> most likely tokens of each position.
    /// </summary>
    private static (double[][], (int, double)[][][]?) Rescore(Engine.Model.Qwen2ForCausalLM model, GenerationBatch batch, int[] lengths, double temperature, int topK)
    {
        using var noGrad = torch.no_grad();
        var p = batch.PromptLength;
        var sampled = new double[lengths.Length][];
        var top = topK > 0 ? new (int, double)[lengths.Length][][] : null;
        for (var r = 0; r < lengths.Length; r++)
        {
            using var scope = torch.NewDisposeScope();
            var n = lengths[r];
            if (n == 0)
            {
                sampled[r] = [];
                if (top is not null) top[r] = [];
                continue;
            }
            var ids = batch.InputIds.narrow(0, r, 1).narrow(1, 0, p + n);
            var mask = batch.AttentionMask.narrow(0, r, 1).narrow(1, 0, p + n);
            var positions = batch.PositionIds.narrow(0, r, 1).narrow(1, 0, p + n);
            var hidden = model.ForwardHidden(ids, mask, positions).narrow(1, p - 1, n).squeeze(0);   // [n,D]: the positions that predict the completion
            var logp = (model.LogitsOf(hidden).to(ScalarType.Float64) / temperature).log_softmax(-1);  // [n,V]
            var tokens = ids.squeeze(0).narrow(0, p, n).unsqueeze(1);
            sampled[r] = logp.gather(1, tokens).squeeze(1).cpu().data<double>().ToArray();
            if (top is not null)
            {
                var (values, indices) = logp.topk(Math.Min(topK, (int)logp.shape[1]), -1);
                var v = values.cpu().data<double>().ToArray();
                var ix = indices.cpu().data<long>().ToArray();
                var k = (int)values.shape[1];
                top[r] = Enumerable.Range(0, n).Select(t => Enumerable.Range(0, k).Select(j => ((int)ix[t * k + j], v[t * k + j])).ToArray()).ToArray();
            }
        }
        return (sampled, top);
    }
}
