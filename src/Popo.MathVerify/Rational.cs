using System.Numerics;

namespace Popo.MathVerify;

/// <summary>
/// An exact rational number p/q in lowest terms with q &gt; 0. Used by the answer verifier and the
/// countdown checker so that 1/3 + 1/6 equals 1/2 exactly. Callers bound the size of the operands
/// (the parsers cap digit counts and exponents), so no operation here can grow without limit.
/// </summary>
internal readonly struct Rational : IEquatable<Rational>
{
    public BigInteger Numerator { get; }
    public BigInteger Denominator { get; }

    public Rational(BigInteger numerator, BigInteger denominator)
    {
        if (denominator.IsZero) throw new DivideByZeroException("rational with zero denominator");
        if (denominator.Sign < 0) { numerator = -numerator; denominator = -denominator; }
        var g = BigInteger.GreatestCommonDivisor(numerator, denominator);
        if (!g.IsOne && !g.IsZero) { numerator /= g; denominator /= g; }
        Numerator = numerator;
        Denominator = numerator.IsZero ? BigInteger.One : denominator;
    }

    public static Rational FromInteger(BigInteger value) => new(value, BigInteger.One);

    public static readonly Rational Zero = FromInteger(0);
    public static readonly Rational One = FromInteger(1);

    public bool IsInteger => Denominator.IsOne;
    public int Sign => Numerator.Sign;

    /// <summary>Bits needed for numerator and denominator together: the size guard for powers.</summary>
    public long SizeInBits => (long)Numerator.GetBitLength() + (long)Denominator.GetBitLength();

    public static Rational operator +(Rational a, Rational b) =>
        new(a.Numerator * b.Denominator + b.Numerator * a.Denominator, a.Denominator * b.Denominator);
    public static Rational operator -(Rational a, Rational b) =>
        new(a.Numerator * b.Denominator - b.Numerator * a.Denominator, a.Denominator * b.Denominator);
    public static Rational operator -(Rational a) => new(-a.Numerator, a.Denominator);
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

    public double ToDouble()
    {
        if (Numerator.IsZero) return 0.0;
        if (Numerator.GetBitLength() < 1000 && Denominator.GetBitLength() < 1000)
            return (double)Numerator / (double)Denominator;
        // Both parts beyond double range: divide in log space.
        return Math.Exp(BigInteger.Log(BigInteger.Abs(Numerator)) - BigInteger.Log(Denominator)) * Numerator.Sign;
    }

    public bool Equals(Rational other) => Numerator == other.Numerator && Denominator == other.Denominator;
    public override bool Equals(object? obj) => obj is Rational r && Equals(r);
    public override int GetHashCode() => HashCode.Combine(Numerator, Denominator);
    public static bool operator ==(Rational a, Rational b) => a.Equals(b);
    public static bool operator !=(Rational a, Rational b) => !a.Equals(b);
    public override string ToString() => Denominator.IsOne ? Numerator.ToString() : $"{Numerator}/{Denominator}";
}
