namespace Popo.Jinja;

/// <summary>Jinja2's built-in tests (`x is name`, `x is not name(args)`), with Python's type notions (bool is a number, not an integer).</summary>
internal static class TemplateTests
{
    private delegate bool Test(object? value, Args args);

    private static readonly Dictionary<string, Test> Table = new(StringComparer.Ordinal)
    {
        ["defined"] = (v, _) => v is not Undefined,
        ["undefined"] = (v, _) => v is Undefined,
        ["none"] = (v, _) => v is null,
        ["boolean"] = (v, _) => v is bool,
        ["true"] = (v, _) => v is true,
        ["false"] = (v, _) => v is false,
        ["integer"] = (v, _) => v is long,
        ["float"] = (v, _) => v is double,
        ["number"] = (v, _) => v is bool or long or double,
        ["string"] = (v, _) => v is string,
        ["mapping"] = (v, _) => v is Dictionary<string, object?>,
        // Python's iter() and len()+__getitem__ succeed on Undefined, so Jinja2 calls it iterable and a sequence.
        ["iterable"] = (v, _) => v is string or List<object?> or object?[] or Dictionary<string, object?> or Undefined,
        ["sequence"] = (v, _) => v is string or List<object?> or object?[] or Dictionary<string, object?> or Undefined,
        ["callable"] = (v, _) => v is Callable,
        ["odd"] = (v, _) => Integer(v, "odd") % 2 != 0,
        ["even"] = (v, _) => Integer(v, "even") % 2 == 0,
        ["divisibleby"] = (v, a) => Integer(v, "divisibleby") % Integer(a.Required(0, "num"), "divisibleby") == 0,
        ["eq"] = (v, a) => PyValue.Equals(v, a.Required(0, "other")),
        ["equalto"] = (v, a) => PyValue.Equals(v, a.Required(0, "other")),
        ["=="] = (v, a) => PyValue.Equals(v, a.Required(0, "other")),
        ["ne"] = (v, a) => !PyValue.Equals(v, a.Required(0, "other")),
        ["!="] = (v, a) => !PyValue.Equals(v, a.Required(0, "other")),
        ["lt"] = (v, a) => PyValue.Compare(v, a.Required(0, "other"), "<") < 0,
        ["lessthan"] = (v, a) => PyValue.Compare(v, a.Required(0, "other"), "<") < 0,
        ["<"] = (v, a) => PyValue.Compare(v, a.Required(0, "other"), "<") < 0,
        ["le"] = (v, a) => PyValue.Compare(v, a.Required(0, "other"), "<=") <= 0,
        ["<="] = (v, a) => PyValue.Compare(v, a.Required(0, "other"), "<=") <= 0,
        ["gt"] = (v, a) => PyValue.Compare(v, a.Required(0, "other"), ">") > 0,
        ["greaterthan"] = (v, a) => PyValue.Compare(v, a.Required(0, "other"), ">") > 0,
        [">"] = (v, a) => PyValue.Compare(v, a.Required(0, "other"), ">") > 0,
        ["ge"] = (v, a) => PyValue.Compare(v, a.Required(0, "other"), ">=") >= 0,
        [">="] = (v, a) => PyValue.Compare(v, a.Required(0, "other"), ">=") >= 0,
        ["in"] = (v, a) => PyValue.Contains(a.Required(0, "seq"), v),
        ["sameas"] = (v, a) => SameAs(v, a.Required(0, "other")),
        ["lower"] = (v, _) => v is string s && PyText.Lower(s) == s,
        ["upper"] = (v, _) => v is string s && PyText.Upper(s) == s,
        ["escaped"] = (_, _) => false,
    };

    public static IEnumerable<string> Names => Table.Keys.Where(k => char.IsLetter(k[0])).Order(StringComparer.Ordinal);

    public static bool Exists(string name) => Table.ContainsKey(name);

    public static bool Apply(string name, object? value, IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> kwargs) =>
        Table[name](value, new Args(name, args, kwargs));

    private static long Integer(object? v, string test) => v switch
    {
        bool b => b ? 1 : 0,
        long l => l,
        Undefined u => throw u.Error(),
        _ => throw new TemplateValueError($"test '{test}' needs an integer, not {PyValue.TypeName(v)}"),
    };

    /// <summary>Python's `is`: identity. None and the booleans are singletons; ints -5..256 are cached by CPython.</summary>
    private static bool SameAs(object? a, object? b) => (a, b) switch
    {
        (null, null) => true,
        (bool x, bool y) => x == y,
        (long x, long y) => x == y && x is >= -5 and <= 256,
        _ => ReferenceEquals(a, b),
    };
}
