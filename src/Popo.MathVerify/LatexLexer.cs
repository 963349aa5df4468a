using System.Text;

namespace Popo.MathVerify;

internal enum Tok
{
    End, Number, Letter, Word, Command, Text, Connector, Op, Rel, PlusMinus, MinusPlus, LParen, RParen, LBracket, RBracket,
    LBrace, RBrace, LSet, RSet, Comma, Semicolon, Bar, Caret, Underscore, Percent, Degree, Bang, Amp, RowSep, Begin, EndEnv,
    Infinity, EmptySet, Union, Ratio,
}

/// <summary>One lexical token: its kind and text (digits, a letter, a command name, an operator, a relation, text content).</summary>
internal readonly record struct Token(Tok Kind, string Text, bool SpaceBefore);

/// <summary>
/// Splits an answer written in LaTeX (or plain text) into tokens for <see cref="LatexParser"/>. Spacing and sizing
/// commands vanish (\left, \right, \, \! \quad \displaystyle ...); synonyms become one token (\dfrac, \tfrac, \cfrac
/// are \frac; \le, \leq, &lt;= are one relation; \cdot and \times are *); thousands separators written
/// {,} or ,\! or \, between digit groups are removed; \text{...} becomes a Text token ("and"/"or" become
/// connectors); degree marks (^\circ, °) and percent marks become tokens. Linear in the input.
/// Throws <see cref="FormatException"/> on anything it cannot read (the caller then compares text).
/// </summary>
internal static class LatexLexer
{
    public const int MaxTokens = 4096;

    private static readonly HashSet<string> Dropped =
    [
        "left", "right", "big", "Big", "bigl", "bigr", "Bigl", "Bigr", "bigg", "Bigg", "biggl", "biggr", "middle",
        "quad", "qquad", "displaystyle", "textstyle", "scriptstyle", "limits", "nolimits", "mathbf", "boldsymbol", "bm",
        "mathit", "mathnormal", "mathbb", "mathcal", "mathsf", "rm", "bf", "it", "boxed", "fbox", "dollar", "enspace",
        "thinspace", "negthinspace", "hfill", "phantom", "ensuremath", "bigm", "Bigm", "strut", "cr",
    ];

    private static readonly HashSet<string> TextCommands =
        ["text", "textrm", "textbf", "textit", "textnormal", "textsf", "texttt", "mbox", "mathrm", "hbox", "textup", "emph"];

    /// <summary>Greek letters and other symbols that name a variable.</summary>
    private static readonly HashSet<string> Greek =
    [
        "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta", "iota", "kappa",
        "lambda", "mu", "nu", "xi", "rho", "varrho", "sigma", "varsigma", "tau", "upsilon", "phi", "varphi", "chi", "psi",
        "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Sigma", "Upsilon", "Phi", "Psi", "Omega", "ell",
    ];

