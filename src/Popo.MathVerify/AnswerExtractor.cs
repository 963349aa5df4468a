namespace Popo.MathVerify;

/// <summary>
/// Finds the final answer in a completion, trying the routes in Math-Verify's order (docs/design.md §7):
/// <list type="number">
/// <item>boxed: the last \boxed{...} / \fbox{...} whose brace closes (nested braces; "\boxed 5"); boxes
///   right before it, separated only by commas, "and", "or", spaces or math delimiters, answer the same
///   question and join it as a list (\boxed{2} and \boxed{3} is the answer 2, 3);</item>
/// <item>marked: the last &lt;answer&gt;...&lt;/answer&gt;, else the last "#### N" (rest of that line), else the last
///   "answer is" / "Answer:" (a math span right after it, else the formula up to the first plain word:
///   "The answer is 42 because 6*7" gives 42);</item>
/// <item>math (format any): the last $...$, $$...$$, \(...\) or \[...\], as one whole expression;</item>
/// <item>number (format any): the last number, only when it is a whole token (spaces or "=" before it,
///   the end, a space or closing punctuation after it: "x^2", ".4", "\frac12" give nothing).</item>
/// </list>
/// A marker that is present but holds no answer (an empty, unclosed or overlong box) ends the search: no answer.
/// Linear time: one pass matches all braces, every other search is a single scan or bounded.
/// </summary>
public static class AnswerExtractor
{
    /// <summary>Longer completions are read from their last this-many characters only.</summary>
    public const int MaxInputLength = 4 * 1024 * 1024;

    /// <summary>The number route reads at most this many characters back (a longer run is noise).</summary>
    public const int MaxNumberLength = 1000;

    /// <summary>At most this many adjacent boxes form one answer.</summary>
    public const int MaxBoxes = 16;

    /// <summary>A box before the last one is looked for only within this many characters.</summary>
    private const int MaxBoxScan = 4096;

    /// <summary>The answer of any route (format any), or null.</summary>
    public static string? Extract(string? completion) => Find(completion, AnswerFormat.Any)?.Answer;

    /// <summary>Only an explicitly marked answer (format marked): for tasks whose answers are not numbers (countdown).</summary>
    public static string? ExtractMarked(string? completion) => Find(completion, AnswerFormat.Marked)?.Answer;

    /// <summary>
    /// The answer under a format. A completion that did not finish (<paramref name="finished"/> false: cut at
    /// the length limit) has no unmarked answer: under any it is read as under marked.
    /// </summary>
    public static Extraction? Find(string? completion, AnswerFormat format, bool finished = true) => Find(completion, format, finished, out _);

    /// <summary><see cref="Find(string?, AnswerFormat, bool)"/>, with the unexpected exception that cost the answer, if one did.</summary>
    public static Extraction? Find(string? completion, AnswerFormat format, bool finished, out Exception? error)
    {
        error = null;
        if (string.IsNullOrEmpty(completion)) return null;
        try
        {
            var s = completion.Length > MaxInputLength ? completion[^MaxInputLength..] : completion;
            // "" from a marker means: the marker is there but holds no answer; do not look further.
            var found = Route(Boxed(s, out int firstBox), AnswerRoute.Boxed);
            if (found is { Answer.Length: > 0 } box && LinkedBoxes(s, firstBox, box.Answer) is { } joined)
                found = box with { Alternative = joined };
            if (found is null && format != AnswerFormat.Boxed)
            {
                found = Route(Tagged(s), AnswerRoute.Marked) ?? Route(Hashes(s), AnswerRoute.Marked);
                if (found is null && AnswerIs(s, out var word) is { } said) found = new Extraction(said, AnswerRoute.Marked) { Alternative = word };
            }
            if (found is null && format == AnswerFormat.Any && finished)
                found = Route(MathSpan(s), AnswerRoute.Math) ?? Route(LastNumber(s), AnswerRoute.Number);
            return found is { Answer.Length: > 0 } ? found : null;
        }
        catch (Exception e)
        {
            error = e;
            return null;
        }
    }

