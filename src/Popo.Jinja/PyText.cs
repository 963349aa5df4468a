using System.Globalization;
using System.Text;

namespace Popo.Jinja;

/// <summary>
/// Python str semantics on .NET strings: Python counts, indexes and slices by code point (a character outside
/// the BMP is one, not two UTF-16 units), and its whitespace (str.isspace, regex \s) adds U+001C..U+001F to
/// .NET's.
/// </summary>
internal static class PyText
{
    public static bool IsSpace(int c) => c is >= 0x1C and <= 0x1F || (c <= 0xFFFF && char.IsWhiteSpace((char)c));

    public static bool HasSurrogates(string s)
    {
        foreach (var c in s)
            if (char.IsSurrogate(c)) return true;
        return false;
    }

    public static int[] CodePoints(string s)
    {
        var result = new List<int>(s.Length);
        for (var i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                result.Add(char.ConvertToUtf32(s[i], s[i + 1]));
                i++;
            }
            else result.Add(s[i]);
        }
        return [.. result];
    }

    public static string FromCodePoints(IEnumerable<int> codePoints)
    {
        var text = new StringBuilder();
        foreach (var c in codePoints)
            if (c > 0xFFFF) text.Append(char.ConvertFromUtf32(c));
            else text.Append((char)c);
        return text.ToString();
    }

    public static int Length(string s) => HasSurrogates(s) ? CodePoints(s).Length : s.Length;

    public static string RStrip(string s) => Strip(s, null, left: false, right: true);

    /// <summary>str.strip / lstrip / rstrip: whitespace when <paramref name="chars"/> is null, else any of its code points.</summary>
    public static string Strip(string s, string? chars, bool left, bool right)
    {
        var points = CodePoints(s);
        var set = chars is null ? null : CodePoints(chars).ToHashSet();
        bool Strippable(int c) => set is null ? IsSpace(c) : set.Contains(c);
        int start = 0, end = points.Length;
        if (left)
            while (start < end && Strippable(points[start])) start++;
        if (right)
            while (end > start && Strippable(points[end - 1])) end--;
        return start == 0 && end == points.Length ? s : FromCodePoints(points[start..end]);
    }

    /// <summary>str.split(sep, maxsplit): runs of whitespace when <paramref name="sep"/> is null (no empty parts), else exact separators.</summary>
    public static List<object?> Split(string s, string? sep, long maxSplit)
    {
        var parts = new List<object?>();
        if (sep is null)
        {
            var points = CodePoints(s);
            var i = 0;
            while (true)
            {
                while (i < points.Length && IsSpace(points[i])) i++;
                if (i >= points.Length) break;
                if (maxSplit >= 0 && parts.Count == maxSplit)
                {
                    // Python keeps the remainder's trailing whitespace.
                    parts.Add(FromCodePoints(points[i..]));
                    break;
                }
                var start = i;
                while (i < points.Length && !IsSpace(points[i])) i++;
                parts.Add(FromCodePoints(points[start..i]));
            }
            return parts;
        }
        if (sep.Length == 0) throw new TemplateValueError("empty separator");
        var from = 0;
        while (maxSplit < 0 || parts.Count < maxSplit)
        {
            var at = s.IndexOf(sep, from, StringComparison.Ordinal);
            if (at < 0) break;
            parts.Add(s[from..at]);
            from = at + sep.Length;
        }
        parts.Add(s[from..]);
        return parts;
    }

    /// <summary>str.rsplit with a separator: splits from the right.</summary>
    public static List<object?> RSplit(string s, string? sep, long maxSplit)
    {
        if (maxSplit < 0) return Split(s, sep, maxSplit);
        if (sep is null) throw new TemplateValueError("rsplit(None, maxsplit) is not supported by this Jinja subset");
        if (sep.Length == 0) throw new TemplateValueError("empty separator");
        var parts = new List<object?>();
        var end = s.Length;
        while (parts.Count < maxSplit)
        {
            var at = end - sep.Length < 0 ? -1 : s.LastIndexOf(sep, end - 1, end, StringComparison.Ordinal);
            if (at < 0) break;
            parts.Add(s[(at + sep.Length)..end]);
            end = at;
        }
        parts.Add(s[..end]);
        parts.Reverse();
        return parts;
    }

    public static string Replace(string s, string old, string replacement, long count)
    {
        if (count == 0) return s;
        if (replacement.Length > old.Length)
        {
            // Refused before it is built: each replacement grows the string by the difference.
            long occurrences = 0;
            if (old.Length == 0) occurrences = Length(s) + 1;
            else for (var at = s.IndexOf(old, StringComparison.Ordinal); at >= 0; at = s.IndexOf(old, at + old.Length, StringComparison.Ordinal)) occurrences++;
            if (count >= 0) occurrences = Math.Min(occurrences, count);
            RenderLimits.CheckLength(s.Length + occurrences * (replacement.Length - old.Length));
        }
        if (old.Length == 0)
        {
            var points = CodePoints(s);
            var text = new StringBuilder();
            long done = 0;
            for (var i = 0; i <= points.Length; i++)
            {
                if (count < 0 || done < count)
                {
                    text.Append(replacement);
                    done++;
                }
                if (i < points.Length) text.Append(FromCodePoints([points[i]]));
            }
            return text.ToString();
        }
        if (count < 0) return s.Replace(old, replacement, StringComparison.Ordinal);
        var result = new StringBuilder();
        var from = 0;
        for (long n = 0; n < count; n++)
        {
            var at = s.IndexOf(old, from, StringComparison.Ordinal);
            if (at < 0) break;
            result.Append(s, from, at - from).Append(replacement);
            from = at + old.Length;
        }
        return result.Append(s, from, s.Length - from).ToString();
    }

    /// <summary>Python's ordering of strings: by code point (UTF-16 ordinal order differs above U+D7FF).</summary>
    public static int Compare(string a, string b)
    {
        if (!HasSurrogates(a) && !HasSurrogates(b)) return string.CompareOrdinal(a, b);
        var x = CodePoints(a);
        var y = CodePoints(b);
        for (var i = 0; i < Math.Min(x.Length, y.Length); i++)
            if (x[i] != y[i]) return x[i].CompareTo(y[i]);
        return x.Length.CompareTo(y.Length);
    }

    // Case mapping: .NET's invariant simple mapping; Python's full mapping differs only for a few characters (e.g. 'ß'.upper() is 'SS').
    public static string Upper(string s) => s.ToUpperInvariant();
    public static string Lower(string s) => s.ToLowerInvariant();

    /// <summary>str.capitalize: the first character title-cased, the rest lower-cased.</summary>
    public static string Capitalize(string s)
    {
        if (s.Length == 0) return s;
        var points = CodePoints(s);
        var first = FromCodePoints([points[0]]);
        return first.ToUpperInvariant() + Lower(FromCodePoints(points[1..]));
    }

    /// <summary>Jinja2's title filter: each word (after -, whitespace, ( { [ &lt;) upper-cased first, the rest lower.</summary>
    public static string JinjaTitle(string s)
    {
        var text = new StringBuilder();
        var atStart = true;
        foreach (var c in CodePoints(s))
        {
            var ch = FromCodePoints([c]);
            var boundary = c is '-' or '(' or '{' or '[' or '<' || IsSpace(c);
            if (boundary) text.Append(ch);
            else text.Append(atStart ? ch.ToUpperInvariant() : ch.ToLowerInvariant());
            atStart = boundary;
        }
        return text.ToString();
    }

    /// <summary>Python's repr of a str: single quotes unless the text has ' and no ", escapes for \\, the quote, \n \r \t and unprintables.</summary>
    public static string Repr(string s)
    {
        var quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        var text = new StringBuilder().Append(quote);
        foreach (var c in CodePoints(s))
        {
            switch (c)
            {
                case '\\': text.Append(@"\\"); continue;
                case '\n': text.Append(@"\n"); continue;
                case '\r': text.Append(@"\r"); continue;
                case '\t': text.Append(@"\t"); continue;
            }
            if (c == quote) text.Append('\\').Append(quote);
            else if (IsPrintable(c)) text.Append(FromCodePoints([c]));
            else if (c < 0x100) text.Append($"\\x{c:x2}");
            else if (c < 0x10000) text.Append($"\\u{c:x4}");
            else text.Append($"\\U{c:x8}");
        }
        return text.Append(quote).ToString();
    }

    private static bool IsPrintable(int c)
    {
        if (c == ' ') return true;
        if (c is >= 0xD800 and <= 0xDFFF) return false;
        var category = CharUnicodeInfo.GetUnicodeCategory(c);
        return category is not (UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate or UnicodeCategory.PrivateUse
            or UnicodeCategory.OtherNotAssigned or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator or UnicodeCategory.SpaceSeparator);
    }
}
