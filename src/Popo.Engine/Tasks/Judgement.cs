using Popo.MathVerify;

namespace Popo.Engine.Tasks;

/// <summary>
/// What a task says of one completion, once, so that nothing downstream verifies it again: the reward, the route by
/// which the answer was found (None for a task whose own reader found it), the answer it judged, and what an unexpected
/// exception inside the verifier said (the reward is then 0; the trainer counts these as `verifier_errors`).
/// </summary>
public sealed record Judgement(double Reward, AnswerRoute Route = AnswerRoute.None, string? Answer = null, string? Error = null)
{
    /// <summary>The math verifier's verdict as a 0/1 judgement.</summary>
    public static Judgement Of(Verdict verdict) => new(verdict.Correct ? 1.0 : 0.0, verdict.Route, verdict.Answer, verdict.Error);
}
