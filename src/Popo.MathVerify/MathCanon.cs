using System.Numerics;

namespace Popo.MathVerify;

/// <summary>
/// The comparable form of a <see cref="MathNode"/> tree, computed once per answer so that comparing two
/// answers (or matching two 64-element sets) only compares values. A scalar is its values at fixed
/// points of its free variables: exact rationals where the expression is rational, else complex float64.
/// </summary>
internal abstract class Canon
{
    private long? _key;
    private bool _keyDone;

    /// <summary>
    /// A hash of the value when it can only equal values with the same hash (exact, no variables, no
    /// alternatives); null otherwise. Two different keys prove two answers different without comparing them.
    /// </summary>
    public long? Key
    {
        get
        {
            if (!_keyDone) { _key = ComputeKey(); _keyDone = true; }
            return _key;
        }
    }

    protected abstract long? ComputeKey();

    protected static long Mix(long h)
    {
        ulong x = (ulong)h;
        x ^= x >> 33; x *= 0xff51afd7ed558ccdUL; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53UL; x ^= x >> 33;
        return (long)x;
    }
}

internal sealed class ScalarCanon : Canon
{
    /// <summary>Free variables, sorted.</summary>
    public required string[] Vars { get; init; }
    /// <summary>Exact value at each point (null entry: undefined there), or null when not rational.</summary>
    public Rational?[]? Exact { get; init; }
    /// <summary>Value at each point (NaN: undefined there).</summary>
    public required Complex[] Approx { get; init; }
    /// <summary>Digits after the point when the answer is a plain decimal literal (0.333333), else -1.</summary>
    public int DecimalDigits { get; init; } = -1;
    /// <summary>+1 / -1 for +infinity / -infinity, else 0.</summary>
    public int Infinity { get; init; }
    /// <summary>For x%: the value x itself (the answer may state the percent without the mark).</summary>
    public ScalarCanon? PercentOf { get; init; }
    /// <summary>The tree and ± choice it was evaluated from: re-evaluated when the other side has other variables.</summary>
    public MathNode? Node { get; init; }
    public int Mask { get; init; }

    protected override long? ComputeKey()
    {
        if (Infinity != 0) return Mix(Infinity * 7919);
        // a percent reads two ways and a long decimal matches values it is not exactly: no key
        if (Vars.Length > 0 || PercentOf is not null || DecimalDigits >= MathCanon.MinDecimalDigits || Exact?[0] is not { } r) return null;
        return Mix(r.GetHashCode());
    }
}

internal enum SeqKind { Ordered, Unordered, Matrix, Union }

internal sealed class SeqCanon : Canon
{
    public required SeqKind Kind { get; init; }
    public char Open { get; init; }
    public char Close { get; init; }
    public int Columns { get; init; }
    public required Canon[] Items { get; init; }
    /// <summary>The two values of a ± b: a list holding it takes both.</summary>
    public bool FromPlusMinus { get; init; }
    /// <summary>Written as a set \{...\}: a repeated element counts once.</summary>
    public bool IsSet { get; init; }
    /// <summary>
    /// For an interval read from an inequality, the name it bounds (x, f*x); two labelled intervals of
    /// different names differ (x &gt; 3 is not y &gt; 3); a written interval has none.
    /// </summary>
    public string? Label { get; init; }

    protected override long? ComputeKey()
    {
        bool ordered = Kind is SeqKind.Ordered or SeqKind.Matrix;
        var keys = new long[Items.Length];
        for (int i = 0; i < keys.Length; i++)
        {
            if (Items[i].Key is not { } k) return null;
            keys[i] = k;
        }
        // in order for tuples and matrices; as the set of distinct keys for sets, lists and unions (a set
        // drops repeats when compared, so the key must not count them)
        var used = ordered ? keys : keys.Distinct().ToArray();
        long h = Mix((long)Kind * 31 + Open * 131 + Close * 257 + Columns * 1031 + used.Length * 4099);
        foreach (var k in used) h = ordered ? Mix(h * 31 + k) : h + Mix(k);
        return h;
    }
}

internal sealed class RelationCanon : Canon
{
    public required string[] Ops { get; init; }
    public required Canon[] Operands { get; init; }
    /// <summary>
    /// name = value (x = 5, (p,q) = (3,2), f(2) = 1, AB = 4, x \in [a,b]): against an answer without a
    /// relation, the value is compared. An equation such as 5x - 7y + 4 = 0 is not an assignment.
    /// </summary>
    public bool Assignment { get; init; }

    protected override long? ComputeKey() => null;
}

internal sealed class WordCanon : Canon
{
    public required string Text { get; init; }

    protected override long? ComputeKey() => Mix(StringComparer.Ordinal.GetHashCode(Text));
}

/// <summary>Builds <see cref="Canon"/> values from trees (evaluation) and compares them (equivalence).</summary>
internal static class MathCanon
{
    /// <summary>Points at which an expression with free variables is evaluated.</summary>
    public const int Points = 6;
    /// <summary>Relative tolerance of two float64 values (|a-b| &lt;= tol * max(1, |a|, |b|)).</summary>
    public const double Tolerance = 1e-9;
    /// <summary>A decimal equals a value it is not exactly only when it shows at least this many decimals.</summary>
    public const int MinDecimalDigits = 6;
    private const int MaxExponent = 4096;
    private const long MaxBits = 1 << 16;
    private const int MaxPlusMinus = 3;

