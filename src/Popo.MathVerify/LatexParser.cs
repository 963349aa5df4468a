using System.Numerics;

namespace Popo.MathVerify;

/// <summary>
/// Recursive-descent parser from <see cref="LatexLexer"/> tokens to a <see cref="MathNode"/> tree. Grammar, loosest first:
/// <code>
/// answer   = list End
/// list     = relation { (',' | ';' | and | or) relation }
/// relation = ratio { ('=' | '&lt;' | '&lt;=' | '&gt;' | '&gt;=' | '!=' | 'in' | '\approx') ratio }
/// ratio    = union [ ':' union ]
/// union    = sum { '\cup' sum }
/// sum      = ['±'] term { ('+' | '-' | '±' | '∓') term }
/// term     = unary { ('*' | '/') unary | implicit-factor | unit }
/// unary    = ('-' | '+') unary | power
/// power    = postfix [ '^' exponent ]
/// postfix  = primary { '!' | '%' | degree }
/// primary  = number [ '_' base ] | letter [ '_' sub ] | constant | \frac arg arg | \sqrt [ '[' n ']' ] arg
///          | function [ '^' exp ] [ '_' base ] arg | '(' items ')' | '[' items ']' | '{' list '}' | '\{' items '\}'
///          | '|' sum '|' | matrix | text | \infty | \emptyset
/// </code>
/// Implicit multiplication is a letter, constant, function, fraction, root or parenthesis after a factor
/// (2\sqrt{3}, 3\pi, xy, 2(x+1)); a number after a number is an error (\boxed{7 0} is not 70). An integer
/// directly followed by a proper fraction of integers is a mixed number (1\frac{4}{5} = 9/5). Text after a
/// factor is a unit and is dropped. Depth and size are capped; anything else throws <see cref="FormatException"/>.
/// </summary>
internal sealed class LatexParser
{
    public const int MaxDepth = 200;
    public const int MaxDigits = 400;

    private static readonly HashSet<string> Functions =
    [
        "sin", "cos", "tan", "sec", "csc", "cot", "arcsin", "arccos", "arctan", "arcsec", "arccsc", "arccot",
        "sinh", "cosh", "tanh", "log", "ln", "exp", "lg",
    ];

    public static bool IsFunction(string name) => Functions.Contains(name);

    private readonly List<Token> _t;
    private int _pos;
    private int _depth;

    private LatexParser(List<Token> tokens) { _t = tokens; }

    public static MathNode Parse(string text)
    {
        var p = new LatexParser(LatexLexer.Tokenize(text));
        if (p._t.Count == 0) throw new FormatException("empty answer");
        var node = p.List();
        if (p.Kind != Tok.End) throw new FormatException($"unexpected '{p.Peek.Text}'");
        return node;
    }

    private Token Peek => _pos < _t.Count ? _t[_pos] : new Token(Tok.End, "", false);
    private Tok Kind => Peek.Kind;
    private Tok KindAt(int k) => _pos + k < _t.Count ? _t[_pos + k].Kind : Tok.End;
    private Token Next() => _t[_pos++];
    private bool IsOp(string op) => Kind == Tok.Op && Peek.Text == op;

    private void Expect(Tok kind)
    {
        if (Kind != kind) throw new FormatException($"expected {kind}, got '{Peek.Text}'");
        _pos++;
    }

    private void Enter() { if (++_depth > MaxDepth) throw new FormatException("nested too deeply"); }
    private void Leave() => _depth--;

    private MathNode List()
    {
        var items = new List<MathNode> { Relation() };
        bool or = true; // every separator is "or": x < 2 or x > 3 is a union
        while (Kind is Tok.Comma or Tok.Semicolon or Tok.Connector)
        {
            or &= Kind == Tok.Connector && Peek.Text.Trim() == "or";
            _pos++;
            if (Kind == Tok.End) break; // a trailing comma or period
            items.Add(Relation());
        }
        return items.Count == 1 ? items[0] : new ListNode(items, or);
    }

    private MathNode Relation()
    {
        var operands = new List<MathNode> { Ratio() };
        var ops = new List<string>();
        while (Kind == Tok.Rel)
        {
            ops.Add(Next().Text);
            operands.Add(Ratio());
        }
        return ops.Count == 0 ? operands[0] : new RelationNode(operands, ops);
    }

