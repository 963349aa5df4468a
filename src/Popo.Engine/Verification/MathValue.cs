namespace Popo.Engine.Verification;

/// <summary>
/// The value of a parsed answer: exact (a rational) when the expression has no irrational part, else a
/// float64 evaluation of a closed form with roots or pi. Exact and irrational values are never equal,
/// so a decimal approximation such as 1.4142 does not match \sqrt{2}.
/// </summary>
internal readonly record struct MathValue(bool IsExact, Rational Exact, double Approx)
{
    /// <summary>Relative tolerance for two irrational closed forms (rounding of a few float64 operations).</summary>
    public const double IrrationalTolerance = 1e-10;

    public static MathValue OfExact(Rational r) => new(true, r, 0.0);
    public static MathValue OfApprox(double v) => new(false, Rational.Zero, v);

    public double AsDouble => IsExact ? Exact.ToDouble() : Approx;

    public bool SameAs(MathValue other)
    {
        if (IsExact && other.IsExact) return Exact == other.Exact;
        if (IsExact != other.IsExact) return false;
        var (a, b) = (Approx, other.Approx);
        return Math.Abs(a - b) <= IrrationalTolerance * Math.Max(1.0, Math.Max(Math.Abs(a), Math.Abs(b)));
    }

    public MathValue DividedByHundred() =>
        IsExact ? OfExact(Exact / Rational.FromInteger(100)) : OfApprox(Approx / 100.0);
}