    public static Canon Build(MathNode node)
    {
        switch (node)
        {
            case ListNode l: return l.Or && OrUnion(l) is { } union ? union : Unordered(l.Items);
            case SetNode set: return Unordered(set.Items, isSet: true);
            case RatioNode ratio: return Build(new BinaryNode('/', ratio.A, ratio.B));
            // -M and 2M for a matrix M: the matrix of the scaled entries
            case NegateNode { X: MatrixNode nm }: return Build(new MatrixNode(Scale(nm, e => new NegateNode(e))));
            case BinaryNode { Op: '*', A: var k, B: MatrixNode sm } when IsScalarTree(k): return Build(new MatrixNode(Scale(sm, e => new BinaryNode('*', k, e))));
            case BracketNode b:
                return new SeqCanon { Kind = SeqKind.Ordered, Open = b.Open, Close = b.Close, Items = b.Items.Select(Build).ToArray() };
            case UnionNode u:
            {
                var parts = u.Parts.Select(Build).ToArray();
                // {1,3} \cup {2,4} is the set {1,2,3,4}
                if (parts.All(p => p is SeqCanon { Kind: SeqKind.Unordered }))
                    return new SeqCanon { Kind = SeqKind.Unordered, Items = parts.SelectMany(p => ((SeqCanon)p).Items).ToArray() };
                return new SeqCanon { Kind = SeqKind.Union, Items = parts };
            }
            case MatrixNode m:
                return new SeqCanon { Kind = SeqKind.Matrix, Columns = m.Rows[0].Count, Items = m.Rows.SelectMany(r => r).Select(Build).ToArray() };
            case RelationNode r: return Relation(r);
            case WordNode w: return Word(w.Text);
            case PercentNode p:
                return Scalar(new BinaryNode('/', p.X, new NumberNode(Rational.FromInteger(100), -1))) is ScalarCanon s
                       && Build(p.X) is ScalarCanon x ? WithPercent(s, x) : throw new FormatException("percent of a structure");
            default:
                return Scalar(node);
        }
    }

    private static ScalarCanon WithPercent(ScalarCanon s, ScalarCanon of) =>
        new() { Vars = s.Vars, Exact = s.Exact, Approx = s.Approx, PercentOf = of };

    private static IReadOnlyList<IReadOnlyList<MathNode>> Scale(MatrixNode m, Func<MathNode, MathNode> f) =>
        m.Rows.Select(r => (IReadOnlyList<MathNode>)r.Select(f).ToArray()).ToArray();

    private static bool IsScalarTree(MathNode n)
    {
        try { _ = Symbols(n).Count(); return true; }
        catch (FormatException) { return false; }
    }

    /// <summary>
    /// x &lt; 2 or x &gt; 3: when every item is an inequality of the same name, the union of their intervals
    /// (compared as a written union, in any order); else null.
    /// </summary>
    private static SeqCanon? OrUnion(ListNode l)
    {
        var parts = new Canon[l.Items.Count];
        for (int k = 0; k < parts.Length; k++)
        {
            if (l.Items[k] is not RelationNode r || Interval(r) is not { Label: { } label } interval) return null;
            if (k > 0 && label != ((SeqCanon)parts[0]).Label) return null;
            parts[k] = interval;
        }
        return new SeqCanon { Kind = SeqKind.Union, Items = parts };
    }

    private static SeqCanon Unordered(IReadOnlyList<MathNode> items, bool isSet = false)
    {
        var built = new List<Canon>(items.Count);
        foreach (var item in items)
        {
            var c = Build(item);
            if (c is SeqCanon { FromPlusMinus: true } pm) built.AddRange(pm.Items);
            else built.Add(c);
        }
        return new SeqCanon { Kind = SeqKind.Unordered, Items = built.ToArray(), IsSet = isSet };
    }

    private static Canon Word(string text)
    {
        // an article carries no answer: \text{an ellipse} is \text{ellipse}
        var words = text.Trim();
        foreach (var article in new[] { "a ", "an ", "the " })
            if (words.StartsWith(article, StringComparison.OrdinalIgnoreCase) && words.Length > article.Length) { words = words[article.Length..]; break; }
        var t = new string(words.Where(c => !char.IsWhiteSpace(c)).ToArray());
        if (t.Length >= 3 && t[0] == '(' && t[^1] == ')') t = t[1..^1];
        if (t.Length == 1 && char.IsAsciiLetter(t[0])) return Scalar(new SymbolNode(t));
        if (t.Length == 0 || !t.All(char.IsLetter)) throw new FormatException("not a word answer");
        return new WordCanon { Text = t.ToLowerInvariant() };
    }

    private static Canon Relation(RelationNode r)
    {
        var interval = Interval(r);
        if (interval is not null) return interval;
        return new RelationCanon
        {
            Ops = r.Ops.ToArray(), Operands = r.Operands.Select(Build).ToArray(),
            Assignment = r.Ops.All(o => o is "=" or "in") && IsName(r.Operands[0]),
        };
    }

