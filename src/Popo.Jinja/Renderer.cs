using System.Runtime.CompilerServices;
using System.Text;

namespace Popo.Jinja;

/// <summary>
/// Walks the syntax tree with Python's value semantics (<see cref="PyValue"/>). An error below an expression
/// becomes a <see cref="TemplateException"/> at that expression's position.
/// </summary>
internal sealed class Renderer(SourceText source, Func<DateTime> now)
{
    private enum Flow { Normal, Break, Continue }

    private const int MaxRange = 100_000; // Jinja2's sandbox limit on range().

    // The budget of one render (RenderLimits): work done, characters and items produced, macro calls active.
    private long steps, produced;
    private int calls;

    public Scope Globals()
    {
        var globals = new Scope(null);
        globals.Set("range", new Callable("range", (args, _) => Range(args)));
        globals.Set("dict", new Callable("dict", (args, kwargs) =>
        {
            var d = args.Count == 1 && args[0] is Dictionary<string, object?> from ? new Dictionary<string, object?>(from, StringComparer.Ordinal) : new Dictionary<string, object?>(StringComparer.Ordinal);
            if (args.Count > 1 || (args.Count == 1 && args[0] is not Dictionary<string, object?>)) throw new TemplateValueError("dict() takes keyword arguments or one mapping");
            foreach (var (k, v) in kwargs) d[k] = v;
            return d;
        }));
        globals.Set("namespace", new Callable("namespace", (args, kwargs) =>
        {
            var ns = new Namespace();
            if (args.Count == 1 && args[0] is Dictionary<string, object?> from)
                foreach (var (k, v) in from) ns.Attributes[k] = v;
            else if (args.Count > 0) throw new TemplateValueError("namespace() takes keyword arguments or one mapping");
            foreach (var (k, v) in kwargs) ns.Attributes[k] = v;
            return ns;
        }));
        globals.Set("raise_exception", new Callable("raise_exception", (args, _) =>
            throw new TemplateValueError(args.Count > 0 ? PyValue.Str(args[0]) : "raise_exception() called", raised: true)));
        globals.Set("strftime_now", new Callable("strftime_now", (args, _) =>
            Strftime.Format(now(), args.Count == 1 && args[0] is string f ? f : throw new TemplateValueError("strftime_now() takes one format string"))));
        return globals;
    }

    private static List<object?> Range(IReadOnlyList<object?> args)
    {
        long Int(object? v) => v switch
        {
            long l => l,
            bool b => b ? 1 : 0,
            _ => throw new TemplateValueError($"'{PyValue.TypeName(v)}' object cannot be interpreted as an integer"),
        };
        var (start, stop, step) = args.Count switch
        {
            1 => (0L, Int(args[0]), 1L),
            2 => (Int(args[0]), Int(args[1]), 1L),
            3 => (Int(args[0]), Int(args[1]), Int(args[2])),
            _ => throw new TemplateValueError($"range expected 1 to 3 arguments, got {args.Count}"),
        };
        if (step == 0) throw new TemplateValueError("range() arg 3 must not be zero");
        var result = new List<object?>();
        for (var i = start; step > 0 ? i < stop : i > stop; i += step)
        {
            if (result.Count >= MaxRange) throw new TemplateValueError($"range too big: more than {MaxRange} items");
            result.Add(i);
        }
        return result;
    }

    public void Render(IReadOnlyList<Stmt> body, Scope scope, StringBuilder output)
    {
        if (Exec(body, scope, output) != Flow.Normal) throw source.Error(0, "break or continue outside a loop");
    }

    private Flow Exec(IReadOnlyList<Stmt> body, Scope scope, StringBuilder output)
    {
        foreach (var stmt in body)
        {
            var flow = Exec(stmt, scope, output);
            if (flow != Flow.Normal) return flow;
        }
        return Flow.Normal;
    }

    private Flow Exec(Stmt stmt, Scope scope, StringBuilder output)
    {
        Step(stmt.Offset);
        try { return ExecUnchecked(stmt, scope, output); }
        catch (TemplateValueError e) { throw Error(stmt.Offset, e); }   // printing a value (repr of a long list)
    }

