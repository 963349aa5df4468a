using System.Globalization;
using System.Reflection;
using Popo.Engine.Runtime;

namespace Popo.Engine.Configuration;

/// <summary>A configuration key as read off <see cref="TrainConfig"/>'s attributes.</summary>
internal sealed record ConfigEntry(string Key, string Help, Type Type, PropertyInfo Property, ConfigKeyAttribute Rules)
{
    /// <summary>The command-line flag: --kebab-case of the key.</summary>
    public string Flag => "--" + Key.Replace('_', '-');

    /// <summary>The allowed words of a string key (null = any).</summary>
    public IReadOnlyList<string>? Words => Rules.OneOfAlgorithms ? Objectives.ObjectiveRegistry.Names : Rules.OneOf;

    /// <summary>The item type of a list key (<see cref="ConfigList{T}"/>: TOML/JSON arrays, comma-separated in a flag), null for a single value.</summary>
    public Type? ItemType => Type.IsGenericType && Type.GetGenericTypeDefinition() == typeof(IReadOnlyList<>) ? Type.GetGenericArguments()[0] : null;

    public string Describe()
    {
        if (ItemType is { } item)
            return $"a list of {(item == typeof(double) ? "numbers" : "strings")} (an array in a config file, comma-separated in a flag)";
        if (Words is { } words) return "one of " + string.Join(", ", words);
        if (Type == typeof(bool)) return "true or false";
        var kind = Type == typeof(int) ? "an integer" : Type == typeof(double) ? "a number" : "a string";
        var lo = !double.IsNaN(Rules.Above) ? $"({Fmt(Rules.Above)}" : !double.IsNaN(Rules.Min) ? $"[{Fmt(Rules.Min)}" : null;
        var hi = !double.IsNaN(Rules.Max) ? $"{Fmt(Rules.Max)}]" : null;
        return lo is null && hi is null ? kind : $"{kind} in {lo ?? "(-inf"}, {hi ?? "inf)"}";
    }

    private static string Fmt(double v) => v.ToString("G", CultureInfo.InvariantCulture);

    /// <summary>Converts a raw value (string from a flag, or a TOML/JSON scalar) and checks its range.</summary>
    public object Convert(object raw, string source)
    {
        if (ItemType is { } item)
        {
            var items = raw switch
            {
                string s => s.Trim().Length == 0 ? [] : s.Split(',').Select(x => (object)x.Trim()).ToList(),
                IEnumerable<object> list => list.ToList(),
                _ => throw Error(source, raw),
            };
            if (item == typeof(string))
                return new ConfigList<string>(items.Select(x => x is string s && s.Trim().Length > 0 ? s.Trim() : throw Error(source, raw)));
            return new ConfigList<double>(items.Select(x => x switch
            {
                string s when double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d) => d,
                long l => (double)l,
                double d when double.IsFinite(d) => d,
                _ => throw Error(source, raw),
            }));
        }
        object value = raw switch
        {
            string s => Parse(s, source),
            long l when Type == typeof(int) && l is >= int.MinValue and <= int.MaxValue => (int)l,
            long l when Type == typeof(double) => (double)l,
            double d when Type == typeof(double) => d,
            bool b when Type == typeof(bool) => b,
            _ => throw Error(source, raw),
        };
        if (value is string word && Words is { } allowed && !allowed.Contains(word)) throw Error(source, raw);
        if (value is int or double)
        {
            double v = System.Convert.ToDouble(value, CultureInfo.InvariantCulture);
            if (!double.IsFinite(v)
                || (!double.IsNaN(Rules.Min) && v < Rules.Min)
                || (!double.IsNaN(Rules.Max) && v > Rules.Max)
                || (!double.IsNaN(Rules.Above) && v <= Rules.Above))
                throw Error(source, raw);
        }
        return value;
    }

    private object Parse(string s, string source)
    {
        if (Type == typeof(string)) return s;
        if (Type == typeof(bool))
            return s.ToLowerInvariant() switch { "true" or "1" or "yes" => true, "false" or "0" or "no" => false, _ => throw Error(source, s) };
        if (Type == typeof(int) && int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var i)) return i;
        if (Type == typeof(double) && double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var d)) return d;
        throw Error(source, s);
    }

    private ConfigException Error(string source, object raw) =>
        new($"{source}: key '{Key}': expected {Describe()}, got {Show(raw)}");

    private static string Show(object raw) => raw switch
    {
        string s => $"'{s}'",
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        IEnumerable<object> list => "[" + string.Join(", ", list.Select(Show)) + "]",
        _ => raw.GetType().Name,
    };
}

/// <summary>The set of configuration keys, read once from <see cref="TrainConfig"/>.</summary>
internal static class ConfigSchema
{
    public static IReadOnlyList<ConfigEntry> Entries { get; } =
        typeof(TrainConfig).GetProperties()
            .Select(p => (p, a: p.GetCustomAttribute<ConfigKeyAttribute>()))
            .Where(x => x.a is not null)
            .Select(x => new ConfigEntry(x.a!.Key, x.a.Help, x.p.PropertyType, x.p, x.a))
            .ToList();

    private static readonly Dictionary<string, ConfigEntry> ByKey = Entries.ToDictionary(e => e.Key);

    /// <summary>The value of <paramref name="key"/> in <paramref name="config"/>; an unknown key or a type other than the key's is a programming error.</summary>
    public static T Value<T>(TrainConfig config, string key)
    {
        if (!ByKey.TryGetValue(key, out var e)) throw new ArgumentException($"no configuration key '{key}'");
        if (e.Type != typeof(T)) throw new ArgumentException($"key '{key}' is a {e.Type.Name}, read as {typeof(T).Name}");
        return (T)e.Property.GetValue(config)!;
    }

    public static ConfigEntry Find(string key, string source) =>
        ByKey.TryGetValue(key, out var e) ? e
        : throw new ConfigException($"{source}: unknown key '{key}'{DidYouMean(key)}");

    private static string DidYouMean(string key)
    {
        var best = Entries.Select(e => (e.Key, d: Levenshtein(key, e.Key))).MinBy(x => x.d);
        return best.d <= Math.Max(2, key.Length / 3) ? $"; did you mean '{best.Key}'?" : "; see `popo train --help` for the keys";
    }

    /// <summary>Edit distance (insert, delete, substitute), for did-you-mean suggestions.</summary>
    public static int Levenshtein(string a, string b)
    {
        var prev = Enumerable.Range(0, b.Length + 1).ToArray();
        for (int i = 1; i <= a.Length; i++)
        {
            var cur = new int[b.Length + 1];
            cur[0] = i;
            for (int j = 1; j <= b.Length; j++)
                cur[j] = Math.Min(Math.Min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            prev = cur;
        }
        return prev[b.Length];
    }
}