    private static Extraction? Route(string? answer, AnswerRoute route) => answer is null ? null : new Extraction(answer, route);

    private static string? NonEmpty(string? s)
    {
        var t = s?.Trim();
        return string.IsNullOrEmpty(t) ? null : t;
    }

    // ------------------------------------------------------------------ boxes

    /// <summary>
    /// Content of the last \boxed{ / \fbox{ whose brace closes, with the adjacent boxes before it. Returns ""
    /// (not null) when a box exists but its content is empty or never closes. A brace preceded by a
    /// backslash is escaped (\{ \}) and does not count.
    /// </summary>
    private static string? Boxed(string s, out int firstBox)
    {
        firstBox = -1;
        int b = s.LastIndexOf("\\boxed", StringComparison.Ordinal);
        int f = s.LastIndexOf("\\fbox", StringComparison.Ordinal);
        if (b < 0 && f < 0) return null;
        if (SpaceForm(s, Math.Max(b, f)) is { } token) return token;
        // The usual case: the last box closes, and one forward scan finds where.
        int at = OpeningBrace(s, Math.Max(b, f));
        int close = at < 0 ? s.Length : Close(s, at);
        if (close == s.Length)
        {
            int first = FirstBox(s);
            // D(i) = unescaped '{' minus '}' in s[first..i). The brace at i closes iff D comes back to D(i)
            // after it: iff min over j > i of D(j) <= D(i). One backward pass keeps D and that minimum and
            // tests each box brace, so the search is linear however many boxes never close.
            var span = s.AsSpan(first);
            int depth = span.Count('{') - span.Count('}') - span.Count("\\{") + span.Count("\\}");
            at = LastClosingBox(s, first, depth);
            if (at < 0) return "";
            close = Close(s, at);
        }
        // an answer longer than any comparable one is no answer (and is not copied)
        if (close - at > 2 * Equivalence.MaxLength) return "";
        var last = NonEmpty(s[(at + 1)..close]);
        if (last is null) return "";
        var answers = new List<string> { last };
        int start = BoxNameStart(s, at);
        while (answers.Count < MaxBoxes && PreviousBox(s, start) is { } prev)
        {
            var content = NonEmpty(s[(prev + 1)..Close(s, prev)]);
            if (content is null) break;
            answers.Add(content);
            start = BoxNameStart(s, prev);
        }
        answers.Reverse();
        firstBox = start;
        return string.Join(", ", answers);
    }

    /// <summary>Longest text between two boxes of one answer ("for part (a) and").</summary>
    private const int MaxLink = 80;

    /// <summary>
    /// The boxes before the box group starting at <paramref name="first"/> that answer the same sentence:
    /// each linked to the next by a short text (at most <see cref="MaxLink"/> characters, no line break or
    /// sentence end) holding "and", a comma or a semicolon and no word of correction or consequence ("not",
    /// "wrong", "but", "wait", "instead", "then", "so"...). The list of them and the group, or null when none.
    /// </summary>
    private static string? LinkedBoxes(string s, int first, string group)
    {
        if (first <= 0) return null;
        var answers = new List<string>();
        int start = first;
        while (answers.Count < MaxBoxes)
        {
            int end = start;
            int lo = Math.Max(0, start - MaxLink - 1);
            int close = s.LastIndexOf('}', end - 1, end - lo);
            if (close < 0) break;
            var link = s[(close + 1)..start];
            if (!IsLink(link)) break;
            int open = OpenOf(s, close);
            if (open < 0 || !IsBoxBrace(s, open)) break;
            var content = NonEmpty(s[(open + 1)..close]);
            if (content is null) break;
            answers.Add(content);
            start = BoxNameStart(s, open);
        }
        if (answers.Count == 0) return null;
        answers.Reverse();
        answers.Add(group);
        return string.Join(", ", answers);
    }

