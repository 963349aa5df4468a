using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Engine.Policy;

/// <summary>Copies one module's parameters into a same-architecture module that never trains.</summary>
internal static class FrozenCopy
{
    /// <summary>
    /// Pairs destination parameters with the source's by name, checks shapes and that the copy is float32
    /// or wider, copies the values and turns gradients off. Returns the pairs (destination, source).
    /// </summary>
    public static (Tensor Copy, Tensor Source)[] Copy(nn.Module source, nn.Module destination)
    {
        var sourceParams = source.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var destParams = destination.named_parameters().ToList();
        if (sourceParams.Count != destParams.Count)
            throw new ArgumentException($"the copy has {destParams.Count} parameters, the source {sourceParams.Count}");
        var pairs = destParams.Select(d =>
        {
            if (!sourceParams.TryGetValue(d.name, out var s))
                throw new ArgumentException($"parameter '{d.name}' of the copy has no counterpart in the source");
            if (!s.shape.SequenceEqual(d.parameter.shape))
                throw new ArgumentException($"parameter '{d.name}' has shape [{string.Join(",", d.parameter.shape)}] in the copy, [{string.Join(",", s.shape)}] in the source");
            if (d.parameter.element_size() < 4)
                throw new ArgumentException($"parameter '{d.name}' of the copy is {d.parameter.dtype}; it must be float32 or wider");
            return ((Tensor)d.parameter, (Tensor)s);
        }).ToArray();
        destination.eval();
        using (no_grad())
            foreach (var (copy, src) in pairs)
            {
                copy.requires_grad_(false);
                copy.copy_(src);
            }
        return pairs;
    }
}
