using Popo.Engine.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Popo.Engine.Policy;

/// <summary>The Qwen2-layout decoder as the objectives see it.</summary>
public sealed class Qwen2Policy(Qwen2ForCausalLM model) : IPolicy
{
    public Qwen2ForCausalLM Model { get; } = model;

    public nn.Module Module => Model;

    public IEnumerable<Parameter> Parameters => Model.parameters();

    public (Tensor Logits, Tensor Hidden) Forward(Tensor inputIds, Tensor attentionMask, Tensor positionIds, long logitsFrom, long logitsCount)
    {
        var hidden = Model.ForwardHidden(inputIds, attentionMask, positionIds);                 // [B,T,D]
        return (Model.LogitsOf(hidden.narrow(1, logitsFrom, logitsCount)), hidden);              // [B,count,V]
    }

    /// <summary>A same-architecture copy in float32 or wider (EMA target, GRPO reference).</summary>
    public Qwen2Policy FrozenClone()
    {
        var dtype = Model.Dtype is ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        var copy = new Qwen2ForCausalLM(Model.Config, Model.Device, dtype);
        FrozenCopy.Copy(Model, copy);
        return new Qwen2Policy(copy);
    }
}
