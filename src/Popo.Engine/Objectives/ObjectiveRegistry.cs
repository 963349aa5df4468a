using Popo.Engine.Policy;
using Popo.Engine.Runtime;
using static TorchSharp.torch;

namespace Popo.Engine.Objectives;

/// <summary>
/// What an objective may need to build itself. NewFrozenPolicy builds POPO's EMA target (filled by its first copy);
/// NewReference GRPO's frozen reference (default: NewFrozenPolicy, a copy of theta_0; under LoRA the base without adapters).
/// Keys: the run's keys, from which each objective reads its own options.
/// </summary>
internal sealed record ObjectiveContext(IPolicy Policy, Func<IPolicy> NewFrozenPolicy, int HiddenSize, IRunKeys Keys, Device Device, ScalarType Dtype,
                                      Func<IPolicy>? NewReference = null);

/// <summary>The two families on the engine: positive-only (weights over the positives) and group-relative (advantages).</summary>
internal enum AlgorithmFamily { Popo, Grpo }

/// <summary>
/// One algorithm, registered once: its name, family, preset (the keys it sets over the defaults, before a config file
/// and flags), the metric columns its objective writes, and how to build it. Every list of names, presets, families and
/// columns derives from the registrations.
/// </summary>
internal sealed record Algorithm(string Name, AlgorithmFamily Family, string Summary, IReadOnlyList<(string Key, object Value)> Preset,
                               IReadOnlyList<string> Columns, Func<ObjectiveContext, IObjective> Create);

/// <summary>Objectives by name, behind one constructor signature (as verl registers its policy losses).</summary>
internal static class ObjectiveRegistry
{
    private static readonly List<Algorithm> Registered = [];

    static ObjectiveRegistry()
    {
        Register(new("popo", AlgorithmFamily.Popo, "positive-only policy optimisation", [], PopoObjective.Columns, Popo("popo")));
        Register(new("grpo", AlgorithmFamily.Grpo, "group-relative policy optimisation (TRL's)",
                     [("loss_type", "grpo"), ("scale_rewards", "group")], GrpoObjective.Columns, Grpo("grpo")));
        Register(new("dr_grpo", AlgorithmFamily.Grpo, "Dr. GRPO: constant normaliser, no std scaling",
                     [("loss_type", "dr_grpo"), ("scale_rewards", "none")], GrpoObjective.Columns, Grpo("dr_grpo")));
        Register(new("dapo", AlgorithmFamily.Grpo, "DAPO: token-level loss, clip-higher, dynamic sampling, soft overlong penalty",
                     [("loss_type", "dapo"), ("eps_high", 0.28), ("dynamic_sampling", true)], GrpoObjective.Columns, Grpo("dapo")));
        Register(new("rft", AlgorithmFamily.Popo, "rejection-sampling fine-tuning: uniform weights, no similarity, no entropy",
                     [("weights", "uniform"), ("alpha", 0.0), ("beta_ent", 0.0), ("tau", 0.0)], PopoObjective.Columns, Popo("rft")));
        // RLVR-Decomposed (verl): REINFORCE on signed rewards, no baseline, verl's default token-mean aggregation over the
        // micro-batch (bnpo) and PPO clip 0.2 (the ratio is 1 on-policy); docs/design.md §3.1.
        Register(new("psr", AlgorithmFamily.Grpo, "positive sample reinforcement (RLVR-Decomposed): positives at +1, negatives ignored",
                     [("loss_type", "bnpo")], GrpoObjective.Columns, Grpo("psr", SignedAdvantage.Psr)));
        Register(new("nsr", AlgorithmFamily.Grpo, "negative sample reinforcement (RLVR-Decomposed): negatives at -1, positives ignored",
                     [("loss_type", "bnpo")], GrpoObjective.Columns, Grpo("nsr", SignedAdvantage.Nsr)));
        Register(new("w_reinforce", AlgorithmFamily.Grpo, "W-REINFORCE (RLVR-Decomposed): lambda PSR + NSR, lambda = w_reinforce_lambda",
                     [("loss_type", "bnpo")], GrpoObjective.Columns, Grpo("w_reinforce", k => SignedAdvantage.WReinforce(k.Get<double>("w_reinforce_lambda")))));
        // GSPO as TRL's recipe: sequence-level ratio, the GSPO paper's clip range, grpo aggregation.
        Register(new("gspo", AlgorithmFamily.Grpo, "GSPO: one clipped ratio per rollout (geometric mean of its token ratios)",
                     [("importance_sampling_level", "sequence"), ("eps_low", 3e-4), ("eps_high", 4e-4), ("loss_type", "grpo")], GrpoObjective.Columns, Grpo("gspo")));
        Register(new("cispo", AlgorithmFamily.Grpo, "CISPO: REINFORCE with the clipped stop-gradient ratio min(rho, eps_max) as weight",
                     [("loss_type", "cispo"), ("eps_high", 5.0)], GrpoObjective.Columns, Grpo("cispo")));
    }

    /// <summary>Every algorithm, in registration order.</summary>
    public static IReadOnlyList<Algorithm> All => Registered;

    public static IReadOnlyList<string> Names => Registered.Select(a => a.Name).ToList();

    /// <summary>The metric columns any objective writes, each once, in registration order.</summary>
    public static IReadOnlyList<string> Columns => Registered.SelectMany(a => a.Columns).Distinct().ToList();

    public static void Register(Algorithm algorithm)
    {
        if (Registered.Any(a => a.Name == algorithm.Name))
            throw new InvalidOperationException($"objective '{algorithm.Name}' is already registered");
        Registered.Add(algorithm);
    }

    /// <summary>The algorithm called <paramref name="name"/>; an unknown name is an <see cref="ArgumentException"/> listing the valid ones.</summary>
    public static Algorithm Get(string name) =>
        Registered.FirstOrDefault(a => a.Name == name)
        ?? throw new ArgumentException($"unknown objective '{name}'; valid: {string.Join(", ", Names.Order())}");

    public static IObjective Create(string name, ObjectiveContext context) => Get(name).Create(context);

    private static Func<ObjectiveContext, IObjective> Popo(string name) => c =>
        new PopoObjective(name, c.Policy, c.NewFrozenPolicy, c.HiddenSize, PopoOptions.From(c.Keys),
                          c.Keys.Get<double>("temperature"), c.Device, c.Dtype, c.Keys.Get<int>("seed"));

    private static Func<ObjectiveContext, IObjective> Grpo(string name, Func<Runtime.IRunKeys, SignedAdvantage>? signed = null) => c =>
        new GrpoObjective(name, c.Policy, c.NewReference ?? c.NewFrozenPolicy, GrpoOptions.From(c.Keys) with { Signed = signed?.Invoke(c.Keys) },
                          c.Keys.Get<double>("temperature"));

    private static Func<ObjectiveContext, IObjective> Grpo(string name, SignedAdvantage signed) => Grpo(name, _ => signed);
}
