namespace Popo.Engine.Verification;

/// <summary>
/// Finds the final answer in a completion, in the order of DESIGN §7: the last \boxed{...} or
/// \fbox{...} (nested braces; also "\boxed 5" when that is the last box), else the last &lt;answer&gt;...&lt;/answer&gt;,
/// else the last GSM8K-style "#### N" (rest of that line), else a closing "the answer is X" (rest of
/// that line, sentence period and math delimiters removed), else the final number in the text.
/// Returns null when there is none or the marked answer is empty: such a completion is wrong.
/// Linear time: one pass matches all braces, every other search is a single scan.
/// </summary>
public static class AnswerExtractor
{
    /// <summary>Longer completions are read from their last this-many characters only.</summary>
    public const int MaxInputLength = 4 * 1024 * 1024;

    /// <summary>The final-number fallback reads at most this many characters back (a longer run is noise).</summary>
    public const int MaxNumberLength = 1000;

    public static string? Extract(string? completion) => Find(completion, finalNumber: true);

    /// <summary>
    /// Only an explicitly marked answer (box, tags, "####", "the answer is"), without the final-number
    /// fallback: for tasks whose answers are not numbers (a countdown expression).
    /// </summary>
    public static string? ExtractMarked(string? completion) => Find(completion, finalNumber: false);

    private static string? Find(string? completion, bool finalNumber)
    {
        if (string.IsNullOrEmpty(completion)) return null;
        try
        {
            var s = completion.Length > MaxInputLength ? completion[^MaxInputLength..] : completion;
            // "" from a marker means: the marker is there but holds no answer; do not look further.
            var answer = Boxed(s) ?? Tagged(s) ?? Hashes(s) ?? AnswerIs(s) ?? (finalNumber ? LastNumber(s) : null);
            return string.IsNullOrEmpty(answer) ? null : answer;
        }
        catch (Exception)
        {
            return null;
        }
    }

    private static string? NonEmpty(string? s)
    {
        var t = s?.Trim();
        return string.IsNullOrEmpty(t) ? null : t;
    }

    /// <summary>
    /// Content of the last \boxed{ / \fbox{ whose brace closes. Returns "" (not null) when a box exists
    /// but its content is empty or never closes, so the extraction stops there: the answer is missing.
    /// A brace preceded by a backslash is escaped (\{ \}) and does not count.
    /// </summary>
    private static string? Boxed(string s)
    {
        int b = s.LastIndexOf("\\boxed", StringComparison.Ordinal);
        int f = s.LastIndexOf("\\fbox", StringComparison.Ordinal);
        if (b < 0 && f < 0) return null;
        // The last box name decides when it is the brace-less form "\boxed 5".
        if (SpaceForm(s, Math.Max(b, f)) is { } token) return token;
        int first = FirstBox(s);
        // D(i) = unescaped '{' minus '}' in s[first..i). The brace at i closes iff D comes back to D(i)
        // after it: iff min over j > i of D(j) <= D(i). One backward pass keeps D and that minimum and
        // tests each box brace, so the search is linear however many boxes never close.
        var span = s.AsSpan(first);
        int depth = span.Count('{') - span.Count('}') - span.Count("\\{") + span.Count("\\}");
        int at = LastClosingBox(s, first, depth);
        return at < 0 ? "" : NonEmpty(s[(at + 1)..Close(s, at)]) ?? "";
    }

    /// <summary>The backward pass of <see cref="Boxed"/>: position of the last box brace that closes, or -1.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static int LastClosingBox(string s, int first, int depth)
    {
        int minAfter = depth;
        var span = s.AsSpan();
        int end = s.Length; // search s[first..end)
        while (end > first)
        {
            // braces often come in runs: look at the next character before a vectorised search
            int i = s[end - 1] is '{' or '}' ? end - 1 : first + span[first..end].LastIndexOfAny('{', '}');
            if (i < first) break;
            end = i;
            if (i > 0 && s[i - 1] == '\\') continue;
            if (s[i] == '}') depth++;
            else
            {
                depth--;
                if (minAfter <= depth && IsBoxBrace(s, i)) return i;
            }
            if (depth < minAfter) minAfter = depth;
        }
        return -1;
    }

    private static int FirstBox(string s)
    {
        int b = s.IndexOf("\\boxed", StringComparison.Ordinal), f = s.IndexOf("\\fbox", StringComparison.Ordinal);
        return b < 0 ? f : f < 0 ? b : Math.Min(b, f);
    }

    private static bool At(string s, int i, string token) => i >= 0 && string.CompareOrdinal(s, i, token, 0, token.Length) == 0;

    private static int Delta(string s, int i) =>
        i > 0 && s[i - 1] == '\\' ? 0 : s[i] == '{' ? 1 : s[i] == '}' ? -1 : 0;