    /// <summary>a : b, a ratio: the quotient a/b (11:21 is 22:42 is 11/21). Three or more parts are not read.</summary>
    private MathNode Ratio()
    {
        var a = Union();
        if (Kind != Tok.Ratio) return a;
        _pos++;
        var b = Union();
        if (Kind == Tok.Ratio) throw new FormatException("a ratio of three parts");
        return new RatioNode(a, b);
    }

    private MathNode Union()
    {
        var parts = new List<MathNode> { Sum() };
        while (Kind == Tok.Union) { _pos++; parts.Add(Sum()); }
        return parts.Count == 1 ? parts[0] : new UnionNode(parts);
    }

    private MathNode Sum()
    {
        Enter();
        MathNode node;
        if (Kind is Tok.PlusMinus or Tok.MinusPlus)
        {
            bool minus = Next().Kind == Tok.MinusPlus;
            node = new PlusMinusNode(null, Term(), minus);
        }
        else node = Term();
        while (true)
        {
            if (IsOp("+")) { _pos++; node = new BinaryNode('+', node, Term()); }
            else if (IsOp("-")) { _pos++; node = new BinaryNode('-', node, Term()); }
            else if (Kind is Tok.PlusMinus or Tok.MinusPlus)
            {
                bool minus = Next().Kind == Tok.MinusPlus;
                node = new PlusMinusNode(node, Term(), minus);
            }
            else break;
        }
        Leave();
        return node;
    }

    private MathNode Term()
    {
        Enter();
        var node = Unary();
        bool integerLiteral = node is NumberNode { FractionDigits: -1 };
        while (true)
        {
            if (IsOp("*")) { _pos++; node = new BinaryNode('*', node, Unary()); }
            else if (IsOp("/")) { _pos++; node = new BinaryNode('/', node, Unary()); }
            else if (Kind is Tok.Text or Tok.Word)
            {
                // a unit after a quantity: 5.4 \text{ cents}, 864 \mbox{ inches}^2, 18 dollars
                _pos++;
                if (Kind == Tok.Caret && KindAt(1) == Tok.Number) _pos += 2;
                else if (Kind == Tok.Caret && KindAt(1) == Tok.LBrace && KindAt(2) == Tok.Number && KindAt(3) == Tok.RBrace) _pos += 4;
            }
            else if (StartsImplicitFactor())
            {
                var factor = Power();
                if (integerLiteral && IsProperFraction(factor))
                    node = new BinaryNode('+', node, factor);
                else node = new BinaryNode('*', node, factor);
            }
            else break;
            integerLiteral = false;
        }
        Leave();
        return node;
    }

    private static bool IsProperFraction(MathNode f) =>
        f is BinaryNode { Op: '/', A: NumberNode { FractionDigits: -1 } n, B: NumberNode { FractionDigits: -1 } d }
        && n.Value.Sign > 0 && n.Value.Numerator < d.Value.Numerator;

    private bool StartsImplicitFactor() => Kind is Tok.Letter or Tok.LParen or Tok.Command or Tok.Begin or Tok.LBrace;

    private MathNode Unary()
    {
        Enter();
        MathNode node;
        if (IsOp("-")) { _pos++; node = new NegateNode(Unary()); }
        else if (IsOp("+")) { _pos++; node = Unary(); }
        else node = Power();
        Leave();
        return node;
    }

    private MathNode Power()
    {
        Enter();
        var node = Postfix();
        if (Kind == Tok.Caret)
        {
            _pos++;
            node = new BinaryNode('^', node, Exponent());
            node = PostfixMarks(node);
        }
        Leave();
        return node;
    }

    /// <summary>An exponent: a group, a signed single factor (2^-1), or a power tower written x^y^z.</summary>
    private MathNode Exponent()
    {
        Enter();
        MathNode e;
        if (IsOp("-")) { _pos++; e = new NegateNode(Exponent()); }
        else if (IsOp("+")) { _pos++; e = Exponent(); }
        else
        {
            e = Primary();
            if (Kind == Tok.Caret) { _pos++; e = new BinaryNode('^', e, Exponent()); }
        }
        Leave();
        return e;
    }

    private MathNode Postfix() => PostfixMarks(Primary());

