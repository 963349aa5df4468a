namespace Popo.Engine.Verification;

/// <summary>
/// Whether two final answers denote the same thing (DESIGN §7). Both sides are normalised
/// (<see cref="LatexNormalizer"/>); equal canonical text is equal. Otherwise, by structure and value:
/// <list type="bullet">
/// <item>numbers by exact value: integers, signed decimals, thousands separators, \frac/\dfrac/\tfrac,
///   a/b, mixed numbers, powers with small exponents; closed forms with roots or pi by float64 value
///   (relative 1e-10), and never equal to an exact number (a decimal approximation is not the answer);</item>
/// <item>percent: x% means x/100, so 50\% = 0.5 = 1/2; because datasets state percent answers without
///   the mark (GSM8K writes 25 for "what percent"), x% also matches the bare number x;</item>
/// <item>degree marks and \text{} units are ignored; text-only answers compare as text, whole words
///   without regard to case;</item>
/// <item>tuples (a,b) and intervals (a,b] item by item with the same brackets; sets \{a,b\} and bare
///   lists a, b in any order; unions A \cup B part by part; pmatrix/bmatrix entry by entry.</item>
/// </list>
/// Never throws; answers longer than <see cref="MaxLength"/> characters compare as exact text only, and
/// structures needing more than <see cref="MaxComparisons"/> item comparisons are not equal.
/// </summary>
public static class Equivalence
{
    /// <summary>Longer answers are compared as trimmed text, to keep the time bounded.</summary>
    public const int MaxLength = 4096;
    private const int MaxItems = 64;
    private const int MaxStructureDepth = 8;

    /// <summary>
    /// Comparisons allowed per call: nested sets compared in any order could otherwise take
    /// (items x items)^depth steps. Running out means "not shown equal": the answer is wrong.
    /// </summary>
    public const int MaxComparisons = 1000;

    private sealed class OutOfBudget : Exception { }

    private sealed class Budget
    {
        private int _left = MaxComparisons;
        public void Spend() { if (--_left < 0) throw new OutOfBudget(); }
    }

    public static bool Equal(string? a, string? b)
    {
        if (a is null || b is null) return false;
        try
        {
            if (a.Length > MaxLength || b.Length > MaxLength)
                return a.AsSpan().Trim().SequenceEqual(b.AsSpan().Trim()) && a.AsSpan().Trim().Length > 0;
            return Same(LatexNormalizer.Normalize(a), LatexNormalizer.Normalize(b), 0, new Budget());
        }
        catch (OutOfBudget)
        {
            return false;
        }
        catch (Exception)
        {
            // The verifier is total: a bug in a corner of normalisation must cost a reward, not a run.
            return false;
        }
    }

    private static bool Same(NormalizedAnswer a, NormalizedAnswer b, int depth, Budget budget)
    {
        budget.Spend();
        string x = a.Text, y = b.Text;
        if (x.Length == 0 || y.Length == 0) return false;
        if (x == y) return true;
        if (IsWord(x) && IsWord(y)) return string.Equals(x, y, StringComparison.OrdinalIgnoreCase);
        if (depth >= MaxStructureDepth) return false;

        var ua = Split(x, "\\cup");
        var ub = Split(y, "\\cup");
        if (ua.Count > 1 || ub.Count > 1) return ua.Count == ub.Count && Pairwise(ua, ub, depth, budget);

        var ma = Matrix(x);
        var mb = Matrix(y);
        if (ma is not null || mb is not null)
            return ma is not null && mb is not null && ma.Count == mb.Count &&
                   ma.Zip(mb).All(rows => rows.First.Count == rows.Second.Count && Pairwise(rows.First, rows.Second, depth, budget));

        var ba = Bracketed(x);
        var bb = Bracketed(y);
        if (ba is not null || bb is not null)
        {
            // a bare list a,b is not the tuple or interval (a,b): the structure must agree
            if (ba is null || bb is null) return false;
            var (p, q) = (ba.Value, bb.Value);
            if (p.Open != q.Open || p.Close != q.Close || p.Items.Count != q.Items.Count) return false;
            return p.Open == "\\{" ? AnyOrder(p.Items, q.Items, depth, budget) : Pairwise(p.Items, q.Items, depth, budget);
        }

        var la = Split(x, ",");
        var lb = Split(y, ",");
        if (la.Count > 1 || lb.Count > 1) return la.Count == lb.Count && AnyOrder(la, lb, depth, budget);

        return SameValue(a, b);
    }