    public static List<Token> Tokenize(string s)
    {
        var tokens = new List<Token>(Math.Min(s.Length, 64));
        int i = 0;
        bool space = false;
        while (i < s.Length)
        {
            if (tokens.Count > MaxTokens) throw new FormatException("too many tokens");
            char c = s[i];
            if (char.IsWhiteSpace(c) || c == '~' || char.IsControl(c)) { i++; space = true; continue; }
            if (char.IsAsciiDigit(c) || (c == '.' && i + 1 < s.Length && char.IsAsciiDigit(s[i + 1])))
            {
                i = ReadNumber(s, i, out var digits);
                Add(tokens, Tok.Number, digits, ref space);
                continue;
            }
            if (char.IsAsciiLetter(c))
            {
                int j = i;
                while (j < s.Length && char.IsAsciiLetter(s[j])) j++;
                var run = s[i..j];
                i = j;
                if (run is "and" or "or") { Add(tokens, Tok.Connector, run, ref space); continue; }
                if (LatexParser.IsFunction(run) && run.Length >= 2) { Add(tokens, Tok.Command, run, ref space); continue; }
                // a run of four or more letters is a word (a unit or a text answer), shorter runs are variables: xy, abc
                if (run.Length >= 4) { Add(tokens, Tok.Word, run, ref space); continue; }
                foreach (var ch in run) Add(tokens, Tok.Letter, ch.ToString(), ref space);
                continue;
            }
            if (c == '\\') { i = Command(s, i, tokens, ref space); continue; }
            i++;
            switch (c)
            {
                case '+': Add(tokens, Tok.Op, "+", ref space); break;
                case '-': case '−': case '–': Add(tokens, Tok.Op, "-", ref space); break;
                case '*': case '×': case '·': Add(tokens, Tok.Op, "*", ref space); break;
                case '/': case '÷': Add(tokens, Tok.Op, "/", ref space); break;
                case '(': Add(tokens, Tok.LParen, "(", ref space); break;
                case ')': Add(tokens, Tok.RParen, ")", ref space); break;
                case '[': Add(tokens, Tok.LBracket, "[", ref space); break;
                case ']': Add(tokens, Tok.RBracket, "]", ref space); break;
                case '{': Add(tokens, Tok.LBrace, "{", ref space); break;
                case '}': Add(tokens, Tok.RBrace, "}", ref space); break;
                case ',': Add(tokens, Tok.Comma, ",", ref space); break;
                case ';': Add(tokens, Tok.Semicolon, ";", ref space); break;
                case '|': Add(tokens, Tok.Bar, "|", ref space); break;
                case '_': Add(tokens, Tok.Underscore, "_", ref space); break;
                case '%': Add(tokens, Tok.Percent, "%", ref space); break;
                case '°': Add(tokens, Tok.Degree, "°", ref space); break;
                case '&': Add(tokens, Tok.Amp, "&", ref space); break;
                case '$': break;
                case 'π': Add(tokens, Tok.Command, "pi", ref space); break;
                case '∞': Add(tokens, Tok.Infinity, "inf", ref space); break;
                case '√': Add(tokens, Tok.Command, "sqrt", ref space); break;
                case '±': Add(tokens, Tok.PlusMinus, "pm", ref space); break;
                case '≤': Add(tokens, Tok.Rel, "<=", ref space); break;
                case '≥': Add(tokens, Tok.Rel, ">=", ref space); break;
                case '≠': Add(tokens, Tok.Rel, "!=", ref space); break;
                case '≈': Add(tokens, Tok.Rel, "≈", ref space); break;
                // a superscript digit is a power (m², x³); currency signs carry no value, like \$
                case '²': Add(tokens, Tok.Caret, "^", ref space); Add(tokens, Tok.Number, "2", ref space); break;
                case '³': Add(tokens, Tok.Caret, "^", ref space); Add(tokens, Tok.Number, "3", ref space); break;
                case '€': case '£': case '¥': space = true; break;
                case '∪': Add(tokens, Tok.Union, "cup", ref space); break;
                case '^':
                    if (DegreeAfterCaret(s, ref i)) Add(tokens, Tok.Degree, "°", ref space);
                    else Add(tokens, Tok.Caret, "^", ref space);
                    break;
                case '=':
                    if (i < s.Length && s[i] == '<') { i++; Add(tokens, Tok.Rel, "<=", ref space); }
                    else if (i < s.Length && s[i] == '>') { i++; Add(tokens, Tok.Rel, ">=", ref space); }
                    else { if (i < s.Length && s[i] == '=') i++; Add(tokens, Tok.Rel, "=", ref space); }
                    break;
                case '<':
                    if (i < s.Length && s[i] == '=') { i++; Add(tokens, Tok.Rel, "<=", ref space); }
                    else Add(tokens, Tok.Rel, "<", ref space);
                    break;
                case '>':
                    if (i < s.Length && s[i] == '=') { i++; Add(tokens, Tok.Rel, ">=", ref space); }
                    else Add(tokens, Tok.Rel, ">", ref space);
                    break;
                case '!':
                    if (i < s.Length && s[i] == '=') { i++; Add(tokens, Tok.Rel, "!=", ref space); }
                    else Add(tokens, Tok.Bang, "!", ref space);
                    break;
                case ':' when IsRatio(s, i, tokens):
                    // a colon between two operands is a ratio (V_1:V_2 = 11:21)
                    Add(tokens, Tok.Ratio, ":", ref space);
                    break;
                case '.': case ':': case '\'': case '"': case '?':
                    // a sentence period or a colon carries no value; a prime or a quote would change it
                    if (c is '.' or ':' ) { space = true; break; }
                    throw new FormatException($"unexpected '{c}'");
                default:
                    throw new FormatException($"unexpected '{c}'");
            }
        }
        return tokens;
    }

    /// <summary>A ':' (already consumed, next char at i) after an operand and before one: a ratio.</summary>
    private static bool IsRatio(string s, int i, List<Token> tokens)
    {
        if (tokens.Count == 0 || tokens[^1].Kind is not (Tok.Number or Tok.Letter or Tok.RParen or Tok.RBrace or Tok.RBracket)) return false;
        while (i < s.Length && s[i] == ' ') i++;
        return i < s.Length && (char.IsAsciiLetterOrDigit(s[i]) || s[i] is '\\' or '(' or '{' or '-');
    }

