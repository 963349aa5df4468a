using System.Collections;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Popo.Jinja;

/// <summary>
/// Python's semantics for the values a template handles, as Jinja2 inherits them. Representation:
/// null = None, bool, long = int, double = float, string = str, List&lt;object?&gt; = list, object?[] = tuple,
/// Dictionary&lt;string, object?&gt; = dict (insertion-ordered; string keys only), plus <see cref="Undefined"/>,
/// <see cref="Namespace"/>, <see cref="LoopContext"/> and <see cref="Callable"/>.
/// </summary>
internal static class PyValue
{
    public static string TypeName(object? v) => v switch
    {
        null => "NoneType",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        List<object?> => "list",
        object?[] => "tuple",
        Dictionary<string, object?> => "dict",
        Undefined => "Undefined",
        Namespace => "Namespace",
        LoopContext => "LoopContext",
        Callable => "function",
        PySlice => "slice",
        _ => v.GetType().Name,
    };

    /// <summary>A value from the caller: ints become long, floats double, maps dict, sequences list; JSON elements convert likewise.</summary>
    public static object? From(object? value) => value switch
    {
        null or bool or long or double or string or Undefined or Namespace or Callable => value,
        int i => (long)i,
        float f => (double)f,
        JsonElement e => FromJson(e),
        IDictionary<string, object?> map => map.ToDictionary(kv => kv.Key, kv => From(kv.Value), StringComparer.Ordinal),
        IEnumerable<KeyValuePair<string, string>> map => map.ToDictionary(kv => kv.Key, kv => (object?)kv.Value, StringComparer.Ordinal),
        IEnumerable sequence => sequence.Cast<object?>().Select(From).ToList(),
        _ => throw new ArgumentException($"a template variable of type {value.GetType().Name} is not supported"),
    };

    public static object? FromJson(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Null or JsonValueKind.Undefined => null,
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.String => e.GetString(),
        JsonValueKind.Number => e.TryGetInt64(out var l) ? (object)l : e.GetDouble(),
        JsonValueKind.Array => e.EnumerateArray().Select(FromJson).ToList(),
        JsonValueKind.Object => e.EnumerateObject().ToDictionary(p => p.Name, p => FromJson(p.Value), StringComparer.Ordinal),
        _ => throw new ArgumentException($"JSON value kind {e.ValueKind} is not supported"),
    };

    public static bool Truthy(object? v) => v switch
    {
        null or Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> list => list.Count > 0,
        object?[] tuple => tuple.Length > 0,
        Dictionary<string, object?> dict => dict.Count > 0,
        _ => true,
    };

    /// <summary>str(v): what {{ v }}, ~ and the string filter write.</summary>
    public static string Str(object? v) => v switch
    {
        string s => s,
        Undefined => "",
        _ => Repr(v),
    };

    public static string Repr(object? v)
    {
        if (v is List<object?> or object?[] or Dictionary<string, object?> or Namespace) RenderLimits.EnsureStack();
        return ReprOf(v);
    }

    private static string ReprOf(object? v) => v switch
    {
        null => "None",
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => FloatRepr(d),
        string s => PyText.Repr(s),
        List<object?> list => "[" + RenderLimits.Join(", ", list.Select(Repr)) + "]",
        object?[] { Length: 1 } one => "(" + Repr(one[0]) + ",)",
        object?[] tuple => "(" + RenderLimits.Join(", ", tuple.Select(Repr)) + ")",
        Dictionary<string, object?> dict => "{" + RenderLimits.Join(", ", dict.Select(kv => PyText.Repr(kv.Key) + ": " + Repr(kv.Value))) + "}",
        Undefined => "Undefined",
        Namespace ns => "<Namespace " + Repr(ns.Attributes) + ">",
        Callable c => $"<function {c.Name}>",
        _ => v.ToString() ?? "",
    };