    private static readonly string[] Corrections = ["not", "wrong", "but", "wait", "instead", "actually", "incorrect", "no", "then", "so", "thus", "hence", "therefore"];

    private static bool IsLink(string link)
    {
        if (link.Contains('\n') || link.Contains('?') || link.Contains('!') || link.Contains('{')) return false;
        for (int i = 0; i + 1 < link.Length; i++)
            if (link[i] == '.' && char.IsWhiteSpace(link[i + 1])) return false;
        var words = System.Text.RegularExpressions.Regex.Split(link.ToLowerInvariant(), "[^a-z]+");
        if (words.Any(w => Corrections.Contains(w))) return false;
        return words.Contains("and") || link.Contains(',') || link.Contains(';');
    }

    /// <summary>The unescaped '{' matching the '}' at close, within <see cref="MaxBoxScan"/> characters, or -1.</summary>
    private static int OpenOf(string s, int close)
    {
        int depth = 0;
        for (int i = close; i >= 0 && close - i <= MaxBoxScan; i--)
        {
            if (s[i] is not ('{' or '}') || (i > 0 && s[i - 1] == '\\')) continue;
            depth += s[i] == '}' ? 1 : -1;
            if (depth == 0) return i;
        }
        return -1;
    }

    /// <summary>
    /// The contents of every \boxed{} / \fbox{} that closes, in order, joined as a list ("\boxed{(3,3)} for part
    /// (a) and \boxed{(1,1)}" is "(3,3), (1,1)"): how a gold written as a solution reads. Null when none closes.
    /// </summary>
    public static string? AllBoxes(string s)
    {
        var answers = new List<string>();
        int i = 0;
        while (answers.Count < MaxBoxes)
        {
            int b = s.IndexOf("\\boxed", i, StringComparison.Ordinal), f = s.IndexOf("\\fbox", i, StringComparison.Ordinal);
            int at = b < 0 ? f : f < 0 ? b : Math.Min(b, f);
            if (at < 0) break;
            int open = OpeningBrace(s, at);
            if (open < 0) { i = at + 5; continue; }
            int close = Close(s, open);
            if (close >= s.Length) break;
            if (NonEmpty(s[(open + 1)..close]) is { } content) answers.Add(content);
            i = close + 1;
        }
        return answers.Count == 0 ? null : string.Join(", ", answers);
    }

    /// <summary>
    /// The backward pass of <see cref="Boxed"/>: position of the last box brace that closes, or -1. A run of
    /// equal braces is taken at once (only its first brace can be escaped or open a box), so a megabyte of
    /// nested braces costs a few vectorised searches per run, not a step per brace.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static int LastClosingBox(string s, int first, int depth)
    {
        int minAfter = depth;
        var span = s.AsSpan();
        int end = s.Length; // search s[first..end)
        while (end > first)
        {
            int i = PreviousBrace(s, first, end);
            if (i < first) break;
            char c = s[i];
            // most runs are one brace long: look at the neighbour before a vectorised search
            int runStart = i == first || s[i - 1] != c ? i : first + span[first..i].LastIndexOfAnyExcept(c) + 1;
            end = runStart;
            bool escaped = runStart > 0 && s[runStart - 1] == '\\';
            int plain = i - runStart; // the braces after the run's first one
            if (c == '}')
            {
                depth += plain + (escaped ? 0 : 1);
                continue;
            }
            depth -= plain;
            if (depth < minAfter) minAfter = depth;
            if (escaped) continue;
            depth--;
            // a box brace follows "d", "x" or a space: test the cheap part first
            if (minAfter <= depth && runStart > 0 && s[runStart - 1] is 'd' or 'x' or ' ' && IsBoxBrace(s, runStart)) return runStart;
            if (depth < minAfter) minAfter = depth;
        }
        return -1;
    }

