namespace Popo.Engine.Rollout;

/// <summary>
/// The distinct prompts of a batch (a GRPO/POPO batch holds each prompt G times): which rows to prefill, and
/// which of those each row reads. Rows with equal token sequences share one entry, wherever they sit.
/// </summary>
internal sealed record PromptGroups(int[] Distinct, long[] RowToDistinct)
{
    public static PromptGroups Of(IReadOnlyList<int[]> prompts)
    {
        var seen = new Dictionary<int[], long>(SequenceComparer.Instance);
        var distinct = new List<int>();
        var map = new long[prompts.Count];
        for (var r = 0; r < prompts.Count; r++)
        {
            if (!seen.TryGetValue(prompts[r], out var slot))
            {
                slot = distinct.Count;
                seen.Add(prompts[r], slot);
                distinct.Add(r);
            }
            map[r] = slot;
        }
        return new PromptGroups(distinct.ToArray(), map);
    }

    private sealed class SequenceComparer : IEqualityComparer<int[]>
    {
        public static readonly SequenceComparer Instance = new();
        public bool Equals(int[]? x, int[]? y) => x.AsSpan().SequenceEqual(y);
        public int GetHashCode(int[] ids)
        {
            var hash = new HashCode();
            foreach (var id in ids) hash.Add(id);
            return hash.ToHashCode();
        }
    }
}