    /// <summary>Python's repr of a float: the shortest round-trip digits, positional for 1e-4 &lt;= |x| &lt; 1e16, else d.ddde±XX.</summary>
    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsInfinity(d)) return d > 0 ? "inf" : "-inf";
        if (d == 0) return double.IsNegative(d) ? "-0.0" : "0.0";
        // Shortest round-trip digits come from "R"; parse them into digits and a decimal exponent.
        var shortest = d.ToString("R", CultureInfo.InvariantCulture);
        var negative = shortest.StartsWith('-');
        if (negative) shortest = shortest[1..];
        var exponent = 0;
        var ePos = shortest.IndexOfAny(['E', 'e']);
        if (ePos >= 0)
        {
            exponent = int.Parse(shortest[(ePos + 1)..], CultureInfo.InvariantCulture);
            shortest = shortest[..ePos];
        }
        var dot = shortest.IndexOf('.');
        var intPart = dot < 0 ? shortest : shortest[..dot];
        var fracPart = dot < 0 ? "" : shortest[(dot + 1)..];
        var digits = (intPart + fracPart).TrimStart('0');
        var leadingZeros = (intPart + fracPart).Length - digits.Length;
        digits = digits.TrimEnd('0');
        if (digits.Length == 0) digits = "0";
        // value = 0.DIGITS x 10^decpt
        var decpt = intPart.Length - leadingZeros + exponent;
        var text = new StringBuilder();
        if (negative) text.Append('-');
        if (decpt is > -4 and <= 16)
        {
            if (decpt <= 0) text.Append("0.").Append('0', -decpt).Append(digits);
            else if (decpt >= digits.Length) text.Append(digits).Append('0', decpt - digits.Length).Append(".0");
            else text.Append(digits, 0, decpt).Append('.').Append(digits, decpt, digits.Length - decpt);
        }
        else
        {
            text.Append(digits[0]);
            if (digits.Length > 1) text.Append('.').Append(digits, 1, digits.Length - 1);
            var e = decpt - 1;
            text.Append('e').Append(e < 0 ? '-' : '+').Append(Math.Abs(e).ToString("00", CultureInfo.InvariantCulture));
        }
        return text.ToString();
    }

    public static bool IsNumber(object? v) => v is bool or long or double;

    private static long AsLong(object? v) => v is bool b ? (b ? 1 : 0) : (long)v!;
    private static double AsDouble(object? v) => v switch { bool b => b ? 1 : 0, long l => l, double d => d, _ => throw new InvalidCastException() };

    public static new bool Equals(object? a, object? b)
    {
        if (a is List<object?> or object?[] or Dictionary<string, object?>) RenderLimits.EnsureStack();
        if (IsNumber(a) && IsNumber(b))
            return a is double || b is double ? AsDouble(a) == AsDouble(b) : AsLong(a) == AsLong(b);
        return (a, b) switch
        {
            (null, null) => true,
            (Undefined, Undefined) => true,
            (string x, string y) => string.Equals(x, y, StringComparison.Ordinal),
            (List<object?> x, List<object?> y) => x.Count == y.Count && x.Zip(y).All(p => Equals(p.First, p.Second)),
            (object?[] x, object?[] y) => x.Length == y.Length && x.Zip(y).All(p => Equals(p.First, p.Second)),
            (Dictionary<string, object?> x, Dictionary<string, object?> y) =>
                x.Count == y.Count && x.All(kv => y.TryGetValue(kv.Key, out var other) && Equals(kv.Value, other)),
            _ => ReferenceEquals(a, b),
        };
    }

    /// <summary>Python's ordering for &lt; &lt;= &gt; &gt;=: numbers, strings by code point, lists and tuples lexicographically.</summary>
    public static int Compare(object? a, object? b, string op)
    {
        if (IsNumber(a) && IsNumber(b))
            return a is double || b is double ? AsDouble(a).CompareTo(AsDouble(b)) : AsLong(a).CompareTo(AsLong(b));
        switch (a, b)
        {
            case (string x, string y):
                return PyText.Compare(x, y);
            case (List<object?> x, List<object?> y):
                return CompareSequences(x, y, op);
            case (object?[] x, object?[] y):
                return CompareSequences(x, y, op);
        }
        if (a is Undefined ua) throw ua.Error();
        if (b is Undefined ub) throw ub.Error();
        throw new TemplateValueError($"'{op}' not supported between instances of '{TypeName(a)}' and '{TypeName(b)}'");
    }

    private static int CompareSequences(IReadOnlyList<object?> x, IReadOnlyList<object?> y, string op)
    {
        for (var i = 0; i < Math.Min(x.Count, y.Count); i++)
            if (!Equals(x[i], y[i])) return Compare(x[i], y[i], op);
        return x.Count.CompareTo(y.Count);
    }

    public static long Length(object? v) => v switch
    {
        string s => PyText.Length(s),
        List<object?> list => list.Count,
        object?[] tuple => tuple.Length,
        Dictionary<string, object?> dict => dict.Count,
        Namespace ns => ns.Attributes.Count,
        Undefined => 0,
        _ => throw new TemplateValueError($"object of type '{TypeName(v)}' has no len()"),
    };

    /// <summary>iter(v): a list's or tuple's items, a dict's keys, a str's characters; undefined iterates as empty.</summary>
    public static IReadOnlyList<object?> Iterate(object? v) => v switch
    {
        List<object?> list => list,
        object?[] tuple => tuple,
        Dictionary<string, object?> dict => dict.Keys.Cast<object?>().ToList(),
        string s => PyText.CodePoints(s).Select(c => (object?)PyText.FromCodePoints([c])).ToList(),
        Undefined => [],
        _ => throw new TemplateValueError($"'{TypeName(v)}' object is not iterable"),
    };

    public static bool Contains(object? container, object? item) => container switch
    {
        string s when item is string sub => s.Contains(sub, StringComparison.Ordinal),
        string => throw new TemplateValueError($"'in <string>' requires string as left operand, not {TypeName(item)}"),
        Dictionary<string, object?> dict => item is string key && dict.ContainsKey(key),
        List<object?> or object?[] => Iterate(container).Any(x => Equals(x, item)),
        Undefined => false,
        _ => throw new TemplateValueError($"argument of type '{TypeName(container)}' is not iterable"),
    };

    /// <summary>obj.name as Jinja2 resolves it: a method or attribute first, then an item; else undefined.</summary>
    public static object? GetAttr(object? obj, string name)
    {
        switch (obj)
        {
            case Undefined u:
                throw u.Error();
            case Namespace ns:
                return ns.Attributes.TryGetValue(name, out var value) ? value : Undefined.Attribute(obj, name);
            case LoopContext loop:
                return loop.Attribute(name);
        }
        if (Methods.Bind(obj, name) is { } method) return method;
        return obj is Dictionary<string, object?> dict && dict.TryGetValue(name, out var item) ? item : Undefined.Attribute(obj, name);
    }

    /// <summary>obj[key] as Jinja2 resolves it: an item first, then (for a string key) an attribute; else undefined.</summary>
    public static object? GetItem(object? obj, object? key)
    {
        if (obj is Undefined u) throw u.Error();
        if (key is PySlice slice)
        {
            return obj switch
            {
                List<object?> list => slice.Indices(list.Count).Select(i => list[i]).ToList(),
                object?[] tuple => slice.Indices(tuple.Length).Select(i => tuple[i]).ToArray(),
                string s => SliceString(s, slice),
                _ => throw new TemplateValueError($"'{TypeName(obj)}' object is not subscriptable"),
            };
        }
        if (key is bool or long && obj is List<object?> or object?[] or string)
        {
            var items = obj is string s ? Iterate(s) : (IReadOnlyList<object?>)obj;
            var i = AsLong(key);
            if (i < 0) i += items.Count;
            return i >= 0 && i < items.Count ? items[(int)i] : Undefined.Item(obj, key);
        }
        if (obj is Dictionary<string, object?> dict && key is string k && dict.TryGetValue(k, out var value)) return value;
        if (key is string name) return GetAttr(obj, name);
        return Undefined.Item(obj, key);
    }

    private static string SliceString(string s, PySlice slice)
    {
        var points = PyText.CodePoints(s);
        return PyText.FromCodePoints(slice.Indices(points.Length).Select(i => points[i]));
    }

    public static object? Negate(object? v) => v switch
    {
        bool or long => (object)checked(-AsLong(v)),
        double d => -d,
        Undefined u => throw u.Error(),
        _ => throw new TemplateValueError($"bad operand type for unary -: '{TypeName(v)}'"),
    };

    public static object? Plus(object? v) => v switch
    {
        bool or long => (object)AsLong(v),
        double d => d,
        Undefined u => throw u.Error(),
        _ => throw new TemplateValueError($"bad operand type for unary +: '{TypeName(v)}'"),
    };

    /// <summary>+ - * / // % ** with Python's rules (int stays int except for /; floor division and modulo round toward -inf).</summary>
    public static object? Arithmetic(string op, object? a, object? b)
    {
        if (a is Undefined ua) throw ua.Error();
        if (b is Undefined ub) throw ub.Error();
        try
        {
            if (IsNumber(a) && IsNumber(b))
            {
                var floating = a is double || b is double;
                switch (op)
                {
                    case "+": return floating ? AsDouble(a) + AsDouble(b) : (object)checked(AsLong(a) + AsLong(b));
                    case "-": return floating ? AsDouble(a) - AsDouble(b) : (object)checked(AsLong(a) - AsLong(b));
                    case "*": return floating ? AsDouble(a) * AsDouble(b) : (object)checked(AsLong(a) * AsLong(b));
                    case "/":
                        if (AsDouble(b) == 0) throw new TemplateValueError("division by zero");
                        return AsDouble(a) / AsDouble(b);
                    case "//":
                        if (AsDouble(b) == 0) throw new TemplateValueError("integer division or modulo by zero");
                        if (floating) return Math.Floor(AsDouble(a) / AsDouble(b));
                        return FloorDiv(AsLong(a), AsLong(b));
                    case "%":
                        if (AsDouble(b) == 0) throw new TemplateValueError("integer division or modulo by zero");
                        if (floating)
                        {
                            var x = AsDouble(a);
                            var y = AsDouble(b);
                            var m = x % y;
                            return m != 0 && (m < 0) != (y < 0) ? m + y : m;
                        }
                        return AsLong(a) - AsLong(b) * FloorDiv(AsLong(a), AsLong(b));
                    case "**":
                        if (!floating && AsLong(b) >= 0)
                        {
                            // By squaring: a loop of b multiplications never overflows for a base of 0, 1 or -1 (1 ** 10**18).
                            long result = 1, x = AsLong(a);
                            for (long e = AsLong(b); e > 0; e >>= 1)
                            {
                                if ((e & 1) == 1) result = checked(result * x);
                                if (e > 1) x = checked(x * x);
                            }
                            return result;
                        }
                        return Math.Pow(AsDouble(a), AsDouble(b));
                }
            }
            switch (op, a, b)
            {
                case ("+", string x, string y): RenderLimits.CheckLength((long)x.Length + y.Length); return x + y;
                case ("+", List<object?> x, List<object?> y): RenderLimits.CheckLength((long)x.Count + y.Count, "list"); return x.Concat(y).ToList();
                case ("+", object?[] x, object?[] y): RenderLimits.CheckLength((long)x.Length + y.Length, "tuple"); return x.Concat(y).ToArray();
                case ("*", string x, bool or long): return Repeat(x, AsLong(b));
                case ("*", bool or long, string y): return Repeat(y, AsLong(a));
                case ("*", List<object?> x, bool or long):
                {
                    var times = Math.Max(0, AsLong(b));
                    if (x.Count > 0) RenderLimits.CheckLength(checked(x.Count * times), "list");
                    return Enumerable.Repeat(x, (int)times).SelectMany(l => l).ToList();
                }
                case ("%", string, _): throw new TemplateValueError("printf-style string formatting (str % values) is not supported by this Jinja subset");
            }
        }
        catch (OverflowException)
        {
            throw new TemplateValueError($"integer overflow in {op}");
        }
        throw new TemplateValueError($"unsupported operand type(s) for {op}: '{TypeName(a)}' and '{TypeName(b)}'");
    }

    private static string Repeat(string s, long times)
    {
        times = Math.Max(0, times);
        if (s.Length == 0) return "";
        RenderLimits.CheckLength(checked(s.Length * times));
        return string.Concat(Enumerable.Repeat(s, (int)times));
    }

    private static long FloorDiv(long a, long b)
    {
        var q = a / b;
        return (a % b != 0) && ((a < 0) != (b < 0)) ? q - 1 : q;
    }
}