    /// <summary>The last '{' or '}' in s[first..end), or first - 1: a short scan, then a vectorised search.</summary>
    private static int PreviousBrace(string s, int first, int end)
    {
        int stop = Math.Max(first, end - 16);
        for (int j = end - 1; j >= stop; j--)
            if (s[j] is '{' or '}') return j;
        return stop == first ? first - 1 : first + s.AsSpan(first, stop - first).LastIndexOfAny('{', '}');
    }

    private static int FirstBox(string s)
    {
        int b = s.IndexOf("\\boxed", StringComparison.Ordinal), f = s.IndexOf("\\fbox", StringComparison.Ordinal);
        return b < 0 ? f : f < 0 ? b : Math.Min(b, f);
    }

    private static bool At(string s, int i, string token) => i >= 0 && string.CompareOrdinal(s, i, token, 0, token.Length) == 0;

    /// <summary>Whether the brace at i opens a box: "\boxed" or "\fbox", then optional spaces, then it.</summary>
    private static bool IsBoxBrace(string s, int i) => BoxNameStart(s, i) >= 0;

    /// <summary>Start of the box name before the brace at i, or -1 when that brace does not open a box.</summary>
    private static int BoxNameStart(string s, int i)
    {
        int j = i - 1;
        while (j >= 0 && s[j] == ' ') j--;
        if (j < 0 || (s[j] != 'd' && s[j] != 'x')) return -1;
        if (At(s, j - 5, "\\boxed")) return j - 5;
        if (At(s, j - 4, "\\fbox")) return j - 4;
        return -1;
    }

    /// <summary>
    /// The brace of a box that ends right before <paramref name="start"/> with only separators between
    /// (spaces, commas, semicolons, "and", "or", $, \quad, \( \)), or null.
    /// </summary>
    private static int? PreviousBox(string s, int start)
    {
        int j = start;
        for (int guard = 0; guard < 64 && j > 0; guard++)
        {
            int before = j;
            while (j > 0 && (char.IsWhiteSpace(s[j - 1]) || s[j - 1] is ',' or ';' or '$' or '&')) j--;
            foreach (var sep in Separators)
                if (j >= sep.Length && At(s, j - sep.Length, sep) && !(sep[0] != '\\' && j > sep.Length && char.IsAsciiLetter(s[j - sep.Length - 1])))
                {
                    j -= sep.Length;
                    break;
                }
            if (j == before) break;
        }
        if (j == 0 || s[j - 1] != '}' || (j >= 2 && s[j - 2] == '\\')) return null;
        // match the closing brace backwards, within a bounded window
        int depth = 0;
        for (int i = j - 1; i >= 0 && j - i <= MaxBoxScan; i--)
        {
            if (s[i] is not ('{' or '}') || (i > 0 && s[i - 1] == '\\')) continue;
            depth += s[i] == '}' ? 1 : -1;
            if (depth == 0) return IsBoxBrace(s, i) ? i : null;
        }
        return null;
    }

    private static readonly string[] Separators =
        ["\\text{ and }", "\\text{and}", "\\text{ or }", "\\text{or}", "and", "or", "\\quad", "\\qquad", "\\(", "\\)", "\\[", "\\]", "\\,", "\\;"];

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

    /// <summary>The brace that opens the box whose name starts at i (the name, spaces, then the brace), or -1.</summary>
    private static int OpeningBrace(string s, int i)
    {
        int open = i + (At(s, i, "\\boxed") ? 6 : 5);
        while (open < s.Length && s[open] == ' ') open++;
        return open < s.Length && s[open] == '{' ? open : -1;
    }

    /// <summary>Index of the brace closing the brace at open, or s.Length when it never closes; runs of equal braces at once.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static int Close(string s, int open)
    {
        int depth = 0;
        var span = s.AsSpan();
        int i = open;
        while (i < s.Length)
        {
            if (s[i] is not ('{' or '}'))
            {
                int k = span[i..].IndexOfAny('{', '}');
                if (k < 0) break;
                i += k;
            }
            char c = s[i];
            int runEnd;
            if (i + 1 >= s.Length || s[i + 1] != c) runEnd = i + 1;
            else
            {
                int next = span[i..].IndexOfAnyExcept(c);
                runEnd = next < 0 ? s.Length : i + next;
            }
            bool escaped = i > 0 && s[i - 1] == '\\';
            int counted = runEnd - i - (escaped ? 1 : 0);
            if (c == '{') depth += counted;
            else if (counted >= depth) return (escaped ? i + 1 : i) + depth - 1;
            else depth -= counted;
            i = runEnd;
        }
        return s.Length;
    }