    /// <summary>
    /// What an assignment can name: a variable, a product led by one (AB, f(2)), a tuple of names, a length
    /// |AB|, a ratio or quotient of names (V_1:V_2, \frac{NO}{BO}).
    /// </summary>
    private static bool IsName(MathNode n) => n switch
    {
        SymbolNode => true,
        BinaryNode { Op: '*', A: var a } => IsName(a),
        BinaryNode { Op: '/', A: var a, B: var b } => IsName(a) && IsName(b),
        RatioNode r => IsName(r.A) && IsName(r.B),
        AbsNode a => IsName(a.X),
        BracketNode b => b.Items.All(IsName),
        _ => false,
    };

    /// <summary>
    /// What an inequality can bound and still read as an interval: a variable, a function of one (f(x)), a
    /// length |x|; its text, or null. Not a product with numbers (0 &lt; 2x &lt; 1 is not (0,1)).
    /// </summary>
    private static string? Label(MathNode n) => n switch
    {
        SymbolNode s => s.Name,
        BinaryNode { Op: '*', A: SymbolNode f, B: SymbolNode x } => f.Name + "(" + x.Name + ")",
        AbsNode { X: var x } when Label(x) is { } inner => "|" + inner + "|",
        _ => null,
    };

    /// <summary>
    /// x &gt; 3, 3 &lt;= x, -2 &lt;= x &lt; 7, 0 &lt; f(x) &lt; 1 of one name (<see cref="Label"/>): the interval they describe,
    /// labelled with the name; a linear inequality in one variable (-x &gt; -1, 2x + 1 &lt;= 5) solved for it first
    /// (dividing by a negative coefficient flips it); else null.
    /// </summary>
    private static SeqCanon? Interval(RelationNode r)
    {
        bool Less(string op) => op is "<" or "<=";
        bool Greater(string op) => op is ">" or ">=";
        if (!r.Ops.All(o => Less(o) || Greater(o))) return null;
        var ops = r.Ops.ToArray();
        var operands = r.Operands.ToArray();
        if (ops.Length == 2 && Greater(ops[0]) && Greater(ops[1]))
        {
            // 7 > x >= -2 is -2 <= x < 7
            Array.Reverse(operands);
            ops = [Flip(ops[1]), Flip(ops[0])];
        }
        ScalarCanon Inf(int sign) => new() { Vars = [], Approx = [new Complex(sign * double.PositiveInfinity, 0)], Infinity = sign };
        SeqCanon Make(Canon lo, bool loClosed, Canon hi, bool hiClosed, string label) =>
            new() { Kind = SeqKind.Ordered, Open = loClosed ? '[' : '(', Close = hiClosed ? ']' : ')', Items = [lo, hi], Label = label };
        if (ops.Length == 1)
        {
            var (a, b, op) = (operands[0], operands[1], ops[0]);
            if (Label(a) is { } la && !HasSymbol(b))
                return Less(op) ? Make(Inf(-1), false, Build(b), op == "<=", la) : Make(Build(b), op == ">=", Inf(1), false, la);
            if (Label(b) is { } lb && !HasSymbol(a))
                return Less(op) ? Make(Build(a), op == "<=", Inf(1), false, lb) : Make(Inf(-1), false, Build(a), op == ">=", lb);
            if (Linear(new BinaryNode('-', a, b)) is not { } line) return null;
            // k x + c op 0: x op' -c/k, op' = op flipped when k < 0
            var bound = new NumberNode(-line.C / line.K, -1);
            var o = line.K.Sign < 0 ? Flip(op) : op;
            return Less(o) ? Make(Inf(-1), false, Build(bound), o == "<=", line.Var) : Make(Build(bound), o == ">=", Inf(1), false, line.Var);
        }
        if (ops.Length == 2 && Less(ops[0]) && Less(ops[1]) && Label(operands[1]) is { } label && !HasSymbol(operands[0]) && !HasSymbol(operands[2]))
            return Make(Build(operands[0]), ops[0] == "<=", Build(operands[2]), ops[1] == "<=", label);
        return null;
    }

    /// <summary>
    /// d = k x + c with exact rationals k != 0 and c, in one variable x: checked at every evaluation point
    /// (a non-linear d fails at one of them); else null.
    /// </summary>
    private static (string Var, Rational K, Rational C)? Linear(MathNode d)
    {
        string[] vars;
        try { vars = Symbols(d).Distinct().ToArray(); }
        catch (FormatException) { return null; }
        if (vars.Length != 1 || !IsPolynomial(d)) return null;
        var v = Evaluate(d, vars, 0);
        if (v.Exact is not { } e || e.Any(x => x is null)) return null;
        var x0 = PointValue(vars[0], 0);
        var x1 = PointValue(vars[0], 1);
        if (x0 == x1) return null;
        var k = (e[1]!.Value - e[0]!.Value) / (x1 - x0);
        var c = e[0]!.Value - k * x0;
        if (k.Sign == 0) return null;
        for (int i = 0; i < e.Length; i++)
            if (e[i]!.Value != k * PointValue(vars[0], i) + c) return null;
        return (vars[0], k, c);
    }

