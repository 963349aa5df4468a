namespace Popo.Engine.Runtime;

/// <summary>
/// A run's keys by name. A stage that owns keys (an objective's options) reads them through this, so that it never
/// depends on the configuration, which sits above it and implements the interface.
/// </summary>
internal interface IRunKeys
{
    /// <summary>The value of <paramref name="key"/> (a snake_case key) as <typeparamref name="T"/>; an unknown key or another type is a programming error.</summary>
    T Get<T>(string key);
}
