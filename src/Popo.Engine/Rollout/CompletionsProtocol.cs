using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Popo.Engine.Rollout;

/// <summary>One generated completion as a server answered it: its token ids and the server's log-prob of each.</summary>
internal sealed record ServerCompletion(int[] Tokens, double[] LogProbs, string? FinishReason);

/// <summary>
/// The generation APIs: the OpenAI-compatible completions API as vLLM serves it, and SGLang's native /generate (tests/fixtures/server-rollout/README.md names
/// the shapes): a token-id prompt with n, temperature, top_p, top_k, max_tokens, stop_token_ids and logprobs out;
/// choices with the sampled token ids (`token_ids`, or `logprobs.tokens` as "token_id:N" under
/// return_tokens_as_token_ids) and `logprobs.token_logprobs` back.
/// </summary>
internal static class CompletionsProtocol
{
    /// <summary>The request body for <paramref name="n"/> completions of one token-id prompt.</summary>
    public static JsonObject Request(string model, int[] prompt, int n, SamplerOptions options)
    {
        var body = new JsonObject
        {
            ["model"] = model,
            ["prompt"] = new JsonArray(prompt.Select(t => (JsonNode)t).ToArray()),
            ["n"] = n,
            ["max_tokens"] = options.MaxNewTokens,
            ["temperature"] = options.Temperature,
            ["top_p"] = options.TopP,
            ["logprobs"] = 1,                          // the sampled token's log-prob (and the top one)
            ["stop_token_ids"] = new JsonArray(options.StopTokenIds.Select(t => (JsonNode)t).ToArray()),
            ["return_tokens_as_token_ids"] = true,     // vLLM: logprobs.tokens as "token_id:N"
            ["return_token_ids"] = true,               // newer vLLM: choices[i].token_ids
            ["skip_special_tokens"] = false,
            ["stream"] = false,
        };
        if (options.TopK > 0) body["top_k"] = options.TopK;   // absent = off on both servers
        return body;
    }

