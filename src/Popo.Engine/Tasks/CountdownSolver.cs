namespace Popo.Engine.Tasks;

/// <summary>
/// Finds a countdown solution with the fewest operations, by iterative deepening over "combine two of
/// the remaining values" (positive integer intermediates, exact division only: the classic game's
/// rules, which every instance we generate satisfies). A node budget bounds the time.
/// </summary>
internal static class CountdownSolver
{
    /// <summary>An expression over some of the numbers; Prec is 3 for a literal, 2 for * /, 1 for + -.</summary>
    internal sealed record Node(long Value, string Text, int Prec, IReadOnlyList<string> Steps);

    public static Node Literal(long n) => new(n, n.ToString(), 3, []);

    /// <summary>a op b, or null when the result is not a positive integer.</summary>
    public static Node? Combine(Node a, char op, Node b)
    {
        long v;
        switch (op)
        {
            case '+': v = a.Value + b.Value; break;
            case '-': if (a.Value <= b.Value) return null; v = a.Value - b.Value; break;
            case '*': v = a.Value * b.Value; break;
            case '/': if (b.Value == 0 || a.Value % b.Value != 0) return null; v = a.Value / b.Value; break;
            default: return null;
        }
        if (v <= 0 || v > 1_000_000_000) return null;
        int prec = op is '+' or '-' ? 1 : 2;
        // left needs parentheses below the operator's precedence; right also at equal precedence for - and /
        string left = a.Prec < prec ? $"({a.Text})" : a.Text;
        string right = b.Prec < prec || (b.Prec == prec && op is '-' or '/') ? $"({b.Text})" : b.Text;
        var steps = a.Steps.Concat(b.Steps).Append($"{a.Value}{op}{b.Value}={v}").ToList();
        return new Node(v, left + op + right, prec, steps);
    }

    /// <summary>A solution with at most maxOps operations, the fewest first; null within the budget otherwise.</summary>
    public static Node? Solve(IReadOnlyList<long> numbers, long target, string operators, int maxOps, int budget = 20_000)
    {
        int nodes = 0;
        for (int ops = 1; ops <= maxOps; ops++)
        {
            var found = Search(numbers.Select(Literal).ToList(), target, operators, ops, ref nodes, budget);
            if (found is not null) return found;
            if (nodes >= budget) return null;
        }
        return null;
    }

    private static Node? Search(List<Node> pool, long target, string operators, int opsLeft, ref int nodes, int budget)
    {
        if (opsLeft == 0) return null;
        for (int i = 0; i < pool.Count; i++)
            for (int j = 0; j < pool.Count; j++)
            {
                if (i == j) continue;
                foreach (var op in operators)
                {
                    // commutative operators: one order is enough
                    if (op is '+' or '*' && j < i) continue;
                    if (++nodes >= budget) return null;
                    var c = Combine(pool[i], op, pool[j]);
                    if (c is null) continue;
                    if (c.Value == target) return c;
                    if (opsLeft == 1) continue;
                    var next = new List<Node>(pool.Count - 1) { c };
                    for (int k = 0; k < pool.Count; k++) if (k != i && k != j) next.Add(pool[k]);
                    var found = Search(next, target, operators, opsLeft - 1, ref nodes, budget);
                    if (found is not null) return found;
                    if (nodes >= budget) return null;
                }
            }
        return null;
    }
}
