using System.Text;
using System.Text.RegularExpressions;

namespace Popo.MathVerify;

/// <summary>
/// Whether two final answers denote the same thing (docs/design.md §7; the rules are listed in
/// src/Popo.MathVerify/README.md). Equal canonical text is equal; otherwise both answers are parsed
/// (<see cref="LatexParser"/>) into trees and compared by value (<see cref="MathCanon"/>): exact rationals
/// where the answer is rational, else complex float64 at fixed points of the free variables within a relative
/// <see cref="MathCanon.Tolerance"/>; sets and lists in any order, tuples, intervals and matrices in order.
/// An answer that does not parse equals only the same text. Never throws; answers longer than
/// <see cref="MaxLength"/> characters are compared as exact (trimmed) text only, so the time is bounded.
/// </summary>
internal static class Equivalence
{
    /// <summary>Longer answers are compared as canonical text only, to keep the time bounded.</summary>
    public const int MaxLength = 4096;

    public static bool Equal(string? a, string? b) => Equal(a, b, out _);

    /// <summary><see cref="Equal(string?, string?)"/>, with the unexpected exception that made it false, if one did.</summary>
    public static bool Equal(string? a, string? b, out Exception? error)
    {
        error = null;
        if (a is null || b is null) return false;
        try
        {
            if (a.Length > MaxLength || b.Length > MaxLength)
                return a.AsSpan().Trim().SequenceEqual(b.AsSpan().Trim()) && !a.AsSpan().Trim().IsEmpty;
            var ta = Canonical(a);
            var tb = Canonical(b);
            if (ta.Length == 0 || tb.Length == 0) return false;
            if (ta == tb) return true;
            var ra = Readings(a);
            var rb = Readings(b);
            if (ra.Count == 1 && rb.Count == 1)
            {
                var ca = Compile(ra[0]);
                var cb = Compile(rb[0]);
                return ca is not null && cb is not null && MathCanon.Same(ca, cb);
            }
            var cas = ra.Select(Compile).Where(c => c is not null).ToArray();
            var cbs = rb.Select(Compile).Where(c => c is not null).ToArray();
            foreach (var ca in cas)
                foreach (var cb in cbs)
                    if (MathCanon.Same(ca!, cb!)) return true;
            return false;
        }
        catch (Exception e)
        {
            // The verifier is total: a bug in a corner of parsing must cost a reward, not a run; the caller counts it.
            error = e;
            return false;
        }
    }

    /// <summary>The comparable form of an answer, or null when it does not parse.</summary>
    internal static Canon? Compile(string answer)
    {
        if (answer.Length > MaxLength) return null;
        try
        {
            return MathCanon.Build(LatexParser.Parse(Prepare(answer)));
        }
        catch (FormatException) { return null; }
        catch (ArithmeticException) { return null; }
        catch (KeyNotFoundException) { return null; }
        catch (InvalidOperationException) { return null; }
    }

    // a leading group never starts with 0: 0,111 is no thousands number
    private static readonly Regex Thousands = new(@"^-?[1-9]\d{0,2}(,\d{3})+(\.\d+)?$", RegexOptions.CultureInvariant);
    private static readonly Regex SpaceThousands = new(@"^-?[1-9]\d{0,2}( \d{3})+(\.\d+)?$", RegexOptions.CultureInvariant);
    private static readonly Regex PlainUnit = new(@"^(\\\$|\$)?(-?[\d.,]*\d)\s+[A-Za-z][A-Za-z ]*\.?$", RegexOptions.CultureInvariant);
    /// <summary>A number, then a \text{} or \mbox{} of words only: "32,348 \text{ dollars}".</summary>
    private static readonly Regex TextUnit = new(@"^(.*\d)\s*\\(?:text|mbox|textrm|mathrm)\s*\{\s*[A-Za-z][A-Za-z ]*\}\.?$", RegexOptions.CultureInvariant);
    /// <summary>A number glued to a length, area or volume unit written with a superscript: 1,000.99m², 5 cm³.</summary>
    private static readonly Regex SuperscriptUnit = new(@"^(-?[\d.,]*\d)\s*(?:mm|cm|dm|km|m|in|ft|yd|mi)[²³]\.?$", RegexOptions.CultureInvariant);
    /// <summary>
    /// d,dd, dddd,dd or 0,ddd: a decimal comma, read when no thousands reading is possible (the part after the
    /// comma is not three digits, or the part before is over three or starts with 0) and the part after has two
    /// digits or more: a single digit (-2,1; 1,2) is far more often a list of two answers.
    /// </summary>
    private static readonly Regex DecimalComma = new(@"^-?(\d+),(\d+)$", RegexOptions.CultureInvariant);
    private static readonly Regex Words = new(@"^[A-Za-z][A-Za-z ]*[A-Za-z]$", RegexOptions.CultureInvariant);

