using static TorchSharp.torch;

namespace Popo.Engine.Model;

/// <summary>Logits [B,T,V] and the final post-norm hidden state [B,T,D] of one forward pass.</summary>
internal sealed record ModelOutput(Tensor Logits, Tensor Hidden) : IDisposable
{
    public void Dispose()
    {
        Logits.Dispose();
        Hidden.Dispose();
    }
}
