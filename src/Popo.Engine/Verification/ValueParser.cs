using System.Numerics;

namespace Popo.Engine.Verification;

/// <summary>
/// Evaluates a normalised answer (see <see cref="LatexNormalizer"/>) that is a numeric expression:
/// integers, decimals, + - * / ^, parentheses and braces, \frac, \sqrt (and \sqrt[n]), \pi, implicit
/// multiplication (2\sqrt{3}, 3\pi) and mixed numbers (1\frac{4}{5} = 9/5). Anything else (variables,
/// text, \infty) is not a value and the caller falls back to comparing text.
/// Every size is capped: input length, nesting depth, digits per literal, and the bit size of a power,
/// so evaluation is bounded on adversarial input such as 10^10^10 (that simply is not a value here).
/// </summary>
internal sealed class ValueParser
{
    public const int MaxLength = 512;
    public const int MaxDepth = 48;
    public const int MaxDigits = 400;
    public const long MaxPowerBits = 16384;

    private sealed class NotAValue : Exception { }

    private readonly string _s;
    private int _pos;
    private int _depth;

    private ValueParser(string s) { _s = s; }

    /// <summary>Parses the whole text as one numeric expression; false when it is not one.</summary>
    public static bool TryParse(string text, out MathValue value)
    {
        value = default;
        if (string.IsNullOrEmpty(text) || text.Length > MaxLength) return false;
        var parser = new ValueParser(text);
        try
        {
            var v = parser.Expr();
            if (parser._pos != text.Length) return false;
            if (!v.IsExact && (double.IsNaN(v.Approx) || double.IsInfinity(v.Approx))) return false;
            value = v;
            return true;
        }
        catch (NotAValue) { return false; }
        catch (DivideByZeroException) { return false; }
        catch (OverflowException) { return false; }
    }

    private char Peek => _pos < _s.Length ? _s[_pos] : '\0';
    private bool At(string token) => string.CompareOrdinal(_s, _pos, token, 0, token.Length) == 0;
    private static NotAValue Fail() => new();

    private void Enter() { if (++_depth > MaxDepth) throw Fail(); }
    private void Leave() => _depth--;

    private MathValue Expr()
    {
        Enter();
        var v = Term();
        while (Peek is '+' or '-')
        {
            var op = _s[_pos++];
            var r = Term();
            v = op == '+' ? Add(v, r) : Add(v, Negate(r));
        }
        Leave();
        return v;
    }

    private MathValue Term()
    {
        // A term starting with an integer literal directly followed by \frac{int}{int} with
        // a proper fraction is a mixed number: 1\frac{4}{5} = 1 + 4/5.
        int start = _pos;
        var v = Unary();
        bool leadingInteger = IsUnsignedIntegerLiteral(start, _pos);
        while (true)
        {
            if (Peek == '*') { _pos++; v = Multiply(v, Unary()); }
            else if (Peek == '/') { _pos++; v = Divide(v, Unary()); }
            else if (StartsImplicitFactor())
            {
                int before = _pos;
                var f = Unary();
                if (leadingInteger && IsProperIntegerFraction(before, f) && v.IsExact)
                    v = Add(v, v.Exact.Sign < 0 ? Negate(f) : f);
                else
                    v = Multiply(v, f);
            }
            else return v;
            leadingInteger = false;
        }
    }

    private bool IsUnsignedIntegerLiteral(int from, int to)
    {
        if (from < to && _s[from] == '-') from++;
        if (to <= from) return false;
        for (int i = from; i < to; i++) if (!char.IsAsciiDigit(_s[i])) return false;
        return true;
    }

    private bool IsProperIntegerFraction(int from, MathValue f)
    {
        if (string.CompareOrdinal(_s, from, "\\frac{", 0, 6) != 0 || !f.IsExact) return false;
        // \frac{digits}{digits} with numerator < denominator
        int i = from + 6, n = i;
        while (n < _s.Length && char.IsAsciiDigit(_s[n])) n++;
        if (n == i || n + 1 >= _s.Length || _s[n] != '}' || _s[n + 1] != '{') return false;
        int d = n + 2, e = d;
        while (e < _s.Length && char.IsAsciiDigit(_s[e])) e++;
        if (e == d || e >= _s.Length || _s[e] != '}') return false;
        return f.Exact.Sign > 0 && f.Exact.Numerator < f.Exact.Denominator;
    }

    private bool StartsImplicitFactor() =>
        Peek is '(' or '{' || (Peek == '\\' && (At("\\frac") || At("\\sqrt") || At("\\pi")));

    private MathValue Unary()
    {
        Enter();
        MathValue v;
        if (Peek == '-') { _pos++; v = Negate(Unary()); }
        else if (Peek == '+') { _pos++; v = Unary(); }
        else v = Power();
        Leave();
        return v;
    }

    private MathValue Power()
    {
        var b = Primary();
        if (Peek != '^') return b;
        _pos++;
        Enter();
        var e = Peek == '{' ? Braced() : Unary();
        Leave();
        return Pow(b, e);
    }

    private MathValue Braced()
    {
        if (Peek != '{') throw Fail();
        _pos++;
        var v = Expr();
        if (Peek != '}') throw Fail();
        _pos++;
        return v;
    }