    /// <summary>
    /// A polynomial in its variables: numbers, variables, + - *, division by a constant, whole powers. Only
    /// these are rearranged: the evaluation points are positive, so |x| or \sqrt{x^2} would pass for x there.
    /// </summary>
    private static bool IsPolynomial(MathNode n) => n switch
    {
        NumberNode or SymbolNode => true,
        NegateNode x => IsPolynomial(x.X),
        BinaryNode { Op: '+' or '-' or '*' } b => IsPolynomial(b.A) && IsPolynomial(b.B),
        BinaryNode { Op: '/' } b => IsPolynomial(b.A) && IsConstant(b.B),
        BinaryNode { Op: '^', B: NumberNode { FractionDigits: -1, Value: var k } } b => k.Sign >= 0 && k.Numerator <= 16 && IsPolynomial(b.A),
        _ => false,
    };

    private static bool IsConstant(MathNode n) => n switch
    {
        NumberNode => true,
        NegateNode x => IsConstant(x.X),
        BinaryNode { Op: '+' or '-' or '*' or '/' } b => IsConstant(b.A) && IsConstant(b.B),
        _ => false,
    };

    private static string Flip(string op) => op switch { "<" => ">", ">" => "<", "<=" => ">=", ">=" => "<=", _ => op };

    private static bool HasSymbol(MathNode n) => Symbols(n).Any();

    private static IEnumerable<string> Symbols(MathNode n)
    {
        var stack = new Stack<MathNode>();
        stack.Push(n);
        while (stack.Count > 0)
        {
            switch (stack.Pop())
            {
                case SymbolNode s: yield return s.Name; break;
                case NegateNode x: stack.Push(x.X); break;
                case BinaryNode b: stack.Push(b.A); stack.Push(b.B); break;
                case PlusMinusNode p: if (p.A is not null) stack.Push(p.A); stack.Push(p.B); break;
                case FunctionNode f: stack.Push(f.Arg); if (f.Index is not null) stack.Push(f.Index); break;
                case FactorialNode f: stack.Push(f.X); break;
                case AbsNode a: stack.Push(a.X); break;
                case PercentNode p: stack.Push(p.X); break;
                case RatioNode q: stack.Push(q.A); stack.Push(q.B); break;
                case NumberNode or ConstantNode: break;
                default: throw new FormatException("structure inside an expression");
            }
        }
    }

    private static int CountPlusMinus(MathNode n) => n switch
    {
        PlusMinusNode p => 1 + (p.A is null ? 0 : CountPlusMinus(p.A)) + CountPlusMinus(p.B),
        NegateNode x => CountPlusMinus(x.X),
        BinaryNode b => CountPlusMinus(b.A) + CountPlusMinus(b.B),
        FunctionNode f => CountPlusMinus(f.Arg) + (f.Index is null ? 0 : CountPlusMinus(f.Index)),
        FactorialNode f => CountPlusMinus(f.X),
        AbsNode a => CountPlusMinus(a.X),
        PercentNode p => CountPlusMinus(p.X),
        _ => 0,
    };

    private static Canon Scalar(MathNode node)
    {
        if (node is NumberNode num) return Literal(num.Value, num.FractionDigits, node);
        if (node is NegateNode { X: NumberNode neg }) return Literal(-neg.Value, neg.FractionDigits, node);
        var vars = Symbols(node).Distinct().OrderBy(v => v, StringComparer.Ordinal).ToArray();
        int pm = CountPlusMinus(node);
        if (pm > MaxPlusMinus) throw new FormatException("too many ±");
        if (pm > 0)
        {
            var variants = new Canon[1 << pm];
            for (int mask = 0; mask < variants.Length; mask++) variants[mask] = Evaluate(node, vars, mask);
            return new SeqCanon { Kind = SeqKind.Unordered, Items = variants, FromPlusMinus = true };
        }
        if (node is ConstantNode { Which: Constant.Infinity } || (node is NegateNode { X: ConstantNode { Which: Constant.Infinity } }))
        {
            int sign = node is NegateNode ? -1 : 1;
            return new ScalarCanon { Vars = [], Approx = [new Complex(sign * double.PositiveInfinity, 0)], Infinity = sign };
        }
        var s = Evaluate(node, vars, 0);
        int digits = node switch
        {
            NumberNode { FractionDigits: var d } => d,
            NegateNode { X: NumberNode { FractionDigits: var d } } => d,
            _ => -1,
        };
        return digits < 0 ? s : new ScalarCanon { Vars = s.Vars, Exact = s.Exact, Approx = s.Approx, DecimalDigits = digits, Node = node };
    }

    private static ScalarCanon Literal(Rational value, int digits, MathNode node) => new()
    {
        Vars = [], Exact = [value], Approx = [new Complex(value.ToDouble(), 0)], DecimalDigits = digits, Node = node,
    };

