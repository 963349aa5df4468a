using System.Text.Json;
using System.Text.Json.Nodes;

namespace Popo.Cli.Serve;

/// <summary>
/// POST /v1/completions in vLLM's shapes. The prompt is a text, a list of texts, a list of token ids or a list of lists of
/// token ids; a text is encoded as `popo train` encodes a built-in prompt (the character tokenizer's BOS + text) or, for a
/// Hugging Face tokenizer, as the text's ids. Choices come prompt by prompt, n each (index = prompt x n + sample).
/// `logprobs` = k returns each sampled token's log-prob and the k most likely alternatives (vLLM's shape: text_offset,
/// token_logprobs, tokens, top_logprobs); `return_token_ids` adds token_ids and prompt_token_ids to each choice and
/// `return_tokens_as_token_ids` writes tokens as "token_id:N", as vLLM does.
/// </summary>
internal static class CompletionsRoute
{
    public static JsonObject Handle(ServedModel served, RequestFields f)
    {
        var adapter = served.Resolve(f.String("model"));
        var prompts = Prompts(served, f);
        if (f.Bool("echo", false)) throw ApiException.Field("echo", "not supported by popo serve");
        var request = SamplingRequest.Read(f, served.Model.Config.VocabSize, 16, f.Int("logprobs", 0, SamplingRequest.MaxLogprobs));
        var choices = Generation.Run(served, adapter, prompts, request);
        var array = new JsonArray();
        for (var i = 0; i < choices.Count; i++)
        {
            var c = choices[i];
            var choice = new JsonObject
            {
                ["index"] = i,
                ["text"] = c.Text,
                ["logprobs"] = request.Logprobs is null ? null : Logprobs(served, c, request),
                ["finish_reason"] = c.FinishReason,
                ["stop_reason"] = Responses.StopReason(c.StopReason),
                ["prompt_logprobs"] = null,
            };
            if (request.ReturnTokenIds)
            {
                choice["token_ids"] = Responses.Ints(c.TokenIds);
                choice["prompt_token_ids"] = Responses.Ints(prompts[c.PromptIndex]);
            }
            array.Add(choice);
        }
        return new JsonObject
        {
            ["id"] = "cmpl-" + Guid.NewGuid().ToString("N"),
            ["object"] = "text_completion",
            ["created"] = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
            ["model"] = f.String("model") ?? served.Name,
            ["choices"] = array,
            ["usage"] = Responses.Usage(prompts.Sum(p => p.Length), choices.Sum(c => c.TokenIds.Length)),
        };
    }

    /// <summary>The request's prompts as token ids.</summary>
    public static IReadOnlyList<int[]> Prompts(ServedModel served, RequestFields f)
    {
        var vocab = served.Model.Config.VocabSize;
        if (f.Get("prompt") is not { } prompt) throw ApiException.Field("prompt", "required: a text, a list of texts, a list of token ids or a list of lists of token ids");
        switch (prompt.ValueKind)
        {
            case JsonValueKind.String:
                return [Encode(served, prompt.GetString()!, "prompt")];
            case JsonValueKind.Array when prompt.GetArrayLength() == 0:
                throw ApiException.Field("prompt", "the list is empty");
            case JsonValueKind.Array:
                var items = prompt.EnumerateArray().ToList();
                if (items.All(e => e.ValueKind == JsonValueKind.Number))
                    return [items.Select((e, i) => RequestFields.TokenId(e, $"prompt[{i}]", 0, vocab)).ToArray()];
                if (items.All(e => e.ValueKind == JsonValueKind.String))
                    return items.Select((e, i) => Encode(served, e.GetString()!, $"prompt[{i}]")).ToList();
                if (items.All(e => e.ValueKind == JsonValueKind.Array))
                    return items.Select((e, i) =>
                    {
                        var ids = e.EnumerateArray().Select((t, j) => RequestFields.TokenId(t, $"prompt[{i}][{j}]", 0, vocab)).ToArray();
                        return ids.Length > 0 ? ids : throw ApiException.Field($"prompt[{i}]", "an empty list of token ids");
                    }).ToList();
                throw ApiException.Field("prompt", "a list must hold only texts, only token ids, or only lists of token ids");
            default:
                throw ApiException.Field("prompt", "expected a text, a list of texts, a list of token ids or a list of lists of token ids");
        }
    }

    private static int[] Encode(ServedModel served, string text, string field)
    {
        if (text.Length == 0) throw ApiException.Field(field, "an empty text");
        int[] ids;
        try { ids = served.Tokenizer.Encode(text); }
        catch (Engine.Tokenizers.TokenizerFormatException e) { throw ApiException.Field(field, e.Message); }
        return served.Tokenizer is Engine.Tokenizers.CharTokenizer && served.Tokenizer.BosId is int bos ? [bos, .. ids] : ids;
    }

    /// <summary>vLLM's completion log-probs: text_offset, token_logprobs, tokens, top_logprobs (the sampled token first, then the top k).</summary>
    private static JsonObject Logprobs(ServedModel served, GeneratedChoice c, SamplingRequest request)
    {
        var offsets = new JsonArray();
        var values = new JsonArray();
        var tokens = new JsonArray();
        var tops = new JsonArray();
        var offset = 0;
        for (var t = 0; t < c.TokenIds.Length; t++)
        {
            var token = Responses.Token(served, c.TokenIds[t], request);
            offsets.Add(offset);
            offset += token.Length;
            values.Add(Responses.Clamp(c.LogProbs[t]));
            tokens.Add(token);
            var top = new JsonObject { [token] = Responses.Clamp(c.LogProbs[t]) };
            foreach (var (id, logProb) in c.Top?[t] ?? [])
                top[Responses.Token(served, id, request)] = Responses.Clamp(logProb);
            tops.Add(top);
        }
        return new JsonObject { ["text_offset"] = offsets, ["token_logprobs"] = values, ["tokens"] = tokens, ["top_logprobs"] = tops };
    }
}
