using System.Text;

namespace Popo.Engine.Verification;

/// <summary>An answer in canonical text form; <c>Percent</c> records a trailing percent mark that was removed.</summary>
internal readonly record struct NormalizedAnswer(string Text, bool Percent);

/// <summary>
/// Rewrites an answer into a canonical text form so that renderings of the same LaTeX compare equal:
/// math delimiters ($, \(, \[), \boxed wrappers, \left/\right, spacing commands and all whitespace go;
/// \dfrac/\tfrac become \frac, \cdot/\times become *, \frac12 becomes \frac{1}{2} and \sqrt2 \sqrt{2};
/// degree marks go; \text{}/\mbox{}/\mathrm{} around units after a number go (15\text{ cm}^2 -> 15),
/// and an answer that is only text keeps its text (\text{(B)} -> B); plain words after a number and a
/// space go too (18 dollars -> 18); a thousands-separated integer
/// loses its commas; a single-letter assignment x=5 or x\in[-2,7] keeps its right side; a trailing
/// percent mark is removed and reported. Every step is one linear scan.
/// </summary>
internal static class LatexNormalizer
{
    private static readonly string[] TextCommands =
        ["text", "textrm", "textbf", "textit", "textnormal", "textsf", "texttt", "mbox", "mathrm", "mathbf", "mathit", "mathsf", "mathtt", "operatorname"];
    private static readonly string[] DroppedCommands =
        ["left", "right", "big", "Big", "bigl", "bigr", "Bigl", "Bigr", "bigg", "Bigg", "biggl", "biggr", "quad", "qquad",
         "displaystyle", "textstyle", "limits", "boxed", "fbox", "mathbb"];

    public static NormalizedAnswer Normalize(string s)
    {
        var t = Tokens(PlainUnit(s));
        t = t.Replace("^{\\circ}", "").Replace("^\\circ", "").Replace("\\circ", "");
        t = Units(t);
        t = BraceArguments(t);
        t = StripOuterBraces(t);
        bool percent = false;
        if (t.EndsWith('%')) { percent = true; t = t.TrimEnd('%'); }
        if (t.Length > 1 && t[^1] == '.' && t[^2] != '.') t = t[..^1];
        if (t.Length > 1 && t[0] == '+' && (char.IsAsciiDigit(t[1]) || t[1] == '.' || t[1] == '\\')) t = t[1..];
        t = Assignment(t);
        t = Thousands(t);
        if (t.Length == 3 && t[0] == '(' && t[2] == ')' && char.IsAsciiLetter(t[1])) t = t[1].ToString();
        return new NormalizedAnswer(t, percent);
    }

    /// <summary>
    /// "18 dollars", "$2,050 total", "5.5 hours." -> the number: a number, whitespace, then only plain
    /// words. The whitespace matters: "2k" (a variable) keeps its letter.
    /// </summary>
    private static string PlainUnit(string s)
    {
        var t = s.AsSpan().Trim();
        int i = 0;
        if (i < t.Length && t[i] == '$') i++;
        if (i < t.Length && t[i] == '-') i++;
        int digits = i;
        while (i < t.Length && (char.IsAsciiDigit(t[i]) || t[i] == ',' || t[i] == '.')) i++;
        if (i == digits || !char.IsAsciiDigit(t[digits]) || i >= t.Length || !char.IsWhiteSpace(t[i])) return s;
        int numberEnd = i;
        while (i < t.Length && char.IsWhiteSpace(t[i])) i++;
        if (i >= t.Length || !char.IsAsciiLetter(t[i])) return s;
        for (int j = i; j < t.Length; j++)
            if (!(char.IsAsciiLetter(t[j]) || t[j] == ' ' || (t[j] == '.' && j == t.Length - 1))) return s;
        return t[..numberEnd].ToString();
    }

