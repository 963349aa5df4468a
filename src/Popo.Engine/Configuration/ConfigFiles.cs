using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Popo.Engine.Runtime;
using Tomlyn;
using Tomlyn.Model;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Popo.Engine.Configuration;

/// <summary>
/// One key as a config file gives it: the value is a scalar (string, long, double, bool), null (YAML `~` or JSON
/// null), a list, or a mapping; only some of TRL's keys take the last three. <see cref="Source"/> is "FILE:LINE"
/// (FILE alone where the format gives no line).
/// </summary>
internal sealed record ConfigSetting(string Key, object? Value, string Source);

/// <summary>
/// Reads a config file (TOML, JSON or YAML, by extension) into its top-level keys, in file order. Syntax errors and a
/// key defined twice name the file and line. The keys are flat: a nested table is kept as a value for the translation
/// of foreign keys (<see cref="ForeignKeys"/>) to accept or refuse by name.
/// </summary>
internal static class ConfigFiles
{
    /// <summary>The extensions <c>--config</c> accepts.</summary>
    public const string Formats = ".toml, .json, .yaml or .yml";

    public static List<ConfigSetting> Read(string path)
    {
        if (!File.Exists(path)) throw new ConfigException($"{path}: config file not found");
        var text = File.ReadAllText(path);
        return Path.GetExtension(path).ToLowerInvariant() switch
        {
            ".toml" => ReadToml(path, text),
            ".json" => ReadJson(path, text),
            ".yaml" or ".yml" => ReadYaml(path, text),
            var ext => throw new ConfigException($"{path}: unknown config format '{ext}'; expected {Formats}"),
        };
    }

    private static List<ConfigSetting> ReadToml(string path, string text)
    {
        TomlTable table;
        try { table = TomlSerializer.Deserialize<TomlTable>(text)!; }
        catch (TomlException e) { throw new ConfigException($"{path}: not valid TOML: {e.Message}"); }
        var lines = TomlKeyLines(path, text);
        var values = new List<ConfigSetting>();
        foreach (var (key, value) in table)
        {
            var source = lines.TryGetValue(key, out var line) ? $"{path}:{line}" : path;
            object? converted = value switch
            {
                TomlArray array => array.Select(v => v is TomlTable or TomlArray or TomlTableArray ? Nested(source, key) : v).ToList(),
                TomlTable or TomlTableArray => throw Nested(source, key),
                _ => value,
            };
            values.Add(new(key, converted, source));
        }
        return values;
    }

    private static ConfigException Nested(string source, string key) =>
        new($"{source}: key '{key}': expected a single value (keys are flat, see `popo train --help`)");

    /// <summary>
    /// The line of each top-level key. The TOML specification makes a key defined twice an invalid document; Tomlyn's
    /// deserializer keeps the last value (`steps = 3` then `steps = 5` gave 5, DuplicateKeyHandling = Error
    /// notwithstanding), so its token reader is walked here, a set of keys per table, and a repeat is refused.
    /// </summary>
    private static Dictionary<string, int> TomlKeyLines(string path, string text)
    {
        var reader = Tomlyn.Serialization.TomlReader.Create(text, new TomlSerializerOptions());
        var tables = new Stack<Dictionary<string, int>>();
        Dictionary<string, int>? top = null;
        while (reader.Read())
        {
            switch (reader.TokenType)
            {
                case Tomlyn.Serialization.TomlTokenType.StartTable:
                    tables.Push(new(StringComparer.Ordinal));
                    top ??= tables.Peek();
                    break;
                case Tomlyn.Serialization.TomlTokenType.EndTable: tables.Pop(); break;
                case Tomlyn.Serialization.TomlTokenType.PropertyName when tables.Count > 0:
                    if (tables.Peek().TryGetValue(reader.PropertyName!, out var first))
                        throw new ConfigException($"{path}:{reader.Line}: key '{reader.PropertyName}' is defined twice (first on line {first}); a TOML document may define a key once");
                    tables.Peek()[reader.PropertyName!] = reader.Line;
                    break;
            }
        }
        return top ?? [];
    }

