using Popo.Engine.Data;
using Popo.Engine.Tasks;
using Popo.Jinja;
using Popo.Engine.Tokenizers;

namespace Popo.Engine.Training;

/// <summary>
/// Turns problems into token ids. The character tokenizer (built-in models) sees BOS + the raw prompt
/// and stops at EOS. A Hugging Face tokenizer sees the conversation (the problem's messages, or its prompt as
/// one user turn, after <c>system_prompt</c> when it has no system message) rendered by the model folder's own
/// chat_template with add_generation_prompt = true and <c>enable_thinking</c>, as transformers'
/// apply_chat_template does; a folder without a template falls back to ChatML (<see cref="ChatTemplate"/>) and
/// says so once on stderr. It stops at EOS or &lt;|im_end|&gt;.
/// </summary>
internal sealed class PromptFormat
{
    private static readonly HashSet<string> Announced = [];

    private readonly ITokenizer tokenizer;
    private readonly HfBpeTokenizer? chat;
    private readonly JinjaTemplate? template;
    private readonly string systemPrompt;
    private readonly bool enableThinking;

    public IReadOnlyList<int> StopTokens { get; }

    public int PadId => tokenizer.PadId;

    /// <summary>True when prompts are rendered with the model's own chat_template (false: ChatML fallback or the character tokenizer).</summary>
    public bool UsesModelTemplate => template is not null;

    public PromptFormat(ITokenizer tokenizer, string systemPrompt = "", bool enableThinking = true)
    {
        this.tokenizer = tokenizer;
        this.systemPrompt = systemPrompt;
        this.enableThinking = enableThinking;
        chat = tokenizer as HfBpeTokenizer;
        if (chat?.ChatTemplateSource is { } source) template = JinjaTemplate.Parse(source, chat.ConfigFile);
        else if (chat is not null)
        {
            lock (Announced)
                if (Announced.Add(chat.ConfigFile))
                    Console.Error.WriteLine($"prompt format: {chat.ConfigFile} has no chat_template; prompts use the ChatML (Qwen) format");
        }
        var stops = new List<int> { tokenizer.EosId };
        if (chat is not null && chat.SpecialTokens.TryGetValue(ChatTemplate.ImEnd, out var imEnd) && imEnd != tokenizer.EosId)
            stops.Add(imEnd);
        StopTokens = stops;
    }

    /// <summary>overlong_prompts = truncate: keep only a prompt's last this-many tokens (TRL's left truncation).</summary>
    public int? TruncateTo { get; init; }

    public int[] Prompt(Problem problem)
    {
        var ids = Encode(problem);
        return TruncateTo is int k && ids.Length > k ? ids[^k..] : ids;
    }

    private int[] Encode(Problem problem)
    {
        if (chat is null)
        {
            var ids = tokenizer.Encode(problem.Prompt);
            return tokenizer.BosId is int bos ? [bos, .. ids] : ids;
        }
        return tokenizer.Encode(Render(problem));
    }

    /// <summary>The prompt text a Hugging Face tokenizer encodes for this problem.</summary>
    public string Render(Problem problem)
    {
        var messages = problem.Messages?.ToList() ?? [new ChatMessage("user", problem.Prompt)];
        if (systemPrompt.Length > 0 && !messages.Any(m => m.Role == "system")) messages.Insert(0, new ChatMessage("system", systemPrompt));
        if (template is null) return ChatTemplate.Qwen(messages);
        var variables = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (key, value) in chat!.TemplateTokens) variables[key] = value;
        variables["messages"] = messages.Select(m => new Dictionary<string, object?> { ["role"] = m.Role, ["content"] = m.Content }).ToList();
        variables["tools"] = null;
        variables["documents"] = null;
        variables["add_generation_prompt"] = true;
        variables["enable_thinking"] = enableThinking;
        return template.Render(variables);
    }

    /// <summary>The supervised target: the worked solution then the stop token.</summary>
    public int[] Target(string solution) => [.. tokenizer.Encode(solution), StopTokens[^1]];

    public string Decode(IEnumerable<int> completion) => tokenizer.Decode(completion, skipSpecialTokens: true);

    /// <summary>
    /// Whether a sampled completion (its masked ids, the stop token included) ended with a stop token rather
    /// than at max_new_tokens: the verifier reads a truncated one only through an explicit answer marker.
    /// </summary>
    public bool Finished(IReadOnlyList<int> completion) => completion.Count > 0 && StopTokens.Contains(completion[^1]);
}
