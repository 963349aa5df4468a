using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Popo.Engine.Model;

/// <summary>
/// Which adapter set a model's linear layers apply (<see cref="Projection"/> asks it): under LoRA the online set, an
/// EMA set for the siamese target, the empty set for GRPO's reference, or none. One frozen base serves them all,
/// so switching costs nothing and no second copy of the base exists.
/// </summary>
internal sealed class AdapterSlot
{
    /// <summary>The set in use; null = no adapters (a model that never had LoRA).</summary>
    public IAdapterSet? Active { get; private set; }

    /// <summary>Set by the model for the duration of a forward pass that builds a graph: adapter dropout applies only then.</summary>
    internal bool Training { get; set; }

    /// <summary>Makes <paramref name="adapters"/> the model's set from now on (the online adapters of a run).</summary>
    internal void Install(IAdapterSet? adapters) => Active = adapters;

    /// <summary>Makes <paramref name="adapters"/> the set until the result is disposed (a target or reference forward).</summary>
    public IDisposable Use(IAdapterSet? adapters)
    {
        var previous = Active;
        Active = adapters;
        return new Restore(() => Active = previous);
    }

    /// <summary>The layer's output y [rows, out] with the active set's adapter for it, x [rows, in] its input (y itself when there is none).</summary>
    internal Tensor Apply(Linear layer, Tensor y, Tensor x) => Active is { } set ? set.Apply(layer, y, x, Training) : y;

    /// <summary>
    /// What a checkpointed layer must keep to draw the same dropout masks when the backward recomputes it: the set
    /// and its generator's state before the layer; null when this forward draws no masks.
    /// </summary>
    internal (IAdapterSet Adapters, Tensor State)? CaptureDropout() =>
        Training && Active is { DropsOut: true } set ? (set, set.DropoutState()!) : null;

    /// <summary>Until disposed: <paramref name="adapters"/> active in training mode, its generator rewound to <paramref name="state"/>; then everything as it was.</summary>
    internal IDisposable ReplayDropout(IAdapterSet adapters, Tensor state)
    {
        var (previous, wasTraining) = (Active, Training);
        var now = adapters.DropoutState()!;
        adapters.SetDropoutState(state);
        (Active, Training) = (adapters, true);
        return new Restore(() =>
        {
            adapters.SetDropoutState(now);
            now.Dispose();
            (Active, Training) = (previous, wasTraining);
        });
    }

    private sealed class Restore(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }
}
