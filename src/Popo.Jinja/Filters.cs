using System.Globalization;
using System.Text;

namespace Popo.Jinja;

/// <summary>
/// Jinja2's built-in filters that chat templates use, with Jinja2's argument names and defaults; tojson is
/// Hugging Face's replacement (Python json.dumps, ensure_ascii=False).
/// </summary>
internal static class Filters
{
    private delegate object? Filter(object? value, Args args);

    private static readonly Dictionary<string, Filter> Table = new(StringComparer.Ordinal)
    {
        ["trim"] = (v, a) => PyText.Strip(PyValue.Str(v), a.OptionalString(0, "chars"), true, true),
        ["length"] = (v, _) => PyValue.Length(v),
        ["count"] = (v, _) => PyValue.Length(v),
        ["string"] = (v, _) => PyValue.Str(v),
        ["upper"] = (v, _) => PyText.Upper(PyValue.Str(v)),
        ["lower"] = (v, _) => PyText.Lower(PyValue.Str(v)),
        ["capitalize"] = (v, _) => PyText.Capitalize(PyValue.Str(v)),
        ["title"] = (v, _) => PyText.JinjaTitle(PyValue.Str(v)),
        ["default"] = Default,
        ["d"] = Default,
        ["tojson"] = (v, a) => PyJson.Dumps(v, a.Bool(0, "ensure_ascii", false), a.Optional(1, "indent"), Separators(a.Optional(2, "separators")), a.Bool(3, "sort_keys", false)),
        ["items"] = (v, _) => v switch
        {
            Undefined => new List<object?>(),
            Dictionary<string, object?> d => d.Select(kv => (object?)new object?[] { kv.Key, kv.Value }).ToList(),
            _ => throw new TemplateValueError("Can only get item pairs from a mapping."),
        },
        ["join"] = (v, a) =>
        {
            var attribute = a.OptionalString(1, "attribute");
            var items = PyValue.Iterate(v).Select(x => attribute is null ? x : PyValue.GetAttr(x, attribute));
            return RenderLimits.Join(a.OptionalString(0, "d") ?? "", items.Select(PyValue.Str));
        },
        ["replace"] = (v, a) => PyText.Replace(PyValue.Str(v), PyValue.Str(a.Required(0, "old")), PyValue.Str(a.Required(1, "new")),
            a.Optional(2, "count") is null ? -1 : a.Long(2, "count", -1)),
        ["first"] = (v, _) => PyValue.Iterate(v) is { Count: > 0 } items ? items[0] : new Undefined("No first item, sequence was empty."),
        ["last"] = (v, _) => v is Undefined ? new Undefined("No last item, sequence was empty.")
            : PyValue.Iterate(v) is { Count: > 0 } items ? items[^1] : new Undefined("No last item, sequence was empty."),
        ["list"] = (v, _) => PyValue.Iterate(v).ToList(),
        ["reverse"] = (v, _) => v is string s ? PyText.FromCodePoints(PyText.CodePoints(s).Reverse()) : PyValue.Iterate(v).Reverse().ToList(),
        ["map"] = Map,
        ["select"] = (v, a) => Select(v, a, attribute: false, keep: true),
        ["reject"] = (v, a) => Select(v, a, attribute: false, keep: false),
        ["selectattr"] = (v, a) => Select(v, a, attribute: true, keep: true),
        ["rejectattr"] = (v, a) => Select(v, a, attribute: true, keep: false),
        ["int"] = ToInt,
        ["float"] = ToFloat,
        ["abs"] = (v, _) => v switch
        {
            bool or long => (object)Math.Abs(v is bool b ? (b ? 1L : 0L) : (long)v),
            double d => Math.Abs(d),
            _ => throw new TemplateValueError($"bad operand type for abs(): '{PyValue.TypeName(v)}'"),
        },
        ["sort"] = (v, a) => Sorted(v, a.Bool(0, "reverse", false), a.Bool(1, "case_sensitive", false), a.OptionalString(2, "attribute")),
        ["unique"] = (v, a) =>
        {
            var caseSensitive = a.Bool(0, "case_sensitive", false);
            var attribute = a.OptionalString(1, "attribute");
            // Keys bucketed by a hash that agrees with Python equality (1 == 1.0 == True): linear, not quadratic, in
            // the list's length, so a long list cannot stall a render inside one filter call.
            var seen = new Dictionary<int, List<object?>>();
            var result = new List<object?>();
            foreach (var item in PyValue.Iterate(v))
            {
                var key = SortKey(item, caseSensitive, attribute);
                var hash = key switch
                {
                    string s => string.GetHashCode(s, StringComparison.Ordinal),
                    bool b => (b ? 1.0 : 0.0).GetHashCode(),
                    long l => ((double)l).GetHashCode(),
                    double d => d.GetHashCode(),
                    _ => 0,
                };
                if (!seen.TryGetValue(hash, out var bucket)) seen[hash] = bucket = [];
                if (bucket.Any(s => PyValue.Equals(s, key))) continue;
                bucket.Add(key);
                result.Add(item);
            }
            return result;
        },
        ["min"] = (v, a) => Sorted(v, false, a.Bool(0, "case_sensitive", false), a.OptionalString(1, "attribute")) is { Count: > 0 } s ? s[0] : new Undefined("No aggregated item, sequence was empty."),
        ["max"] = (v, a) => Sorted(v, true, a.Bool(0, "case_sensitive", false), a.OptionalString(1, "attribute")) is { Count: > 0 } s ? s[0] : new Undefined("No aggregated item, sequence was empty."),
        ["sum"] = (v, a) =>
        {
            var attribute = a.OptionalString(0, "attribute");
            var total = a.Optional(1, "start", 0L);
            foreach (var item in PyValue.Iterate(v)) total = PyValue.Arithmetic("+", total, attribute is null ? item : PyValue.GetAttr(item, attribute));
            return total;
        },
        ["safe"] = (v, _) => v,
        ["escape"] = (v, _) => Escape(PyValue.Str(v)),
        ["e"] = (v, _) => Escape(PyValue.Str(v)),
        ["attr"] = (v, a) => Methods.Bind(v, a.String(0, "name")) is { } m ? m
            : v is Namespace or LoopContext ? PyValue.GetAttr(v, a.String(0, "name")) : Undefined.Attribute(v, a.String(0, "name")),
        ["dictsort"] = (v, a) =>
        {
            if (v is not Dictionary<string, object?> d) throw new TemplateValueError("dictsort needs a mapping");
            var byValue = a.OptionalString(1, "by") switch
            {
                null or "key" => false,
                "value" => true,
                var by => throw new TemplateValueError($"You can only sort by either \"key\" or \"value\", not {by}"),
            };
            var caseSensitive = a.Bool(0, "case_sensitive", false);
            var pairs = d.Select(kv => new object?[] { kv.Key, kv.Value }).ToList();
            pairs.Sort((x, y) => PyValue.Compare(SortKey(x[byValue ? 1 : 0], caseSensitive, null), SortKey(y[byValue ? 1 : 0], caseSensitive, null), "<"));
            if (a.Bool(2, "reverse", false)) pairs.Reverse();
            return pairs.Cast<object?>().ToList();
        },
    };

