using Popo.Engine.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Popo.Engine.Model;

/// <summary>Pre-norm block: h = x + attn(norm1(x)); out = h + mlp(norm2(h)).</summary>
internal sealed class Qwen2DecoderLayer : nn.Module
{
#pragma warning disable IDE1006 // field names are the HF tensor names
    private readonly RmsNorm input_layernorm;
    private readonly Qwen2Attention self_attn;
    private readonly RmsNorm post_attention_layernorm;
    private readonly Qwen2Mlp mlp;
#pragma warning restore IDE1006

    public Qwen2DecoderLayer(ModelConfig config, Device device, ScalarType dtype, ComputePrecision? precision = null, AdapterSlot? lora = null) : base(nameof(Qwen2DecoderLayer))
    {
        input_layernorm = new RmsNorm(config.HiddenSize, config.RmsNormEps, device, dtype, precision);
        self_attn = new Qwen2Attention(config, device, dtype, precision, lora);
        post_attention_layernorm = new RmsNorm(config.HiddenSize, config.RmsNormEps, device, dtype, precision);
        mlp = new Qwen2Mlp(config, device, dtype, precision, lora);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor allowed, KvCache? cache, int layer, Packing? packing = null)
    {
        using var scope = torch.NewDisposeScope();
        var h = x.Plus(self_attn.Forward(input_layernorm.forward(x), cos, sin, allowed, cache, layer, packing));
        return h.Plus(mlp.forward(post_attention_layernorm.forward(h))).MoveToOuterDisposeScope();
    }
}
