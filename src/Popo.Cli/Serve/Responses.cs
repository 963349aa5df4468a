using System.Text;
using System.Text.Json.Nodes;

namespace Popo.Cli.Serve;

/// <summary>Pieces of vLLM's response shapes the routes share.</summary>
internal static class Responses
{
    /// <summary>A log-prob as JSON can hold it: -inf becomes -9999.0, as vLLM and OpenAI write it.</summary>
    public static double Clamp(double logProb) => Math.Max(logProb, -9999.0);

    public static JsonArray Ints(IEnumerable<int> ids) => new(ids.Select(i => (JsonNode?)JsonValue.Create(i)).ToArray());

    /// <summary>A token as the response names it: its text, or "token_id:N" with return_tokens_as_token_ids.</summary>
    public static string Token(ServedModel served, int id, SamplingRequest request) =>
        request.TokensAsTokenIds ? $"token_id:{id}" : served.Tokenizer.Decode([id], skipSpecialTokens: false);

    public static JsonNode? StopReason(object? reason) => reason switch
    {
        null => null,
        int id => JsonValue.Create(id),
        string s => JsonValue.Create(s),
        _ => JsonValue.Create(reason.ToString()),
    };

    public static JsonObject Usage(int prompt, int completion) =>
        new() { ["prompt_tokens"] = prompt, ["total_tokens"] = prompt + completion, ["completion_tokens"] = completion, ["prompt_tokens_details"] = null };

    /// <summary>OpenAI's error body.</summary>
    public static JsonObject Error(ApiException e) =>
        new() { ["error"] = new JsonObject { ["message"] = e.Message, ["type"] = e.Type, ["param"] = e.Param, ["code"] = e.Status } };

    public static JsonArray Bytes(string text) => Ints(Encoding.UTF8.GetBytes(text).Select(b => (int)b));
}