    public static IEnumerable<string> Names => Table.Keys.Order(StringComparer.Ordinal);

    public static bool Exists(string name) => Table.ContainsKey(name);

    public static object? Apply(string name, object? value, IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> kwargs) =>
        Table[name](value, new Args(name, args, kwargs));

    private static object? Default(object? v, Args a)
    {
        var fallback = a.Optional(0, "default_value", "");
        var boolean = a.Bool(1, "boolean", false);
        return v is Undefined || (boolean && !PyValue.Truthy(v)) ? fallback : v;
    }

    private static (string, string)? Separators(object? value) => value switch
    {
        null => null,
        object?[] { Length: 2 } or List<object?> { Count: 2 } => (PyValue.Str(PyValue.GetItem(value, 0L)), PyValue.Str(PyValue.GetItem(value, 1L))),
        _ => throw new TemplateValueError("tojson separators must be a pair (item_separator, key_separator)"),
    };

    private static object? Map(object? v, Args a)
    {
        var items = PyValue.Iterate(v);
        if (a.Has(99, "attribute"))
        {
            var attribute = PyValue.Str(a.Optional(99, "attribute"));
            var fallback = a.Optional(99, "default", null);
            var hasDefault = a.Has(99, "default");
            return items.Select(x =>
            {
                var r = PyValue.GetAttr(x, attribute);
                return r is Undefined && hasDefault ? fallback : r;
            }).ToList();
        }
        if (a.Count == 0) throw new TemplateValueError("map needs a filter name or attribute=");
        var filter = a.String(0, "filter");
        if (!Exists(filter)) throw new TemplateValueError($"no filter named '{filter}'");
        var rest = Enumerable.Range(1, a.Count - 1).Select(i => a.Optional(i, "")).ToList();
        return items.Select(x => Apply(filter, x, rest, new Dictionary<string, object?>())).ToList();
    }

