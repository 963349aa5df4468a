namespace Popo.Jinja;

/// <summary>The arguments of a call to a filter, test, global or method, read by position or keyword with Python's type checks.</summary>
internal sealed class Args(string function, IReadOnlyList<object?> positional, IReadOnlyDictionary<string, object?> keywords)
{
    public int Count => positional.Count;

    public bool Has(int position, string keyword) => position < positional.Count || keywords.ContainsKey(keyword);

    public object? Optional(int position, string keyword, object? fallback = null) =>
        position < positional.Count ? positional[position] : keywords.TryGetValue(keyword, out var v) ? v : fallback;

    public object? Required(int position, string keyword) =>
        Has(position, keyword) ? Optional(position, keyword)
            : throw new TemplateValueError($"{function}() missing required argument '{keyword}' (pos {position + 1})");

    public string String(int position, string keyword) =>
        Required(position, keyword) as string ?? throw new TemplateValueError($"{function}() argument '{keyword}' must be str, not {PyValue.TypeName(Optional(position, keyword))}");

    public string? OptionalString(int position, string keyword) => Optional(position, keyword) switch
    {
        null => null,
        string s => s,
        var v => throw new TemplateValueError($"{function}() argument '{keyword}' must be str or None, not {PyValue.TypeName(v)}"),
    };

    public long Long(int position, string keyword, long fallback) => Optional(position, keyword) switch
    {
        null when !Has(position, keyword) => fallback,
        long l => l,
        bool b => b ? 1 : 0,
        var v => throw new TemplateValueError($"{function}() argument '{keyword}' must be int, not {PyValue.TypeName(v)}"),
    };

    public bool Bool(int position, string keyword, bool fallback) => Has(position, keyword) ? PyValue.Truthy(Optional(position, keyword)) : fallback;
}
