using static TorchSharp.torch;

namespace Popo.Engine.Checkpoints;

/// <summary>One tensor of a safetensors header: name, dtype, shape and byte range [Begin, End) within the data section.</summary>
internal sealed record SafeTensorEntry(string Name, ScalarType Dtype, long[] Shape, long Begin, long End)
{
    public long ByteCount => End - Begin;
}