    private static ScalarCanon Evaluate(MathNode node, string[] vars, int mask)
    {
        int n = vars.Length == 0 ? 1 : Points;
        var exact = new Rational?[n];
        var approx = new Complex[n];
        bool allExact = true;
        for (int k = 0; k < n; k++)
        {
            var env = new Dictionary<string, Rational>(vars.Length);
            for (int v = 0; v < vars.Length; v++) env[vars[v]] = PointValue(vars[v], k);
            var ev = new Evaluator(env, mask);
            Rational? e;
            try { e = ev.Exact(node); }
            catch (ArithmeticException) { e = null; ev.Undefined = true; }
            if (ev.Undefined) { exact[k] = null; approx[k] = Complex.NaN; continue; }
            if (e is null) allExact = false;
            exact[k] = e;
            approx[k] = e is { } r ? new Complex(r.ToDouble(), 0) : ev.Approx(node);
        }
        return new ScalarCanon { Vars = vars, Exact = allExact ? exact : null, Approx = approx, Node = node, Mask = mask };
    }

    /// <summary>
    /// A fixed rational point per variable name and index: the same for both answers, different across
    /// variables, positive (so roots and logarithms stay real) and not an integer.
    /// </summary>
    private static Rational PointValue(string name, int k)
    {
        uint h = 2166136261;
        foreach (var c in name) h = (h ^ c) * 16777619;
        h = (h ^ (uint)(k * 0x9E3779B1)) * 16777619;
        h ^= h >> 13;
        h *= 0x5bd1e995;
        h ^= h >> 15;
        long p = 7 + h % 97, q = 11 + (h / 97) % 29;
        if (p % q == 0) p++;
        return new Rational(p, q);
    }

    /// <summary>Evaluates a scalar tree exactly where it is rational, else as a complex float64.</summary>
    private sealed class Evaluator(Dictionary<string, Rational> env, int mask)
    {
        private int _pmIndex;
        private int _pmIndexApprox;
        public bool Undefined;

        public Rational? Exact(MathNode n)
        {
            switch (n)
            {
                case NumberNode x: return x.Value;
                case SymbolNode s: return env[s.Name];
                case ConstantNode: return null;
                case NegateNode x: return Exact(x.X) is { } neg ? -neg : null;
                case PercentNode p: return Exact(p.X) is { } pc ? pc / Rational.FromInteger(100) : null;
                case AbsNode a: return Exact(a.X) is { } ab ? (ab.Sign < 0 ? -ab : ab) : null;
                case PlusMinusNode p:
                {
                    bool minus = ((mask >> _pmIndex++) & 1) == 1;
                    if (p.Minus) minus = !minus;
                    var a = p.A is null ? Rational.Zero : Exact(p.A);
                    var b = Exact(p.B);
                    if (a is null || b is null) return null;
                    return minus ? a.Value - b.Value : a.Value + b.Value;
                }
                case FactorialNode f:
                {
                    var v = Exact(f.X);
                    if (v is null) return null;
                    if (!v.Value.IsInteger || v.Value.Sign < 0 || v.Value.Numerator > 300) { Undefined = !v.Value.IsInteger || v.Value.Sign < 0; return null; }
                    BigInteger r = 1;
                    for (int i = 2; i <= (int)v.Value.Numerator; i++) r *= i;
                    return Rational.FromInteger(r);
                }
                case BinaryNode b:
                {
                    var x = Exact(b.A);
                    var y = Exact(b.B);
                    if (x is null || y is null) return null;
                    switch (b.Op)
                    {
                        case '+': return x.Value + y.Value;
                        case '-': return x.Value - y.Value;
                        case '*': return x.Value * y.Value;
                        case '/':
                            if (y.Value.Sign == 0) { Undefined = true; return null; }
                            return x.Value / y.Value;
                        default: return Power(x.Value, y.Value);
                    }
                }
                case FunctionNode f when f.Name == "sqrt":
                {
                    var v = Exact(f.Arg);
                    if (v is null) return null;
                    int index = 2;
                    if (f.Index is not null)
                    {
                        var i = Exact(f.Index);
                        if (i is null || !i.Value.IsInteger || i.Value.Numerator < 2 || i.Value.Numerator > 64) return null;
                        index = (int)i.Value.Numerator;
                    }
                    return Root(v.Value, index);
                }
                default: return null;
            }
        }

        private static Rational? Power(Rational b, Rational e)
        {
            if (e.IsInteger)
            {
                var n = e.Numerator;
                if (b.IsInteger && BigInteger.Abs(b.Numerator) <= 1)
                {
                    if (b.Sign == 0) return n.Sign > 0 ? Rational.Zero : n.IsZero ? Rational.One : throw new DivideByZeroException();
                    return n.IsEven ? Rational.One : b;
                }
                if (BigInteger.Abs(n) > MaxExponent || b.SizeInBits * (long)BigInteger.Abs(n) > MaxBits) return null;
                if (b.Sign == 0 && n.Sign < 0) throw new DivideByZeroException();
                return Rational.Pow(b, (int)n);
            }
            // b^(p/q) is exact when b is a perfect q-th power
            if (e.Denominator > 64) return null;
            var root = Root(b, (int)e.Denominator);
            return root is null ? null : Power(root.Value, Rational.FromInteger(e.Numerator));
        }

