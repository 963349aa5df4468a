using Popo.Engine.Tasks;
using Popo.Engine.Tokenizers;

namespace Popo.Engine.Training;

/// <summary>
/// Turns problems into token ids. The character tokenizer (built-in models) sees BOS + the raw prompt
/// and stops at EOS; a Hugging Face tokenizer sees the Qwen chat template and stops at EOS or &lt;|im_end|&gt;.
/// </summary>
public sealed class PromptFormat
{
    private readonly ITokenizer tokenizer;
    private readonly bool chat;

    public IReadOnlyList<int> StopTokens { get; }

    public int PadId => tokenizer.PadId;

    public PromptFormat(ITokenizer tokenizer)
    {
        this.tokenizer = tokenizer;
        chat = tokenizer is HfBpeTokenizer;
        var stops = new List<int> { tokenizer.EosId };
        if (tokenizer is HfBpeTokenizer hf && hf.SpecialTokens.TryGetValue(ChatTemplate.ImEnd, out var imEnd) && imEnd != tokenizer.EosId)
            stops.Add(imEnd);
        StopTokens = stops;
    }

    /// <summary>overlong_prompts = truncate: keep only a prompt's last this-many tokens (TRL's left truncation).</summary>
    public int? TruncateTo { get; init; }

    public int[] Prompt(Problem problem)
    {
        var ids = Render(problem);
        return TruncateTo is int k && ids.Length > k ? ids[^k..] : ids;
    }

    private int[] Render(Problem problem)
    {
        if (chat) return tokenizer.Encode(ChatTemplate.QwenUserPrompt(problem.Prompt));
        var ids = tokenizer.Encode(problem.Prompt);
        return tokenizer.BosId is int bos ? [bos, .. ids] : ids;
    }

    /// <summary>The supervised target: the worked solution then the stop token.</summary>
    public int[] Target(string solution) => [.. tokenizer.Encode(solution), StopTokens[^1]];

    public string Decode(IEnumerable<int> completion) => tokenizer.Decode(completion, skipSpecialTokens: true);
}