    private static void Add(List<Token> tokens, Tok kind, string text, ref bool space)
    {
        tokens.Add(new Token(kind, text, space));
        space = false;
    }

    /// <summary>"^\circ", "^{\circ}" at s[i..] (after the caret): consumes it and says so.</summary>
    private static bool DegreeAfterCaret(string s, ref int i)
    {
        int j = i;
        while (j < s.Length && s[j] == ' ') j++;
        bool brace = j < s.Length && s[j] == '{';
        if (brace) { j++; while (j < s.Length && s[j] == ' ') j++; }
        if (string.CompareOrdinal(s, j, "\\circ", 0, 5) != 0 || (j + 5 < s.Length && char.IsAsciiLetter(s[j + 5]))) return false;
        j += 5;
        if (brace)
        {
            while (j < s.Length && s[j] == ' ') j++;
            if (j >= s.Length || s[j] != '}') return false;
            j++;
        }
        i = j;
        return true;
    }

    /// <summary>
    /// Digits with an optional decimal part; thousands separators {,} ,\! \, between groups of three are
    /// skipped (a plain comma is left to the parser: 1,2 is a list).
    /// </summary>
    private static int ReadNumber(string s, int i, out string digits)
    {
        var sb = new StringBuilder();
        while (true)
        {
            while (i < s.Length && char.IsAsciiDigit(s[i])) sb.Append(s[i++]);
            int sep = SeparatorLength(s, i);
            if (sep > 0 && ThreeDigits(s, i + sep)) { i += sep; continue; }
            break;
        }
        if (i + 1 < s.Length && s[i] == '.' && char.IsAsciiDigit(s[i + 1]))
        {
            sb.Append('.');
            i++;
            while (i < s.Length && char.IsAsciiDigit(s[i])) sb.Append(s[i++]);
        }
        digits = sb.ToString();
        return i;
    }

    private static int SeparatorLength(string s, int i)
    {
        if (string.CompareOrdinal(s, i, "{,}", 0, 3) == 0) return 3;
        if (string.CompareOrdinal(s, i, ",\\!", 0, 3) == 0) return s.Length > i + 3 && s[i + 3] == ' ' ? 4 : 3;
        if (string.CompareOrdinal(s, i, "\\,", 0, 2) == 0) return 2;
        if (string.CompareOrdinal(s, i, "\\!", 0, 2) == 0) return 2;
        return 0;
    }

    private static bool ThreeDigits(string s, int i) =>
        i + 3 <= s.Length && char.IsAsciiDigit(s[i]) && char.IsAsciiDigit(s[i + 1]) && char.IsAsciiDigit(s[i + 2])
        && (i + 3 == s.Length || !char.IsAsciiDigit(s[i + 3]));

