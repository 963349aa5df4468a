namespace Popo.Jinja;

/// <summary>A statement of the template's syntax tree (text, output or a {% %} tag with its body).</summary>
internal abstract record Stmt(int Offset);

internal sealed record TextStmt(int Offset, string Text) : Stmt(Offset);
internal sealed record OutputStmt(int Offset, Expr Value) : Stmt(Offset);
internal sealed record IfStmt(int Offset, IReadOnlyList<(Expr Test, IReadOnlyList<Stmt> Body)> Branches, IReadOnlyList<Stmt> Else) : Stmt(Offset);

/// <summary>{% for target in iterable [if filter] %} body [{% else %} empty] {% endfor %}.</summary>
internal sealed record ForStmt(int Offset, AssignTarget Target, Expr Iterable, Expr? Filter, IReadOnlyList<Stmt> Body, IReadOnlyList<Stmt> Else) : Stmt(Offset);

internal sealed record SetStmt(int Offset, AssignTarget Target, Expr Value) : Stmt(Offset);

/// <summary>{% set target [| filters] %} body {% endset %}: the rendered body (filtered) is the value.</summary>
internal sealed record SetBlockStmt(int Offset, AssignTarget Target, FilterExpr? Filter, IReadOnlyList<Stmt> Body) : Stmt(Offset);

/// <summary>{% macro name(params) %} body {% endmacro %}; defaults are evaluated at call time, as in Jinja2.</summary>
internal sealed record MacroStmt(int Offset, string Name, IReadOnlyList<(string Name, Expr? Default)> Parameters, IReadOnlyList<Stmt> Body) : Stmt(Offset);

internal sealed record BreakStmt(int Offset) : Stmt(Offset);
internal sealed record ContinueStmt(int Offset) : Stmt(Offset);

/// <summary>Hugging Face's {% generation %} tag (assistant-mask tracking): renders its body unchanged.</summary>
internal sealed record GenerationStmt(int Offset, IReadOnlyList<Stmt> Body) : Stmt(Offset);

/// <summary>What {% set %} and {% for %} assign to: a name, a tuple of names (unpacking) or a namespace attribute.</summary>
internal abstract record AssignTarget(int Offset);
internal sealed record NameTarget(int Offset, string Name) : AssignTarget(Offset);
internal sealed record TupleTarget(int Offset, IReadOnlyList<AssignTarget> Items) : AssignTarget(Offset);
internal sealed record NamespaceTarget(int Offset, string Namespace, string Attribute) : AssignTarget(Offset);
