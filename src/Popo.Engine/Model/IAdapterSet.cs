using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Popo.Engine.Model;

/// <summary>
/// The extension point adapters plug into: a set that adds to the output of some of the model's linear layers (LoRA's
/// s B A x). The model owns the slot (<see cref="AdapterSlot"/>) and asks the active set on every projection; an adapter
/// library implements this interface and never reaches into the model's layers otherwise.
/// </summary>
internal interface IAdapterSet
{
    /// <summary>y [rows, out] plus this set's addition for <paramref name="layer"/> (y itself when the layer has none), x [rows, in] its input; <paramref name="training"/>: a forward that builds a graph.</summary>
    Tensor Apply(Linear layer, Tensor y, Tensor x, bool training);

    /// <summary>True when a training forward draws random masks (dropout), which a recomputed layer must draw again.</summary>
    bool DropsOut { get; }

    /// <summary>The mask generator's state (null without one).</summary>
    Tensor? DropoutState();

    /// <summary>Rewinds the mask generator to <paramref name="state"/>.</summary>
    void SetDropoutState(Tensor state);
}
