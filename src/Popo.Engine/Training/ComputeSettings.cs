using Popo.Engine.Configuration;
using Popo.Engine.Model;
using static TorchSharp.torch;
using Popo.Engine.Runtime;

namespace Popo.Engine.Training;

/// <summary>The precision, checkpointing, padding and head-chunking keys of a run, applied to its policy.</summary>
internal static class ComputeSettings
{
    public static void Apply(Qwen2ForCausalLM model, TrainConfig c)
    {
        if (c.Bf16 && model.Dtype != ScalarType.Float32)
            throw new ConfigException($"key 'bf16': mixed precision keeps float32 master weights; the model is stored in {ModelConfig.DtypeName(model.Dtype)} (set dtype = float32)");
        model.Precision.Dtype = c.Bf16 ? ScalarType.BFloat16 : null;
        model.GradientCheckpointing = c.GradientCheckpointing;
        model.PaddingFree = c.PaddingFree;
        model.LogitChunkSize = c.LogitChunkSize;
    }
}
