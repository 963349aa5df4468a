using System.Text.Json;
using System.Text.Json.Nodes;
using Popo.Engine.Data;
using Popo.Engine.Tokenizers;
using Popo.Engine.Training;

namespace Popo.Cli.Serve;

/// <summary>
/// POST /v1/chat/completions in vLLM's shapes. The messages are rendered by the model folder's own chat template with the
/// generation prompt (<see cref="PromptFormat"/>, as `popo train` renders a conversation; `chat_template_kwargs.enable_thinking`
/// is passed to it); the built-in character model has no template and takes one user message, prompted as BOS + its text.
/// `logprobs: true` with `top_logprobs: k` returns vLLM's per-token content list.
/// </summary>
internal static class ChatRoute
{
    public static JsonObject Handle(ServedModel served, RequestFields f)
    {
        var adapter = served.Resolve(f.String("model"));
        var prompt = Prompt(served, f);
        var wantLogprobs = f.Bool("logprobs", false);
        var top = f.Int("top_logprobs", 0, SamplingRequest.MaxLogprobs);
        if (top is > 0 && !wantLogprobs) throw ApiException.Field("top_logprobs", "needs logprobs = true");
        var request = SamplingRequest.Read(f, served.Model.Config.VocabSize, null, wantLogprobs ? top ?? 0 : null);
        var choices = Generation.Run(served, adapter, [prompt], request);
        var array = new JsonArray();
        for (var i = 0; i < choices.Count; i++)
        {
            var c = choices[i];
            var choice = new JsonObject
            {
                ["index"] = i,
                ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = c.Text, ["reasoning_content"] = null, ["tool_calls"] = new JsonArray() },
                ["logprobs"] = wantLogprobs ? new JsonObject { ["content"] = Content(served, c, request) } : null,
                ["finish_reason"] = c.FinishReason,
                ["stop_reason"] = Responses.StopReason(c.StopReason),
            };
            if (request.ReturnTokenIds) choice["token_ids"] = Responses.Ints(c.TokenIds);
            array.Add(choice);
        }
        var response = new JsonObject
        {
            ["id"] = "chatcmpl-" + Guid.NewGuid().ToString("N"),
            ["object"] = "chat.completion",
            ["created"] = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
            ["model"] = f.String("model") ?? served.Name,
            ["choices"] = array,
            ["usage"] = Responses.Usage(prompt.Length, choices.Sum(c => c.TokenIds.Length)),
        };
        if (request.ReturnTokenIds) response["prompt_token_ids"] = Responses.Ints(prompt);
        return response;
    }

    /// <summary>The conversation's prompt ids.</summary>
    public static int[] Prompt(ServedModel served, RequestFields f)
    {
        if (f.Get("messages") is not { ValueKind: JsonValueKind.Array } list || list.GetArrayLength() == 0)
            throw ApiException.Field("messages", "required: a non-empty list of {role, content} messages");
        var messages = list.EnumerateArray().Select((m, i) => Message(m, $"messages[{i}]")).ToList();
        var thinking = f.Get("chat_template_kwargs") is { } kwargs
            ? new RequestFields(kwargs.ValueKind == JsonValueKind.Object ? kwargs : throw ApiException.Field("chat_template_kwargs", "expected an object")).Bool("enable_thinking", true)
            : true;
        if (served.Tokenizer is CharTokenizer && (messages.Count != 1 || messages[0].Role != "user"))
            throw ApiException.Field("messages", "the built-in character model has no chat template: send exactly one user message");
        var format = thinking ? served.Format : new PromptFormat(served.Tokenizer, enableThinking: false);
        try { return format.Prompt(new Problem("chat", messages[^1].Content, "", null, messages)); }
        catch (Exception e) when (e is TokenizerFormatException or Popo.Jinja.TemplateException) { throw ApiException.Field("messages", e.Message); }
    }

    private static ChatMessage Message(JsonElement m, string field)
    {
        if (m.ValueKind != JsonValueKind.Object) throw ApiException.Field(field, "expected an object with role and content");
        var fields = new RequestFields(m);
        var role = fields.String("role") is { } r && r is "system" or "user" or "assistant" ? r
            : throw ApiException.Field(field + ".role", "expected system, user or assistant");
        var content = fields.Get("content") switch
        {
            { ValueKind: JsonValueKind.String } s => s.GetString()!,
            { ValueKind: JsonValueKind.Array } parts => string.Concat(parts.EnumerateArray().Select((p, i) =>
                p.ValueKind == JsonValueKind.Object && new RequestFields(p).String("type") == "text" && new RequestFields(p).String("text") is { } t
                    ? t : throw ApiException.Field($"{field}.content[{i}]", "expected a {type: text, text} part (popo serve takes text only)"))),
            _ => throw ApiException.Field(field + ".content", "expected a string or a list of text parts"),
        };
        return new ChatMessage(role, content);
    }

    /// <summary>vLLM's chat log-probs: one entry per token with its bytes and the top alternatives.</summary>
    private static JsonArray Content(ServedModel served, GeneratedChoice c, SamplingRequest request)
    {
        var content = new JsonArray();
        for (var t = 0; t < c.TokenIds.Length; t++)
        {
            var token = Responses.Token(served, c.TokenIds[t], request);
            var alternatives = new JsonArray();
            foreach (var (id, logProb) in c.Top?[t] ?? [])
            {
                var name = Responses.Token(served, id, request);
                alternatives.Add(new JsonObject { ["token"] = name, ["logprob"] = Responses.Clamp(logProb), ["bytes"] = Responses.Bytes(name) });
            }
            content.Add(new JsonObject { ["token"] = token, ["logprob"] = Responses.Clamp(c.LogProbs[t]), ["bytes"] = Responses.Bytes(token), ["top_logprobs"] = alternatives });
        }
        return content;
    }
}