    /// <summary>
    /// Whole-answer rewrites the grammar cannot see: "18 dollars" is 18 (a number, a space, then only
    /// words); 1,234,567 is one number (every group after the first has three digits); "odd" is a word.
    /// </summary>
    private static string Prepare(string answer)
    {
        var t = answer.Trim();
        if (t.EndsWith('.')) t = t[..^1].TrimEnd();
        if (t.Contains('\\') && TextUnit.Match(t) is { Success: true } text) t = text.Groups[1].Value.TrimEnd();
        var unit = PlainUnit.Match(t);
        if (unit.Success) t = unit.Groups[2].Value;
        if (t.Length > 0 && t[^1] is '²' or '³' && SuperscriptUnit.Match(t) is { Success: true } sup) t = sup.Groups[1].Value;
        var bare = t.Replace("\\$", "").Replace("$", "").Trim().Trim('€', '£', '¥').Trim();
        if (Thousands.IsMatch(bare)) return bare.Replace(",", "");
        if (SpaceThousands.IsMatch(bare)) return bare.Replace(" ", "");
        if (Words.IsMatch(t) && !LatexParser.IsFunction(t)) return "\\text{" + t + "}";
        return t;
    }

    /// <summary>
    /// The ways an answer reads, the answer itself first; usually just it. A text with \boxed{} (a gold
    /// written as a solution) reads as its boxes joined into a list. Doubled backslashes (an escaped string:
    /// \\frac) are single. A chain of equalities a = b = ... = z reads also as a = z when a is a name, else as
    /// z (the chain's result is its last side; x \approx 11 is x = 11). d,dd reads also as the decimal d.dd
    /// when no thousands reading is possible (see <see cref="DecimalComma"/>).
    /// </summary>
    internal static List<string> Readings(string answer)
    {
        var t = answer;
        if (t.Contains("\\\\", StringComparison.Ordinal) && !t.Contains("\\begin", StringComparison.Ordinal) && DoubledCommand.IsMatch(t))
            t = t.Replace("\\\\", "\\");
        if ((t.Contains("\\boxed", StringComparison.Ordinal) || t.Contains("\\fbox", StringComparison.Ordinal)) && AnswerExtractor.AllBoxes(t) is { } boxes)
            t = boxes;
        var list = new List<string>(2) { t };
        if (t.Contains('=') || t.Contains('≈') || t.Contains("\\approx", StringComparison.Ordinal))
            if (LastSide(t) is { } last && last != t) list.Add(last);
        if (t.Contains(',') && DecimalComma.Match(t.Trim().Trim('$').Trim().Trim('€', '£', '¥').Trim()) is { Success: true } dc
            && dc.Groups[2].Length >= 2 && (dc.Groups[2].Length != 3 || dc.Groups[1].Length > 3 || dc.Groups[1].Value[0] == '0'))
            list.Add(dc.Value.Replace(',', '.'));
        return list;
    }

    private static readonly Regex DoubledCommand = new(@"\\\\[A-Za-z]", RegexOptions.CultureInvariant);

