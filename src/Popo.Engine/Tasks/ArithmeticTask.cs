using Popo.Engine.Data;
using System.Numerics;
using System.Text;
using Popo.MathVerify;

namespace Popo.Engine.Tasks;

/// <summary>
/// What an arithmetic problem looks like: operands with MinDigits..MaxDigits digits, Operands of them,
/// joined by operators drawn from Operators ('+', '-', '*'; '*' binds tighter, as usual).
/// </summary>
internal sealed record ArithmeticDifficulty(int MinDigits, int MaxDigits, int Operands, string Operators)
{
    /// <summary>
    /// tiny: 1-digit a+b (100 problems; a smoke test). add2 (default): up to 2 digits, + only (the built-in
    /// default job). easy: up to 2 digits, + and -. medium: up to 3 digits, + and - (Q: 47+385). hard: 3-4 digits, three operands, + and -.
    /// mul: 1-2-digit times 1-2-digit. expert: 2-3 digits, three operands, + - * (products first).
    /// More digits, operands and '*' lower a small model's pass rate: tiny/easy are meant for the dense
    /// regime (above 80% after warm-up), hard/expert for the sparse one (below 10%); the
    /// key=value form moves between them in small steps.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, ArithmeticDifficulty> Presets = new Dictionary<string, ArithmeticDifficulty>
    {
        ["tiny"] = new(1, 1, 2, "+"),
        ["add2"] = new(1, 2, 2, "+"),
        ["easy"] = new(1, 2, 2, "+-"),
        ["medium"] = new(1, 3, 2, "+-"),
        ["hard"] = new(3, 4, 3, "+-"),
        ["mul"] = new(1, 2, 2, "*"),
        ["expert"] = new(2, 3, 3, "+-*"),
    };

    public const string Default = "add2";

    /// <summary>A preset name, or key=value pairs (digits, mindigits, maxdigits, operands, ops) over medium.</summary>
    public static ArithmeticDifficulty Parse(string? text) =>
        DifficultySpec.Parse("arithmetic", text, Presets, Default, new Dictionary<string, Func<ArithmeticDifficulty, string, ArithmeticDifficulty>>
        {
            ["digits"] = (d, v) => d with { MinDigits = 1, MaxDigits = DifficultySpec.Int("arithmetic", "digits", v, 1, 18) },
            ["mindigits"] = (d, v) => d with { MinDigits = DifficultySpec.Int("arithmetic", "mindigits", v, 1, 18) },
            ["maxdigits"] = (d, v) => d with { MaxDigits = DifficultySpec.Int("arithmetic", "maxdigits", v, 1, 18) },
            ["operands"] = (d, v) => d with { Operands = DifficultySpec.Int("arithmetic", "operands", v, 2, 8) },
            ["ops"] = (d, v) => d with { Operators = DifficultySpec.Operators("arithmetic", v, "+-*") },
        }).Validated();

    private ArithmeticDifficulty Validated()
    {
        if (MinDigits < 1 || MaxDigits > 18 || MinDigits > MaxDigits)
            throw new ArgumentException($"arithmetic: digits must satisfy 1 <= mindigits <= maxdigits <= 18, got {MinDigits}..{MaxDigits}");
        return this;
    }
}

/// <summary>
/// Generated multi-digit arithmetic (docs/design.md §7). Prompt "Q: 47+385\nA: "; the worked solution shows
/// every binary step (products first, then left to right): column addition with carries
/// ("7+5=12 4+8+1=13 3+1=4"), column subtraction with borrows ("15-7=8 8-1-4=3 3"), multiplication by
/// partial products ("47*5=235 47*30=1410 235+1410=1645"), and ends with the line "#### 432".
/// With several steps each line reads "a op b: detail =r". Reward: <see cref="MathVerifier"/> on the answer.
/// </summary>
internal sealed class ArithmeticTask : ITask
{
    private readonly long _seed;
    public ArithmeticDifficulty Difficulty { get; }

    public ArithmeticTask(long seed = 0, ArithmeticDifficulty? difficulty = null)
    {
        _seed = seed;
        Difficulty = difficulty ?? ArithmeticDifficulty.Presets[ArithmeticDifficulty.Default];
    }

    public string Name => "arithmetic";

    public long? Count(Split split) => null;

    public Judgement Judge(Problem problem, string completion, bool finished = true) =>
        problem.Answer is null ? new Judgement(0.0) : Check(problem.Answer, completion, finished);

    /// <summary>The arithmetic check: the completion's answer (any marker, else the last number) equals <paramref name="answer"/>.</summary>
    public static Judgement Check(string answer, string completion, bool finished = true) =>
        Judgement.Of(MathVerifier.Verify(completion, answer, finished: finished));

    public Problem Get(Split split, long index)
    {
        var (operands, ops) = InstanceSpace.Draw(Name, _seed, split, index, Draw, Expression);
        var expression = Expression((operands, ops));
        var (answer, solution) = Solve(operands, ops);
        var id = $"arithmetic/{split.ToString().ToLowerInvariant()}/{index}";
        var prompt = $"Q: {expression}\nA: ";
        var columns = new System.Text.Json.Nodes.JsonObject { ["id"] = id, ["prompt"] = prompt, ["answer"] = answer.ToString(), ["expression"] = expression };
        return new Problem(id, prompt, answer.ToString(), solution, Columns: columns);
    }

    private (long[] Operands, char[] Ops) Draw(Rng rng)
    {
        var d = Difficulty;
        var operands = new long[d.Operands];
        for (int i = 0; i < operands.Length; i++)
        {
            int digits = (int)rng.Next(d.MinDigits, d.MaxDigits);
            long lo = digits == 1 ? 0 : Pow10(digits - 1);
            operands[i] = rng.Next(lo, Pow10(digits) - 1);
        }
        var ops = new char[d.Operands - 1];
        for (int i = 0; i < ops.Length; i++) ops[i] = d.Operators[(int)rng.Next(0, d.Operators.Length - 1)];
        return (operands, ops);
    }

