namespace Popo.Engine.Rollout;

/// <summary>Which generation API the servers speak: the OpenAI-compatible /v1/completions (vLLM, popo serve) or SGLang's native /generate.</summary>
internal enum RolloutApi { Completions, SglangGenerate }

/// <summary>
/// How to reach the OpenAI-compatible servers that generate (vLLM, SGLang, `popo serve`): base URLs ending in /v1,
/// requests spread across them round-robin by prompt; the model name the requests carry; a timeout per request;
/// at most <see cref="MaxInflight"/> requests in flight; <see cref="Retries"/> retries with exponential backoff.
/// </summary>
internal sealed record ServerRolloutOptions
{
    public required IReadOnlyList<string> Urls { get; init; }
    public required string Model { get; init; }
    /// <summary>The generation route; SGLang's OpenAI completions return token text, not ids, so SGLang rollouts use /generate.</summary>
    public RolloutApi Api { get; init; } = RolloutApi.Completions;
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(600);
    public int MaxInflight { get; init; } = 64;
    public int Retries { get; init; } = 3;
    /// <summary>The first retry waits this long, each later one twice the one before.</summary>
    public TimeSpan Backoff { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>The model's vocabulary: a token id outside [0, VocabSize) is a malformed answer.</summary>
    public required int VocabSize { get; init; }

    public void Validate()
    {
        if (Urls.Count == 0) throw new ArgumentException("rollout_urls: at least one server URL is needed with rollout_engine = server");
        foreach (var url in Urls)
            if (!Uri.TryCreate(url, UriKind.Absolute, out var u) || (u.Scheme != "http" && u.Scheme != "https"))
                throw new ArgumentException($"rollout_urls: '{url}' is not an http(s) URL (expected e.g. http://127.0.0.1:8000/v1)");
        if (Api == RolloutApi.Completions && string.IsNullOrWhiteSpace(Model)) throw new ArgumentException("rollout_model: the served model's name is needed with rollout_engine = server");
        if (MaxInflight < 1) throw new ArgumentException($"rollout_max_inflight must be >= 1, got {MaxInflight}");
        if (Retries < 0) throw new ArgumentException($"rollout_retries must be >= 0, got {Retries}");
    }
}
