namespace Popo.Jinja;

/// <summary>A function a template can call: a global (range, namespace, raise_exception ...), a bound str/dict/list method, a macro.</summary>
internal sealed class Callable(string name, Func<IReadOnlyList<object?>, IReadOnlyDictionary<string, object?>, object?> invoke)
{
    public string Name { get; } = name;

    public object? Invoke(IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> kwargs) => invoke(args, kwargs);
}