    private Flow ExecUnchecked(Stmt stmt, Scope scope, StringBuilder output)
    {
        switch (stmt)
        {
            case TextStmt text:
                Append(output, text.Text, stmt.Offset);
                return Flow.Normal;
            case OutputStmt print:
                Append(output, PyValue.Str(Eval(print.Value, scope)), stmt.Offset);
                return Flow.Normal;
            case IfStmt branch:
                foreach (var (test, body) in branch.Branches)
                    if (PyValue.Truthy(Eval(test, scope))) return Exec(body, scope, output);
                return Exec(branch.Else, scope, output);
            case ForStmt loop:
                For(loop, scope, output);
                return Flow.Normal;
            case SetStmt set:
                Assign(set.Target, Eval(set.Value, scope), scope);
                return Flow.Normal;
            case SetBlockStmt block:
            {
                var captured = new StringBuilder();
                Render(block.Body, scope, captured);
                object? value = captured.ToString();
                if (block.Filter is not null) value = FilterChain(block.Filter, value, scope);
                Assign(block.Target, value, scope);
                return Flow.Normal;
            }
            case MacroStmt macro:
                scope.Set(macro.Name, Macro(macro, scope));
                return Flow.Normal;
            case BreakStmt:
                return Flow.Break;
            case ContinueStmt:
                return Flow.Continue;
            case GenerationStmt generation:
                return Exec(generation.Body, scope, output);
            default:
                throw source.Error(stmt.Offset, $"unknown statement {stmt.GetType().Name}");
        }
    }

    /// <summary>One unit of work; also where a recursion too deep for the thread's stack is stopped.</summary>
    private void Step(int offset)
    {
        if (++steps > RenderLimits.MaxSteps)
            throw source.Error(offset, $"template runs too long: more than {RenderLimits.MaxSteps} steps (statements, loop iterations and expressions)");
        if (!RuntimeHelpers.TryEnsureSufficientExecutionStack())
            throw source.Error(offset, "template nested too deeply for the renderer's stack");
    }

    /// <summary>Charges what an expression produced: a string's characters, a list's items.</summary>
    private void Produced(int offset, object? value)
    {
        long size = value switch { string s => s.Length, List<object?> l => l.Count, object?[] t => t.Length, _ => 0 };
        if ((produced += size) > RenderLimits.MaxProduced)
            throw source.Error(offset, $"template builds too much: more than {RenderLimits.MaxProduced} characters and items in all");
    }

    private void Append(StringBuilder output, string text, int offset)
    {
        if ((long)output.Length + text.Length > RenderLimits.MaxLength)
            throw source.Error(offset, $"template output too long: more than {RenderLimits.MaxLength} characters");
        output.Append(text);
    }

    private void For(ForStmt loop, Scope scope, StringBuilder output)
    {
        var iterable = Eval(loop.Iterable, scope);
        IReadOnlyList<object?> items;
        try { items = PyValue.Iterate(iterable); }
        catch (TemplateValueError e) { throw source.Error(loop.Iterable.Offset, e.Message); }
        if (loop.Filter is not null)
        {
            var kept = new List<object?>();
            foreach (var item in items)
            {
                Step(loop.Offset);
                var probe = new Scope(scope);
                Assign(loop.Target, item, probe);
                if (PyValue.Truthy(Eval(loop.Filter, probe))) kept.Add(item);
            }
            items = kept;
        }
        if (items.Count == 0)
        {
            Exec(loop.Else, new Scope(scope), output);
            return;
        }
        var context = new LoopContext(items, 1);
        for (var i = 0; i < items.Count; i++)
        {
            Step(loop.Offset);
            context.Index0 = i;
            var iteration = new Scope(scope);
            iteration.Set("loop", context);
            Assign(loop.Target, items[i], iteration);
            if (Exec(loop.Body, iteration, output) == Flow.Break) break;
        }
    }

