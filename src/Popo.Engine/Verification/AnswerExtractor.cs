namespace Popo.Engine.Verification;

/// <summary>
/// Finds the final answer in a completion, in the order of DESIGN §7: the last \boxed{...} or
/// \fbox{...} (nested braces; the form \boxed 5 too), else the last &lt;answer&gt;...&lt;/answer&gt;,
/// else the last GSM8K-style "#### N" (rest of that line), else a closing "the answer is X" (rest of
/// that line, sentence period and math delimiters removed), else the final number in the text.
/// Returns null when there is none or the marked answer is empty: such a completion is wrong.
/// Linear time: one pass matches all braces, every other search is a single scan.
/// </summary>
public static class AnswerExtractor
{
    /// <summary>Longer completions are read from their last this-many characters only.</summary>
    public const int MaxInputLength = 4 * 1024 * 1024;

    public static string? Extract(string? completion)
    {
        if (string.IsNullOrEmpty(completion)) return null;
        try
        {
            var s = completion.Length > MaxInputLength ? completion[^MaxInputLength..] : completion;
            // "" from a marker means: the marker is there but holds no answer; do not look further.
            var answer = Boxed(s) ?? Tagged(s) ?? Hashes(s) ?? AnswerIs(s) ?? LastNumber(s);
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
    /// </summary>
    private static string? Boxed(string s)
    {
        // Occurrences from the end; the first whose brace closes wins. Each search resumes where the
        // previous one stopped, so the walk is linear however many unclosed boxes there are.
        int b = s.LastIndexOf("\\boxed", StringComparison.Ordinal);
        int f = s.LastIndexOf("\\fbox", StringComparison.Ordinal);
        if (b < 0 && f < 0) return null;
        int[] close = MatchAll(s);
        int bestOpen = -1;
        while (b >= 0 || f >= 0)
        {
            int at = Math.Max(b, f);
            int afterName = at + (at == b ? 6 : 5);
            if (at == b) b = at > 0 ? s.LastIndexOf("\\boxed", at - 1, StringComparison.Ordinal) : -1;
            else f = at > 0 ? s.LastIndexOf("\\fbox", at - 1, StringComparison.Ordinal) : -1;
            int open = afterName;
            while (open < s.Length && s[open] == ' ') open++;
            if (open < s.Length && s[open] == '{')
            {
                if (close[open] >= 0) { bestOpen = open; break; }
            }
            else if (open > afterName && open < s.Length)
            {
                // \boxed 5 : the next whitespace-delimited token
                int e = open;
                while (e < s.Length && !char.IsWhiteSpace(s[e]) && s[e] != '$') e++;
                return NonEmpty(s[open..e]) ?? "";
            }
        }
        if (bestOpen < 0) return "";
        return NonEmpty(s[(bestOpen + 1)..close[bestOpen]]) ?? "";
    }

    /// <summary>close[i] = index of the brace closing an opening brace at i, or -1; escaped \{ \} are not braces.</summary>
    private static int[] MatchAll(string s)
    {
        var close = new int[s.Length];
        Array.Fill(close, -1);
        var stack = new int[Math.Min(s.Length, 1 << 20) + 1];
        int top = 0;
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c == '\\' && i + 1 < s.Length && (s[i + 1] == '{' || s[i + 1] == '}')) { i++; continue; }
            if (c == '{')
            {
                if (top == stack.Length) Array.Resize(ref stack, stack.Length * 2);
                stack[top++] = i;
            }
            else if (c == '}' && top > 0) close[stack[--top]] = i;
        }
        return close;
    }

    private static string? Tagged(string s)
    {
        int end = s.LastIndexOf("</answer>", StringComparison.OrdinalIgnoreCase);
        if (end < 0) return null;
        int start = end > 0 ? s.LastIndexOf("<answer>", end - 1, StringComparison.OrdinalIgnoreCase) : -1;
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
        int at = s.LastIndexOf("answer is", StringComparison.OrdinalIgnoreCase);
        if (at < 0) return null;
        int from = at + 9;
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
        rest = rest.Trim().Trim('$').Trim();
        if (rest.StartsWith("\\(") && rest.EndsWith("\\)") && rest.Length >= 4) rest = rest[2..^2];
        return NonEmpty(rest);
    }

    /// <summary>The last number: optional minus, digits with optional thousands commas and decimals, or a/b.</summary>
    private static string? LastNumber(string s)
    {
        int i = s.Length - 1;
        while (i >= 0 && !char.IsAsciiDigit(s[i])) i--;
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
        while (i > 0)
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
