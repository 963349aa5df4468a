namespace Popo.Engine.Rollout;

/// <summary>A rollout server failed a request after every retry: the message names the server and the request.</summary>
public sealed class RolloutServerException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>A server's answer that cannot become rollouts (bad JSON, missing choices, ids outside the vocabulary, ...).</summary>
internal sealed class MalformedCompletionException(string message) : Exception(message);