    // ------------------------------------------------------------------ other markers

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

    /// <summary>
    /// "answer is X" / "Answer: X" (the later of the two): the answer that follows on that line. When the line
    /// is a sentence that opens with a word ("Final Answer: The largest $n$ is 34."), its value
    /// (<see cref="SentenceValue"/>) is the answer and the first word the <paramref name="word"/> reading
    /// ("Evelyn wins with 5 points" answers "who" by Evelyn and "how many" by 5).
    /// </summary>
    private static string? AnswerIs(string s, out string? word)
    {
        word = null;
        int at = LastMarker(s, "nswer is", out int len);
        int colon = LastMarker(s, "nswer:", out int clen);
        if (colon > at) { at = colon; len = clen; }
        if (at < 0) return null;
        int from = at + len;
        int eol = s.IndexOf('\n', from);
        var rest = (eol < 0 ? s[from..] : s[from..eol]).Trim().TrimStart(':').Trim().Trim('*').Trim();
        if (rest.Length == 0) return null;
        // a math span right after the marker is the answer: "is $\frac{1}{2}$."
        if (rest[0] == '$' || rest.StartsWith("\\(", StringComparison.Ordinal) || rest.StartsWith("\\[", StringComparison.Ordinal))
        {
            var span = FirstMathSpan(rest);
            if (span is not null) return NonEmpty(span);
        }
        var formula = NonEmpty(Formula(rest));
        if (formula is not null && StartsSentence(rest) && SentenceValue(rest) is { } value)
        {
            // an article or a pronoun opening the sentence is no text answer
            word = FunctionWords.Contains(formula.ToLowerInvariant()) ? null : formula;
            return value;
        }
        return formula;
    }

    private static readonly HashSet<string> FunctionWords =
        ["the", "a", "an", "this", "that", "these", "those", "it", "its", "we", "our", "there", "so", "thus", "hence", "therefore", "in", "for", "if", "when"];

    /// <summary>A line that opens with a plain word and goes on.</summary>
    private static bool StartsSentence(string rest)
    {
        var chunks = Chunks(rest);
        return chunks.Count > 1 && IsPlainWord(chunks[0]);
    }

    /// <summary>The last "a" or "A" + marker, or -1.</summary>
    private static int LastMarker(string s, string marker, out int length)
    {
        length = marker.Length;
        int at = s.LastIndexOf(marker, StringComparison.Ordinal);
        while (at > 0 && s[at - 1] is not ('a' or 'A')) at = s.LastIndexOf(marker, at - 1, StringComparison.Ordinal);
        return at <= 0 ? -1 : at;
    }

    /// <summary>
    /// The leading formula of a line: space-separated chunks (spaces inside braces do not separate) up to the
    /// first chunk that is a plain word, or a sentence end; "and"/"or" are kept between formulas. When the
    /// line starts with a word, that word is the answer (a text answer: "Evelyn", "odd").
    /// </summary>
    private static string Formula(string rest)
    {
        var chunks = Chunks(rest);
        if (chunks.Count == 0) return "";
        if (IsPlainWord(chunks[0])) return chunks[0].TrimEnd('.', ',', ';', '!', '*');
        int take = 0;
        for (int k = 0; k < chunks.Count; k++)
        {
            var c = chunks[k];
            if (c is "and" or "or")
            {
                if (k + 1 < chunks.Count && !IsPlainWord(chunks[k + 1])) continue;
                break;
            }
            if (IsPlainWord(c)) break;
            take = k + 1;
            // a sentence ends at a period followed by a space (a decimal point is followed by a digit)
            if (c.EndsWith('.') && !c.EndsWith("\\.", StringComparison.Ordinal)) break;
        }
        var formula = string.Join(" ", chunks.Take(take)).Trim();
        while (formula.Length > 0 && formula[^1] is '.' or ',' or ';' or '!' or '*') formula = formula[..^1].TrimEnd();
        return formula.Trim('$').Trim();
    }

