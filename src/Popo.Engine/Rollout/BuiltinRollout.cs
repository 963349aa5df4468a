using Popo.Engine.Model;

namespace Popo.Engine.Rollout;

/// <summary>The built-in sampler over the training model itself: its log-probs are the trainer's.</summary>
internal sealed class BuiltinRollout(Qwen2ForCausalLM model) : IRolloutEngine
{
    public bool Remote => false;

    public GenerationBatch Generate(IReadOnlyList<int[]> prompts, int groupSize, SamplerOptions options)
    {
        var rows = prompts.SelectMany(p => Enumerable.Repeat(p, groupSize)).ToList();
        model.eval();
        return Sampler.Generate(model, rows, options);
    }

    public void Dispose() { }
}
