using System.Globalization;
using System.Text;

namespace Popo.Jinja;

/// <summary>
/// Python's json.dumps, which Hugging Face installs as the tojson filter (ensure_ascii=False, indent=None,
/// separators=None, sort_keys=False by default), in place of Jinja2's HTML-escaping tojson.
/// </summary>
internal static class PyJson
{
    public static string Dumps(object? value, bool ensureAscii, object? indent, (string Item, string Key)? separators, bool sortKeys)
    {
        string? indentText = indent switch
        {
            null => null,
            long n => n > RenderLimits.MaxLength ? throw new TemplateValueError($"tojson indent {n} is more than the renderer's limit of {RenderLimits.MaxLength}") : new string(' ', (int)Math.Max(0, n)),
            string s => s,
            _ => throw new TemplateValueError($"tojson indent must be an int or a str, not {PyValue.TypeName(indent)}"),
        };
        var (item, key) = separators ?? (indentText is null ? (", ", ": ") : (",", ": "));
        var text = new StringBuilder();
        Write(text, value, ensureAscii, indentText, item, key, sortKeys, 0);
        return text.ToString();
    }

    private static void Write(StringBuilder text, object? value, bool ascii, string? indent, string item, string key, bool sort, int level)
    {
        RenderLimits.EnsureStack();
        RenderLimits.CheckLength(text.Length + (long)item.Length + key.Length);
        switch (value)
        {
            case null: text.Append("null"); return;
            case bool b: text.Append(b ? "true" : "false"); return;
            case long l: text.Append(l.ToString(CultureInfo.InvariantCulture)); return;
            case double d:
                text.Append(double.IsNaN(d) ? "NaN" : double.IsPositiveInfinity(d) ? "Infinity" : double.IsNegativeInfinity(d) ? "-Infinity" : PyValue.FloatRepr(d));
                return;
            case string s: WriteString(text, s, ascii); return;
            case List<object?> or object?[]:
            {
                var items = (IReadOnlyList<object?>)value;
                if (items.Count == 0)
                {
                    text.Append("[]");
                    return;
                }
                text.Append('[');
                for (var i = 0; i < items.Count; i++)
                {
                    if (i > 0) text.Append(item);
                    NewLine(text, indent, level + 1);
                    Write(text, items[i], ascii, indent, item, key, sort, level + 1);
                }
                NewLine(text, indent, level);
                text.Append(']');
                return;
            }
            case Dictionary<string, object?> dict:
            {
                if (dict.Count == 0)
                {
                    text.Append("{}");
                    return;
                }
                IEnumerable<KeyValuePair<string, object?>> pairs = sort ? dict.OrderBy(kv => kv.Key, Comparer<string>.Create(PyText.Compare)) : dict;
                text.Append('{');
                var first = true;
                foreach (var (k, v) in pairs)
                {
                    if (!first) text.Append(item);
                    first = false;
                    NewLine(text, indent, level + 1);
                    WriteString(text, k, ascii);
                    text.Append(key);
                    Write(text, v, ascii, indent, item, key, sort, level + 1);
                }
                NewLine(text, indent, level);
                text.Append('}');
                return;
            }
            case Namespace or LoopContext or Callable or Undefined or PySlice:
                throw new TemplateValueError($"Object of type {PyValue.TypeName(value)} is not JSON serializable");
            default:
                throw new TemplateValueError($"Object of type {PyValue.TypeName(value)} is not JSON serializable");
        }
    }

    private static void NewLine(StringBuilder text, string? indent, int level)
    {
        if (indent is null) return;
        RenderLimits.CheckLength(text.Length + 1 + (long)indent.Length * level);
        text.Append('\n');
        for (var i = 0; i < level; i++) text.Append(indent);
    }

    private static void WriteString(StringBuilder text, string s, bool ascii)
    {
        RenderLimits.CheckLength(text.Length + (long)s.Length);
        text.Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': text.Append("\\\""); break;
                case '\\': text.Append("\\\\"); break;
                case '\n': text.Append("\\n"); break;
                case '\r': text.Append("\\r"); break;
                case '\t': text.Append("\\t"); break;
                case '\b': text.Append("\\b"); break;
                case '\f': text.Append("\\f"); break;
                default:
                    if (c < 0x20 || (ascii && c > 0x7E)) text.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else text.Append(c);
                    break;
            }
        }
        text.Append('"');
    }
}
