using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Popo.Engine.Model;

/// <summary>
/// The token embedding of a forward that trains the embedding: rows of the weight, whose backward adds the output
/// gradient into the weight's .grad row by row (index_add_). Autograd's embedding backward builds a dense [V,D]
/// gradient and then adds it to .grad: at V = 151,936 that is a 545 MB float32 temporary at the end of every
/// micro-batch, the largest transient of a checkpointed step. Same values; the gradient differs from the dense
/// path only in the order of the additions into a row that already holds a gradient (the tied head's).
/// </summary>
internal sealed class EmbeddingLookup : SingleTensorFunction<EmbeddingLookup>
{
    public override string Name => nameof(EmbeddingLookup);

    /// <summary>weight [V,D], ids [B,T] int64 -> [B,T,D].</summary>
    public static Tensor Run(Tensor weight, Tensor ids) => apply(weight, ids);

    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        Tensor weight = (Tensor)vars[0], ids = (Tensor)vars[1];
        ctx.save_for_backward([weight, ids]);
        return weight.index_select(0, ids.reshape(-1)).view([.. ids.shape, weight.shape[1]]);
    }

    public override List<Tensor> backward(AutogradContext ctx, Tensor grad)
    {
        HandedGradients.ReleaseEarlier();
        using (NewDisposeScope())
        {
            var saved = ctx.get_saved_variables();
            Tensor weight = saved[0], ids = saved[1];
            var g = grad.reshape(-1, weight.shape[1]);
            using TorchSharp.Scalar one = 1.0;   // held across the native call (Optimizers.AdamW says why)
            DirectGradient.Of(weight).index_add_(0, ids.reshape(-1), g.dtype == weight.dtype ? g : g.to(weight.dtype), one);
        }
        HandedGradients.Hand(grad);
        return [null!, null!];
    }
}
