namespace Popo.MathVerify;

/// <summary>
/// The typed expression tree <see cref="LatexParser"/> builds from an answer. Scalars (numbers, symbols,
/// constants, operations, functions) and the structures around them (lists, sets, brackets, unions,
/// matrices, relations, words). <see cref="MathCanon"/> turns a tree into the form that is compared.
/// </summary>
internal abstract record MathNode;

/// <summary>A literal. <c>FractionDigits</c> is the number of digits after a decimal point, or -1 for an integer.</summary>
internal sealed record NumberNode(Rational Value, int FractionDigits) : MathNode;

/// <summary>A variable: a letter, a Greek letter, with its subscript (x_1), or a number in a base (52_8).</summary>
internal sealed record SymbolNode(string Name) : MathNode;

internal enum Constant { Pi, E, I, Infinity }

internal sealed record ConstantNode(Constant Which) : MathNode;

internal sealed record NegateNode(MathNode X) : MathNode;

/// <summary>+ - * / ^ on two operands.</summary>
internal sealed record BinaryNode(char Op, MathNode A, MathNode B) : MathNode;

/// <summary>a ± b (or ± b with A null); <c>Minus</c> for \mp. Expands to two values.</summary>
internal sealed record PlusMinusNode(MathNode? A, MathNode B, bool Minus) : MathNode;

/// <summary>sqrt (Index = root degree), log (Index = base), sin ... ; Index null for the default.</summary>
internal sealed record FunctionNode(string Name, MathNode Arg, MathNode? Index) : MathNode;

internal sealed record FactorialNode(MathNode X) : MathNode;

internal sealed record AbsNode(MathNode X) : MathNode;

/// <summary>x%: x/100, and also x (datasets state "what percent" answers without the mark).</summary>
internal sealed record PercentNode(MathNode X) : MathNode;

/// <summary>A text answer (\text{Evelyn}, odd).</summary>
internal sealed record WordNode(string Text) : MathNode;

/// <summary>
/// Items separated by commas, "and" or "or" at the top level: compared in any order. <c>Or</c> when every
/// separator is "or" (x &lt; 2 or x &gt; 3 is a union of intervals).
/// </summary>
internal sealed record ListNode(IReadOnlyList<MathNode> Items, bool Or = false) : MathNode;

/// <summary>a : b, whose value is a / b.</summary>
internal sealed record RatioNode(MathNode A, MathNode B) : MathNode;

/// <summary>\{a, b\}: compared in any order.</summary>
internal sealed record SetNode(IReadOnlyList<MathNode> Items) : MathNode;

/// <summary>(a, b), [a, b], (a, b], [a, b): a tuple or an interval, compared in order with the same brackets.</summary>
internal sealed record BracketNode(char Open, char Close, IReadOnlyList<MathNode> Items) : MathNode;

internal sealed record UnionNode(IReadOnlyList<MathNode> Parts) : MathNode;

internal sealed record MatrixNode(IReadOnlyList<IReadOnlyList<MathNode>> Rows) : MathNode;

/// <summary>a op1 b op2 c ...: = &lt; &lt;= &gt; &gt;= != in.</summary>
internal sealed record RelationNode(IReadOnlyList<MathNode> Operands, IReadOnlyList<string> Ops) : MathNode;
