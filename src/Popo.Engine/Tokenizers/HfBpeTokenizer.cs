using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Popo.Engine.Tokenizers;

/// <summary>
/// Hugging Face byte-level BPE (GPT-2, Qwen2 ...) on Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/>:
/// vocabulary and merges from tokenizer.json (or vocab.json + merges.txt), the pre-tokenizer regex the file
/// declares (a Split regex, or GPT-2's regex for ByteLevel with use_regex), NFC if declared, and every added
/// token matched whole before pre-tokenisation. tokenizer_config.json supplies eos/pad/bos names and the
/// chat template.
/// </summary>
internal sealed class HfBpeTokenizer : ITokenizer
{
    /// <summary>GPT-2's pre-tokenizer, implied by a ByteLevel pre-tokenizer with use_regex = true.</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private readonly BpeTokenizer bpe;
    /// <summary>Ids of the added tokens marked special; decoding with skipSpecialTokens drops these and keeps the other added tokens (&lt;think&gt;, &lt;tool_call&gt;), as Hugging Face does.</summary>
    private readonly HashSet<int> specialIds;

    public int VocabSize { get; }
    public int PadId { get; }
    public int EosId { get; }
    public int? BosId { get; }
    /// <summary>The Jinja chat template of tokenizer_config.json, if any (rendered by <see cref="Training.PromptFormat"/>).</summary>
    public string? ChatTemplateSource { get; }
    /// <summary>The file the chat template came from, for error messages.</summary>
    public string ConfigFile { get; private init; } = "";
    /// <summary>bos_token, eos_token, pad_token, unk_token of tokenizer_config.json as text: variables of the chat template, as transformers passes them.</summary>
    public IReadOnlyDictionary<string, string> TemplateTokens { get; private init; } = new Dictionary<string, string>();
    /// <summary>Every added token (special or not), matched whole in text before pre-tokenisation.</summary>
    public IReadOnlyDictionary<string, int> SpecialTokens { get; }

    private HfBpeTokenizer(BpeTokenizer bpe, Dictionary<string, int> special, HashSet<int> skippable, int vocabSize, int padId, int eosId, int? bosId, string? chatTemplate)
    {
        this.bpe = bpe;
        SpecialTokens = special;
        specialIds = skippable;
        VocabSize = vocabSize;
        PadId = padId;
        EosId = eosId;
        BosId = bosId;
        ChatTemplateSource = chatTemplate;
    }

