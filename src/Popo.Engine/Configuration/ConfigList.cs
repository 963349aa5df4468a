using System.Collections;
using System.Globalization;

namespace Popo.Engine.Configuration;

/// <summary>
/// The value of a list key (<c>reward_funcs</c>, <c>reward_weights</c>): an immutable list compared by its items, so that
/// two configurations with the same keys are equal (a record compares its lists by reference otherwise).
/// </summary>
internal sealed class ConfigList<T> : IReadOnlyList<T>, IEquatable<ConfigList<T>>
{
    private readonly T[] items;

    /// <summary>A list of <paramref name="items"/> (copied).</summary>
    public ConfigList(IEnumerable<T> items) => this.items = items.ToArray();

    /// <summary>The empty list.</summary>
    public static ConfigList<T> Empty { get; } = new([]);

    /// <inheritdoc />
    public T this[int index] => items[index];

    /// <inheritdoc />
    public int Count => items.Length;

    /// <inheritdoc />
    public IEnumerator<T> GetEnumerator() => ((IEnumerable<T>)items).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => items.GetEnumerator();

    /// <inheritdoc />
    public bool Equals(ConfigList<T>? other) => other is not null && items.SequenceEqual(other.items);

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is ConfigList<T> other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => items.Aggregate(items.Length, (h, x) => HashCode.Combine(h, x));

    /// <summary>The items comma-separated, as a flag takes them ('' when empty).</summary>
    public override string ToString() =>
        string.Join(",", items.Select(x => x is IFormattable f ? f.ToString(null, CultureInfo.InvariantCulture) : x?.ToString()));
}