    private static long Pow10(int k) { long p = 1; for (int i = 0; i < k; i++) p *= 10; return p; }

    private static string Expression((long[] Operands, char[] Ops) e)
    {
        var sb = new StringBuilder().Append(e.Operands[0]);
        for (int i = 0; i < e.Ops.Length; i++) sb.Append(e.Ops[i]).Append(e.Operands[i + 1]);
        return sb.ToString();
    }

    /// <summary>Evaluates with the usual precedence and writes the worked solution.</summary>
    internal static (BigInteger Answer, string Solution) Solve(long[] operands, char[] ops)
    {
        var steps = new List<(BigInteger A, char Op, BigInteger B, BigInteger R, string Detail)>();
        // products first, left to right
        var terms = new List<BigInteger> { operands[0] };
        var signs = new List<char>();
        for (int i = 0; i < ops.Length; i++)
        {
            if (ops[i] == '*')
            {
                var a = terms[^1];
                var b = (BigInteger)operands[i + 1];
                var r = a * b;
                steps.Add((a, '*', b, r, MultiplyDetail(a, b)));
                terms[^1] = r;
            }
            else { signs.Add(ops[i]); terms.Add(operands[i + 1]); }
        }
        var acc = terms[0];
        for (int i = 0; i < signs.Count; i++)
        {
            var b = terms[i + 1];
            var r = signs[i] == '+' ? acc + b : acc - b;
            steps.Add((acc, signs[i], b, r, signs[i] == '+' ? AddDetail(acc, b) : SubtractDetail(acc, b)));
            acc = r;
        }
        var sb = new StringBuilder();
        if (steps.Count == 1) sb.Append(steps[0].Detail).Append('\n');
        else foreach (var s in steps) sb.Append($"{s.A}{s.Op}{s.B}: {s.Detail} ={s.R}\n");
        sb.Append("#### ").Append(acc);
        return (acc, sb.ToString());
    }

    private static int[] Digits(BigInteger n) => BigInteger.Abs(n).ToString().Reverse().Select(c => c - '0').ToArray();

    /// <summary>Column addition of two numbers, right to left: "7+5=12 4+8+1=13 3+1=4". Handles signs by rewriting.</summary>
    public static string AddDetail(BigInteger a, BigInteger b)
    {
        if (a.Sign < 0 && b.Sign < 0) return $"-({-a}+{-b}) " + AddColumns(-a, -b);
        if (a.Sign < 0) return $"{b}-{-a} " + SubtractDetail(b, -a);
        if (b.Sign < 0) return $"{a}-{-b} " + SubtractDetail(a, -b);
        return AddColumns(a, b);
    }

    private static string AddColumns(BigInteger a, BigInteger b)
    {
        var x = Digits(a);
        var y = Digits(b);
        var cols = new List<string>();
        int carry = 0;
        for (int i = 0; i < Math.Max(x.Length, y.Length) || carry > 0; i++)
        {
            var parts = new List<int>();
            if (i < x.Length) parts.Add(x[i]);
            if (i < y.Length) parts.Add(y[i]);
            if (carry > 0) parts.Add(carry);
            int sum = parts.Sum();
            cols.Add(parts.Count == 1 ? $"{sum}" : $"{string.Join('+', parts)}={sum}");
            carry = sum / 10;
        }
        return string.Join(' ', cols);
    }

    /// <summary>Column subtraction a-b with borrows: "15-7=8 8-1-4=3 3"; a &lt; b is written -(b-a) first.</summary>
    public static string SubtractDetail(BigInteger a, BigInteger b)
    {
        if (b.Sign < 0) return $"{a}+{-b} " + AddDetail(a, -b);
        if (a.Sign < 0) return $"-({-a}+{b}) " + AddColumns(-a, b);
        if (a < b) return $"-({b}-{a}) " + SubtractDetail(b, a);
        var x = Digits(a);
        var y = Digits(b);
        var cols = new List<string>();
        int borrow = 0;
        for (int i = 0; i < x.Length; i++)
        {
            int top = x[i], bottom = i < y.Length ? y[i] : 0;
            int value = top - borrow - bottom;
            int borrowOut = value < 0 ? 1 : 0;
            // "15-7=8" borrows for this column; "8-1-4=3" pays the previous borrow
            var parts = new List<int> { top + 10 * borrowOut };
            if (borrow == 1) parts.Add(1);
            if (i < y.Length) parts.Add(bottom);
            int result = value + 10 * borrowOut;
            cols.Add(parts.Count == 1 ? $"{result}" : $"{string.Join('-', parts)}={result}");
            borrow = borrowOut;
        }
        return string.Join(' ', cols);
    }

    /// <summary>Partial products by the digits of b, then their sum: "47*5=235 47*30=1410 235+1410=1645".</summary>
    public static string MultiplyDetail(BigInteger a, BigInteger b)
    {
        var y = Digits(b);
        var partials = new List<BigInteger>();
        var parts = new List<string>();
        BigInteger place = 1;
        for (int i = 0; i < y.Length; i++, place *= 10)
        {
            if (y[i] == 0 && y.Length > 1) continue;
            var factor = y[i] * place;
            var p = a * factor;
            partials.Add(p);
            parts.Add($"{a}*{factor}={p}");
        }
        if (partials.Count > 1) parts.Add($"{string.Join('+', partials)}={partials.Aggregate(BigInteger.Zero, (s, v) => s + v)}");
        return string.Join(' ', parts);
    }
}
