namespace Popo.Jinja;

/// <summary>
/// The non-mutating methods of str, dict and list that templates call (ImmutableSandboxedEnvironment, which
/// Hugging Face renders with, refuses the mutating ones such as list.append).
/// </summary>
internal static class Methods
{
    public static Callable? Bind(object? obj, string name) => obj switch
    {
        string s => StringMethod(s, name),
        Dictionary<string, object?> d => DictMethod(d, name),
        List<object?> or object?[] => ListMethod((IReadOnlyList<object?>)obj, name),
        _ => null,
    };

    private static Callable Method(string name, Func<Args, object?> body) =>
        new(name, (args, kwargs) => body(new Args(name, args, kwargs)));

    private static Callable? StringMethod(string s, string name) => name switch
    {
        "startswith" => Method(name, a => Affix(s, a, start: true)),
        "endswith" => Method(name, a => Affix(s, a, start: false)),
        "strip" => Method(name, a => PyText.Strip(s, a.OptionalString(0, "chars"), true, true)),
        "lstrip" => Method(name, a => PyText.Strip(s, a.OptionalString(0, "chars"), true, false)),
        "rstrip" => Method(name, a => PyText.Strip(s, a.OptionalString(0, "chars"), false, true)),
        "split" => Method(name, a => PyText.Split(s, a.OptionalString(0, "sep"), a.Long(1, "maxsplit", -1))),
        "rsplit" => Method(name, a => PyText.RSplit(s, a.OptionalString(0, "sep"), a.Long(1, "maxsplit", -1))),
        "splitlines" => Method(name, a => s.Split('\n').Select(l => (object?)l.TrimEnd('\r')).SkipLast(s.EndsWith('\n') ? 1 : 0).ToList()),
        "replace" => Method(name, a => PyText.Replace(s, a.String(0, "old"), a.String(1, "new"), a.Long(2, "count", -1))),
        "upper" => Method(name, _ => PyText.Upper(s)),
        "lower" => Method(name, _ => PyText.Lower(s)),
        "capitalize" => Method(name, _ => PyText.Capitalize(s)),
        "find" => Method(name, a => (long)CodePointIndex(s, s.IndexOf(a.String(0, "sub"), StringComparison.Ordinal))),
        "rfind" => Method(name, a => (long)CodePointIndex(s, s.LastIndexOf(a.String(0, "sub"), StringComparison.Ordinal))),
        "count" => Method(name, a => (long)Count(s, a.String(0, "sub"))),
        "join" => Method(name, a => RenderLimits.Join(s, PyValue.Iterate(a.Required(0, "iterable")).Select(x =>
            x as string ?? throw new TemplateValueError($"sequence item: expected str instance, {PyValue.TypeName(x)} found")))),
        "isdigit" => Method(name, _ => s.Length > 0 && s.All(char.IsDigit)),
        "isalpha" => Method(name, _ => s.Length > 0 && PyText.CodePoints(s).All(c => char.IsLetter(char.ConvertFromUtf32(c), 0))),
        "isspace" => Method(name, _ => s.Length > 0 && PyText.CodePoints(s).All(PyText.IsSpace)),
        "format" => null,
        _ => null,
    };

    private static Callable? DictMethod(Dictionary<string, object?> d, string name) => name switch
    {
        "items" => Method(name, _ => d.Select(kv => (object?)new object?[] { kv.Key, kv.Value }).ToList()),
        "keys" => Method(name, _ => d.Keys.Cast<object?>().ToList()),
        "values" => Method(name, _ => d.Values.ToList()),
        "get" => Method(name, a => a.Required(0, "key") is string key && d.TryGetValue(key, out var v) ? v : a.Optional(1, "default")),
        _ => null,
    };

    private static Callable? ListMethod(IReadOnlyList<object?> list, string name) => name switch
    {
        "index" => Method(name, a =>
        {
            var item = a.Required(0, "value");
            for (var i = 0; i < list.Count; i++)
                if (PyValue.Equals(list[i], item)) return (long)i;
            throw new TemplateValueError($"{PyValue.Repr(item)} is not in list");
        }),
        "count" => Method(name, a => (long)list.Count(x => PyValue.Equals(x, a.Required(0, "value")))),
        _ => null,
    };

    private static bool Affix(string s, Args a, bool start)
    {
        var affix = a.Required(0, start ? "prefix" : "suffix");
        var candidates = affix switch
        {
            string one => [one],
            object?[] many => many.Select(x => x as string ?? throw new TemplateValueError("tuple for startswith/endswith must only contain str")).ToArray(),
            _ => throw new TemplateValueError($"{(start ? "startswith" : "endswith")} first arg must be str or a tuple of str, not {PyValue.TypeName(affix)}"),
        };
        return candidates.Any(c => start ? s.StartsWith(c, StringComparison.Ordinal) : s.EndsWith(c, StringComparison.Ordinal));
    }

    private static int CodePointIndex(string s, int utf16Index) => utf16Index < 0 ? -1 : PyText.Length(s[..utf16Index]);

    private static int Count(string s, string sub)
    {
        if (sub.Length == 0) return PyText.Length(s) + 1;
        var n = 0;
        for (var i = s.IndexOf(sub, StringComparison.Ordinal); i >= 0; i = s.IndexOf(sub, i + sub.Length, StringComparison.Ordinal)) n++;
        return n;
    }
}