    private static bool SameValue(NormalizedAnswer a, NormalizedAnswer b)
    {
        if (!ValueParser.TryParse(a.Text, out var va) || !ValueParser.TryParse(b.Text, out var vb)) return false;
        if (a.Percent == b.Percent) return va.SameAs(vb);
        var (p, q) = a.Percent ? (va, vb) : (vb, va);
        return p.DividedByHundred().SameAs(q) || p.SameAs(q);
    }

    private static bool IsWord(string s)
    {
        if (s.Length < 2) return false;
        foreach (var c in s) if (!char.IsLetter(c)) return false;
        return true;
    }

    private static bool Pairwise(List<string> a, List<string> b, int depth, Budget budget)
    {
        for (int i = 0; i < a.Count; i++)
            if (!Same(LatexNormalizer.Normalize(a[i]), LatexNormalizer.Normalize(b[i]), depth + 1, budget)) return false;
        return true;
    }

    /// <summary>Multiset equality by greedy matching (items are few: at most MaxItems).</summary>
    private static bool AnyOrder(List<string> a, List<string> b, int depth, Budget budget)
    {
        if (a.Count != b.Count) return false;
        var na = a.Select(LatexNormalizer.Normalize).ToList();
        var nb = b.Select(LatexNormalizer.Normalize).ToList();
        var used = new bool[nb.Count];
        foreach (var item in na)
        {
            int k = -1;
            for (int j = 0; j < nb.Count && k < 0; j++)
                if (!used[j] && Same(item, nb[j], depth + 1, budget)) k = j;
            if (k < 0) return false;
            used[k] = true;
        }
        return true;
    }

    /// <summary>Top-level pieces of s separated by sep (outside (), [], {}); one piece when there is no separator.</summary>
    private static List<string> Split(string s, string sep)
    {
        var parts = new List<string>();
        int depth = 0, start = 0;
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c == '\\' && i + 1 < s.Length && (s[i + 1] == '{' || s[i + 1] == '}'))
            {
                depth += s[i + 1] == '{' ? 1 : -1;
                i++;
                continue;
            }
            if (c is '(' or '[' or '{') depth++;
            else if (c is ')' or ']' or '}') depth--;
            else if (depth == 0 && string.CompareOrdinal(s, i, sep, 0, sep.Length) == 0)
            {
                parts.Add(s[start..i]);
                start = i + sep.Length;
                i = start - 1;
                if (parts.Count > MaxItems) return [s];
            }
        }
        parts.Add(s[start..]);
        return parts;
    }

    private readonly record struct Bracket(string Open, string Close, List<string> Items);

    /// <summary>(a,b), [a,b), \{a,b\} ... when one bracket pair wraps the whole text and holds a comma (sets: any).</summary>
    private static Bracket? Bracketed(string s)
    {
        string open, close;
        int innerStart;
        if (s.StartsWith("\\{", StringComparison.Ordinal)) { open = "\\{"; innerStart = 2; }
        else if (s.Length > 0 && s[0] is '(' or '[') { open = s[0].ToString(); innerStart = 1; }
        else return null;
        if (s.EndsWith("\\}", StringComparison.Ordinal) && open == "\\{") close = "\\}";
        else if (s.Length > 1 && s[^1] is ')' or ']' && open != "\\{") close = s[^1].ToString();
        else return null;
        var inner = s[innerStart..^close.Length];
        // the outer pair must wrap everything: depth never drops below zero inside
        int depth = 0;
        for (int i = 0; i < inner.Length; i++)
        {
            char c = inner[i];
            if (c == '\\' && i + 1 < inner.Length && (inner[i + 1] == '{' || inner[i + 1] == '}')) { depth += inner[i + 1] == '{' ? 1 : -1; i++; }
            else if (c is '(' or '[' or '{') depth++;
            else if (c is ')' or ']' or '}') depth--;
            if (depth < 0) return null;
        }
        if (depth != 0) return null;
        var items = Split(inner, ",");
        if (items.Count < 2 && open != "\\{") return null;
        return new Bracket(open, close, items);
    }

    /// <summary>Rows of \begin{pmatrix}...\end{pmatrix} (or bmatrix), each a list of cells; null when s is not one.</summary>
    private static List<List<string>>? Matrix(string s)
    {
        foreach (var kind in new[] { "pmatrix", "bmatrix" })
        {
            string begin = "\\begin{" + kind + "}", end = "\\end{" + kind + "}";
            if (s.Length < begin.Length + end.Length || !s.StartsWith(begin, StringComparison.Ordinal) || !s.EndsWith(end, StringComparison.Ordinal)) continue;
            var rows = s[begin.Length..^end.Length].Split("\\\\");
            return rows.Length > MaxItems ? null : rows.Select(r => r.Split('&').ToList()).ToList();
        }
        return null;
    }
}
