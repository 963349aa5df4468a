namespace Popo.Engine.Verification;

/// <summary>
/// The reward of DESIGN §7: a completion is correct when the answer extracted from it
/// (<see cref="AnswerExtractor"/>) is equivalent to the gold answer (<see cref="Equivalence"/>).
/// Total: never throws, and bounded in time on any input (see the two parts).
/// </summary>
public static class MathVerifier
{
    public static bool IsCorrect(string? completion, string? gold)
    {
        var answer = AnswerExtractor.Extract(completion);
        return answer is not null && Equivalence.Equal(answer, gold);
    }

    /// <summary>1.0 when <see cref="IsCorrect"/>, else 0.0.</summary>
    public static double Reward(string? completion, string? gold) => IsCorrect(completion, gold) ? 1.0 : 0.0;
}
