namespace Popo.MathVerify;

/// <summary>
/// The reward of docs/design.md §7: a completion is correct when the answer extracted from it
/// (<see cref="AnswerExtractor"/>, under an <see cref="AnswerFormat"/>) is equivalent to the gold answer
/// (<see cref="Equivalence"/>). Total: never throws, and bounded in time on any input (see the two parts).
/// </summary>
public static class MathVerifier
{
    /// <summary>The verdict and the extraction route of the answer it judged.</summary>
    public static Verdict Verify(string? completion, string? gold, AnswerFormat format = AnswerFormat.Any)
    {
        var found = AnswerExtractor.Find(completion, format);
        if (found is not { } f) return new Verdict(false, AnswerRoute.None);
        return new Verdict(Equivalence.Equal(f.Answer, gold), f.Route);
    }

    public static bool IsCorrect(string? completion, string? gold, AnswerFormat format = AnswerFormat.Any) =>
        Verify(completion, gold, format).Correct;

    /// <summary>1.0 when <see cref="IsCorrect"/>, else 0.0.</summary>
    public static double Reward(string? completion, string? gold, AnswerFormat format = AnswerFormat.Any) =>
        IsCorrect(completion, gold, format) ? 1.0 : 0.0;

    /// <summary>
    /// The route an answer would come by (format any). The formats only cut the route list short, so for a
    /// rewarded completion this is the route its reward came through under any format.
    /// </summary>
    public static AnswerRoute RouteOf(string? completion) => AnswerExtractor.Find(completion, AnswerFormat.Any)?.Route ?? AnswerRoute.None;
}
