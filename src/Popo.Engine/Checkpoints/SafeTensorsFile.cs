using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Engine.Checkpoints;

/// <summary>
/// A validated safetensors file: 8-byte little-endian header length N, N bytes of JSON header
/// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the data section.
/// Opening checks the whole header before any tensor is allocated: N within the file and below
/// <see cref="MaxHeaderBytes"/>, known dtypes, byte ranges that match dtype x shape, lie inside the data
/// section, do not overlap and leave no gap; so a malformed file gives a <see cref="CheckpointFormatException"/>
/// naming it, never a huge allocation.
/// </summary>
internal sealed class SafeTensorsFile
{
    public const long MaxHeaderBytes = 100L << 20;

    public string Path { get; }
    public IReadOnlyDictionary<string, SafeTensorEntry> Tensors { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    private readonly long dataStart;

    private SafeTensorsFile(string path, long dataStart, Dictionary<string, SafeTensorEntry> tensors, Dictionary<string, string> metadata)
    {
        Path = path;
        this.dataStart = dataStart;
        Tensors = tensors;
        Metadata = metadata;
    }

    public static SafeTensorsFile Open(string path)
    {
        if (!File.Exists(path)) throw new CheckpointFormatException($"{path}: file not found");
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        var fileLength = stream.Length;
        if (fileLength < 8) throw new CheckpointFormatException($"{path}: truncated: {fileLength} bytes, shorter than the 8-byte header length");
        Span<byte> lengthBytes = stackalloc byte[8];
        stream.ReadExactly(lengthBytes);
        var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength > (ulong)MaxHeaderBytes)
            throw new CheckpointFormatException($"{path}: header length {headerLength} exceeds the {MaxHeaderBytes}-byte limit (corrupt or not a safetensors file)");
        if (headerLength > (ulong)(fileLength - 8))
            throw new CheckpointFormatException($"{path}: truncated or corrupt: header length {headerLength} runs past the end of the {fileLength}-byte file");
        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);
        var dataStart = 8 + (long)headerLength;
        var dataLength = fileLength - dataStart;

        // JsonDocument accepts invalid UTF-8 inside strings and throws InvalidOperationException only when
        // a name is read; reject it here, without allocating.
        if (!System.Text.Unicode.Utf8.IsValid(headerBytes))
            throw new CheckpointFormatException($"{path}: header is not valid UTF-8 (corrupt file)");
        JsonElement root;
        try
        {
            root = JsonDocument.Parse(headerBytes).RootElement;
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException($"{path}: header is not valid JSON ({e.Message})");
        }
        if (root.ValueKind != JsonValueKind.Object) throw new CheckpointFormatException($"{path}: header must be a JSON object");

