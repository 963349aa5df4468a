using System.Globalization;
using System.Text;

namespace Popo.Jinja;

/// <summary>
/// Jinja2's lexer for the default delimiters ({{ }}, {% %}, {# #}) under Hugging Face's settings
/// (trim_blocks = True, lstrip_blocks = True): "-" strips all whitespace on that side of a tag, "+" keeps it,
/// trim_blocks drops the one newline after a block or comment tag, lstrip_blocks drops the spaces and tabs
/// before a block or comment tag that starts its line. Comments are dropped; {% raw %} is passed through.
/// Inside a tag, an end delimiter only counts when brackets are balanced, as in Jinja2.
/// </summary>
internal sealed class Lexer(SourceText source)
{
    private static readonly string[] Operators =
        ["//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";"];

    private readonly string text = source.Text;
    private readonly List<Token> tokens = [];
    private int pos;
    private bool lineStarting = true;

    public List<Token> Tokenize()
    {
        while (pos < text.Length)
        {
            var start = NextTagStart(pos);
            if (start < 0)
            {
                tokens.Add(new Token(TokenKind.Data, text[pos..], pos));
                break;
            }
            var kind = text[start + 1];
            var after = start + 2;
            var sign = after < text.Length && text[after] is '-' or '+' ? text[after] : '\0';
            var data = text[pos..start];
            if (sign == '-') data = PyText.RStrip(data);
            else if (sign != '+' && kind != '{') data = LStripBlock(data);
            if (data.Length > 0) tokens.Add(new Token(TokenKind.Data, data, pos));
            pos = sign == '\0' ? after : after + 1;
            switch (kind)
            {
                case '#':
                    Comment(start);
                    break;
                case '%' when IsRaw():
                    Raw(start);
                    break;
                case '%':
                    tokens.Add(new Token(TokenKind.BlockBegin, "{%", start));
                    Tag("%}", TokenKind.BlockEnd, trim: true);
                    break;
                default:
                    tokens.Add(new Token(TokenKind.VariableBegin, "{{", start));
                    Tag("}}", TokenKind.VariableEnd, trim: false);
                    break;
            }
        }
        tokens.Add(new Token(TokenKind.Eof, "", text.Length));
        return tokens;
    }

    private int NextTagStart(int from)
    {
        for (var i = text.IndexOf('{', from); i >= 0 && i + 1 < text.Length; i = text.IndexOf('{', i + 1))
            if (text[i + 1] is '{' or '%' or '#') return i;
        return -1;
    }

    /// <summary>lstrip_blocks: the spaces before a block/comment tag go when nothing else precedes it on its line.</summary>
    private string LStripBlock(string data)
    {
        var lineStart = data.LastIndexOf('\n') + 1;
        if (lineStart == 0 && !lineStarting) return data;
        if (lineStart == data.Length) return data;
        for (var i = lineStart; i < data.Length; i++)
            if (!PyText.IsSpace(data[i])) return data;
        return data[..lineStart];
    }

    /// <summary>After an end delimiter: "-" eats all whitespace, "+" nothing, else trim_blocks eats one newline.</summary>
    private void AfterTagEnd(char sign, bool trim)
    {
        var end = pos;
        if (sign == '-')
            while (pos < text.Length && PyText.IsSpace(text[pos])) pos++;
        else if (sign != '+' && trim && pos < text.Length && text[pos] == '\n') pos++;
        lineStarting = pos > end ? text[pos - 1] == '\n' : text[end - 1] == '\n';
    }

    private void Comment(int start)
    {
        var close = text.IndexOf("#}", pos, StringComparison.Ordinal);
        if (close < 0) throw source.Error(start, "missing end of comment tag '#}'");
        var sign = close > pos && text[close - 1] is '-' or '+' ? text[close - 1] : '\0';
        pos = close + 2;
        AfterTagEnd(sign, trim: true);
    }

    private bool IsRaw()
    {
        var i = pos;
        while (i < text.Length && PyText.IsSpace(text[i])) i++;
        if (string.CompareOrdinal(text, i, "raw", 0, 3) != 0) return false;
        i += 3;
        while (i < text.Length && PyText.IsSpace(text[i])) i++;
        return string.CompareOrdinal(text, i, "%}", 0, 2) == 0 || string.CompareOrdinal(text, i, "-%}", 0, 3) == 0;
    }

    private void Raw(int start)
    {
        var close = text.IndexOf("%}", pos, StringComparison.Ordinal);
        var sign = text[close - 1] == '-' ? '-' : '\0';
        pos = close + 2;
        AfterTagEnd(sign, trim: true);
        for (var i = text.IndexOf("{%", pos, StringComparison.Ordinal); i >= 0; i = text.IndexOf("{%", i + 2, StringComparison.Ordinal))
        {
            var j = i + 2;
            var innerSign = j < text.Length && text[j] is '-' or '+' ? text[j++] : '\0';
            while (j < text.Length && PyText.IsSpace(text[j])) j++;
            if (string.CompareOrdinal(text, j, "endraw", 0, 6) != 0) continue;
            j += 6;
            while (j < text.Length && PyText.IsSpace(text[j])) j++;
            var endSign = j < text.Length && text[j] is '-' or '+' ? text[j++] : '\0';
            if (string.CompareOrdinal(text, j, "%}", 0, 2) != 0) continue;
            var body = text[pos..i];
            if (innerSign == '-') body = PyText.RStrip(body);
            if (body.Length > 0) tokens.Add(new Token(TokenKind.Data, body, pos));
            pos = j + 2;
            AfterTagEnd(endSign, trim: true);
            return;
        }
        throw source.Error(start, "missing {% endraw %} for this {% raw %}");
    }

    /// <summary>The inside of a {% %} or {{ }} tag, up to its end delimiter at bracket depth 0.</summary>
    private void Tag(string end, TokenKind endKind, bool trim)
    {
        var brackets = new Stack<(char Close, int Offset)>();
        while (true)
        {
            while (pos < text.Length && PyText.IsSpace(text[pos])) pos++;
            if (pos >= text.Length)
                throw source.Error(pos, $"unexpected end of template, expected '{end}'");
            if (brackets.Count == 0)
            {
                var sign = text[pos] is '-' or '+' ? text[pos] : '\0';
                var at = sign == '\0' ? pos : pos + 1;
                if (string.CompareOrdinal(text, at, end, 0, 2) == 0 && !(sign == '+' && endKind == TokenKind.VariableEnd))
                {
                    tokens.Add(new Token(endKind, end, pos));
                    pos = at + 2;
                    AfterTagEnd(sign, trim);
                    return;
                }
            }
            var c = text[pos];
            if (char.IsAsciiDigit(c)) Number();
            else if (char.IsAsciiLetter(c) || c == '_') Name();
            else if (c is '\'' or '"') String();
            else Operator(brackets);
        }
    }

    private void Name()
    {
        var start = pos;
        while (pos < text.Length && (char.IsAsciiLetterOrDigit(text[pos]) || text[pos] == '_')) pos++;
        tokens.Add(new Token(TokenKind.Name, text[start..pos], start));
    }

    private void Number()
    {
        var start = pos;
        Digits();
        var isFloat = false;
        if (pos + 1 < text.Length && text[pos] == '.' && char.IsAsciiDigit(text[pos + 1]))
        {
            pos++;
            Digits();
            isFloat = true;
        }
        if (pos < text.Length && text[pos] is 'e' or 'E')
        {
            var save = pos;
            pos++;
            if (pos < text.Length && text[pos] is '+' or '-') pos++;
            if (pos < text.Length && char.IsAsciiDigit(text[pos]))
            {
                Digits();
                isFloat = true;
            }
            else pos = save;
        }
        var literal = text[start..pos].Replace("_", "");
        if (isFloat)
            tokens.Add(new Token(TokenKind.Float, literal, start, double.Parse(literal, CultureInfo.InvariantCulture)));
        else if (long.TryParse(literal, NumberStyles.None, CultureInfo.InvariantCulture, out var value))
            tokens.Add(new Token(TokenKind.Integer, literal, start, value));
        else
            throw source.Error(start, $"integer literal {literal} does not fit in 64 bits");
    }

    private void Digits()
    {
        while (pos < text.Length && (char.IsAsciiDigit(text[pos]) || (text[pos] == '_' && pos + 1 < text.Length && char.IsAsciiDigit(text[pos + 1])))) pos++;
    }

    /// <summary>A quoted literal, unescaped as Python's unicode-escape codec does (which is what Jinja2 applies).</summary>
    private void String()
    {
        var start = pos;
        var quote = text[pos++];
        var value = new StringBuilder();
        while (true)
        {
            if (pos >= text.Length) throw source.Error(start, "unterminated string literal");
            var c = text[pos++];
            if (c == quote) break;
            if (c != '\\')
            {
                value.Append(c);
                continue;
            }
            if (pos >= text.Length) throw source.Error(start, "unterminated string literal");
            var e = text[pos++];
            switch (e)
            {
                case '\n': break;
                case '\\': value.Append('\\'); break;
                case '\'': value.Append('\''); break;
                case '"': value.Append('"'); break;
                case 'a': value.Append('\a'); break;
                case 'b': value.Append('\b'); break;
                case 'f': value.Append('\f'); break;
                case 'n': value.Append('\n'); break;
                case 'r': value.Append('\r'); break;
                case 't': value.Append('\t'); break;
                case 'v': value.Append('\v'); break;
                case 'x': value.Append(char.ConvertFromUtf32(Hex(2, start))); break;
                case 'u': value.Append(char.ConvertFromUtf32(Hex(4, start))); break;
                case 'U': value.Append(char.ConvertFromUtf32(Hex(8, start))); break;
                case >= '0' and <= '7':
                {
                    var code = e - '0';
                    for (var k = 0; k < 2 && pos < text.Length && text[pos] is >= '0' and <= '7'; k++) code = code * 8 + (text[pos++] - '0');
                    value.Append((char)code);
                    break;
                }
                default:
                    value.Append('\\').Append(e);
                    break;
            }
        }
        tokens.Add(new Token(TokenKind.String, value.ToString(), start));
    }

    private int Hex(int digits, int start)
    {
        if (pos + digits > text.Length || !int.TryParse(text.AsSpan(pos, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var code))
            throw source.Error(start, $"truncated \\{text[pos - 1]} escape in a string literal");
        pos += digits;
        if (code > 0x10FFFF || code is >= 0xD800 and <= 0xDFFF) throw source.Error(start, $"escape \\{text[pos - digits - 1]} names no Unicode scalar value");
        return code;
    }

    private void Operator(Stack<(char Close, int Offset)> brackets)
    {
        foreach (var op in Operators)
        {
            if (string.CompareOrdinal(text, pos, op, 0, op.Length) != 0) continue;
            switch (op)
            {
                case "(": brackets.Push((')', pos)); break;
                case "[": brackets.Push((']', pos)); break;
                case "{": brackets.Push(('}', pos)); break;
                case ")" or "]" or "}":
                    if (brackets.Count == 0) throw source.Error(pos, $"unexpected '{op}'");
                    var (close, _) = brackets.Pop();
                    if (close != op[0]) throw source.Error(pos, $"unexpected '{op}', expected '{close}'");
                    break;
            }
            tokens.Add(new Token(TokenKind.Operator, op, pos));
            pos += op.Length;
            return;
        }
        throw source.Error(pos, $"unexpected character '{text[pos]}'");
    }
}
