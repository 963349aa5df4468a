using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Popo.Engine.Model;

/// <summary>SwiGLU feed-forward: down(silu(gate(x)) * up(x)), no biases (the gate: <see cref="SwiGluFunction"/>).</summary>
internal sealed class Qwen2Mlp : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the HF tensor names
    private readonly Linear gate_proj;
    private readonly Linear up_proj;
    private readonly Linear down_proj;
#pragma warning restore IDE1006
    private readonly ComputePrecision? precision;
    private readonly AdapterSlot? lora;

    public Qwen2Mlp(ModelConfig config, Device device, ScalarType dtype, ComputePrecision? precision = null, AdapterSlot? lora = null) : base(nameof(Qwen2Mlp))
    {
        this.precision = precision;
        this.lora = lora;
        gate_proj = nn.Linear(config.HiddenSize, config.IntermediateSize, hasBias: false, device: device, dtype: dtype);
        up_proj = nn.Linear(config.HiddenSize, config.IntermediateSize, hasBias: false, device: device, dtype: dtype);
        down_proj = nn.Linear(config.IntermediateSize, config.HiddenSize, hasBias: false, device: device, dtype: dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var hidden = SwiGluFunction.Run(Projection.Apply(gate_proj, x, precision, lora), Projection.Apply(up_proj, x, precision, lora));
        return Projection.Apply(down_proj, hidden, precision, lora).MoveToOuterDisposeScope();
    }
}