        private static Rational? Root(Rational a, int index)
        {
            if (a.Sign < 0 && index % 2 == 0) return null;
            if (a.SizeInBits > MaxBits) return null;
            if (TryExactRoot(BigInteger.Abs(a.Numerator), index, out var rn) && TryExactRoot(a.Denominator, index, out var rd))
                return new Rational(a.Sign < 0 ? -rn : rn, rd);
            return null;
        }

        public Complex Approx(MathNode n)
        {
            switch (n)
            {
                case NumberNode x: return new Complex(x.Value.ToDouble(), 0);
                case SymbolNode s: return new Complex(env[s.Name].ToDouble(), 0);
                case ConstantNode c:
                    return c.Which switch
                    {
                        Constant.Pi => new Complex(Math.PI, 0),
                        Constant.E => new Complex(Math.E, 0),
                        Constant.I => Complex.ImaginaryOne,
                        _ => throw new FormatException("infinity inside an expression"),
                    };
                case NegateNode x: return -Approx(x.X);
                case PercentNode p: return Approx(p.X) / 100.0;
                case AbsNode a: return new Complex(Complex.Abs(Approx(a.X)), 0);
                case PlusMinusNode p:
                {
                    bool minus = ((mask >> _pmIndexApprox++) & 1) == 1;
                    if (p.Minus) minus = !minus;
                    var a = p.A is null ? Complex.Zero : Approx(p.A);
                    var b = Approx(p.B);
                    return minus ? a - b : a + b;
                }
                case FactorialNode f:
                {
                    var v = Approx(f.X);
                    if (v.Imaginary != 0 || v.Real < 0 || v.Real > 170 || v.Real != Math.Floor(v.Real)) return Complex.NaN;
                    double r = 1;
                    for (int i = 2; i <= (int)v.Real; i++) r *= i;
                    return new Complex(r, 0);
                }
                case BinaryNode b:
                {
                    var x = Approx(b.A);
                    var y = Approx(b.B);
                    return b.Op switch
                    {
                        '+' => x + y,
                        '-' => x - y,
                        '*' => x * y,
                        '/' => y == Complex.Zero ? Complex.NaN : x / y,
                        _ => Pow(x, y),
                    };
                }
                case FunctionNode f: return Function(f);
                default: throw new FormatException("not a scalar");
            }
        }

        private static Complex Pow(Complex x, Complex y)
        {
            if (x == Complex.Zero) return y.Real > 0 ? Complex.Zero : y == Complex.Zero ? Complex.One : Complex.NaN;
            // a real power of a real base keeps real arithmetic where it is defined (2^{0.5}, (-2)^3)
            if (x.Imaginary == 0 && y.Imaginary == 0 && (x.Real > 0 || y.Real == Math.Floor(y.Real)))
                return new Complex(Math.Pow(x.Real, y.Real), 0);
            return Complex.Pow(x, y);
        }

        private Complex Function(FunctionNode f)
        {
            var x = Approx(f.Arg);
            switch (f.Name)
            {
                case "sqrt":
                {
                    double index = f.Index is null ? 2 : Approx(f.Index).Real;
                    if (f.Index is not null && Approx(f.Index).Imaginary != 0) return Complex.NaN;
                    // an odd root of a negative real is the real root: \sqrt[3]{-8} = -2
                    if (x.Imaginary == 0 && x.Real < 0 && index % 2 == 1) return new Complex(-Math.Pow(-x.Real, 1 / index), 0);
                    if (x.Imaginary == 0 && x.Real >= 0) return new Complex(Math.Pow(x.Real, 1 / index), 0);
                    return Complex.Pow(x, 1 / index);
                }
                case "sin": return Complex.Sin(x);
                case "cos": return Complex.Cos(x);
                case "tan": return Complex.Tan(x);
                case "sec": return 1 / Complex.Cos(x);
                case "csc": return 1 / Complex.Sin(x);
                case "cot": return Complex.Cos(x) / Complex.Sin(x);
                case "arcsin": return Complex.Asin(x);
                case "arccos": return Complex.Acos(x);
                case "arctan": return Complex.Atan(x);
                case "arcsec": return Complex.Acos(1 / x);
                case "arccsc": return Complex.Asin(1 / x);
                case "arccot": return Complex.Atan(1 / x);
                case "sinh": return Complex.Sinh(x);
                case "cosh": return Complex.Cosh(x);
                case "tanh": return Complex.Tanh(x);
                case "exp": return Complex.Exp(x);
                case "ln": return x == Complex.Zero ? Complex.NaN : Complex.Log(x);
                case "log":
                    if (x == Complex.Zero) return Complex.NaN;
                    if (f.Index is null) return Complex.Log(x);
                    var b = Approx(f.Index);
                    return b == Complex.One || b == Complex.Zero ? Complex.NaN : Complex.Log(x) / Complex.Log(b);
                default: throw new FormatException($"unknown function {f.Name}");
            }
        }
    }