    private static readonly System.Text.RegularExpressions.Regex Verb =
        new(@"(?:\b(?:is|are|was|equals|be)(?:\s+equal\s+to)?\b|=)\s*:?\s*", System.Text.RegularExpressions.RegexOptions.CultureInvariant);

    /// <summary>
    /// The formula after the last "is", "are", "was", "equals", "be" or "=" of the first sentence of a line
    /// that opens with a word (a math span, or a formula up to the next word); without such a verb, the
    /// sentence's last math span or whole number; null when there is none or it is a word.
    /// </summary>
    private static string? SentenceValue(string line)
    {
        int end = line.Length;
        for (int i = 0; i + 1 < line.Length; i++)
            if (line[i] == '.' && char.IsWhiteSpace(line[i + 1])) { end = i; break; }
        var sentence = line[..end];
        var matches = Verb.Matches(sentence);
        // no verb ("Jane has 12 more marbles"): the last math span of the sentence, else its last whole number
        if (matches.Count == 0) return sentence.Contains('$') ? MathSpan(sentence) : LastNumber(sentence.TrimEnd('.', ' '));
        var m = matches[^1];
        var tail = sentence[(m.Index + m.Length)..].Trim();
        if (tail.Length == 0) return null;
        if (tail[0] == '$' || tail.StartsWith("\\(", StringComparison.Ordinal) || tail.StartsWith("\\[", StringComparison.Ordinal))
            return FirstMathSpan(tail) is { } span ? NonEmpty(span) : null;
        var chunks = Chunks(tail);
        if (chunks.Count == 0 || IsPlainWord(chunks[0])) return null;
        var value = NonEmpty(Formula(tail));
        return value is not null && !IsPlainWord(value) ? value : null;
    }

    private static List<string> Chunks(string s)
    {
        var chunks = new List<string>();
        int depth = 0, start = 0;
        for (int i = 0; i <= s.Length && chunks.Count < 64; i++)
        {
            if (i == s.Length || (s[i] == ' ' && depth <= 0))
            {
                if (i > start) chunks.Add(s[start..i]);
                start = i + 1;
                continue;
            }
            if (s[i] == '{' && !(i > 0 && s[i - 1] == '\\')) depth++;
            else if (s[i] == '}' && !(i > 0 && s[i - 1] == '\\')) depth--;
        }
        return chunks;
    }

    /// <summary>A chunk with two or more letters in a row that are not a command or a function name: prose.</summary>
    private static bool IsPlainWord(string chunk)
    {
        var c = chunk.TrimEnd('.', ',', ';', '!', '?', ':', '*');
        if (c.Length < 2) return false;
        int i = 0;
        while (i < c.Length)
        {
            if (c[i] == '\\') { i++; while (i < c.Length && char.IsAsciiLetter(c[i])) i++; continue; }
            if (char.IsAsciiLetter(c[i]))
            {
                int j = i;
                while (j < c.Length && char.IsAsciiLetter(c[j])) j++;
                if (j - i >= 2 && !LatexParser.IsFunction(c[i..j])) return true;
                i = j;
                continue;
            }
            i++;
        }
        return false;
    }