    public int[] Encode(string text) => bpe.EncodeToIds(text).ToArray();

    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false) =>
        bpe.Decode(skipSpecialTokens ? ids.Where(i => !specialIds.Contains(i)) : ids, considerSpecialTokens: true) ?? "";

    /// <summary>Loads a tokenizer folder: tokenizer.json, else vocab.json + merges.txt; plus tokenizer_config.json if present.</summary>
    public static HfBpeTokenizer Load(string folder)
    {
        var json = Path.Combine(folder, "tokenizer.json");
        var vocabFile = Path.Combine(folder, "vocab.json");
        var mergesFile = Path.Combine(folder, "merges.txt");
        Dictionary<string, int> vocab;
        List<string> merges;
        var special = new Dictionary<string, int>(StringComparer.Ordinal);
        var skippable = new HashSet<int>();
        string pattern = Gpt2Pattern;
        var nfc = false;
        if (File.Exists(json))
        {
            var root = ParseJson(json);
            var model = Object(root, "model", json);
            var type = model.TryGetProperty("type", out var t) ? t.GetString() : "BPE";
            if (type != "BPE") throw new TokenizerFormatException($"{json}: model.type is '{type}'; only BPE is supported");
            if (model.TryGetProperty("ignore_merges", out var im) && im.ValueKind == JsonValueKind.True)
                throw new TokenizerFormatException($"{json}: model.ignore_merges = true is not supported");
            vocab = ReadVocab(Object(model, "vocab", json), json, "model.vocab");
            merges = ReadMerges(model.TryGetProperty("merges", out var m) ? m : default, json);
            pattern = PreTokenizerPattern(root.TryGetProperty("pre_tokenizer", out var pre) ? pre : default, json);
            nfc = Normalizer(root.TryGetProperty("normalizer", out var norm) ? norm : default, json);
            if (root.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array)
            {
                foreach (var token in added.EnumerateArray())
                {
                    if (!token.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String
                        || !token.TryGetProperty("id", out var id) || !id.TryGetInt32(out var idValue))
                        throw new TokenizerFormatException($"{json}: every added_tokens entry needs a string 'content' and an integer 'id'");
                    special[content.GetString()!] = idValue;
                    if (!token.TryGetProperty("special", out var isSpecial) || isSpecial.ValueKind != JsonValueKind.False) skippable.Add(idValue);
                }
            }
        }
        else if (File.Exists(vocabFile) && File.Exists(mergesFile))
        {
            vocab = ReadVocab(ParseJson(vocabFile), vocabFile, "top level");
            merges = File.ReadAllLines(mergesFile).Where(l => l.Length > 0 && !l.StartsWith("#version", StringComparison.Ordinal)).ToList();
            for (var i = 0; i < merges.Count; i++)
                if (merges[i].Split(' ').Length != 2)
                    throw new TokenizerFormatException($"{mergesFile}: line with merge {i + 1} ('{merges[i]}') must be two tokens separated by one space");
        }
        else
        {
            throw new TokenizerFormatException($"{folder}: no tokenizer.json, nor vocab.json with merges.txt");
        }

        var configFile = Path.Combine(folder, "tokenizer_config.json");
        string? eosName = null, padName = null, bosName = null, unkName = null, chatTemplate = null;
        if (File.Exists(configFile))
        {
            var config = ParseJson(configFile);
            if (config.TryGetProperty("added_tokens_decoder", out var decoder) && decoder.ValueKind == JsonValueKind.Object)
            {
                foreach (var entry in decoder.EnumerateObject())
                {
                    if (!int.TryParse(entry.Name, out var id) || !entry.Value.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String)
                        throw new TokenizerFormatException($"{configFile}: added_tokens_decoder entry '{entry.Name}' needs an integer key and a string 'content'");
                    if (special.TryAdd(content.GetString()!, id)
                        && (!entry.Value.TryGetProperty("special", out var isSpecial) || isSpecial.ValueKind != JsonValueKind.False)) skippable.Add(id);
                }
            }
            eosName = TokenName(config, "eos_token", configFile);
            padName = TokenName(config, "pad_token", configFile);
            bosName = TokenName(config, "bos_token", configFile);
            unkName = TokenName(config, "unk_token", configFile);
            chatTemplate = config.TryGetProperty("chat_template", out var ct) && ct.ValueKind == JsonValueKind.String ? ct.GetString() : null;
        }

        // Added tokens are both vocabulary entries and atomic matches.
        foreach (var (token, id) in special) vocab[token] = id;
        int Resolve(string name, string field) =>
            vocab.TryGetValue(name, out var id) ? id
                : throw new TokenizerFormatException($"{configFile}: {field} '{name}' is not in the vocabulary");
        var fallbackEos = special.Keys.FirstOrDefault(k => k is "<|endoftext|>" or "</s>" or "<|im_end|>");
        var configEosName = eosName;
        eosName ??= fallbackEos ?? throw new TokenizerFormatException(
            $"{folder}: no eos_token in tokenizer_config.json and no <|endoftext|>, </s> or <|im_end|> added token");
        var eosId = Resolve(eosName, "eos_token");
        var padId = padName is null ? eosId : Resolve(padName, "pad_token");
        int? bosId = bosName is null ? null : Resolve(bosName, "bos_token");

        var options = new BpeOptions(vocab)
        {
            Merges = merges,
            ByteLevel = true,
            SpecialTokens = special,
            PreTokenizer = new CodePointRegexPreTokenizer(new Regex(pattern, RegexOptions.Compiled), special.Keys),
            Normalizer = nfc ? new NfcNormalizer() : null,
        };
        BpeTokenizer bpe;
        try
        {
            bpe = BpeTokenizer.Create(options);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException)
        {
            throw new TokenizerFormatException($"{(File.Exists(json) ? json : mergesFile)}: {e.Message}");
        }
        var vocabSize = vocab.Values.Max() + 1;
        var templateTokens = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in new[] { ("bos_token", bosName), ("eos_token", configEosName), ("pad_token", padName), ("unk_token", unkName) })
            if (value is not null) templateTokens[key] = value;
        return new HfBpeTokenizer(bpe, special, skippable, vocabSize, padId, eosId, bosId, chatTemplate)
        {
            ConfigFile = configFile,
            TemplateTokens = templateTokens,
        };
    }

    /// <summary>The one splitting regex a tokenizer.json pre_tokenizer declares (Split, ByteLevel with use_regex, or a Sequence of them).</summary>
    private static string PreTokenizerPattern(JsonElement pre, string file)
    {
        var patterns = new List<string>();
        var byteLevel = false;
        void Visit(JsonElement node)
        {
            var type = node.TryGetProperty("type", out var t) ? t.GetString() : null;
            switch (type)
            {
                case "Sequence":
                    foreach (var child in node.GetProperty("pretokenizers").EnumerateArray()) Visit(child);
                    break;
                case "ByteLevel":
                    byteLevel = true;
                    if (!node.TryGetProperty("use_regex", out var useRegex) || useRegex.ValueKind == JsonValueKind.True) patterns.Add(Gpt2Pattern);
                    if (node.TryGetProperty("add_prefix_space", out var prefix) && prefix.ValueKind == JsonValueKind.True)
                        throw new TokenizerFormatException($"{file}: pre_tokenizer ByteLevel add_prefix_space = true is not supported");
                    break;
                case "Split":
                    if (!node.TryGetProperty("pattern", out var p) || !p.TryGetProperty("Regex", out var regex) || regex.ValueKind != JsonValueKind.String)
                        throw new TokenizerFormatException($"{file}: pre_tokenizer Split needs a pattern {{\"Regex\": ...}}");
                    var behavior = node.TryGetProperty("behavior", out var b) ? b.GetString() : "Isolated";
                    var invert = node.TryGetProperty("invert", out var inv) && inv.ValueKind == JsonValueKind.True;
                    if (behavior != "Isolated" || invert)
                        throw new TokenizerFormatException($"{file}: pre_tokenizer Split behavior '{behavior}' (invert = {invert}) is not supported; expected Isolated");
                    patterns.Add(regex.GetString()!);
                    break;
                default:
                    throw new TokenizerFormatException($"{file}: pre_tokenizer type '{type}' is not supported (Sequence, Split, ByteLevel)");
            }
        }
        if (pre.ValueKind != JsonValueKind.Object) throw new TokenizerFormatException($"{file}: pre_tokenizer is missing; byte-level BPE needs ByteLevel");
        Visit(pre);
        if (!byteLevel) throw new TokenizerFormatException($"{file}: pre_tokenizer has no ByteLevel step; only byte-level BPE is supported");
        if (patterns.Count != 1)
            throw new TokenizerFormatException($"{file}: pre_tokenizer declares {patterns.Count} splitting regexes; exactly one is supported");
        try
        {
            _ = new Regex(patterns[0]);
        }
        catch (ArgumentException e)
        {
            throw new TokenizerFormatException($"{file}: pre_tokenizer regex does not compile in .NET ({e.Message})");
        }
        return patterns[0];
    }

    private static bool Normalizer(JsonElement norm, string file)
    {
        if (norm.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null) return false;
        var type = norm.TryGetProperty("type", out var t) ? t.GetString() : null;
        return type switch
        {
            "NFC" => true,
            "Sequence" when norm.GetProperty("normalizers").GetArrayLength() == 0 => false,
            _ => throw new TokenizerFormatException($"{file}: normalizer '{type}' is not supported (NFC or none)"),
        };
    }

    private static JsonElement ParseJson(string path)
    {
        try
        {
            return JsonDocument.Parse(File.ReadAllText(path)).RootElement;
        }
        catch (JsonException e)
        {
            throw new TokenizerFormatException($"{path}: not valid JSON ({e.Message})");
        }
    }

    private static JsonElement Object(JsonElement parent, string field, string file) =>
        parent.TryGetProperty(field, out var value) && value.ValueKind == JsonValueKind.Object ? value
            : throw new TokenizerFormatException($"{file}: missing object field '{field}'");

    private static Dictionary<string, int> ReadVocab(JsonElement vocab, string file, string where)
    {
        if (vocab.ValueKind != JsonValueKind.Object) throw new TokenizerFormatException($"{file}: {where} must be an object of token -> id");
        var result = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in vocab.EnumerateObject())
            result[entry.Name] = entry.Value.TryGetInt32(out var id) && id >= 0 ? id
                : throw new TokenizerFormatException($"{file}: {where} entry '{entry.Name}' must have a non-negative integer id");
        return result;
    }

    /// <summary>Merges as "a b" strings; tokenizer.json stores either that or [a, b] pairs.</summary>
    private static List<string> ReadMerges(JsonElement merges, string file)
    {
        if (merges.ValueKind != JsonValueKind.Array) throw new TokenizerFormatException($"{file}: model.merges must be an array");
        var result = new List<string>();
        var i = 0;
        foreach (var m in merges.EnumerateArray())
        {
            result.Add(m.ValueKind switch
            {
                JsonValueKind.String when m.GetString()!.Split(' ').Length == 2 => m.GetString()!,
                JsonValueKind.Array when m.GetArrayLength() == 2 => $"{m[0].GetString()} {m[1].GetString()}",
                _ => throw new TokenizerFormatException($"{file}: model.merges[{i}] must be \"a b\" or [\"a\", \"b\"], got {m}"),
            });
            i++;
        }
        return result;
    }

    /// <summary>A special-token field of tokenizer_config.json: a string, {"content": ...} or null.</summary>
    private static string? TokenName(JsonElement config, string field, string file) =>
        !config.TryGetProperty(field, out var value) ? null
            : value.ValueKind switch
            {
                JsonValueKind.Null => null,
                JsonValueKind.String => value.GetString(),
                JsonValueKind.Object when value.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String => c.GetString(),
                _ => throw new TokenizerFormatException($"{file}: field '{field}' must be a string, {{\"content\": ...}} or null"),
            };
}
