namespace Popo.Engine.Runtime;

/// <summary>
/// A configuration error: names the file or flag, the key, the value and what was expected. It lives at the bottom
/// of the engine because every stage checks the values of its own keys.
/// </summary>
public sealed class ConfigException(string message) : Exception(message);