    private MathNode PostfixMarks(MathNode node)
    {
        while (true)
        {
            if (Kind == Tok.Bang) { _pos++; node = new FactorialNode(node); }
            else if (Kind == Tok.Percent) { _pos++; node = new PercentNode(node); }
            else if (Kind == Tok.Degree) _pos++;
            else return node;
        }
    }

    private MathNode Primary()
    {
        Enter();
        try
        {
            var tok = Peek;
            switch (tok.Kind)
            {
                case Tok.Number:
                {
                    _pos++;
                    if (Kind == Tok.Underscore) return new SymbolNode(tok.Text + "_" + Subscript());
                    return Number(tok.Text);
                }
                case Tok.Letter:
                {
                    _pos++;
                    if (Kind == Tok.Underscore) return new SymbolNode(tok.Text + "_" + Subscript());
                    return tok.Text switch
                    {
                        "e" => new ConstantNode(Constant.E),
                        "i" => new ConstantNode(Constant.I),
                        _ => new SymbolNode(tok.Text),
                    };
                }
                case Tok.Command:
                    _pos++;
                    return tok.Text switch
                    {
                        "pi" => new ConstantNode(Constant.Pi),
                        "frac" => Fraction(),
                        "sqrt" => Root(),
                        _ when Functions.Contains(tok.Text) => Function(tok.Text),
                        _ => throw new FormatException($"unknown function {tok.Text}"),
                    };
                case Tok.LParen:
                case Tok.LBracket:
                    return Bracket();
                case Tok.LBrace:
                {
                    _pos++;
                    if (Kind == Tok.RBrace) throw new FormatException("empty group");
                    var inner = List();
                    Expect(Tok.RBrace);
                    return inner;
                }
                case Tok.LSet:
                {
                    _pos++;
                    var items = new List<MathNode>();
                    if (Kind != Tok.RSet)
                    {
                        var inner = List();
                        if (inner is ListNode l) items.AddRange(l.Items); else items.Add(inner);
                    }
                    Expect(Tok.RSet);
                    return new SetNode(items);
                }
                case Tok.Bar:
                {
                    _pos++;
                    var inner = Sum();
                    Expect(Tok.Bar);
                    return new AbsNode(inner);
                }
                case Tok.Begin: return Matrix();
                case Tok.Text: _pos++; return new WordNode(tok.Text);
                case Tok.Word: _pos++; return new WordNode(tok.Text);
                case Tok.Infinity: _pos++; return new ConstantNode(Constant.Infinity);
                case Tok.EmptySet: _pos++; return new SetNode([]);
                default: throw new FormatException($"unexpected '{tok.Text}'");
            }
        }
        finally { Leave(); }
    }

    private static NumberNode Number(string digits)
    {
        int point = digits.IndexOf('.');
        if (digits.Length - (point >= 0 ? 1 : 0) > MaxDigits) throw new FormatException("too many digits");
        if (point < 0) return new NumberNode(Rational.FromInteger(BigInteger.Parse(digits)), -1);
        var whole = point == 0 ? BigInteger.Zero : BigInteger.Parse(digits.AsSpan(0, point));
        var fracDigits = digits.Length - point - 1;
        var frac = BigInteger.Parse(digits.AsSpan(point + 1));
        var scale = BigInteger.Pow(10, fracDigits);
        return new NumberNode(new Rational(whole * scale + frac, scale), fracDigits);
    }

    /// <summary>The text of a subscript: one token, or a group of numbers and letters.</summary>
    private string Subscript()
    {
        Expect(Tok.Underscore);
        if (Kind is Tok.Number or Tok.Letter) return Next().Text;
        if (Kind != Tok.LBrace) throw new FormatException("bad subscript");
        _pos++;
        var sb = new System.Text.StringBuilder();
        while (Kind is Tok.Number or Tok.Letter or Tok.Comma) sb.Append(Next().Text);
        Expect(Tok.RBrace);
        if (sb.Length == 0) throw new FormatException("empty subscript");
        return sb.ToString();
    }

    /// <summary>
    /// A macro argument: a group, or a single token (\frac12 reads its digits one at a time, \frac\pi2).
    /// </summary>
    private MathNode Argument()
    {
        if (Kind == Tok.Number && Peek.Text.Length > 1 && !Peek.Text.Contains('.'))
        {
            // \frac12: the lexer read "12" as one number; TeX takes one digit per argument
            var digits = Peek.Text;
            _t[_pos] = new Token(Tok.Number, digits[1..], false);
            return Number(digits[..1]);
        }
        if (Kind is Tok.Number or Tok.Letter or Tok.LBrace or Tok.Command) return Primary();
        throw new FormatException("bad argument");
    }

