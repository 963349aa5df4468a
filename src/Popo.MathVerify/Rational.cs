using System.Numerics;

namespace Popo.MathVerify;

/// <summary>
/// An exact rational number p/q in lowest terms with q &gt; 0. Used by the answer verifier and the
/// countdown checker so that 1/3 + 1/6 equals 1/2 exactly. Callers bound the size of the operands
/// (the parsers cap digit counts and exponents), so no operation here can grow without limit.
/// </summary>
public readonly struct Rational : IEquatable<Rational>
{
    /// <summary>The numerator p (carries the sign).</summary>
    public BigInteger Numerator { get; }
    /// <summary>The denominator q, always positive.</summary>
    public BigInteger Denominator { get; }

    /// <summary>numerator/denominator in lowest terms; a zero denominator throws.</summary>
    public Rational(BigInteger numerator, BigInteger denominator)
    {
        if (denominator.IsZero) throw new DivideByZeroException("rational with zero denominator");
        if (denominator.Sign < 0) { numerator = -numerator; denominator = -denominator; }
        var g = BigInteger.GreatestCommonDivisor(numerator, denominator);
        if (!g.IsOne && !g.IsZero) { numerator /= g; denominator /= g; }
        Numerator = numerator;
        Denominator = numerator.IsZero ? BigInteger.One : denominator;
    }

    /// <summary>The integer <paramref name="value"/> as value/1.</summary>
    public static Rational FromInteger(BigInteger value) => new(value, BigInteger.One);

    /// <summary>0.</summary>
    public static readonly Rational Zero = FromInteger(0);
    /// <summary>1.</summary>
    public static readonly Rational One = FromInteger(1);

    /// <summary>Whether the denominator is 1.</summary>
    public bool IsInteger => Denominator.IsOne;
    /// <summary>-1, 0 or 1.</summary>
    public int Sign => Numerator.Sign;

    /// <summary>Bits needed for numerator and denominator together: the size guard for powers.</summary>
    public long SizeInBits => (long)Numerator.GetBitLength() + (long)Denominator.GetBitLength();

    /// <summary>The exact sum.</summary>
    public static Rational operator +(Rational a, Rational b) =>
        new(a.Numerator * b.Denominator + b.Numerator * a.Denominator, a.Denominator * b.Denominator);
    /// <summary>The exact difference.</summary>
    public static Rational operator -(Rational a, Rational b) =>
        new(a.Numerator * b.Denominator - b.Numerator * a.Denominator, a.Denominator * b.Denominator);
    /// <summary>The negation.</summary>
    public static Rational operator -(Rational a) => new(-a.Numerator, a.Denominator);
    /// <summary>The exact product.</summary>
    public static Rational operator *(Rational a, Rational b) =>
        new(a.Numerator * b.Numerator, a.Denominator * b.Denominator);
    /// <exception cref="DivideByZeroException">when b is zero.</exception>
    public static Rational operator /(Rational a, Rational b) =>
        new(a.Numerator * b.Denominator, a.Denominator * b.Numerator);

    /// <summary>a^e for an integer exponent; the caller bounds |e| and the operand size.</summary>
    public static Rational Pow(Rational a, int e)
    {
        if (e >= 0) return new(BigInteger.Pow(a.Numerator, e), BigInteger.Pow(a.Denominator, e));
        return new(BigInteger.Pow(a.Denominator, -e), BigInteger.Pow(a.Numerator, -e));
    }

    /// <summary>The nearest double (approximate for large operands).</summary>
    public double ToDouble()
    {
        if (Numerator.IsZero) return 0.0;
        if (Numerator.GetBitLength() < 1000 && Denominator.GetBitLength() < 1000)
            return (double)Numerator / (double)Denominator;
        // Both parts beyond double range: divide in log space.
        return Math.Exp(BigInteger.Log(BigInteger.Abs(Numerator)) - BigInteger.Log(Denominator)) * Numerator.Sign;
    }

    /// <summary>Exact equality (both are in lowest terms).</summary>
    public bool Equals(Rational other) => Numerator == other.Numerator && Denominator == other.Denominator;
    /// <summary>Exact equality with another Rational.</summary>
    public override bool Equals(object? obj) => obj is Rational r && Equals(r);
    /// <summary>A hash of numerator and denominator.</summary>
    public override int GetHashCode() => HashCode.Combine(Numerator, Denominator);
    /// <summary>Exact equality.</summary>
    public static bool operator ==(Rational a, Rational b) => a.Equals(b);
    /// <summary>Exact inequality.</summary>
    public static bool operator !=(Rational a, Rational b) => !a.Equals(b);
    /// <summary>"p" for an integer, else "p/q".</summary>
    public override string ToString() => Denominator.IsOne ? Numerator.ToString() : $"{Numerator}/{Denominator}";
}