    /// <summary>Integer k-th root by Newton's method; true when it is exact.</summary>
    private static bool TryExactRoot(BigInteger n, int k, out BigInteger root)
    {
        root = n;
        if (n < 2) return true;
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

    // ---------------------------------------------------------------- comparison

    public static bool Same(Canon a, Canon b)
    {
        // lhs = rhs against an answer with no relation: compare the right-hand side
        if (a is RelationCanon ra && b is not RelationCanon && IsAssignment(ra)) return Same(ra.Operands[^1], b);
        if (b is RelationCanon rb && a is not RelationCanon && IsAssignment(rb)) return Same(a, rb.Operands[^1]);
        if (a.Key is { } ka && b.Key is { } kb && ka != kb) return false;
        switch (a, b)
        {
            case (ScalarCanon x, ScalarCanon y): return SameScalar(x, y);
            case (WordCanon x, WordCanon y): return x.Text == y.Text;
            case (SeqCanon x, SeqCanon y): return SameSeq(x, y);
            case (RelationCanon x, RelationCanon y): return SameRelation(x, y);
            default: return false;
        }
    }

    private static bool IsAssignment(RelationCanon r) => r.Assignment;

    private static bool SameRelation(RelationCanon x, RelationCanon y)
    {
        if (x.Ops.Length != y.Ops.Length) return false;
        bool forward = true, backward = true;
        int n = x.Ops.Length;
        for (int i = 0; i < n && forward; i++) forward = x.Ops[i] == y.Ops[i];
        for (int i = 0; i < n && forward; i++) forward = Same(x.Operands[i], y.Operands[i]) && Same(x.Operands[i + 1], y.Operands[i + 1]);
        if (forward) return true;
        for (int i = 0; i < n && backward; i++) backward = x.Ops[i] == Flip(y.Ops[n - 1 - i]);
        for (int i = 0; i <= n && backward; i++) backward = Same(x.Operands[i], y.Operands[n - i]);
        return backward || Proportional(x, y);
    }

    /// <summary>
    /// Two polynomial relations a op b and c op' d are the same after moving everything to one side and
    /// scaling: a - b = k (c - d) at every point for one constant k != 0 (5x-7y+11z=-4 is -5x+7y-11z-4=0;
    /// x^2/16+y^2/12=1/4 is x^2/4+y^2/3=1); for an inequality k &gt; 0 with the same direction, or k &lt; 0 with
    /// the opposite one (-x &gt; -1 is x &lt; 1). Both sides over the union of the variables; at least one variable,
    /// and a - b nonzero at no fewer than half the points.
    /// </summary>
    private static bool Proportional(RelationCanon x, RelationCanon y)
    {
        if (x.Ops.Length != 1 || y.Ops.Length != 1) return false;
        if (x.Operands is not [ScalarCanon { Node: { } xa }, ScalarCanon { Node: { } xb }]) return false;
        if (y.Operands is not [ScalarCanon { Node: { } ya }, ScalarCanon { Node: { } yb }]) return false;
        MathNode dx = new BinaryNode('-', xa, xb), dy = new BinaryNode('-', ya, yb);
        if (!IsPolynomial(dx) || !IsPolynomial(dy)) return false;
        var vars = Symbols(dx).Concat(Symbols(dy)).Distinct().OrderBy(v => v, StringComparer.Ordinal).ToArray();
        if (vars.Length == 0) return false;
        var ex = Evaluate(dx, vars, 0).Exact;
        var ey = Evaluate(dy, vars, 0).Exact;
        if (ex is null || ey is null || ex.Any(v => v is null) || ey.Any(v => v is null)) return false;
        Rational? k = null;
        int nonzero = 0;
        for (int i = 0; i < ex.Length; i++)
        {
            var (u, w) = (ex[i]!.Value, ey[i]!.Value);
            if (w.Sign == 0) { if (u.Sign != 0) return false; continue; }
            nonzero++;
            k ??= u / w;
            if (k.Value.Sign == 0 || u != k.Value * w) return false;
        }
        if (k is null || nonzero < Points / 2) return false;
        string ox = x.Ops[0], oy = y.Ops[0];
        if (ox is "=" or "!=") return ox == oy;
        if (ox is not ("<" or "<=" or ">" or ">=")) return false;
        return k.Value.Sign > 0 ? ox == oy : ox == Flip(oy);
    }

    private static bool SameSeq(SeqCanon x, SeqCanon y)
    {
        if (x.Label is not null && y.Label is not null && x.Label != y.Label) return false;
        if (x.Kind == SeqKind.Unordered && y.Kind == SeqKind.Unordered && (x.IsSet || y.IsSet))
            return AnyOrder(Distinct(x.Items), Distinct(y.Items));
        if (x.Kind != y.Kind || x.Items.Length != y.Items.Length) return false;
        switch (x.Kind)
        {
            case SeqKind.Ordered:
                if (x.Open != y.Open || x.Close != y.Close) return false;
                goto case SeqKind.Matrix;
            case SeqKind.Matrix:
                if (x.Columns != y.Columns) return false;
                for (int i = 0; i < x.Items.Length; i++) if (!Same(x.Items[i], y.Items[i])) return false;
                return true;
            default:
                return AnyOrder(x.Items, y.Items);
        }
    }

    /// <summary>
    /// Equal as multisets. Equivalence is transitive, so a greedy matching finds a perfect one when it exists:
    /// at most n^2 comparisons of precomputed values (64 items: 4096 cheap comparisons).
    /// </summary>
    /// <summary>
    /// The items without repeats (a set written \{1, 1, 2\} is \{1, 2\}). An item is compared only with kept
    /// items of its key (equal values have equal keys); items without a key with every kept item.
    /// </summary>
    private static Canon[] Distinct(Canon[] items)
    {
        var kept = new List<Canon>(items.Length);
        var byKey = new Dictionary<long, List<Canon>>();
        var unkeyed = new List<Canon>();
        foreach (var item in items)
        {
            if (item.Key is { } k)
            {
                if (!byKey.TryGetValue(k, out var bucket)) byKey[k] = bucket = [];
                if (bucket.Any(c => Same(c, item)) || unkeyed.Any(c => Same(c, item))) continue;
                bucket.Add(item);
            }
            else
            {
                if (kept.Any(c => Same(c, item))) continue;
                unkeyed.Add(item);
            }
            kept.Add(item);
        }
        return kept.ToArray();
    }

    private static bool AnyOrder(Canon[] a, Canon[] b)
    {
        if (a.Length != b.Length) return false;
        var used = new bool[b.Length];
        foreach (var item in a)
        {
            int k = -1;
            for (int j = 0; j < b.Length && k < 0; j++)
                if (!used[j] && Same(item, b[j])) k = j;
            if (k < 0) return false;
            used[k] = true;
        }
        return true;
    }

    private static bool SameScalar(ScalarCanon x, ScalarCanon y)
    {
        if (SameValue(x, y)) return true;
        // x% against the bare number x (one side only carries the mark)
        if (x.PercentOf is not null && y.PercentOf is null && SameValue(x.PercentOf, y)) return true;
        if (y.PercentOf is not null && x.PercentOf is null && SameValue(x, y.PercentOf)) return true;
        return false;
    }

    private static bool SameValue(ScalarCanon x, ScalarCanon y)
    {
        if (x.Infinity != 0 || y.Infinity != 0) return x.Infinity == y.Infinity;
        if (!x.Vars.AsSpan().SequenceEqual(y.Vars))
        {
            // \sin^2 x + \cos^2 x is 1: evaluate both over the union of their variables
            if (x.Node is null || y.Node is null) return false;
            var union = x.Vars.Union(y.Vars).OrderBy(v => v, StringComparer.Ordinal).ToArray();
            x = Evaluate(x.Node, union, x.Mask);
            y = Evaluate(y.Node, union, y.Mask);
        }
        int n = x.Approx.Length, defined = 0;
        bool exact = x.Exact is not null && y.Exact is not null;
        bool equal = true;
        for (int k = 0; k < n && equal; k++)
        {
            bool dx = !double.IsNaN(x.Approx[k].Real) && !double.IsNaN(x.Approx[k].Imaginary);
            bool dy = !double.IsNaN(y.Approx[k].Real) && !double.IsNaN(y.Approx[k].Imaginary);
            if (dx != dy) return false;
            if (!dx) continue;
            defined++;
            equal = exact ? x.Exact![k]!.Value == y.Exact![k]!.Value : Close(x.Approx[k], y.Approx[k]);
        }
        if (equal) return defined >= (x.Vars.Length == 0 ? 1 : Points / 2);
        return x.Vars.Length == 0 && (Decimal(x, y) || Decimal(y, x));
    }

    private static bool Close(Complex a, Complex b)
    {
        if (double.IsInfinity(a.Real) || double.IsInfinity(b.Real) || double.IsInfinity(a.Imaginary) || double.IsInfinity(b.Imaginary))
            return false;
        double scale = Math.Max(1.0, Math.Max(Complex.Abs(a), Complex.Abs(b)));
        return Complex.Abs(a - b) <= Tolerance * scale;
    }

    /// <summary>
    /// A decimal d written with k &gt;= <see cref="MinDecimalDigits"/> decimals equals the real value v when v
    /// rounds to d at k decimals (|v - d| &lt;= 10^-k / 2): 0.333333 is 1/3, 1.414214 is \sqrt{2}, 0.33 is not 1/3.
    /// </summary>
    private static bool Decimal(ScalarCanon d, ScalarCanon v)
    {
        if (d.DecimalDigits < MinDecimalDigits || d.Exact?[0] is not { } dv) return false;
        var half = new Rational(1, BigInteger.Pow(10, d.DecimalDigits) * 2);
        if (v.Exact?[0] is { } ve)
        {
            var diff = ve - dv;
            if (diff.Sign < 0) diff = -diff;
            return (diff - half).Sign <= 0;
        }
        var a = v.Approx[0];
        if (double.IsNaN(a.Real) || Math.Abs(a.Imaginary) > 1e-12 * Math.Max(1, Math.Abs(a.Real))) return false;
        double bound = half.ToDouble() + 4e-16 * Math.Max(1, Math.Abs(a.Real));
        return Math.Abs(a.Real - dv.ToDouble()) <= bound;
    }
}
