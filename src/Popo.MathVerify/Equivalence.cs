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
public static class Equivalence
{
    /// <summary>Longer answers are compared as canonical text only, to keep the time bounded.</summary>
    public const int MaxLength = 4096;

    public static bool Equal(string? a, string? b)
    {
        if (a is null || b is null) return false;
        try
        {
            if (a.Length > MaxLength || b.Length > MaxLength)
                return a.AsSpan().Trim().SequenceEqual(b.AsSpan().Trim()) && !a.AsSpan().Trim().IsEmpty;
            var ta = Canonical(a);
            var tb = Canonical(b);
            if (ta.Length == 0 || tb.Length == 0) return false;
            if (ta == tb) return true;
            var ca = Compile(a);
            var cb = Compile(b);
            return ca is not null && cb is not null && MathCanon.Same(ca, cb);
        }
        catch (Exception)
        {
            // The verifier is total: a bug in a corner of parsing must cost a reward, not a run.
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

    private static readonly Regex Thousands = new(@"^-?\d{1,3}(,\d{3})+(\.\d+)?$", RegexOptions.CultureInvariant);
    private static readonly Regex PlainUnit = new(@"^(\\\$|\$)?(-?[\d.,]*\d)\s+[A-Za-z][A-Za-z ]*\.?$", RegexOptions.CultureInvariant);
    private static readonly Regex Words = new(@"^[A-Za-z][A-Za-z ]*[A-Za-z]$", RegexOptions.CultureInvariant);

    /// <summary>
    /// Whole-answer rewrites the grammar cannot see: "18 dollars" is 18 (a number, a space, then only
    /// words); 1,234,567 is one number (every group after the first has three digits); "odd" is a word.
    /// </summary>
    private static string Prepare(string answer)
    {
        var t = answer.Trim();
        if (t.EndsWith('.')) t = t[..^1].TrimEnd();
        var unit = PlainUnit.Match(t);
        if (unit.Success) t = unit.Groups[2].Value;
        var bare = t.Replace("\\$", "").Replace("$", "").Trim();
        if (Thousands.IsMatch(bare)) return bare.Replace(",", "");
        if (Words.IsMatch(t) && !LatexParser.IsFunction(t)) return "\\text{" + t + "}";
        return t;
    }

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
