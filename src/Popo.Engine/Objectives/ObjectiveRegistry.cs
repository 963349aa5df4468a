using Popo.Engine.Configuration;
using Popo.Engine.Policy;
using static TorchSharp.torch;

namespace Popo.Engine.Objectives;

/// <summary>
/// What an objective may need to build itself. NewFrozenPolicy builds POPO's EMA target (filled by its first copy);
/// NewReference GRPO's frozen reference (default: NewFrozenPolicy, a copy of theta_0; under LoRA the base without adapters).
/// </summary>
public sealed record ObjectiveContext(IPolicy Policy, Func<IPolicy> NewFrozenPolicy, int HiddenSize, TrainConfig Config, Device Device, ScalarType Dtype,
                                      Func<IPolicy>? NewReference = null);

/// <summary>
/// Objectives by name, behind one constructor signature (as verl registers its policy losses). The
/// algorithm presets themselves (which keys rft or dapo set) live in <see cref="ConfigLoader.Presets"/>.
/// </summary>
public static class ObjectiveRegistry
{
    private static readonly Dictionary<string, Func<ObjectiveContext, IObjective>> Factories = new();

    static ObjectiveRegistry()
    {
        Register("popo", Popo("popo"));
        Register("rft", Popo("rft"));
        Register("grpo", Grpo("grpo"));
        Register("dr_grpo", Grpo("dr_grpo"));
        Register("dapo", Grpo("dapo"));
    }

    public static IReadOnlyCollection<string> Names => Factories.Keys;

    public static void Register(string name, Func<ObjectiveContext, IObjective> factory)
    {
        if (!Factories.TryAdd(name, factory))
            throw new InvalidOperationException($"objective '{name}' is already registered");
    }

    public static IObjective Create(string name, ObjectiveContext context) =>
        Factories.TryGetValue(name, out var factory) ? factory(context)
        : throw new ArgumentException($"unknown objective '{name}'; valid: {string.Join(", ", Factories.Keys.Order())}");

    private static Func<ObjectiveContext, IObjective> Popo(string name) => c =>
        new PopoObjective(name, c.Policy, c.NewFrozenPolicy, c.HiddenSize, c.Config.ToPopoOptions(),
                          c.Config.Temperature, c.Device, c.Dtype, c.Config.Seed);

    private static Func<ObjectiveContext, IObjective> Grpo(string name) => c =>
        new GrpoObjective(name, c.Policy, c.NewReference ?? c.NewFrozenPolicy, c.Config.ToGrpoOptions(), c.Config.Temperature);
}