    /// <summary>
    /// The sides of a top-level chain of equalities (two or more "=" / \approx, or one \approx), as "first = v"
    /// when the first side is a plain name (letters, subscripts, parentheses), else "v"; null for no chain or a
    /// list (a top-level comma or semicolon). v is the last side, or, when an "=" comes before an \approx, the
    /// side after the last such "=": what follows \approx approximates it (x = 1/3 \approx 0.3 is x = 1/3).
    /// </summary>
    private static string? LastSide(string t)
    {
        var cuts = new List<(int At, int Length, bool Approx)>();
        int depth = 0;
        bool approx = false;
        for (int i = 0; i < t.Length; i++)
        {
            char c = t[i];
            if (c == '\\')
            {
                if (string.CompareOrdinal(t, i, "\\approx", 0, 7) == 0 && !(i + 7 < t.Length && char.IsAsciiLetter(t[i + 7])))
                {
                    if (depth == 0) { cuts.Add((i, 7, true)); approx = true; }
                    i += 6;
                }
                else i++; // an escaped character (\{, \}) is not a bracket
                continue;
            }
            if (c == '≈' && depth == 0) { cuts.Add((i, 1, true)); approx = true; continue; }
            if (c is '{' or '(' or '[') depth++;
            else if (c is '}' or ')' or ']') depth--;
            else if (depth == 0 && c is ',' or ';') return null;
            else if (depth == 0 && c == '=' && !(i > 0 && t[i - 1] is '<' or '>' or '!' or '=') && !(i + 1 < t.Length && t[i + 1] is '<' or '>' or '='))
                cuts.Add((i, 1, false));
        }
        if (depth != 0 || cuts.Count == 0 || (cuts.Count == 1 && !approx)) return null;
        var first = t[..cuts[0].At].Trim();
        int exact = cuts.FindLastIndex(c => !c.Approx);
        int approxAfter = exact < 0 ? -1 : cuts.FindIndex(exact + 1, c => c.Approx);
        var last = approxAfter < 0
            ? t[(cuts[^1].At + cuts[^1].Length)..].Trim()
            : t[(cuts[exact].At + 1)..cuts[approxAfter].At].Trim();
        if (last.Length == 0) return null;
        return first.Length > 0 && PlainName.IsMatch(first) ? first + " = " + last : last;
    }

    private static readonly Regex PlainName = new(@"^(\\?[A-Za-z]+(_\{?[A-Za-z0-9]+\}?)?)(\([A-Za-z0-9, ]*\))?$", RegexOptions.CultureInvariant);

    /// <summary>
    /// Text with everything that never changes a value removed: whitespace, math delimiters, \left/\right,
    /// spacing commands, a final period; \dfrac/\tfrac spelled \frac.
    /// </summary>
    internal static string Canonical(string s)
    {
        var sb = new StringBuilder(Math.Min(s.Length, 1 << 16));
        int i = 0;
        while (i < s.Length)
        {
            char c = s[i];
            if (char.IsWhiteSpace(c) || c == '$')
            {
                // "7 0" is not 70: a space between two digits stays
                int k = i;
                while (k < s.Length && (char.IsWhiteSpace(s[k]) || s[k] == '$')) k++;
                if (sb.Length > 0 && char.IsAsciiDigit(sb[^1]) && k < s.Length && char.IsAsciiDigit(s[k])) sb.Append(' ');
                i = k;
                continue;
            }
            if (c == '\\' && i + 1 < s.Length)
            {
                char d = s[i + 1];
                if (d is ',' or '!' or ';' or ':' or ' ' or '(' or ')') { i += 2; continue; }
                if (At(s, i, "\\left") && !(i + 5 < s.Length && char.IsAsciiLetter(s[i + 5]) && !At(s, i, "\\leftarrow"))) { i += 5; continue; }
                if (At(s, i, "\\right") && !(i + 6 < s.Length && char.IsAsciiLetter(s[i + 6]))) { i += 6; continue; }
                if (At(s, i, "\\dfrac") || At(s, i, "\\tfrac")) { sb.Append("\\frac"); i += 6; continue; }
            }
            sb.Append(c);
            i++;
        }
        while (sb.Length > 0 && sb[^1] == '.') sb.Length--;
        return sb.ToString();
    }

    private static bool At(string s, int i, string token) => string.CompareOrdinal(s, i, token, 0, token.Length) == 0;
}
