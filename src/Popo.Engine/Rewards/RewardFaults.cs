namespace Popo.Engine.Rewards;

/// <summary>What a reward function's fault (it throws, returns NaN or infinity or the wrong count of values, or runs past reward_timeout) does to the step.</summary>
internal enum RewardErrorMode
{
    /// <summary>The run stops with <see cref="RewardFunctionException"/>; the last complete checkpoint stays resumable.</summary>
    Fail,
    /// <summary>The faulty value counts as 0.</summary>
    Zero,
    /// <summary>The faulty value counts as not applicable (null).</summary>
    Skip,
}

/// <summary>A reward function failed under <c>reward_errors = fail</c>: the message names the function, the row (problem id and rollout index) and the error.</summary>
public sealed class RewardFunctionException(string message, Exception? inner = null) : Exception(message, inner);