    /// <summary>One pass over the raw text: commands are canonicalised, whitespace and decorations dropped.</summary>
    private static string Tokens(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool lastWasLetterCommand = false;
        int i = 0;
        while (i < s.Length)
        {
            char c = s[i];
            if (c == '\\')
            {
                int j = i + 1;
                while (j < s.Length && char.IsAsciiLetter(s[j])) j++;
                if (j > i + 1)
                {
                    var name = s.Substring(i + 1, j - i - 1);
                    i = j;
                    if (name is "left" or "right" && i < s.Length && s[i] == '.') i++; // \left. is an invisible delimiter
                    if (Array.IndexOf(DroppedCommands, name) >= 0) { lastWasLetterCommand = false; continue; }
                    var mapped = name switch
                    {
                        "dfrac" or "tfrac" or "cfrac" => "\\frac",
                        "cdot" or "times" => "*",
                        "div" => "/",
                        "leq" or "le" => "\\le",
                        "geq" or "ge" => "\\ge",
                        "neq" or "ne" => "\\ne",
                        "degree" or "degrees" => "",
                        "dollar" => "",
                        "infinity" => "\\infty",
                        _ when Array.IndexOf(TextCommands, name) >= 0 => "\\text",
                        _ => "\\" + name,
                    };
                    sb.Append(mapped);
                    lastWasLetterCommand = mapped.Length > 1 && mapped[0] == '\\';
                    continue;
                }
                // \ followed by one symbol (or nothing)
                char d = j < s.Length ? s[j] : '\0';
                i = Math.Min(s.Length, j + 1);
                switch (d)
                {
                    case '\\': sb.Append("\\\\"); break;
                    case '{': sb.Append("\\{"); break;
                    case '}': sb.Append("\\}"); break;
                    case '%': sb.Append('%'); break;
                    case '#': case '&': case '_': sb.Append(d); break;
                    default: break; // \! \, \; \: \  \$ \( \) \[ \] and a lone trailing backslash carry no value
                }
                lastWasLetterCommand = false;
                continue;
            }
            i++;
            if (char.IsWhiteSpace(c) || char.IsControl(c))
            {
                // Keep "\pi r" from becoming the different command "\pir".
                if (lastWasLetterCommand && i < s.Length && char.IsAsciiLetter(s[i])) { sb.Append(' '); lastWasLetterCommand = false; }
                continue;
            }
            lastWasLetterCommand = false;
            switch (c)
            {
                case '$': case '~': case '°': break;
                case 'π': sb.Append("\\pi"); lastWasLetterCommand = true; break;
                case '∞': sb.Append("\\infty"); lastWasLetterCommand = true; break;
                case '√': sb.Append("\\sqrt"); lastWasLetterCommand = true; break;
                case '−': case '–': sb.Append('-'); break;
                case '×': case '·': sb.Append('*'); break;
                case '÷': sb.Append('/'); break;
                default: sb.Append(c); break;
            }
        }
        return sb.ToString();
    }

    /// <summary>
    /// \text{...} groups: after a number they are units and go (with a following ^2 or ^{3});
    /// when nothing but text remains, the text itself is the answer and is kept, unwrapped.
    /// </summary>
    private static string Units(string t)
    {
        if (!t.Contains("\\text", StringComparison.Ordinal)) return t;
        var without = new StringBuilder(t.Length);
        var unwrapped = new StringBuilder(t.Length);
        int i = 0;
        while (i < t.Length)
        {
            if (string.CompareOrdinal(t, i, "\\text{", 0, 6) == 0)
            {
                int close = MatchBrace(t, i + 5);
                if (close < 0) { without.Append(t, i, t.Length - i); unwrapped.Append(t, i, t.Length - i); break; }
                unwrapped.Append(t, i + 6, close - i - 6);
                i = close + 1;
                // a unit's exponent: ^2 or ^{2}
                if (i + 1 < t.Length && t[i] == '^' && char.IsAsciiDigit(t[i + 1])) i += 2;
                else if (i + 3 < t.Length && t[i] == '^' && t[i + 1] == '{' && char.IsAsciiDigit(t[i + 2]) && t[i + 3] == '}') i += 4;
                continue;
            }
            without.Append(t[i]);
            unwrapped.Append(t[i]);
            i++;
        }
        var rest = without.ToString();
        bool numeric = false;
        foreach (var ch in rest) if (char.IsAsciiDigit(ch)) { numeric = true; break; }
        return numeric ? rest : unwrapped.ToString().Replace(" ", "");
    }

    /// <summary>Index of the brace closing the one at <paramref name="open"/>, or -1 when unbalanced.</summary>
    internal static int MatchBrace(string t, int open)
    {
        int depth = 0;
        for (int i = open; i < t.Length; i++)
        {
            if (t[i] == '\\' && i + 1 < t.Length && (t[i + 1] == '{' || t[i + 1] == '}')) { i++; continue; }
            if (t[i] == '{') depth++;
            else if (t[i] == '}' && --depth == 0) return i;
        }
        return -1;
    }

