namespace Popo.Jinja;

/// <summary>An expression of the template's syntax tree; <see cref="Offset"/> locates it for error messages.</summary>
internal abstract record Expr(int Offset);

internal sealed record ConstExpr(int Offset, object? Value) : Expr(Offset);
internal sealed record NameExpr(int Offset, string Name) : Expr(Offset);
internal sealed record ListExpr(int Offset, IReadOnlyList<Expr> Items) : Expr(Offset);
internal sealed record TupleExpr(int Offset, IReadOnlyList<Expr> Items) : Expr(Offset);
internal sealed record DictExpr(int Offset, IReadOnlyList<(Expr Key, Expr Value)> Pairs) : Expr(Offset);

/// <summary>obj.name: an attribute first (a method of a str or dict), then an item, as Jinja2's getattr does.</summary>
internal sealed record GetAttrExpr(int Offset, Expr Target, string Name) : Expr(Offset);

/// <summary>obj[index]: an item first, then an attribute, as Jinja2's getitem does. Index may be a <see cref="SliceExpr"/>.</summary>
internal sealed record GetItemExpr(int Offset, Expr Target, Expr Index) : Expr(Offset);

internal sealed record SliceExpr(int Offset, Expr? Start, Expr? Stop, Expr? Step) : Expr(Offset);

internal sealed record CallArgs(IReadOnlyList<Expr> Positional, IReadOnlyList<(string Name, Expr Value)> Keywords)
{
    public static readonly CallArgs None = new([], []);
}

internal sealed record CallExpr(int Offset, Expr Callee, CallArgs Args) : Expr(Offset);

/// <summary>value | name(args). <see cref="Value"/> is null for the filter of a {% set %} block.</summary>
internal sealed record FilterExpr(int Offset, Expr? Value, string Name, CallArgs Args) : Expr(Offset);

internal sealed record TestExpr(int Offset, Expr Value, string Name, CallArgs Args) : Expr(Offset);

/// <summary>Unary operators: "not", "-", "+".</summary>
internal sealed record UnaryExpr(int Offset, string Op, Expr Operand) : Expr(Offset);

/// <summary>Binary operators: + - * / // % ** and, or.</summary>
internal sealed record BinaryExpr(int Offset, string Op, Expr Left, Expr Right) : Expr(Offset);

/// <summary>a ~ b ~ ...: the string forms joined.</summary>
internal sealed record ConcatExpr(int Offset, IReadOnlyList<Expr> Parts) : Expr(Offset);

/// <summary>a op1 b op2 c ...: chained comparisons (==, !=, &lt;, &lt;=, &gt;, &gt;=, in, notin), as in Python.</summary>
internal sealed record CompareExpr(int Offset, Expr First, IReadOnlyList<(string Op, Expr Right)> Rest) : Expr(Offset);

/// <summary>then if test else otherwise; no else gives an undefined value.</summary>
internal sealed record CondExpr(int Offset, Expr Test, Expr Then, Expr? Otherwise) : Expr(Offset);
