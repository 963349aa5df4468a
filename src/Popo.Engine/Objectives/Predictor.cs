using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Popo.Engine.Objectives;

/// <summary>
/// POPO's predictor h_phi (docs/design.md §2.4): depth x [Linear -> LayerNorm -> ReLU], then Linear back to D.
/// Default depth 1: Linear(D->H) -> LayerNorm(H) -> ReLU -> Linear(H->D). Xavier-uniform weights, zero
/// biases. Depth 0 is a single Linear(D->D) (the predictor-depth ablation).
/// </summary>
internal sealed class Predictor : Module<Tensor, Tensor>
{
    private readonly Sequential layers;

    public Predictor(int dim, int hidden, int depth, Device device, ScalarType dtype, long seed) : base(nameof(Predictor))
    {
        if (dim < 1 || hidden < 1 || depth < 0)
            throw new ArgumentOutOfRangeException(nameof(depth), $"predictor needs dim >= 1, hidden >= 1, depth >= 0 (got {dim}, {hidden}, {depth})");
        var modules = new List<(string, Module<Tensor, Tensor>)>();
        int width = dim;
        for (int d = 0; d < depth; d++)
        {
            modules.Add(($"linear{d}", Linear(width, hidden)));
            modules.Add(($"norm{d}", LayerNorm(hidden)));
            modules.Add(($"relu{d}", ReLU()));
            width = hidden;
        }
        modules.Add(("out", Linear(width, dim)));
        layers = Sequential(modules);
        // Xavier-uniform from a seeded generator (not the global RNG): U(-a, a), a = sqrt(6 / (fan_in + fan_out)).
        using (no_grad())
        using (var generator = new Generator((ulong)seed))
            foreach (var (name, p) in layers.named_parameters())
                if (name.EndsWith("weight") && p.dim() == 2)
                {
                    double a = Math.Sqrt(6.0 / (p.shape[0] + p.shape[1]));
                    p.uniform_(-a, a, generator);
                }
                else if (name.EndsWith("bias") && !name.Contains("norm")) p.zero_();
        RegisterComponents();
        this.to(dtype).to(device);
    }

    public override Tensor forward(Tensor features) => layers.forward(features);   // [B,D] -> [B,D]

    protected override void Dispose(bool disposing)
    {
        if (disposing) layers.Dispose();
        base.Dispose(disposing);
    }
}