    /// <summary>\frac12 -> \frac{1}{2}, \frac{270}7 -> \frac{270}{7}, \sqrt2 -> \sqrt{2}: one-character arguments get braces.</summary>
    private static string BraceArguments(string t)
    {
        if (!t.Contains("\\frac", StringComparison.Ordinal) && !t.Contains("\\sqrt", StringComparison.Ordinal)) return t;
        var sb = new StringBuilder(t.Length + 8);
        // For each open brace, whether a \frac second argument is due right after its close.
        var pendingSecond = new Stack<bool>();
        int i = 0;
        while (i < t.Length)
        {
            if (string.CompareOrdinal(t, i, "\\frac", 0, 5) == 0 && !(i + 5 < t.Length && char.IsAsciiLetter(t[i + 5])))
            {
                sb.Append("\\frac");
                i += 5;
                if (i < t.Length && t[i] == '{') { pendingSecond.Push(true); sb.Append('{'); i++; continue; }
                if (i < t.Length && IsSimpleArgument(t[i])) { sb.Append('{').Append(t[i]).Append('}'); i++; i = SecondArgument(t, i, sb, pendingSecond); }
                continue;
            }
            if (string.CompareOrdinal(t, i, "\\sqrt", 0, 5) == 0 && !(i + 5 < t.Length && char.IsAsciiLetter(t[i + 5])))
            {
                sb.Append("\\sqrt");
                i += 5;
                if (i < t.Length && t[i] == '[')
                {
                    int close = t.IndexOf(']', i);
                    if (close < 0) continue;
                    sb.Append(t, i, close - i + 1);
                    i = close + 1;
                }
                if (i < t.Length && IsSimpleArgument(t[i])) { sb.Append('{').Append(t[i]).Append('}'); i++; }
                continue;
            }
            char c = t[i];
            if (c == '\\' && i + 1 < t.Length && (t[i + 1] == '{' || t[i + 1] == '}')) { sb.Append(c).Append(t[i + 1]); i += 2; continue; }
            if (c == '{') { pendingSecond.Push(false); sb.Append(c); i++; continue; }
            if (c == '}')
            {
                sb.Append(c);
                i++;
                if (pendingSecond.Count > 0 && pendingSecond.Pop()) i = SecondArgument(t, i, sb, pendingSecond);
                continue;
            }
            sb.Append(c);
            i++;
        }
        return sb.ToString();
    }

    private static bool IsSimpleArgument(char c) => char.IsAsciiDigit(c) || char.IsAsciiLetter(c);

    private static int SecondArgument(string t, int i, StringBuilder sb, Stack<bool> pendingSecond)
    {
        if (i < t.Length && t[i] == '{') { pendingSecond.Push(false); sb.Append('{'); return i + 1; }
        if (i < t.Length && IsSimpleArgument(t[i])) { sb.Append('{').Append(t[i]).Append('}'); return i + 1; }
        return i;
    }

    /// <summary>{x} -> x when one brace pair wraps the whole answer.</summary>
    private static string StripOuterBraces(string t)
    {
        for (int guard = 0; guard < 8 && t.Length >= 2 && t[0] == '{' && MatchBrace(t, 0) == t.Length - 1; guard++)
            t = t[1..^1];
        return t;
    }

    /// <summary>x=5 -> 5 and x\in[-2,7] -> [-2,7] for one ASCII letter on the left and no further '='.</summary>
    private static string Assignment(string t)
    {
        if (t.Length >= 3 && char.IsAsciiLetter(t[0]) && t[1] == '=' && t.IndexOf('=', 2) < 0) return t[2..];
        if (t.Length >= 5 && char.IsAsciiLetter(t[0]) && string.CompareOrdinal(t, 1, "\\in", 0, 3) == 0 &&
            !(char.IsAsciiLetter(t[4]))) return t[4..];
        return t;
    }

    /// <summary>-1,234,567.5 -> -1234567.5 when every group after the first has exactly three digits.</summary>
    private static string Thousands(string t)
    {
        int i = 0;
        if (i < t.Length && t[i] == '-') i++;
        int lead = 0;
        while (i < t.Length && char.IsAsciiDigit(t[i])) { i++; lead++; }
        if (lead is < 1 or > 3 || i >= t.Length || t[i] != ',') return t;
        while (i < t.Length && t[i] == ',')
        {
            int g = 0;
            i++;
            while (i < t.Length && char.IsAsciiDigit(t[i])) { i++; g++; }
            if (g != 3) return t;
        }
        if (i < t.Length && t[i] == '.')
        {
            i++;
            while (i < t.Length && char.IsAsciiDigit(t[i])) i++;
        }
        return i == t.Length ? t.Replace(",", "") : t;
    }
}