    private static object? Select(object? v, Args a, bool attribute, bool keep)
    {
        var offset = attribute ? 1 : 0;
        var name = attribute ? a.String(0, "attribute") : null;
        string? test = a.Count > offset ? a.String(offset, "test") : null;
        if (test is not null && !TemplateTests.Exists(test)) throw new TemplateValueError($"no test named '{test}'");
        var rest = Enumerable.Range(offset + 1, Math.Max(0, a.Count - offset - 1)).Select(i => a.Optional(i, "")).ToList();
        var result = new List<object?>();
        foreach (var item in PyValue.Iterate(v))
        {
            var subject = name is null ? item : PyValue.GetAttr(item, name);
            var passes = test is null ? PyValue.Truthy(subject) : TemplateTests.Apply(test, subject, rest, new Dictionary<string, object?>());
            if (passes == keep) result.Add(item);
        }
        return result;
    }

    private static object? ToInt(object? v, Args a)
    {
        var fallback = a.Optional(0, "default", 0L);
        var numberBase = a.Long(1, "base", 10);
        switch (v)
        {
            case bool b: return b ? 1L : 0L;
            case long l: return l;
            case double d: return double.IsFinite(d) ? (long)Math.Truncate(d) : fallback;
            case string s:
                var text = s.Trim().Replace("_", "");
                try
                {
                    if (numberBase == 10 && long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var parsed)) return parsed;
                    if (numberBase != 10) return Convert.ToInt64(text, (int)numberBase);
                }
                catch (Exception e) when (e is FormatException or ArgumentException or OverflowException) { return fallback; }
                return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var f) && double.IsFinite(f) ? (long)Math.Truncate(f) : fallback;
            default: return fallback;
        }
    }

    private static object? ToFloat(object? v, Args a)
    {
        var fallback = a.Optional(0, "default", 0.0);
        return v switch
        {
            bool b => b ? 1.0 : 0.0,
            long l => (double)l,
            double d => d,
            string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var f) => f,
            _ => fallback,
        };
    }

    private static object? SortKey(object? item, bool caseSensitive, string? attribute)
    {
        var key = attribute is null ? item : PyValue.GetAttr(item, attribute);
        return !caseSensitive && key is string s ? PyText.Lower(s) : key;
    }

    private static List<object?> Sorted(object? v, bool reverse, bool caseSensitive, string? attribute)
    {
        var items = PyValue.Iterate(v).ToList();
        // A stable sort, as Python's sorted; reverse=True keeps equal items in order, as Python's does.
        var keyed = items.Select((x, i) => (Key: SortKey(x, caseSensitive, attribute), Index: i, Item: x)).ToList();
        keyed.Sort((x, y) =>
        {
            var c = PyValue.Compare(x.Key, y.Key, "<");
            if (reverse) c = -c;
            return c != 0 ? c : x.Index.CompareTo(y.Index);
        });
        return keyed.Select(k => k.Item).ToList();
    }

    private static string Escape(string s) =>
        s.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\"", "&#34;").Replace("'", "&#39;");
}
