using System.Text.Json;

namespace Popo.Engine.Tokenizers;

/// <summary>
/// Which tokenizer a model folder uses. Hugging Face folders carry tokenizer.json (or vocab.json +
/// merges.txt); models trained by Popo on the built-in tasks carry popo_tokenizer.json naming the
/// character tokenizer, so `--model` works for both.
/// </summary>
internal static class TokenizerFolder
{
    public const string CharMarkerFile = "popo_tokenizer.json";

    public static ITokenizer Load(string folder)
    {
        var marker = Path.Combine(folder, CharMarkerFile);
        if (!File.Exists(marker)) return HfBpeTokenizer.Load(folder);
        string? type;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(marker));
            type = doc.RootElement.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
        }
        catch (JsonException e) { throw new TokenizerFormatException($"{marker}: not valid JSON: {e.Message}"); }
        return type == "char" ? new CharTokenizer()
            : throw new TokenizerFormatException($"{marker}: field 'type' must be \"char\", got {(type is null ? "nothing" : $"'{type}'")}");
    }

    /// <summary>Writes what <see cref="Load"/> needs to rebuild the tokenizer (HF folders are copied by the caller).</summary>
    public static void Save(ITokenizer tokenizer, string folder, string? sourceFolder)
    {
        if (tokenizer is CharTokenizer)
        {
            File.WriteAllText(Path.Combine(folder, CharMarkerFile), "{\"type\": \"char\"}\n");
            return;
        }
        if (sourceFolder is null) return;
        foreach (var name in new[] { "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json", "generation_config.json" })
        {
            var source = Path.Combine(sourceFolder, name);
            if (File.Exists(source)) File.Copy(source, Path.Combine(folder, name), overwrite: true);
        }
    }
}
