using System.Text.Json;

namespace Popo.Cli.Serve;

/// <summary>
/// Typed reads of a request body's fields: a missing or null field gives the default; a field of the wrong type or out of
/// range is an <see cref="ApiException"/> naming it. Fields the server does not know are ignored, as vLLM ignores them.
/// </summary>
internal sealed class RequestFields(JsonElement body)
{
    public JsonElement Body { get; } = body;

    /// <summary>Parses a request body that must be a JSON object.</summary>
    public static RequestFields Parse(string text)
    {
        JsonDocument document;
        try { document = JsonDocument.Parse(text); }
        catch (JsonException e) { throw new ApiException(400, $"the request body is not valid JSON: {e.Message}"); }
        if (document.RootElement.ValueKind != JsonValueKind.Object) throw new ApiException(400, "the request body must be a JSON object");
        return new RequestFields(document.RootElement.Clone());
    }

    public bool Has(string name) => Body.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null;

    public JsonElement? Get(string name) => Body.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    public string? String(string name) => Get(name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.String } v => v.GetString(),
        _ => throw ApiException.Field(name, "expected a string"),
    };

    public string RequiredString(string name) =>
        String(name) is { Length: > 0 } s ? s : throw ApiException.Field(name, "required: a non-empty string");

    public bool Bool(string name, bool fallback) => Get(name) switch
    {
        null => fallback,
        { ValueKind: JsonValueKind.True } => true,
        { ValueKind: JsonValueKind.False } => false,
        _ => throw ApiException.Field(name, "expected true or false"),
    };

    public double Double(string name, double fallback, double min, double max)
    {
        if (Get(name) is not { } v) return fallback;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out var x)) throw ApiException.Field(name, "expected a number");
        if (!(x >= min && x <= max)) throw ApiException.Field(name, $"expected a number in [{min}, {max}], got {x}");
        return x;
    }

    public long? Long(string name, long min, long max)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out var x)) throw ApiException.Field(name, "expected an integer");
        if (x < min || x > max) throw ApiException.Field(name, $"expected an integer in [{min}, {max}], got {x}");
        return x;
    }

    public int? Int(string name, int min, int max) => (int?)Long(name, min, max);

    /// <summary>A list of integers (e.g. stop_token_ids), each in [min, max).</summary>
    public IReadOnlyList<int> Ints(string name, int min, int maxExclusive)
    {
        if (Get(name) is not { } v) return [];
        if (v.ValueKind != JsonValueKind.Array) throw ApiException.Field(name, "expected a list of integers");
        return v.EnumerateArray().Select((e, i) => TokenId(e, $"{name}[{i}]", min, maxExclusive)).ToList();
    }

    /// <summary>A string or a list of strings (the `stop` field), as a list.</summary>
    public IReadOnlyList<string> Strings(string name)
    {
        switch (Get(name))
        {
            case null: return [];
            case { ValueKind: JsonValueKind.String } s: return s.GetString() is { Length: > 0 } one ? [one] : throw ApiException.Field(name, "a stop string must not be empty");
            case { ValueKind: JsonValueKind.Array } a:
                return a.EnumerateArray().Select((e, i) => e.ValueKind == JsonValueKind.String && e.GetString() is { Length: > 0 } x
                    ? x : throw ApiException.Field($"{name}[{i}]", "expected a non-empty string")).ToList();
            default: throw ApiException.Field(name, "expected a string or a list of strings");
        }
    }

    /// <summary>One token id: an integer in [min, maxExclusive).</summary>
    public static int TokenId(JsonElement e, string field, int min, int maxExclusive)
    {
        if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt64(out var id)) throw ApiException.Field(field, "expected an integer token id");
        if (id < min || id >= maxExclusive) throw ApiException.Field(field, $"token id {id} is outside the vocabulary [{min}, {maxExclusive})");
        return (int)id;
    }
}