    private static int Command(string s, int i, List<Token> tokens, ref bool space)
    {
        int j = i + 1;
        while (j < s.Length && char.IsAsciiLetter(s[j])) j++;
        if (j == i + 1)
        {
            char d = j < s.Length ? s[j] : '\0';
            int next = Math.Min(s.Length, j + 1);
            switch (d)
            {
                case '{': Add(tokens, Tok.LSet, "{", ref space); break;
                case '}': Add(tokens, Tok.RSet, "}", ref space); break;
                case '\\': Add(tokens, Tok.RowSep, "\\\\", ref space); break;
                case '%': Add(tokens, Tok.Percent, "%", ref space); break;
                case '|': Add(tokens, Tok.Bar, "|", ref space); break;
                case ',': case '!': case ';': case ':': case ' ': case '$': case '(': case ')': case '[': case ']': case '\0':
                    space = true;
                    break; // spacing and math delimiters
                default: throw new FormatException($"unknown command \\{d}");
            }
            return next;
        }
        var name = s[(i + 1)..j];
        if (Dropped.Contains(name))
        {
            if (name is "left" or "right" && j < s.Length && s[j] == '.') j++; // \left. is an invisible delimiter
            if (name is "phantom") j = SkipGroup(s, j);
            return j;
        }
        if (TextCommands.Contains(name))
        {
            int open = j;
            while (open < s.Length && s[open] == ' ') open++;
            if (open >= s.Length || s[open] != '{') throw new FormatException("\\text without a group");
            int close = MatchBrace(s, open);
            if (close < 0) throw new FormatException("unclosed \\text");
            var content = s[(open + 1)..close].Trim();
            if (content is "and" or "or" or "or " or ",") Add(tokens, content == "," ? Tok.Comma : Tok.Connector, content, ref space);
            else if (content.Length > 0) Add(tokens, Tok.Text, content, ref space);
            return close + 1;
        }
        switch (name)
        {
            case "begin":
            case "end":
            {
                int open = j;
                if (open >= s.Length || s[open] != '{') throw new FormatException("\\begin without an environment");
                int close = s.IndexOf('}', open);
                if (close < 0) throw new FormatException("unclosed environment name");
                var env = s[(open + 1)..close].TrimEnd('*');
                j = close + 1;
                // array's column specification {cc|c} carries no value
                if (name == "begin" && env == "array") j = SkipGroup(s, j);
                Add(tokens, name == "begin" ? Tok.Begin : Tok.EndEnv, env, ref space);
                return j;
            }
            case "operatorname":
            {
                int close = j < s.Length && s[j] == '{' ? MatchBrace(s, j) : -1;
                if (close < 0) throw new FormatException("\\operatorname without a group");
                Add(tokens, Tok.Command, s[(j + 1)..close].Trim(), ref space);
                return close + 1;
            }
            case "dfrac": case "tfrac": case "cfrac": case "frac": Add(tokens, Tok.Command, "frac", ref space); return j;
            case "cdot": case "times": case "ast": Add(tokens, Tok.Op, "*", ref space); return j;
            case "div": Add(tokens, Tok.Op, "/", ref space); return j;
            case "le": case "leq": case "leqslant": case "leqq": Add(tokens, Tok.Rel, "<=", ref space); return j;
            case "ge": case "geq": case "geqslant": case "geqq": Add(tokens, Tok.Rel, ">=", ref space); return j;
            case "lt": Add(tokens, Tok.Rel, "<", ref space); return j;
            case "gt": Add(tokens, Tok.Rel, ">", ref space); return j;
            case "ne": case "neq": Add(tokens, Tok.Rel, "!=", ref space); return j;
            // its own relation: what follows it only approximates (Equivalence reads a chain's value)
            case "approx": case "simeq": Add(tokens, Tok.Rel, "≈", ref space); return j;
            case "euro": case "pounds": space = true; return j;
            case "in": Add(tokens, Tok.Rel, "in", ref space); return j;
            case "pm": Add(tokens, Tok.PlusMinus, "pm", ref space); return j;
            case "mp": Add(tokens, Tok.MinusPlus, "mp", ref space); return j;
            case "infty": case "infinity": Add(tokens, Tok.Infinity, "inf", ref space); return j;
            case "emptyset": case "varnothing": Add(tokens, Tok.EmptySet, "empty", ref space); return j;
            case "cup": Add(tokens, Tok.Union, "cup", ref space); return j;
            case "circ": case "degree": Add(tokens, Tok.Degree, "°", ref space); return j;
            case "lvert": case "rvert": case "vert": case "mid": Add(tokens, Tok.Bar, "|", ref space); return j;
            case "lbrace": Add(tokens, Tok.LSet, "{", ref space); return j;
            case "rbrace": Add(tokens, Tok.RSet, "}", ref space); return j;
            case "lparen": Add(tokens, Tok.LParen, "(", ref space); return j;
            case "rparen": Add(tokens, Tok.RParen, ")", ref space); return j;
            case "lbrack": Add(tokens, Tok.LBracket, "[", ref space); return j;
            case "rbrack": Add(tokens, Tok.RBracket, "]", ref space); return j;
            case "colon": space = true; return j;
        }
        if (Greek.Contains(name)) { Add(tokens, Tok.Letter, "\\" + name, ref space); return j; }
        if (name is "pi" or "sqrt" || LatexParser.IsFunction(name)) { Add(tokens, Tok.Command, name, ref space); return j; }
        throw new FormatException($"unsupported command \\{name}");
    }

    private static int SkipGroup(string s, int j)
    {
        while (j < s.Length && s[j] == ' ') j++;
        if (j >= s.Length || s[j] != '{') return j;
        int close = MatchBrace(s, j);
        return close < 0 ? s.Length : close + 1;
    }

    /// <summary>Index of the brace closing the one at <paramref name="open"/>, or -1 when unbalanced.</summary>
    internal static int MatchBrace(string t, int open)
    {
        int depth = 0;
        for (int i = open; i < t.Length; i++)
        {
            if (t[i] == '\\' && i + 1 < t.Length) { i++; continue; }
            if (t[i] == '{') depth++;
            else if (t[i] == '}' && --depth == 0) return i;
        }
        return -1;
    }
}
