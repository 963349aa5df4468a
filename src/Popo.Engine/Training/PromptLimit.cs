using Popo.Engine.Data;
using Popo.Engine.Configuration;
using Popo.Engine.Tasks;
using Popo.Engine.Tokenizers;

namespace Popo.Engine.Training;

/// <summary>
/// The prompt-length limit of a run: max_prompt_length (TRL's name; 0 = none) and the model's context minus
/// max_new_tokens, whichever is smaller. Every prompt of a dataset (a generated task: the first of each split)
/// is tokenized before any work; one beyond the limit stops the run (overlong_prompts = error), drops its
/// problem (drop) or keeps only its last tokens (truncate, as TRL's left truncation). A character the
/// tokenizer cannot encode is an error naming the file and the problem.
/// </summary>
internal sealed record PromptLimit(int Limit, int LongestPrompt, int Overlong, ITask Task, int? TruncateTo)
{
    public static PromptLimit Apply(ITask task, PromptFormat format, TrainConfig c, int context, string contextSource)
    {
        int room = context - c.MaxNewTokens;
        if (room < 1)
            throw new ContextLengthException($"key 'max_new_tokens': {c.MaxNewTokens} leaves no room for a prompt in the model's context of {context} ({contextSource})");
        int limit = c.MaxPromptLength > 0 ? Math.Min(c.MaxPromptLength, room) : room;
        string source = task is DatasetTask d ? d.Data.Path : $"task {task.Name}";
        var dropped = new Dictionary<Split, HashSet<long>> { [Split.Train] = [], [Split.Test] = [] };
        int longest = 0, overlong = 0;
        foreach (var split in new[] { Split.Train, Split.Test })
        {
            var count = task.Count(split) ?? 1;
            for (long i = 0; i < count; i++)
            {
                var problem = task.Get(split, i);
                int length;
                try { length = format.Prompt(problem).Length; }
                catch (TokenizerFormatException e)
                {
                    throw new TokenizerFormatException(
                        $"{source}: problem {problem.Id}: {e.Message}" +
                        (string.IsNullOrEmpty(c.Model) ? "; the built-in model's vocabulary is printable ASCII only: train a Hugging Face model (--model DIR) on this data" : ""));
                }
                if (length <= limit) { longest = Math.Max(longest, length); continue; }
                overlong++;
                if (c.OverlongPrompts == "error")
                    throw new ContextLengthException(
                        $"{source}: problem {problem.Id}: the prompt is {length} tokens, beyond the limit of {limit} " +
                        (c.MaxPromptLength > 0 && c.MaxPromptLength <= room
                            ? $"(max_prompt_length = {c.MaxPromptLength})"
                            : $"(the model's context of {context}, {contextSource}, minus max_new_tokens = {c.MaxNewTokens})") +
                        "; raise max_prompt_length, lower max_new_tokens, or pass --overlong-prompts drop|truncate");
                if (c.OverlongPrompts == "drop") dropped[split].Add(i);
                else longest = limit;
            }
        }
        if (c.OverlongPrompts == "drop" && overlong > 0)
        {
            foreach (var split in new[] { Split.Train, Split.Test })
                if (task.Count(split) is long n && n > 0 && dropped[split].Count == n)
                    throw new ContextLengthException($"{source}: every {split.ToString().ToLowerInvariant()} prompt is beyond the limit of {limit} tokens; nothing is left after dropping them");
            task = new FilteredTask(task, dropped);
        }
        return new PromptLimit(limit, longest, overlong, task, c.OverlongPrompts == "truncate" && overlong > 0 ? limit : null);
    }

    /// <summary>What the preflight says about overlong prompts, or null when there were none.</summary>
    public string? Report(TrainConfig c) => Overlong == 0 ? null
        : c.OverlongPrompts == "drop" ? $"overlong prompts: dropped {Overlong} problem{(Overlong == 1 ? "" : "s")} whose prompt is beyond {Limit} tokens"
        : $"overlong prompts: truncated {Overlong} prompt{(Overlong == 1 ? "" : "s")} to their last {Limit} tokens";
}

/// <summary>A task without some of its problems (those dropped by <see cref="PromptLimit"/>); indices are renumbered densely.</summary>
internal sealed class FilteredTask : ITask
{
    private readonly ITask inner;
    private readonly Dictionary<Split, long[]> kept;

    public FilteredTask(ITask inner, IReadOnlyDictionary<Split, HashSet<long>> dropped)
    {
        this.inner = inner;
        kept = new[] { Split.Train, Split.Test }.ToDictionary(s => s, s =>
            inner.Count(s) is long n ? Enumerable.Range(0, (int)n).Select(i => (long)i).Where(i => !dropped[s].Contains(i)).ToArray() : []);
    }

    public string Name => inner.Name;

    public long? Count(Split split) => inner.Count(split) is null ? null : kept[split].Length;

    public Problem Get(Split split, long index)
    {
        if (inner.Count(split) is null) return inner.Get(split, index);
        var list = kept[split];
        if (list.Length == 0) return inner.Get(split, index);   // the inner task's own error for an empty split
        return inner.Get(split, list[index % list.Length]);
    }

    public Judgement Judge(Problem problem, string completion, bool finished = true) => inner.Judge(problem, completion, finished);

}
