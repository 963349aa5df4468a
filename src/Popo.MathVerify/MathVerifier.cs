namespace Popo.MathVerify;

/// <summary>
/// The reward of docs/design.md §7: a completion is correct when the answer extracted from it
/// (<see cref="AnswerExtractor"/>, under an <see cref="AnswerFormat"/>) is equivalent to the gold answer
/// (<see cref="Equivalence"/>). Total: never throws, and bounded in time on any input (see the two parts).
/// </summary>
public static class MathVerifier
{
    /// <summary>
    /// The verdict and the extraction route of the answer it judged. <paramref name="finished"/>: whether the
    /// completion ended by itself (a stop token) rather than at the length limit. A truncated completion
    /// (false) is judged only by an explicit marker (\boxed{}, &lt;answer&gt; tags, "#### N", "the answer is"),
    /// under any format: its last math span or number is a step of unfinished work, not an answer. The default
    /// (true) is for callers that hold a whole text; the engine passes what the sampler saw.
    /// </summary>
    public static Verdict Verify(string? completion, string? gold, AnswerFormat format = AnswerFormat.Any, bool finished = true)
    {
        var found = AnswerExtractor.Find(completion, format, finished, out var failed);
        if (found is not { } f) return new Verdict(false, AnswerRoute.None, null, Describe(failed));
        bool correct = Equivalence.Equal(f.Answer, gold, out failed);
        if (!correct && f.Alternative is { } other)
        {
            correct = Equivalence.Equal(other, gold, out var second);
            failed ??= second;
        }
        return new Verdict(correct, f.Route, f.Answer, Describe(failed));
    }

    /// <summary>How a verdict names an unexpected exception (<see cref="Verdict.Error"/>): its type and message; null for none.</summary>
    public static string? Describe(Exception? e) => e is null ? null : $"{e.GetType().Name}: {e.Message}";

    /// <summary>Whether the completion's answer is equivalent to the gold answer (<see cref="Verify"/>'s verdict).</summary>
    public static bool IsCorrect(string? completion, string? gold, AnswerFormat format = AnswerFormat.Any, bool finished = true) =>
        Verify(completion, gold, format, finished).Correct;

    /// <summary>1.0 when <see cref="IsCorrect"/>, else 0.0.</summary>
    public static double Reward(string? completion, string? gold, AnswerFormat format = AnswerFormat.Any, bool finished = true) =>
        IsCorrect(completion, gold, format, finished) ? 1.0 : 0.0;

    /// <summary>
    /// The route an answer would come by (format any). The formats only cut the route list short, so for a
    /// rewarded completion this is the route its reward came through under any format.
    /// </summary>
    public static AnswerRoute RouteOf(string? completion) => AnswerExtractor.Find(completion, AnswerFormat.Any)?.Route ?? AnswerRoute.None;
}