    /// <summary>Whether the brace at i opens a box: "\boxed" or "\fbox", then optional spaces, then it.</summary>
    private static bool IsBoxBrace(string s, int i)
    {
        int j = i - 1;
        while (j >= 0 && s[j] == ' ') j--;
        if (j < 0 || (s[j] != 'd' && s[j] != 'x')) return false;
        return At(s, j - 5, "\\boxed") || At(s, j - 4, "\\fbox");
    }

    /// <summary>"\boxed 5": the box name at i, spaces, then a token without braces; null for other text.</summary>
    private static string? SpaceForm(string s, int i)
    {
        int name = At(s, i, "\\boxed") ? 6 : 5;
        int open = i + name;
        while (open < s.Length && s[open] == ' ') open++;
        if (open == i + name || open >= s.Length || s[open] == '{') return null;
        int e = open;
        while (e < s.Length && !char.IsWhiteSpace(s[e]) && s[e] != '$') e++;
        return s[open..e];
    }

    /// <summary>Index of the brace closing the box brace at open (known to close).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static int Close(string s, int open)
    {
        int depth = 0;
        var span = s.AsSpan();
        for (int i = open; i < s.Length; i++)
        {
            if (s[i] is not ('{' or '}'))
            {
                int k = span[i..].IndexOfAny('{', '}');
                if (k < 0) break;
                i += k;
            }
            if (i > 0 && s[i - 1] == '\\') continue;
            depth += s[i] == '{' ? 1 : -1;
            if (depth == 0) return i;
        }
        return s.Length; // unreachable: the caller has checked that it closes
    }

    private static string? Tagged(string s)
    {
        int end = s.LastIndexOf("</answer>", StringComparison.Ordinal);
        if (end < 0) return null;
        int start = end > 0 ? s.LastIndexOf("<answer>", end - 1, StringComparison.Ordinal) : -1;
        if (start < 0) return null;
        return NonEmpty(s[(start + 8)..end]) ?? "";
    }

    private static string? Hashes(string s)
    {
        int at = s.LastIndexOf("####", StringComparison.Ordinal);
        if (at < 0) return null;
        int from = at + 4;
        while (from < s.Length && s[from] == '#') from++;
        int eol = s.IndexOf('\n', from);
        var rest = eol < 0 ? s[from..] : s[from..eol];
        return NonEmpty(rest) ?? "";
    }

    private static string? AnswerIs(string s)
    {
        // "answer is" or "Answer is" (an ordinal search: case-insensitive search is far slower on long text)
        int at = s.LastIndexOf("nswer is", StringComparison.Ordinal);
        while (at > 0 && s[at - 1] is not ('a' or 'A')) at = s.LastIndexOf("nswer is", at - 1, StringComparison.Ordinal);
        if (at <= 0) return null;
        int from = at + 8;
        int eol = s.IndexOf('\n', from);
        var rest = (eol < 0 ? s[from..] : s[from..eol]).Trim();
        rest = rest.TrimStart(':').Trim();
        // a sentence period ends the answer ("... is 42." / "is $x=3$. So ...") but a decimal point does not
        for (int i = 0; i < rest.Length; i++)
            if (rest[i] == '.' && (i + 1 == rest.Length || rest[i + 1] == ' ') && !(i > 0 && rest[i - 1] == '\\'))
            {
                rest = rest[..i];
                break;
            }
        rest = rest.Trim().Trim('*').Trim().Trim('$').Trim(); // markdown bold, then math delimiters
        if (rest.StartsWith("\\(") && rest.EndsWith("\\)") && rest.Length >= 4) rest = rest[2..^2];
        return NonEmpty(rest);
    }

    /// <summary>The last number: optional minus, digits with optional thousands commas and decimals, or a/b.</summary>
    private static string? LastNumber(string s)
    {
        int i = s.AsSpan().LastIndexOfAnyInRange('0', '9');
        if (i < 0) return null;
        int end = i + 1;
        int start = NumberStart(s, i);
        // a fraction a/b
        if (start >= 2 && s[start - 1] == '/' && char.IsAsciiDigit(s[start - 2])) start = NumberStart(s, start - 2);
        // a minus sign, unless it is a subtraction (8-3)
        if (start > 0 && s[start - 1] == '-' && !(start >= 2 && (char.IsLetterOrDigit(s[start - 2]) || s[start - 2] == ')'))) start--;
        return s[start..end].TrimEnd('.', ',');
    }

    private static int NumberStart(string s, int lastDigit)
    {
        int i = lastDigit;
        while (i > 0 && lastDigit - i < MaxNumberLength)
        {
            char p = s[i - 1];
            if (char.IsAsciiDigit(p)) { i--; continue; }
            // a comma or point between digits belongs to the number
            if ((p == ',' || p == '.') && i >= 2 && char.IsAsciiDigit(s[i - 2])) { i--; continue; }
            break;
        }
        return i;
    }
}