    /// <summary>The content of the math span that starts at s[0] ($, $$, \( or \[), or null when it does not close.</summary>
    private static string? FirstMathSpan(string s)
    {
        if (s.StartsWith("$$", StringComparison.Ordinal))
        {
            int e = s.IndexOf("$$", 2, StringComparison.Ordinal);
            return e < 0 ? null : s[2..e];
        }
        if (s[0] == '$')
        {
            int e = NextDollar(s, 1);
            return e < 0 ? null : s[1..e];
        }
        var close = s.StartsWith("\\(", StringComparison.Ordinal) ? "\\)" : "\\]";
        int end = s.IndexOf(close, 2, StringComparison.Ordinal);
        return end < 0 ? null : s[2..end];
    }

    /// <summary>The next '$' at or after i that is not an escaped \$ (a dollar sign in the text), or -1.</summary>
    private static int NextDollar(string s, int i)
    {
        while (true)
        {
            int e = s.IndexOf('$', i);
            if (e <= 0 || s[e - 1] != '\\') return e;
            i = e + 1;
        }
    }

    /// <summary>The last unescaped '$' at or before i, or -1.</summary>
    private static int PreviousDollar(string s, int i)
    {
        while (i >= 0)
        {
            int e = s.LastIndexOf('$', i);
            if (e <= 0 || s[e - 1] != '\\') return e;
            i = e - 1;
        }
        return -1;
    }

    // ------------------------------------------------------------------ unmarked answers (format any)

    /// <summary>The content of the math span that ends last, or null.</summary>
    private static string? MathSpan(string s)
    {
        string? best = null;
        int bestEnd = -1;
        int d = PreviousDollar(s, s.Length - 1);
        if (d > 0)
        {
            bool dd = s[d - 1] == '$';
            int open = dd ? (d >= 3 ? s.LastIndexOf("$$", d - 2, StringComparison.Ordinal) : -1) : PreviousDollar(s, d - 1);
            if (open >= 0)
            {
                int from = dd ? open + 2 : open + 1, to = dd ? d - 1 : d;
                if (to > from) { best = s[from..to]; bestEnd = d; }
            }
        }
        foreach (var (o, c) in new[] { ("\\(", "\\)"), ("\\[", "\\]") })
        {
            int close = s.LastIndexOf(c, StringComparison.Ordinal);
            if (close <= bestEnd || close < 2) continue;
            int open = s.LastIndexOf(o, close - 1, StringComparison.Ordinal);
            if (open < 0 || open + 2 > close) continue;
            best = s[(open + 2)..close];
            bestEnd = close;
        }
        return NonEmpty(best);
    }

    /// <summary>
    /// The last number when it is a whole token: after the start, a space, '=', ':', '$', '*' or a currency
    /// sign, and before the end, a space, or closing punctuation that ends the text or precedes a space; a
    /// currency sign or a unit with a superscript (1,000.99€, 12 m²) may follow it. A number is an optional
    /// minus, digits with thousands commas or single spaces (1 000), a decimal point (a leading one: .4) or a
    /// decimal comma where no thousands reading is possible (1,22), or a/b; a bare \frac{a}{b} of integers
    /// counts too. Anything else (x^2, 10^{-3}, \frac12) gives null.
    /// </summary>
    private static string? LastNumber(string s)
    {
        int i = s.AsSpan().LastIndexOfAnyInRange('0', '9');
        if (i < 0) return null;
        int end = i + 1;
        if (end < s.Length && s[end] == '}') return BareFraction(s, end);
        if (!TokenEnds(s, UnitEnd(s, end))) return null;
        int start = NumberStart(s, i);
        if (start < 0) return null;
        // a fraction a/b
        if (start >= 2 && s[start - 1] == '/' && char.IsAsciiDigit(s[start - 2]))
        {
            start = NumberStart(s, start - 2);
            if (start < 0) return null;
        }
        if (start > 0 && s[start - 1] == '-') start--;
        if (start > 0 && !OpensToken(s[start - 1])) return null;
        return s[start..end];
    }

    private static bool OpensToken(char c) => char.IsWhiteSpace(c) || c is '=' or ':' or '$' or '*' or '€' or '£' or '¥';

