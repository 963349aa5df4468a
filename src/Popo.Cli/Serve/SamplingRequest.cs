namespace Popo.Cli.Serve;

/// <summary>
/// The sampling fields vLLM's completions and chat routes share, read and checked: n, temperature, top_p, top_k (-1 or 0 =
/// off), max_tokens (null = the rest of the context), stop strings, stop_token_ids, seed, skip_special_tokens,
/// include_stop_str_in_output, and how many top log-probs to return (null = none).
/// </summary>
internal sealed record SamplingRequest
{
    /// <summary>The most alternatives a request may ask for per token (vLLM's default max_logprobs).</summary>
    public const int MaxLogprobs = 20;

    /// <summary>The most choices per prompt a request may ask for.</summary>
    public const int MaxN = 256;

    public int N { get; init; } = 1;
    public double Temperature { get; init; } = 1.0;
    public double TopP { get; init; } = 1.0;
    public int TopK { get; init; }
    public int? MaxTokens { get; init; }
    public IReadOnlyList<string> Stop { get; init; } = [];
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];
    public long? Seed { get; init; }
    public bool SkipSpecialTokens { get; init; } = true;
    public bool IncludeStopStrInOutput { get; init; }
    /// <summary>Top alternatives per token to return besides the sampled token's own log-prob; null = no log-probs.</summary>
    public int? Logprobs { get; init; }
    public bool ReturnTokenIds { get; init; }
    public bool TokensAsTokenIds { get; init; }

    /// <summary>Reads the shared fields; <paramref name="logprobs"/> comes from the route (completions: an integer, chat: a flag plus top_logprobs).</summary>
    public static SamplingRequest Read(RequestFields f, int vocab, int? maxTokensDefault, int? logprobs)
    {
        if (f.Bool("stream", false)) throw ApiException.Field("stream", "streaming is not supported by popo serve; send stream = false");
        if (f.Has("best_of") && f.Int("best_of", 1, MaxN) != (f.Int("n", 1, MaxN) ?? 1)) throw ApiException.Field("best_of", "must equal n (popo serve returns every sample)");
        if (f.Has("prompt_logprobs")) throw ApiException.Field("prompt_logprobs", "not supported by popo serve");
        var topK = f.Int("top_k", -1, int.MaxValue) ?? 0;
        return new SamplingRequest
        {
            N = f.Int("n", 1, MaxN) ?? 1,
            Temperature = f.Double("temperature", 1.0, 0, 100),
            TopP = f.Double("top_p", 1.0, double.Epsilon, 1),
            TopK = topK < 0 ? 0 : topK,
            MaxTokens = f.Int("max_tokens", 1, int.MaxValue) ?? f.Int("max_completion_tokens", 1, int.MaxValue) ?? maxTokensDefault,
            Stop = f.Strings("stop"),
            StopTokenIds = f.Ints("stop_token_ids", 0, vocab),
            Seed = f.Long("seed", long.MinValue, long.MaxValue),
            SkipSpecialTokens = f.Bool("skip_special_tokens", true),
            IncludeStopStrInOutput = f.Bool("include_stop_str_in_output", false),
            Logprobs = logprobs,
            ReturnTokenIds = f.Bool("return_token_ids", false),
            TokensAsTokenIds = f.Bool("return_tokens_as_token_ids", false),
        };
    }
}
