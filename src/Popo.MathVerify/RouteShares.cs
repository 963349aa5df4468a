namespace Popo.MathVerify;

/// <summary>
/// The metrics columns route_boxed, route_marked, route_math, route_number: of the rewarded rollouts of a
/// step, the share whose answer came by each extraction route (the verdict's <see cref="Verdict.Route"/>); NaN on
/// a step with no reward. A reward whose answer no route finds (a task with its own reader) counts in none.
/// </summary>
internal static class RouteShares
{
    public static readonly string[] Columns = ["route_boxed", "route_marked", "route_math", "route_number"];

    /// <summary>The shares of the rewarded rows' routes (each row's route as its verdict gave it).</summary>
    public static IEnumerable<(string Column, double Share)> Of(IReadOnlyList<AnswerRoute> routes, IReadOnlyList<double> rewards)
    {
        var counts = new int[Columns.Length];
        int rewarded = 0;
        for (int i = 0; i < routes.Count; i++)
        {
            if (rewards[i] <= 0) continue;
            rewarded++;
            if (routes[i] != AnswerRoute.None) counts[(int)routes[i] - 1]++;
        }
        for (int k = 0; k < Columns.Length; k++)
            yield return (Columns[k], rewarded == 0 ? double.NaN : counts[k] / (double)rewarded);
    }
}
