using Popo.MathVerify;

namespace Popo.Engine.Tasks;

/// <summary>
/// A countdown answer: an expression of non-negative integer literals with + - * / and parentheses
/// (no unary minus), evaluated exactly over the rationals, so 7/2*2 = 7 and a division by zero is
/// invalid. Bounded: at most <see cref="MaxLength"/> characters and <see cref="MaxDepth"/> nested levels,
/// literals of at most 9 digits.
/// </summary>
internal static class CountdownExpression
{
    public const int MaxLength = 256;
    public const int MaxDepth = 32;

    /// <summary>The value and the literals used, or false when the text is not such an expression.</summary>
    public static bool TryEvaluate(string text, string operators, out Rational value, out List<long> literals)
    {
        value = Rational.Zero;
        literals = [];
        if (string.IsNullOrWhiteSpace(text) || text.Length > MaxLength) return false;
        var p = new Parser(text.Replace(" ", ""), operators, literals);
        try
        {
            value = p.Expr(0);
            return p.AtEnd;
        }
        catch (FormatException) { return false; }
        catch (DivideByZeroException) { return false; }
    }

    /// <summary>
    /// Whether <paramref name="text"/> (optionally followed by "=N") is an expression over a sub-multiset
    /// of <paramref name="numbers"/> (each at most once) using only <paramref name="operators"/> and
    /// equal to <paramref name="target"/>.
    /// </summary>
    public static bool Reaches(string text, IReadOnlyList<long> numbers, long target, string operators)
    {
        var eq = text.IndexOf('=');
        var expr = eq < 0 ? text : text[..eq];
        if (!TryEvaluate(expr, operators, out var value, out var used)) return false;
        if (value != Rational.FromInteger(target)) return false;
        var pool = numbers.GroupBy(n => n).ToDictionary(g => g.Key, g => g.Count());
        foreach (var n in used)
        {
            if (!pool.TryGetValue(n, out var left) || left == 0) return false;
            pool[n] = left - 1;
        }
        return true;
    }

    private sealed class Parser(string s, string operators, List<long> literals)
    {
        private int _pos;
        public bool AtEnd => _pos == s.Length;
        private char Peek => _pos < s.Length ? s[_pos] : '\0';

        public Rational Expr(int depth)
        {
            if (depth > MaxDepth) throw new FormatException();
            var v = Term(depth);
            while (Peek is '+' or '-')
            {
                var op = s[_pos++];
                if (!operators.Contains(op)) throw new FormatException();
                var r = Term(depth);
                v = op == '+' ? v + r : v - r;
            }
            return v;
        }

        private Rational Term(int depth)
        {
            var v = Atom(depth);
            while (Peek is '*' or '/')
            {
                var op = s[_pos++];
                if (!operators.Contains(op)) throw new FormatException();
                var r = Atom(depth);
                v = op == '*' ? v * r : v / r;
            }
            return v;
        }

        private Rational Atom(int depth)
        {
            if (Peek == '(')
            {
                _pos++;
                var v = Expr(depth + 1);
                if (Peek != ')') throw new FormatException();
                _pos++;
                return v;
            }
            int start = _pos;
            while (char.IsAsciiDigit(Peek)) _pos++;
            if (_pos == start || _pos - start > 9) throw new FormatException();
            var n = long.Parse(s.AsSpan(start, _pos - start));
            literals.Add(n);
            return Rational.FromInteger(n);
        }
    }
}