    private MathValue Primary()
    {
        char c = Peek;
        if (char.IsAsciiDigit(c) || c == '.') return Number();
        if (c == '(')
        {
            _pos++;
            var v = Expr();
            if (Peek != ')') throw Fail();
            _pos++;
            return v;
        }
        if (c == '{') return Braced();
        if (At("\\frac"))
        {
            _pos += 5;
            var num = Argument();
            var den = Argument();
            return Divide(num, den);
        }
        if (At("\\sqrt"))
        {
            _pos += 5;
            int index = 2;
            if (Peek == '[')
            {
                _pos++;
                var n = Expr();
                if (Peek != ']' || !n.IsExact || !n.Exact.IsInteger || n.Exact.Numerator < 2 || n.Exact.Numerator > 64)
                    throw Fail();
                _pos++;
                index = (int)n.Exact.Numerator;
            }
            return Root(Argument(), index);
        }
        if (At("\\pi") && !(_pos + 3 < _s.Length && char.IsAsciiLetter(_s[_pos + 3])))
        {
            _pos += 3;
            return MathValue.OfApprox(Math.PI);
        }
        throw Fail();
    }

    /// <summary>A macro argument: a braced group, or one digit (\frac12 has been braced by the normaliser).</summary>
    private MathValue Argument()
    {
        if (Peek == '{') return Braced();
        if (char.IsAsciiDigit(Peek)) return MathValue.OfExact(Rational.FromInteger(_s[_pos++] - '0'));
        throw Fail();
    }

    private MathValue Number()
    {
        int start = _pos;
        while (char.IsAsciiDigit(Peek)) _pos++;
        int intEnd = _pos;
        int fracStart = intEnd, fracEnd = intEnd;
        if (Peek == '.')
        {
            _pos++;
            fracStart = _pos;
            while (char.IsAsciiDigit(Peek)) _pos++;
            fracEnd = _pos;
        }
        int intDigits = intEnd - start, fracDigits = fracEnd - fracStart;
        if (intDigits + fracDigits == 0 || intDigits + fracDigits > MaxDigits) throw Fail();
        var whole = intDigits == 0 ? BigInteger.Zero : BigInteger.Parse(_s.AsSpan(start, intDigits));
        if (fracDigits == 0) return MathValue.OfExact(Rational.FromInteger(whole));
        var frac = BigInteger.Parse(_s.AsSpan(fracStart, fracDigits));
        var scale = BigInteger.Pow(10, fracDigits);
        return MathValue.OfExact(new Rational(whole * scale + frac, scale));
    }

    private static MathValue Negate(MathValue v) => v.IsExact ? MathValue.OfExact(-v.Exact) : MathValue.OfApprox(-v.Approx);

    private static MathValue Add(MathValue a, MathValue b) =>
        a.IsExact && b.IsExact ? MathValue.OfExact(a.Exact + b.Exact) : MathValue.OfApprox(a.AsDouble + b.AsDouble);

    private static MathValue Multiply(MathValue a, MathValue b) =>
        a.IsExact && b.IsExact ? MathValue.OfExact(a.Exact * b.Exact) : MathValue.OfApprox(a.AsDouble * b.AsDouble);

    private static MathValue Divide(MathValue a, MathValue b)
    {
        if (a.IsExact && b.IsExact) return MathValue.OfExact(a.Exact / b.Exact);
        var d = b.AsDouble;
        if (d == 0.0) throw new DivideByZeroException();
        return MathValue.OfApprox(a.AsDouble / d);
    }

    private static MathValue Pow(MathValue b, MathValue e)
    {
        if (b.IsExact && e.IsExact && e.Exact.IsInteger)
        {
            var n = e.Exact.Numerator;
            if (b.Exact.IsInteger && BigInteger.Abs(b.Exact.Numerator) <= 1 && !(b.Exact.Sign == 0 && n.Sign < 0))
                return MathValue.OfExact(b.Exact.Sign == 0 ? (n.IsZero ? Rational.One : Rational.Zero)
                                                            : (n.IsEven ? Rational.One : b.Exact));
            // Refuse before computing: the result has about size * |n| bits.
            if (BigInteger.Abs(n) > MaxPowerBits || b.Exact.SizeInBits * (long)BigInteger.Abs(n) > MaxPowerBits)
                throw Fail();
            if (b.Exact.Sign == 0 && n.Sign < 0) throw new DivideByZeroException();
            return MathValue.OfExact(Rational.Pow(b.Exact, (int)n));
        }
        double r = Math.Pow(b.AsDouble, e.AsDouble);
        if (double.IsNaN(r) || double.IsInfinity(r)) throw Fail();
        return MathValue.OfApprox(r);
    }

    private static MathValue Root(MathValue a, int index)
    {
        if (a.IsExact)
        {
            if (a.Exact.Sign < 0 && index % 2 == 0) throw Fail();
            if (TryExactRoot(BigInteger.Abs(a.Exact.Numerator), index, out var rn) &&
                TryExactRoot(a.Exact.Denominator, index, out var rd))
                return MathValue.OfExact(new Rational(a.Exact.Sign < 0 ? -rn : rn, rd));
        }
        double x = a.AsDouble;
        if (x < 0 && index % 2 == 0) throw Fail();
        double r = Math.Sign(x) * Math.Pow(Math.Abs(x), 1.0 / index);
        return MathValue.OfApprox(r);
    }

    /// <summary>Integer k-th root by Newton's method; true when it is exact.</summary>
    private static bool TryExactRoot(BigInteger n, int k, out BigInteger root)
    {
        root = n;
        if (n < 2) return true;
        // Start above the root: 2^(ceil(bits/k)) >= n^(1/k).
        var x = BigInteger.One << (int)((n.GetBitLength() + k - 1) / k);
        while (true)
        {
            var y = ((k - 1) * x + n / BigInteger.Pow(x, k - 1)) / k;
            if (y >= x) break;
            x = y;
        }
        root = x;
        return BigInteger.Pow(x, k) == n;
    }
}