    private static List<ConfigSetting> ReadJson(string path, string text)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(text); }
        catch (JsonException e) { throw new ConfigException($"{path}: not valid JSON (line {e.LineNumber + 1}): {e.Message}"); }
        var lines = JsonKeyLines(path, text);
        if (root is not JsonObject obj) throw new ConfigException($"{path}: expected a JSON object of key: value pairs");
        var values = new List<ConfigSetting>();
        foreach (var (key, node) in obj)
        {
            var source = lines.TryGetValue(key, out var line) ? $"{path}:{line}" : path;
            values.Add(new(key, FromJson(node, source, key), source));
        }
        return values;
    }

    private static object? FromJson(JsonNode? node, string source, string key) => node switch
    {
        null => null,
        JsonValue v when v.TryGetValue<bool>(out var b) => b,
        JsonValue v when v.TryGetValue<long>(out var l) => l,
        JsonValue v when v.TryGetValue<double>(out var d) => d,
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonArray a => a.Select(x => x is JsonArray or JsonObject ? throw Nested(source, key) : FromJson(x, source, key)).ToList(),
        JsonObject o => o.ToDictionary(p => p.Key, p => (object?)p.Value?.ToJsonString()),
        _ => throw Nested(source, key),
    };

    /// <summary>The line of each top-level property; a name given twice is refused (JsonObject would refuse it only when enumerated, naming no file).</summary>
    private static Dictionary<string, int> JsonKeyLines(string path, string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        var lines = new Dictionary<string, int>(StringComparer.Ordinal);
        while (reader.Read())
        {
            if (reader.TokenType != JsonTokenType.PropertyName || reader.CurrentDepth != 1) continue;
            var name = reader.GetString()!;
            int line = 1 + bytes.AsSpan(0, (int)reader.TokenStartIndex).Count((byte)'\n');
            if (lines.TryGetValue(name, out var first))
                throw new ConfigException($"{path}:{line}: key '{name}' is defined twice (first on line {first}); a config file may define a key once");
            lines[name] = line;
        }
        return lines;
    }

    private static List<ConfigSetting> ReadYaml(string path, string text)
    {
        var stream = new YamlStream();
        try { stream.Load(new StringReader(text)); }
        catch (YamlException e) { throw new ConfigException($"{path}:{e.Start.Line}: not valid YAML: {Inner(e)}"); }
        if (stream.Documents.Count == 0) return [];
        if (stream.Documents.Count > 1) throw new ConfigException($"{path}:{stream.Documents[1].RootNode.Start.Line}: expected one YAML document, found {stream.Documents.Count} (a '---' separator)");
        var root = stream.Documents[0].RootNode;
        if (root is YamlScalarNode { Value: null or "" }) return [];
        if (root is not YamlMappingNode map) throw new ConfigException($"{path}:{root.Start.Line}: expected a YAML mapping of key: value pairs");
        var values = new List<ConfigSetting>();
        foreach (var (keyNode, valueNode) in map.Children)
        {
            var source = $"{path}:{keyNode.Start.Line}";
            if (keyNode is not YamlScalarNode { Value: { } key }) throw new ConfigException($"{source}: expected a plain key");
            values.Add(new(key, FromYaml(valueNode, source, key), source));
        }
        return values;
    }

    /// <summary>YamlDotNet's message, with the duplicate-key error it wraps made plain.</summary>
    private static string Inner(YamlException e)
    {
        var message = e.InnerException?.Message ?? e.Message;
        return Regex.IsMatch(message, "same key", RegexOptions.IgnoreCase) ? "a key is defined twice in one mapping (" + message + ")" : message;
    }

    private static object? FromYaml(YamlNode node, string source, string key) => node switch
    {
        YamlScalarNode s => Scalar(s),
        YamlSequenceNode seq => seq.Children.Select(c => c is YamlScalarNode sc ? Scalar(sc) : throw Nested(source, key)).ToList(),
        YamlMappingNode m => m.Children.ToDictionary(p => ((YamlScalarNode)p.Key).Value ?? "", p => p.Value is YamlScalarNode v ? Scalar(v) : (object?)p.Value.ToString()),
        _ => throw Nested(source, key),
    };

    /// <summary>
    /// A scalar typed as PyYAML (YAML 1.1, what TRL's and the authors' scripts read their files with) types it: quoted
    /// is a string; plain true/false/yes/no/on/off are booleans, ~/null/empty is null, integers and numbers are numbers
    /// (1e-6 as well, which PyYAML leaves a string but HfArgumentParser turns into a float).
    /// </summary>
    private static object? Scalar(YamlScalarNode s)
    {
        var v = s.Value ?? "";
        if (s.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted or ScalarStyle.Literal or ScalarStyle.Folded) return v;
        switch (v)
        {
            case "" or "~" or "null" or "Null" or "NULL": return null;
            case "true" or "True" or "TRUE" or "yes" or "Yes" or "YES" or "on" or "On" or "ON": return true;
            case "false" or "False" or "FALSE" or "no" or "No" or "NO" or "off" or "Off" or "OFF": return false;
        }
        var plain = v.Replace("_", "");
        if (Regex.IsMatch(plain, "^[-+]?[0-9]+$") && long.TryParse(plain, NumberStyles.Integer, CultureInfo.InvariantCulture, out var l)) return l;
        if (Regex.IsMatch(plain, @"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
            && double.TryParse(plain, NumberStyles.Float, CultureInfo.InvariantCulture, out var d)) return d;
        return v;
    }
}
