using System.Collections;
using System.Text.Json.Nodes;
using Parquet;
using Parquet.Serialization;

namespace Popo.Engine.Data;

/// <summary>
/// Reads a Parquet file (the format Hugging Face datasets are published in) into <see cref="Problem"/>s exactly as
/// <see cref="JsonlDataset"/> reads the same records as JSON lines: each row becomes a <see cref="JsonObject"/> (strings,
/// numbers and booleans as JSON scalars, lists as arrays, structs and maps as objects, nulls as null) and goes the
/// path every format shares (<see cref="DatasetRows"/>): the same shapes, options, problem order and errors, which
/// name the file, the 1-based row (counted across row groups) and the column. A file that is not Parquet, or whose
/// data cannot be decoded, fails the load naming the file (and the row group).
/// </summary>
public static class ParquetDataset
{
    /// <summary>Reads the file; see the class summary.</summary>
    public static Dataset Load(string path, DatasetOptions? options = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"dataset file not found: {path}", path);
        return DatasetRows.Collect(path, DatasetRecord.Row, Rows(path), options);
    }

    private static IEnumerable<DatasetRow> Rows(string path)
    {
        int groups;
        try
        {
            var reader = ParquetReader.CreateAsync(path).GetAwaiter().GetResult();
            try { groups = reader.RowGroupCount; }
            finally { reader.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new DatasetFormatException(path, 0, null, $"not a readable Parquet file ({e.Message})", DatasetRecord.Row);
        }
        int number = 0;
        for (int g = 0; g < groups; g++)
        {
            IList<Dictionary<string, object>> data;
            IReadOnlyList<Parquet.Schema.Field> fields;
            try
            {
                using var stream = File.OpenRead(path);
                var result = ParquetSerializer.DeserializeUntypedAsync(stream, rowGroupIndex: g).GetAwaiter().GetResult();
                data = result.Data;
                fields = result.Schema.Fields;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                throw new DatasetFormatException(path, number + 1, null,
                    $"row group {g + 1} of {groups} (from this row) cannot be read ({e.Message})", DatasetRecord.Row);
            }
            foreach (var row in data)
            {
                number++;
                var columns = new JsonObject();
                // The untyped reader leaves a null value out of the row; a JSONL export writes it as null.
                foreach (var field in fields) columns[field.Name] = null;
                DatasetFormatException? error = null;
                foreach (var (column, value) in row)
                {
                    try { columns[column] = ToNode(value); }
                    catch (NotSupportedException e) { error ??= new DatasetFormatException(path, number, column, e.Message, DatasetRecord.Row); }
                }
                yield return new DatasetRow(number, error is null ? columns : null, error);
            }
        }
    }

    /// <summary>A Parquet value as the JSON value a JSONL export of the same row holds.</summary>
    internal static JsonNode? ToNode(object? value) => value switch
    {
        null => null,
        string s => JsonValue.Create(s),
        ReadOnlyMemory<char> m => JsonValue.Create(m.ToString()),
        bool b => JsonValue.Create(b),
        sbyte or byte or short or ushort or int or uint or long => JsonValue.Create(Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture)),
        ulong u => JsonValue.Create(u),
        float f => JsonValue.Create(double.Parse(f.ToString("R", System.Globalization.CultureInfo.InvariantCulture), System.Globalization.CultureInfo.InvariantCulture)),
        double d => JsonValue.Create(d),
        decimal m => JsonValue.Create(m),
        Half h => JsonValue.Create((double)h),
        // Bytes as base64, dates and times in ISO 8601: what System.Text.Json writes for them.
        byte[] bytes => JsonValue.Create(Convert.ToBase64String(bytes)),
        ReadOnlyMemory<byte> bytes => JsonValue.Create(Convert.ToBase64String(bytes.Span)),
        DateTime or DateTimeOffset or DateOnly or TimeOnly or TimeSpan or Guid => JsonSerializerNode(value),
        IDictionary map => Object(map),
        IEnumerable list => Array(list),
        _ => throw new NotSupportedException($"a Parquet value of type {value.GetType().Name} has no JSON form"),
    };

    private static JsonNode? JsonSerializerNode(object value) => System.Text.Json.JsonSerializer.SerializeToNode(value, value.GetType());

    private static JsonObject Object(IDictionary map)
    {
        var obj = new JsonObject();
        foreach (DictionaryEntry e in map)
            obj[Convert.ToString(e.Key, System.Globalization.CultureInfo.InvariantCulture) ?? ""] = ToNode(e.Value);
        return obj;
    }

    private static JsonArray Array(IEnumerable list)
    {
        var array = new JsonArray();
        foreach (var x in list) array.Add(ToNode(x));
        return array;
    }
}