    /// <summary>
    /// The <paramref name="n"/> completions of one answer, in choice-index order, each cut after its first stop token.
    /// Throws <see cref="MalformedCompletionException"/> naming what is wrong: not JSON, fewer choices than asked,
    /// no token ids, a token id outside [0, vocab), log-probs missing, non-finite or of another length than the tokens,
    /// a completion longer than max_tokens.
    /// </summary>
    public static ServerCompletion[] Parse(string json, int n, int vocab, int maxTokens, IReadOnlyCollection<int> stopTokens)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(json); }
        catch (JsonException e) { throw new MalformedCompletionException($"the answer is not JSON ({e.Message})"); }
        if (root is not JsonObject obj || obj["choices"] is not JsonArray choices)
            throw new MalformedCompletionException("the answer has no 'choices' array");
        if (choices.Count < n) throw new MalformedCompletionException($"{choices.Count} choices for n = {n}");
        var result = new ServerCompletion?[n];
        for (int c = 0; c < choices.Count; c++)
        {
            if (choices[c] is not JsonObject choice) throw new MalformedCompletionException($"choice {c} is not an object");
            int index = choice["index"] is JsonValue iv && iv.TryGetValue<int>(out var i) ? i : c;
            if (index < 0 || index >= n) throw new MalformedCompletionException($"choice index {index} outside [0, {n})");
            if (result[index] is not null) throw new MalformedCompletionException($"choice index {index} appears twice");
            result[index] = Choice(choice, index, vocab, maxTokens, stopTokens);
        }
        return result.Select(r => r!).ToArray();
    }

    private static ServerCompletion Choice(JsonObject choice, int index, int vocab, int maxTokens, IReadOnlyCollection<int> stopTokens)
    {
        var logprobs = choice["logprobs"] as JsonObject
            ?? throw new MalformedCompletionException($"choice {index} has no 'logprobs' (the request asks for them)");
        int[] tokens = choice["token_ids"] is JsonArray ids ? ids.Select((t, k) => Int(t, index, k)).ToArray()
            : logprobs["tokens"] is JsonArray named ? named.Select((t, k) => TokenId(t, index, k)).ToArray()
            : throw new MalformedCompletionException($"choice {index} has neither 'token_ids' nor 'logprobs.tokens'");
        if (logprobs["token_logprobs"] is not JsonArray lp)
            throw new MalformedCompletionException($"choice {index} has no 'logprobs.token_logprobs'");
        var finish = choice["finish_reason"] is JsonValue f && f.TryGetValue<string>(out var reason) ? reason : null;
        return Checked(index, tokens, lp.ToArray(), finish, vocab, maxTokens, stopTokens);
    }

    /// <summary>The checks every answer passes, whatever its shape: lengths, the vocabulary, finite log-probs, the stop cut.</summary>
    private static ServerCompletion Checked(int index, int[] tokens, JsonNode?[] lp, string? finish, int vocab, int maxTokens, IReadOnlyCollection<int> stopTokens)
    {
        if (lp.Length != tokens.Length)
            throw new MalformedCompletionException($"choice {index}: {lp.Length} log-probs for {tokens.Length} tokens");
        if (tokens.Length > maxTokens)
            throw new MalformedCompletionException($"choice {index}: {tokens.Length} tokens for max_tokens = {maxTokens}");
        var values = new double[tokens.Length];
        for (int k = 0; k < tokens.Length; k++)
        {
            if (tokens[k] < 0 || tokens[k] >= vocab)
                throw new MalformedCompletionException($"choice {index}, token {k}: id {tokens[k]} is outside the vocabulary [0, {vocab})");
            values[k] = lp[k] is JsonValue v && v.TryGetValue<double>(out var d) ? d : double.NaN;
            if (!double.IsFinite(values[k]))
                throw new MalformedCompletionException($"choice {index}, token {k}: log-prob {lp[k]?.ToJsonString() ?? "null"} is not a finite number");
        }
        // The built-in sampler's rows end at their first stop token; a server that went on is cut there too.
        int stop = Array.FindIndex(tokens, stopTokens.Contains);
        int length = stop < 0 ? tokens.Length : stop + 1;
        return new ServerCompletion(tokens[..length], values[..length], finish);
    }

    /// <summary>
    /// SGLang's native /generate body for <paramref name="n"/> completions of one token-id prompt: the prompt repeated n
    /// times as a batch (SGLang's radix cache shares its prefix), sampling_params, return_logprob.
    /// </summary>
    public static JsonObject GenerateRequest(int[] prompt, int n, SamplerOptions options)
    {
        var sampling = new JsonObject
        {
            ["temperature"] = options.Temperature,
            ["top_p"] = options.TopP,
            ["max_new_tokens"] = options.MaxNewTokens,
            ["stop_token_ids"] = new JsonArray(options.StopTokenIds.Select(t => (JsonNode)t).ToArray()),
            ["skip_special_tokens"] = false,
        };
        if (options.TopK > 0) sampling["top_k"] = options.TopK;
        return new JsonObject
        {
            ["input_ids"] = new JsonArray(Enumerable.Range(0, n).Select(_ => (JsonNode)new JsonArray(prompt.Select(t => (JsonNode)t).ToArray())).ToArray()),
            ["sampling_params"] = sampling,
            ["return_logprob"] = true,
        };
    }

    /// <summary>
    /// SGLang's /generate answer for a batch of n: a list of n objects, each with meta_info.output_token_logprobs as
    /// [log-prob, token id, text] triples and meta_info.finish_reason.type. The same checks as <see cref="Parse"/>.
    /// </summary>
    public static ServerCompletion[] ParseGenerate(string json, int n, int vocab, int maxTokens, IReadOnlyCollection<int> stopTokens)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(json); }
        catch (JsonException e) { throw new MalformedCompletionException($"the answer is not JSON ({e.Message})"); }
        var items = root as JsonArray ?? (root is JsonObject single ? new JsonArray(single.DeepClone()) : null)
            ?? throw new MalformedCompletionException("the answer is neither a list nor an object");
        if (items.Count < n) throw new MalformedCompletionException($"{items.Count} answers for n = {n}");
        var result = new ServerCompletion[n];
        for (int c = 0; c < n; c++)
        {
            if (items[c]?["meta_info"] is not JsonObject meta || meta["output_token_logprobs"] is not JsonArray triples)
                throw new MalformedCompletionException($"answer {c} has no 'meta_info.output_token_logprobs' (the request sets return_logprob)");
            var tokens = new int[triples.Count];
            var lp = new JsonNode?[triples.Count];
            for (int k = 0; k < triples.Count; k++)
            {
                if (triples[k] is not JsonArray { Count: >= 2 } triple)
                    throw new MalformedCompletionException($"answer {c}, token {k}: expected [log-prob, token id, text]");
                lp[k] = triple[0];
                tokens[k] = Int(triple[1], c, k);
            }
            var finish = meta["finish_reason"] is JsonObject fr && fr["type"] is JsonValue t && t.TryGetValue<string>(out var type) ? type : null;
            result[c] = Checked(c, tokens, lp, finish, vocab, maxTokens, stopTokens);
        }
        return result;
    }

    private static int Int(JsonNode? node, int choice, int k) =>
        node is JsonValue v && v.TryGetValue<int>(out var id) ? id
        : throw new MalformedCompletionException($"choice {choice}, token {k}: '{node?.ToJsonString()}' is not a token id");

    /// <summary>vLLM's return_tokens_as_token_ids spelling, "token_id:N".</summary>
    private static int TokenId(JsonNode? node, int choice, int k)
    {
        const string prefix = "token_id:";
        var s = node is JsonValue v && v.TryGetValue<string>(out var text) ? text : null;
        if (s is not null && s.StartsWith(prefix, StringComparison.Ordinal)
            && int.TryParse(s.AsSpan(prefix.Length), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var id)) return id;
        throw new MalformedCompletionException($"choice {choice}, token {k}: '{node?.ToJsonString()}' is not \"token_id:N\" (the request sets return_tokens_as_token_ids; SGLang's completions answer token text, not ids: use rollout_api = sglang)");
    }

    /// <summary>usage.completion_tokens when the server reports it, else null.</summary>
    public static long? CompletionTokens(string json)
    {
        try { return JsonNode.Parse(json)?["usage"]?["completion_tokens"]?.GetValue<long>(); }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException) { return null; }
    }
}
