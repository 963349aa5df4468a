using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Popo.Engine.Model;

/// <summary>
/// Activation checkpointing of one decoder layer (`gradient_checkpointing`): the forward runs without a graph
/// and keeps only the layer's input; the backward runs the layer again from that input, with a graph, and
/// back-propagates through it (a reentrant backward: the layer's parameter gradients accumulate into .grad
/// directly, the input's gradient is returned). The base model has no dropout; LoRA dropout draws from the
/// adapters' own generator, whose state before the layer is kept and replayed, so the recomputation is exact.
/// </summary>
internal sealed class CheckpointedLayer : SingleTensorFunction<CheckpointedLayer>
{
    public override string Name => nameof(CheckpointedLayer);

    /// <summary>Runs <paramref name="layer"/> on x; only x (and the shared cos/sin/mask tables and packing) stay saved for backward.</summary>
    public static Tensor Run(Qwen2DecoderLayer layer, int index, Tensor x, Tensor cos, Tensor sin, Tensor allowed, AdapterSlot? lora, Packing? packing) =>
        apply(x, cos, sin, allowed, layer, index, lora!, packing!);

    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var x = (Tensor)vars[0];
        Tensor cos = (Tensor)vars[1], sin = (Tensor)vars[2], allowed = (Tensor)vars[3];
        var layer = (Qwen2DecoderLayer)vars[4];
        var index = (int)vars[5];
        var lora = vars[6] as AdapterSlot;
        var packing = vars[7] as Packing;
        var dropout = lora?.CaptureDropout();
        // Saved: x, cos, sin, allowed, then the packing's index and the dropout state where there are.
        List<Tensor> saved = [x, cos, sin, allowed];
        if (packing is not null) saved.Add(packing.Index);
        if (dropout is var (_, state)) saved.Add(state);
        ctx.save_for_backward(saved);
        ctx.save_data("layer", layer);
        ctx.save_data("index", index);
        ctx.save_data("lora", lora!);
        ctx.save_data("dropout", dropout?.Adapters!);
        ctx.save_data("packing", packing!);
        return layer.Forward(x, cos, sin, allowed, null, index, packing);
    }

    public override List<Tensor> backward(AutogradContext ctx, Tensor grad)
    {
        HandedGradients.ReleaseEarlier();
        var layer = (Qwen2DecoderLayer)ctx.get_data("layer");
        var index = (int)ctx.get_data("index");
        Tensor inputGrad;
        using (var scope = NewDisposeScope())
        {
            var saved = ctx.get_saved_variables();
            var x = saved[0].detach().requires_grad_(true);
            var packing = (ctx.get_data("packing") as Packing)?.With(saved[4]);
            var state = packing is null ? 4 : 5;
            using (ctx.get_data("dropout") is IAdapterSet adapters ? ((AdapterSlot)ctx.get_data("lora")).ReplayDropout(adapters, saved[state]) : null)
            using (enable_grad())
            {
                var y = layer.Forward(x, saved[1], saved[2], saved[3], null, index, packing);
                y.backward([grad]);
            }
            inputGrad = HandedGradients.Hand(x.grad!.detach());
        }
        HandedGradients.Hand(grad);
        return [inputGrad, null!, null!, null!, null!, null!, null!, null!];
    }
}