    /// <summary>After a number ending at end: past a currency sign or a unit with a superscript (m², cm³), else end.</summary>
    private static int UnitEnd(string s, int end)
    {
        // a dollar or other currency sign after the amount (1,000.99$, 1,000.99€)
        if (end < s.Length && s[end] is '€' or '£' or '¥' or '$') return end + 1;
        int k = end;
        while (k < s.Length && k - end < 3 && char.IsAsciiLetterLower(s[k])) k++;
        return k > end && k < s.Length && s[k] is '²' or '³' ? k + 1 : end;
    }

    private static readonly System.Text.RegularExpressions.Regex FractionTail =
        new(@"-?\\[dt]?frac\{-?\d{1,40}\}\{\d{1,40}\}$", System.Text.RegularExpressions.RegexOptions.CultureInvariant);

    /// <summary>A bare \frac{a}{b} of integers whose closing brace is at close, as a whole token ("gives \frac{10}{9}."); else null.</summary>
    private static string? BareFraction(string s, int close)
    {
        if (!TokenEnds(s, close + 1)) return null;
        int from = Math.Max(0, close + 1 - 100);
        var m = FractionTail.Match(s, from, close + 1 - from);
        if (!m.Success) return null;
        if (m.Index > 0 && !OpensToken(s[m.Index - 1])) return null;
        return m.Value;
    }

    private static bool TokenEnds(string s, int end)
    {
        if (end == s.Length) return true;
        char c = s[end];
        if (char.IsWhiteSpace(c)) return true;
        if (c is '.' or ',' or ';' or '!' or '?' or ')' or '*')
        {
            int k = end;
            while (k < s.Length && s[k] is '.' or ',' or ';' or '!' or '?' or ')' or '*') k++;
            return k == s.Length || char.IsWhiteSpace(s[k]);
        }
        return false;
    }

    /// <summary>
    /// Start of the number whose last digit is at lastDigit: digits, thousands groups (commas, or single
    /// spaces, not both), one decimal point (also a leading one), or one decimal comma when the digits after it
    /// are not a group of three; -1 when malformed. Space groups that do not form d{1,3}( ddd)+ give the number
    /// after the last space (in 2024 100, the number is 100).
    /// </summary>
    private static int NumberStart(string s, int lastDigit)
    {
        int i = lastDigit + 1;
        int group = 0, commas = 0, spaces = 0, afterSpace = -1;
        bool point = false, decimalComma = false;
        while (i > 0 && lastDigit - i < MaxNumberLength)
        {
            char p = s[i - 1];
            if (char.IsAsciiDigit(p)) { i--; group++; continue; }
            if (p == ',' && i >= 2 && char.IsAsciiDigit(s[i - 2]) && spaces == 0)
            {
                if (group != 3)
                {
                    // 1,22: a decimal comma, when it is the only comma and no point was seen
                    if (commas > 0 || point || decimalComma) return -1; // 3,5,7 is a list
                    decimalComma = true;
                }
                else commas++;
                group = 0;
                i--;
                continue;
            }
            if (p == ' ' && group == 3 && i >= 2 && char.IsAsciiDigit(s[i - 2]) && commas == 0 && !decimalComma)
            {
                if (spaces == 0) afterSpace = i;
                spaces++;
                group = 0;
                i--;
                continue;
            }
            if (p == '.' && i >= 2 && char.IsAsciiDigit(s[i - 2]) && !point && commas == 0 && spaces == 0 && !decimalComma)
            {
                point = true;
                group = 0;
                i--;
                continue;
            }
            // .4: a leading decimal point after a token opening
            if (p == '.' && !point && commas == 0 && spaces == 0 && !decimalComma && (i == 1 || OpensToken(s[i - 2]) || s[i - 2] == '-'))
                return i - 1;
            if (p == '.') return -1; // 1.2.3, v.4
            break;
        }
        if (spaces > 0 && group > 3) return afterSpace;
        if (commas > 0 && group > 3) return -1;
        if (decimalComma && commas > 0) return -1;
        return i;
    }
}