    private MathNode Fraction()
    {
        var num = Argument();
        var den = Argument();
        return new BinaryNode('/', num, den);
    }

    private MathNode Root()
    {
        MathNode? index = null;
        if (Kind == Tok.LBracket)
        {
            _pos++;
            index = Sum();
            Expect(Tok.RBracket);
        }
        return new FunctionNode("sqrt", Argument(), index);
    }

    private MathNode Function(string name)
    {
        MathNode? power = null, index = null;
        for (int k = 0; k < 2; k++)
        {
            if (Kind == Tok.Caret && power is null) { _pos++; power = Exponent(); }
            else if (Kind == Tok.Underscore && index is null && name is "log")
            {
                _pos++;
                index = Kind == Tok.LBrace ? Primary() : Kind is Tok.Number or Tok.Letter ? Number1() : throw new FormatException("bad log base");
            }
        }
        MathNode arg;
        if (Kind is Tok.LParen or Tok.LBrace) arg = Primary();
        else
        {
            // \sin 2x, \log x: a product of plain factors, up to the next operator or function
            arg = Power();
            while (Kind is Tok.Letter || (Kind == Tok.Command && Peek.Text is "pi" or "frac" or "sqrt"))
                arg = new BinaryNode('*', arg, Power());
        }
        if (name == "lg") { name = "log"; index ??= new NumberNode(Rational.FromInteger(10), -1); }
        // \sin^{-1} x is the inverse function, \sin^2 x the square of the value
        if (power is NegateNode { X: NumberNode { Value: var one } } && one == Rational.One && name is "sin" or "cos" or "tan" or "sec" or "csc" or "cot")
            return new FunctionNode("arc" + name, arg, null);
        MathNode f = new FunctionNode(name, arg, index);
        return power is null ? f : new BinaryNode('^', f, power);
    }

    private MathNode Number1()
    {
        var tok = Next();
        return tok.Kind == Tok.Number ? Number(tok.Text) : new SymbolNode(tok.Text);
    }

    /// <summary>( ... ) or [ ... ]: one item is a grouping; several are a tuple or an interval; a matrix inside is the matrix.</summary>
    private MathNode Bracket()
    {
        char open = Next().Kind == Tok.LParen ? '(' : '[';
        var items = new List<MathNode>();
        items.Add(Relation());
        // items are separated by commas, or all by semicolons ((1;2), where the comma is a decimal mark)
        var separator = Kind == Tok.Semicolon ? Tok.Semicolon : Tok.Comma;
        while (Kind == separator) { _pos++; items.Add(Relation()); }
        char close;
        if (Kind == Tok.RParen) close = ')';
        else if (Kind == Tok.RBracket) close = ']';
        else throw new FormatException("unclosed bracket");
        _pos++;
        if (items.Count == 1 && ((open == '(' && close == ')') || (open == '[' && close == ']') || items[0] is MatrixNode)) return items[0];
        if (items.Count == 1) throw new FormatException("mismatched brackets");
        return new BracketNode(open, close, items);
    }

    private MathNode Matrix()
    {
        var env = Next().Text;
        if (env is not ("pmatrix" or "bmatrix" or "Bmatrix" or "matrix" or "smallmatrix" or "array"))
            throw new FormatException($"unsupported environment {env}");
        var rows = new List<IReadOnlyList<MathNode>>();
        var row = new List<MathNode>();
        while (true)
        {
            if (Kind == Tok.EndEnv) { _pos++; break; }
            row.Add(Relation());
            if (Kind == Tok.Amp) { _pos++; continue; }
            if (Kind == Tok.RowSep)
            {
                _pos++;
                rows.Add(row);
                row = [];
                if (Kind == Tok.EndEnv) { _pos++; break; }
                continue;
            }
            if (Kind == Tok.EndEnv) { _pos++; rows.Add(row); row = []; break; }
            throw new FormatException("bad matrix");
        }
        if (row.Count > 0) rows.Add(row);
        if (rows.Count == 0 || rows.Any(r => r.Count != rows[0].Count)) throw new FormatException("ragged matrix");
        return new MatrixNode(rows);
    }
}
