using static TorchSharp.torch;

namespace Popo.Engine.Checkpoints;

/// <summary>The safetensors dtype codes this engine reads and writes, with their element sizes.</summary>
internal static class SafeTensorsDtypes
{
    private static readonly (string Code, ScalarType Type, int Size)[] Table =
    [
        ("F64", ScalarType.Float64, 8), ("F32", ScalarType.Float32, 4), ("F16", ScalarType.Float16, 2),
        ("BF16", ScalarType.BFloat16, 2), ("I64", ScalarType.Int64, 8), ("I32", ScalarType.Int32, 4),
        ("I16", ScalarType.Int16, 2), ("I8", ScalarType.Int8, 1), ("U8", ScalarType.Byte, 1), ("BOOL", ScalarType.Bool, 1),
    ];

    public static bool TryParse(string code, out ScalarType type, out int size)
    {
        foreach (var row in Table)
        {
            if (row.Code == code)
            {
                (type, size) = (row.Type, row.Size);
                return true;
            }
        }
        (type, size) = (default, 0);
        return false;
    }

    public static string Code(ScalarType type) =>
        Table.FirstOrDefault(r => r.Type == type).Code ?? throw new ArgumentException($"dtype {type} has no safetensors code");

    public static int ElementSize(ScalarType type) =>
        Table.FirstOrDefault(r => r.Type == type) is { Code: not null } row ? row.Size : throw new ArgumentException($"dtype {type} has no safetensors code");

    public static string Known => string.Join(", ", Table.Select(r => r.Code));

    public static bool IsFloat(ScalarType type) =>
        type is ScalarType.Float64 or ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16;
}
