using Popo.Engine.Policy;
using Popo.Engine.Runtime;

namespace Popo.Engine.Objectives;

/// <summary>How POPO weighs the positives of one group (docs/design.md §2.2).</summary>
internal enum WeightMode { Softmax, Uniform }

/// <summary>Which rollouts' tokens enter the entropy bonus (docs/design.md §2.6).</summary>
internal enum EntropyScope { All, Positive }

/// <summary>GRPO token-loss aggregation (docs/design.md §3).</summary>
internal enum LossType { Grpo, Bnpo, DrGrpo, Dapo }

/// <summary>GRPO advantage scaling: by the group's std, the whole batch's std, or not at all (Dr. GRPO).</summary>
internal enum RewardScaling { Group, Batch, None }

/// <summary>POPO hyperparameters; every ablation of docs/design.md §2.9 is one field.</summary>
internal sealed record PopoOptions
{
    public WeightMode Weights { get; init; } = WeightMode.Softmax;
    /// <summary>T_w: temperature of the softmax over length-normalised sequence scores.</summary>
    public double WeightTemperature { get; init; } = 1.0;
    /// <summary>Divide each weight by its completion length, then renormalise over the group.</summary>
    public bool LengthNormalizeWeights { get; init; }
    /// <summary>Optional cap c on any one weight, applied by water-filling.</summary>
    public double? WeightCap { get; init; }
    /// <summary>alpha: weight of the similarity penalty (0 = no similarity).</summary>
    public double Alpha { get; init; } = 0.1;
    /// <summary>beta_ent: weight of the entropy bonus (0 = no entropy).</summary>
    public double BetaEntropy { get; init; } = 0.01;
    public EntropyScope EntropyScope { get; init; } = EntropyScope.All;
    /// <summary>tau: EMA momentum (0: target = online; 1: frozen target).</summary>
    public double Tau { get; init; } = 0.995;
    /// <summary>sigma of the Gaussian noise added to target features during training.</summary>
    public double FeatureNoise { get; init; } = 0.02;
    public FeaturePooling Pooling { get; init; } = FeaturePooling.Mean;
    /// <summary>H: predictor hidden width.</summary>
    public int PredictorHidden { get; init; } = 1024;
    /// <summary>Number of Linear-LayerNorm-ReLU blocks before the output Linear (0 = a single Linear).</summary>
    public int PredictorDepth { get; init; } = 1;

    /// <summary>The options from the run's keys (`weights`, `alpha`, `tau` ...).</summary>
    public static PopoOptions From(IRunKeys k) => new()
    {
        Weights = k.Get<string>("weights") == "uniform" ? WeightMode.Uniform : WeightMode.Softmax,
        WeightTemperature = k.Get<double>("weight_temperature"),
        LengthNormalizeWeights = k.Get<bool>("length_normalize_weights"),
        WeightCap = k.Get<double>("weight_cap") is > 0 and var cap ? cap : null,
        Alpha = k.Get<double>("alpha"),
        BetaEntropy = k.Get<double>("beta_ent"),
        EntropyScope = k.Get<string>("entropy_scope") == "positive" ? EntropyScope.Positive : EntropyScope.All,
        Tau = k.Get<double>("tau"),
        FeatureNoise = k.Get<double>("feature_noise"),
        Pooling = k.Get<string>("pooling") == "last" ? FeaturePooling.LastToken : FeaturePooling.Mean,
        PredictorHidden = k.Get<int>("predictor_hidden"),
        PredictorDepth = k.Get<int>("predictor_depth"),
    };

    /// <summary>True when the similarity term needs the siamese machinery (predictor, EMA target).</summary>
    public bool UsesSimilarity => Alpha != 0.0;

    /// <summary>True when negative rollouts need no forward/backward pass at all (POPO's compute saving).</summary>
    public bool NegativesSkipped => BetaEntropy == 0.0 || EntropyScope == EntropyScope.Positive;
}

/// <summary>GRPO-family hyperparameters (docs/design.md §3).</summary>
internal sealed record GrpoOptions
{
    public LossType LossType { get; init; } = LossType.Grpo;
    public RewardScaling ScaleRewards { get; init; } = RewardScaling.Group;
    public double EpsilonLow { get; init; } = 0.2;
    public double EpsilonHigh { get; init; } = 0.2;
    /// <summary>beta: k3 KL weight against a frozen reference policy (0 = no reference model).</summary>
    public double Beta { get; init; }
    /// <summary>mu: optimisation passes over each generation batch.</summary>
    public int NumIterations { get; init; } = 1;
    /// <summary>DAPO: drop groups whose rewards are all equal.</summary>
    public bool DynamicSampling { get; init; }
    /// <summary>DAPO soft overlong penalty: buffer length L_cache (0 = off).</summary>
    public int OverlongBuffer { get; init; }
    /// <summary>DAPO soft overlong penalty factor.</summary>
    public double OverlongPenaltyFactor { get; init; } = 1.0;
    /// <summary>L_max: the configured completion limit (dr_grpo's constant normaliser, DAPO's overlong window).</summary>
    public int MaxCompletionLength { get; init; } = 256;

    /// <summary>The options from the run's keys (`loss_type`, `eps_low`, `beta` ...; L_max is `max_new_tokens`).</summary>
    public static GrpoOptions From(IRunKeys k) => new()
    {
        LossType = k.Get<string>("loss_type") switch { "bnpo" => LossType.Bnpo, "dr_grpo" => LossType.DrGrpo, "dapo" => LossType.Dapo, _ => LossType.Grpo },
        ScaleRewards = k.Get<string>("scale_rewards") switch { "batch" => RewardScaling.Batch, "none" => RewardScaling.None, _ => RewardScaling.Group },
        EpsilonLow = k.Get<double>("eps_low"),
        EpsilonHigh = k.Get<double>("eps_high"),
        Beta = k.Get<double>("beta"),
        NumIterations = k.Get<int>("num_iterations"),
        DynamicSampling = k.Get<bool>("dynamic_sampling"),
        OverlongBuffer = k.Get<int>("overlong_buffer"),
        OverlongPenaltyFactor = k.Get<double>("overlong_penalty"),
        MaxCompletionLength = k.Get<int>("max_new_tokens"),
    };
}
