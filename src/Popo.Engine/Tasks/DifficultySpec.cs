namespace Popo.Engine.Tasks;

/// <summary>
/// Parses a difficulty: a preset name, or "key=value" pairs separated by commas applied over a base
/// preset (e.g. "digits=4,operands=3"). Unknown presets and keys are errors that list the valid ones.
/// </summary>
internal static class DifficultySpec
{
    public static T Parse<T>(string task, string? text, IReadOnlyDictionary<string, T> presets, string defaultPreset,
                             IReadOnlyDictionary<string, Func<T, string, T>> keys)
    {
        var spec = (text ?? "").Trim();
        if (spec.Length == 0) return presets[defaultPreset];
        if (presets.TryGetValue(spec, out var preset)) return preset;
        if (!spec.Contains('='))
            throw new ArgumentException(
                $"{task}: unknown difficulty '{spec}'; presets: {string.Join(", ", presets.Keys)}; " +
                $"or key=value pairs with keys {string.Join(", ", keys.Keys)}");
        var value = presets[defaultPreset];
        foreach (var part in spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var eq = part.IndexOf('=');
            var key = eq < 0 ? part : part[..eq].Trim();
            if (key == "preset" && eq >= 0)
            {
                var name = part[(eq + 1)..].Trim();
                if (!presets.TryGetValue(name, out value!))
                    throw new ArgumentException($"{task}: unknown preset '{name}'; presets: {string.Join(", ", presets.Keys)}");
                continue;
            }
            if (eq < 0 || !keys.TryGetValue(key, out var apply))
                throw new ArgumentException(
                    $"{task}: bad difficulty item '{part}'; keys: preset, {string.Join(", ", keys.Keys)}");
            value = apply(value, part[(eq + 1)..].Trim());
        }
        return value;
    }

    public static int Int(string task, string key, string text, int min, int max)
    {
        if (!int.TryParse(text, out var v) || v < min || v > max)
            throw new ArgumentException($"{task}: difficulty {key}={text}: expected an integer in [{min}, {max}]");
        return v;
    }

    public static string Operators(string task, string text, string allowed)
    {
        if (text.Length == 0 || text.Any(c => !allowed.Contains(c)) || text.Distinct().Count() != text.Length)
            throw new ArgumentException($"{task}: difficulty ops={text}: expected distinct characters from \"{allowed}\"");
        return text;
    }
}