        var tensors = new Dictionary<string, SafeTensorEntry>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var property in root.EnumerateObject())
        {
            if (property.Name == "__metadata__")
            {
                if (property.Value.ValueKind != JsonValueKind.Object) throw new CheckpointFormatException($"{path}: __metadata__ must be an object of strings");
                foreach (var m in property.Value.EnumerateObject())
                    metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()!
                        : throw new CheckpointFormatException($"{path}: __metadata__ entry '{m.Name}' must be a string");
                continue;
            }
            tensors[property.Name] = ParseEntry(path, property.Name, property.Value, dataLength);
        }

        // Byte ranges must tile the data section exactly: sorted, no overlap, no gap, ending at its end.
        long expected = 0;
        foreach (var entry in tensors.Values.OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            if (entry.Begin < expected)
                throw new CheckpointFormatException($"{path}: tensor '{entry.Name}' bytes [{entry.Begin}, {entry.End}) overlap the previous tensor (ending at {expected})");
            if (entry.Begin > expected)
                throw new CheckpointFormatException($"{path}: tensor '{entry.Name}' starts at byte {entry.Begin}, leaving a gap after byte {expected}");
            expected = entry.End;
        }
        if (expected != dataLength)
            throw new CheckpointFormatException(expected > dataLength
                ? $"{path}: truncated: tensors need {expected} data bytes but the file holds {dataLength}"
                : $"{path}: {dataLength - expected} trailing bytes after the last tensor (corrupt file)");
        return new SafeTensorsFile(path, dataStart, tensors, metadata);
    }

    private static SafeTensorEntry ParseEntry(string path, string name, JsonElement value, long dataLength)
    {
        string Where() => $"{path}: tensor '{name}'";
        if (value.ValueKind != JsonValueKind.Object) throw new CheckpointFormatException($"{Where()}: header entry must be an object");
        if (!value.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw new CheckpointFormatException($"{Where()}: missing string field 'dtype'");
        var code = dtypeElement.GetString()!;
        if (!SafeTensorsDtypes.TryParse(code, out var dtype, out var size))
            throw new CheckpointFormatException($"{Where()}: unknown dtype '{code}' (known: {SafeTensorsDtypes.Known})");
        if (!value.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw new CheckpointFormatException($"{Where()}: missing array field 'shape'");
        var shape = shapeElement.EnumerateArray().Select(d =>
            d.ValueKind == JsonValueKind.Number && d.TryGetInt64(out var n) && n >= 0 ? n
                : throw new CheckpointFormatException($"{Where()}: shape entries must be non-negative integers, got {d}")).ToArray();
        // TryGetInt64 throws on a non-number, so the kind is checked first.
        if (!value.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2
            || offsets[0].ValueKind != JsonValueKind.Number || offsets[1].ValueKind != JsonValueKind.Number
            || !offsets[0].TryGetInt64(out var begin) || !offsets[1].TryGetInt64(out var end))
            throw new CheckpointFormatException($"{Where()}: 'data_offsets' must be [begin, end] integers");
        if (begin < 0 || end < begin)
            throw new CheckpointFormatException($"{Where()}: data_offsets [{begin}, {end}] are not an increasing range");
        if (end > dataLength)
            throw new CheckpointFormatException($"{Where()}: data_offsets [{begin}, {end}] run past the {dataLength}-byte data section (truncated or corrupt file)");
        long bytes;
        try
        {
            bytes = checked(shape.Aggregate(1L, (a, d) => a * d) * size);
        }
        catch (OverflowException)
        {
            throw new CheckpointFormatException($"{Where()}: shape [{string.Join(", ", shape)}] is too large");
        }
        if (bytes != end - begin)
            throw new CheckpointFormatException($"{Where()}: {code} shape [{string.Join(", ", shape)}] needs {bytes} bytes but data_offsets span {end - begin}");
        return new SafeTensorEntry(name, dtype, shape, begin, end);
    }

    /// <summary>
    /// Reads one tensor into a new CPU tensor of its stored dtype. A floating-point tensor holding NaN or an infinity
    /// is refused, naming the file and tensor: no weight, adapter or state the project loads may be non-finite (a
    /// NaN adapter would otherwise load, make every logit NaN and have each update skipped).
    /// </summary>
    public Tensor Read(string name)
    {
        var tensor = ReadUnchecked(name);
        if (SafeTensorsDtypes.IsFloat(tensor.dtype) && NonFinite(tensor) is var (count, first) && count > 0)
        {
            var total = tensor.numel();
            tensor.Dispose();
            throw new CheckpointFormatException($"{Path}: tensor '{name}' holds {count} non-finite value{(count == 1 ? "" : "s")} (NaN or infinity) of {total}, the first at flat index {first}");
        }
        return tensor;
    }

    /// <summary>
    /// How many elements are NaN or infinite, and the flat index of the first: one pass, in slices of 1M elements so
    /// that the mask of a large tensor (an embedding of 136M values) is never whole in memory.
    /// </summary>
    private static (long Count, long First) NonFinite(Tensor tensor)
    {
        const long Slice = 1 << 20;
        using var scope = torch.NewDisposeScope();
        var flat = tensor.reshape(-1);
        long count = 0, first = -1;
        for (long start = 0; start < flat.shape[0]; start += Slice)
        {
            var bad = flat.narrow(0, start, Math.Min(Slice, flat.shape[0] - start)).isfinite().logical_not_();
            var n = bad.sum().item<long>();
            if (n > 0 && first < 0) first = start + bad.nonzero()[0, 0].item<long>();
            count += n;
        }
        return (count, first);
    }

    private Tensor ReadUnchecked(string name)
    {
        if (!Tensors.TryGetValue(name, out var entry)) throw new CheckpointFormatException($"{Path}: no tensor '{name}'");
        var tensor = torch.empty(entry.Shape, dtype: entry.Dtype);
        using var stream = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.Read);
        stream.Position = dataStart + entry.Begin;
        try
        {
            tensor.ReadBytesFromStream(stream, bufferSize: 1 << 20);
        }
        catch (EndOfStreamException)
        {
            tensor.Dispose();
            throw new CheckpointFormatException($"{Path}: tensor '{name}': file ended while reading its data (truncated)");
        }
        return tensor;
    }

    /// <summary>
    /// Writes named tensors (any device; stored as they are) atomically, header padded with spaces to a
    /// multiple of 8 bytes, tensors in name order.
    /// </summary>
    public static void Write(string path, IEnumerable<(string Name, Tensor Tensor)> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        Write(path, tensors.Select(t => new PendingTensor(t.Name, t.Tensor.dtype, t.Tensor.shape, () => t.Tensor.alias())).ToList(), metadata);

    /// <summary>
    /// Writes tensors that are produced one at a time as the file is written (and disposed right after), so a
    /// file larger than memory can be written: the header needs only names, dtypes and shapes.
    /// </summary>
    public static void Write(string path, IReadOnlyList<PendingTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var ordered = tensors.OrderBy(t => t.Name, StringComparer.Ordinal).ToList();
        var header = new Dictionary<string, object>(StringComparer.Ordinal);
        if (metadata is not null) header["__metadata__"] = metadata;
        long offset = 0;
        foreach (var t in ordered)
        {
            var bytes = t.Bytes;
            header[t.Name] = new Dictionary<string, object>
            {
                ["dtype"] = SafeTensorsDtypes.Code(t.Dtype),
                ["shape"] = t.Shape,
                ["data_offsets"] = new[] { offset, offset + bytes },
            };
            offset += bytes;
        }
        var json = JsonSerializer.Serialize(header);
        var jsonBytes = Encoding.UTF8.GetByteCount(json);
        var headerBytes = Encoding.UTF8.GetBytes(json + new string(' ', (8 - jsonBytes % 8) % 8));
        AtomicFile.Write(path, stream =>
        {
            Span<byte> lengthBytes = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(lengthBytes, (ulong)headerBytes.Length);
            stream.Write(lengthBytes);
            stream.Write(headerBytes);
            foreach (var t in ordered)
            {
                using var scope = torch.NewDisposeScope();
                var data = t.Produce();
                if (data.dtype != t.Dtype || !data.shape.SequenceEqual(t.Shape))
                    throw new InvalidOperationException($"{path}: tensor '{t.Name}' was announced as {t.Dtype} [{string.Join(", ", t.Shape)}] but produced {data.dtype} [{string.Join(", ", data.shape)}]");
                data.detach().cpu().contiguous().WriteBytesToStream(stream, bufferSize: 1 << 20);
            }
        });
    }
}

/// <summary>A tensor to be written by <see cref="SafeTensorsFile.Write(string, IReadOnlyList{PendingTensor}, IReadOnlyDictionary{string, string})"/>: its header fields, and how to make its data when its turn comes.</summary>
internal sealed record PendingTensor(string Name, ScalarType Dtype, long[] Shape, Func<Tensor> Produce)
{
    public long Bytes => Shape.Aggregate(1L, (a, b) => a * b) * SafeTensorsDtypes.ElementSize(Dtype);
}
