namespace Popo.Engine.Rewards;

/// <summary>An external reward command failed on a call (died twice, timed out, wrote malformed JSON or the wrong
/// count): the message names the function, the command, the group and row, the error and the tail of its stderr.</summary>
public sealed class RewardCommandException(string message, Exception? inner = null) : Exception(message, inner);