    private void Assign(AssignTarget target, object? value, Scope scope)
    {
        switch (target)
        {
            case NameTarget name:
                scope.Set(name.Name, value);
                return;
            case NamespaceTarget attribute:
                if (scope.Lookup(attribute.Namespace) is not Namespace ns)
                    throw source.Error(attribute.Offset, $"cannot assign attribute on non-namespace object '{attribute.Namespace}'");
                ns.Attributes[attribute.Attribute] = value;
                return;
            case TupleTarget tuple:
            {
                IReadOnlyList<object?> items;
                try { items = PyValue.Iterate(value); }
                catch (TemplateValueError e) { throw source.Error(tuple.Offset, $"cannot unpack: {e.Message}"); }
                if (items.Count != tuple.Items.Count)
                    throw source.Error(tuple.Offset, items.Count < tuple.Items.Count
                        ? $"not enough values to unpack (expected {tuple.Items.Count}, got {items.Count})"
                        : $"too many values to unpack (expected {tuple.Items.Count})");
                for (var i = 0; i < items.Count; i++) Assign(tuple.Items[i], items[i], scope);
                return;
            }
        }
    }

    private Callable Macro(MacroStmt macro, Scope defining) => new(macro.Name, (args, kwargs) =>
    {
        if (args.Count > macro.Parameters.Count)
            throw new TemplateValueError($"macro '{macro.Name}' takes not more than {macro.Parameters.Count} argument(s)");
        var call = new Scope(defining);
        var used = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < macro.Parameters.Count; i++)
        {
            var (name, fallback) = macro.Parameters[i];
            if (i < args.Count) call.Set(name, args[i]);
            else if (kwargs.TryGetValue(name, out var v)) call.Set(name, v);
            else call.Set(name, fallback is null ? new Undefined($"parameter '{name}' of macro '{macro.Name}' was not provided") : Eval(fallback, call));
            used.Add(name);
        }
        foreach (var key in kwargs.Keys)
            if (!used.Contains(key)) throw new TemplateValueError($"macro '{macro.Name}' takes no keyword argument '{key}'");
        if (++calls > RenderLimits.MaxCallDepth)
            throw new TemplateValueError($"macro '{macro.Name}' called more than {RenderLimits.MaxCallDepth} deep: recursion without end?");
        try
        {
            var output = new StringBuilder();
            Render(macro.Body, call, output);
            return output.ToString();
        }
        finally { calls--; }
    });

    private object? FilterChain(FilterExpr filter, object? seed, Scope scope)
    {
        var value = filter.Value is FilterExpr inner ? FilterChain(inner, seed, scope) : seed;
        return ApplyFilter(filter, value, scope);
    }

    private object? ApplyFilter(FilterExpr filter, object? value, Scope scope)
    {
        var (args, kwargs) = Arguments(filter.Args, scope);
        try { return Filters.Apply(filter.Name, value, args, kwargs); }
        catch (TemplateValueError e) { throw Error(filter.Offset, e); }
    }

    private (List<object?>, Dictionary<string, object?>) Arguments(CallArgs args, Scope scope) =>
        (args.Positional.Select(a => Eval(a, scope)).ToList(),
         args.Keywords.ToDictionary(k => k.Name, k => Eval(k.Value, scope), StringComparer.Ordinal));

    private TemplateException Error(int offset, TemplateValueError e) =>
        source.Error(offset, e.Raised ? $"raise_exception: {e.Message}" : e.Message, e.Raised);

    public object? Eval(Expr expr, Scope scope)
    {
        Step(expr.Offset);
        try
        {
            var value = EvalUnchecked(expr, scope);
            // What an operation built; a name, attribute or item lookup returns a value that already exists.
            if (expr is BinaryExpr or ConcatExpr or FilterExpr or CallExpr or ListExpr or TupleExpr) Produced(expr.Offset, value);
            return value;
        }
        catch (TemplateValueError e)
        {
            throw Error(expr.Offset, e);
        }
    }

    private object? EvalUnchecked(Expr expr, Scope scope)
    {
        switch (expr)
        {
            case ConstExpr c:
                return c.Value;
            case NameExpr name:
                return scope.Lookup(name.Name);
            case ListExpr list:
                return list.Items.Select(i => Eval(i, scope)).ToList();
            case TupleExpr tuple:
                return tuple.Items.Select(i => Eval(i, scope)).ToArray();
            case DictExpr dict:
            {
                var d = new Dictionary<string, object?>(StringComparer.Ordinal);
                foreach (var (k, v) in dict.Pairs)
                    d[Eval(k, scope) as string ?? throw source.Error(k.Offset, "this Jinja subset supports only string dict keys")] = Eval(v, scope);
                return d;
            }
            case GetAttrExpr attr:
                return PyValue.GetAttr(Eval(attr.Target, scope), attr.Name);
            case GetItemExpr item:
            {
                var target = Eval(item.Target, scope);
                var key = item.Index is SliceExpr slice
                    ? new PySlice(SliceBound(slice.Start, scope), SliceBound(slice.Stop, scope), SliceBound(slice.Step, scope))
                    : Eval(item.Index, scope);
                return PyValue.GetItem(target, key);
            }
            case CallExpr call:
            {
                var callee = Eval(call.Callee, scope);
                var (args, kwargs) = Arguments(call.Args, scope);
                return callee switch
                {
                    Callable f => f.Invoke(args, kwargs),
                    Undefined u => throw u.Error(),
                    _ => throw new TemplateValueError($"'{PyValue.TypeName(callee)}' object is not callable"),
                };
            }
            case FilterExpr filter:
                return ApplyFilter(filter, filter.Value is null ? null : Eval(filter.Value, scope), scope);
            case TestExpr test:
            {
                var value = Eval(test.Value, scope);
                var (args, kwargs) = Arguments(test.Args, scope);
                return TemplateTests.Apply(test.Name, value, args, kwargs);
            }
            case UnaryExpr unary:
            {
                var operand = Eval(unary.Operand, scope);
                return unary.Op switch
                {
                    "not" => !PyValue.Truthy(operand),
                    "-" => PyValue.Negate(operand),
                    _ => PyValue.Plus(operand),
                };
            }
            case BinaryExpr { Op: "and" } and:
            {
                var left = Eval(and.Left, scope);
                return PyValue.Truthy(left) ? Eval(and.Right, scope) : left;
            }
            case BinaryExpr { Op: "or" } or:
            {
                var left = Eval(or.Left, scope);
                return PyValue.Truthy(left) ? left : Eval(or.Right, scope);
            }
            case BinaryExpr binary:
                return PyValue.Arithmetic(binary.Op, Eval(binary.Left, scope), Eval(binary.Right, scope));
            case ConcatExpr concat:
            {
                var parts = concat.Parts.Select(p => PyValue.Str(Eval(p, scope))).ToList();
                RenderLimits.CheckLength(parts.Sum(p => (long)p.Length));
                return string.Concat(parts);
            }
            case CompareExpr compare:
            {
                var left = Eval(compare.First, scope);
                foreach (var (op, rightExpr) in compare.Rest)
                {
                    var right = Eval(rightExpr, scope);
                    var holds = op switch
                    {
                        "==" => PyValue.Equals(left, right),
                        "!=" => !PyValue.Equals(left, right),
                        "<" => PyValue.Compare(left, right, op) < 0,
                        "<=" => PyValue.Compare(left, right, op) <= 0,
                        ">" => PyValue.Compare(left, right, op) > 0,
                        ">=" => PyValue.Compare(left, right, op) >= 0,
                        "in" => PyValue.Contains(right, left),
                        _ => !PyValue.Contains(right, left),
                    };
                    if (!holds) return false;
                    left = right;
                }
                return true;
            }
            case CondExpr cond:
                return PyValue.Truthy(Eval(cond.Test, scope)) ? Eval(cond.Then, scope)
                    : cond.Otherwise is null ? new Undefined("the inline if-expression evaluated to false and no else section was defined")
                    : Eval(cond.Otherwise, scope);
            default:
                throw source.Error(expr.Offset, $"unexpected expression {expr.GetType().Name}");
        }
    }

    private long? SliceBound(Expr? bound, Scope scope)
    {
        if (bound is null) return null;
        return Eval(bound, scope) switch
        {
            null => null,
            long l => l,
            bool b => b ? 1 : 0,
            var v => throw source.Error(bound.Offset, $"slice indices must be integers or None, not {PyValue.TypeName(v)}"),
        };
    }
}
