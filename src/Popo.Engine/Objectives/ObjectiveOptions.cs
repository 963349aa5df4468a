using Popo.Engine.Policy;
using Popo.Engine.Runtime;

namespace Popo.Engine.Objectives;

/// <summary>How POPO weighs the positives of one group (docs/design.md §2.2).</summary>
internal enum WeightMode { Softmax, Uniform }

/// <summary>Which rollouts' tokens enter the entropy bonus (docs/design.md §2.6).</summary>
internal enum EntropyScope { All, Positive }

/// <summary>GRPO token-loss aggregation (docs/design.md §3); Cispo is CISPO's surrogate with dapo's aggregation (TRL's loss_type = "cispo", §3.1).</summary>
internal enum LossType { Grpo, Bnpo, DrGrpo, Dapo, Cispo }

/// <summary>
/// The ratio the surrogate clips: per token, per rollout (GSPO, TRL's importance_sampling_level = "sequence"), or the
/// rollout's value with each token's own gradient (GSPO-token, "sequence_token"), docs/design.md §3.1.
/// </summary>
internal enum ImportanceLevel { Token, Sequence, SequenceToken }

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
    /// <summary>tau_r: the positive set is { i : r_i &gt; RewardThreshold } (the authors' reward threshold; 0 for 0/1 rewards).</summary>
    public double RewardThreshold { get; init; }
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
        RewardThreshold = k.Get<double>("reward_threshold"),
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
    /// <summary>L_max: the configured completion limit (dr_grpo's constant normaliser).</summary>
    public int MaxCompletionLength { get; init; } = 256;
    /// <summary>Token ratios or GSPO's one ratio per rollout (§3.1).</summary>
    public ImportanceLevel ImportanceLevel { get; init; } = ImportanceLevel.Token;
    /// <summary>INTELLECT-2's two-sided clip: the unclipped ratio is also capped at delta (null = off, TRL's None).</summary>
    public double? Delta { get; init; }
    /// <summary>q: only tokens at or above the (1 - q) entropy quantile of the micro-batch carry the policy term (1 = all).</summary>
    public double TopEntropyQuantile { get; init; } = 1.0;
    /// <summary>Completions that hit max_new_tokens without a stop token carry no loss (TRL's mask_truncated_completions).</summary>
    public bool MaskTruncatedCompletions { get; init; }
    /// <summary>RLVR-Decomposed's advantages (PSR, NSR, W-REINFORCE) instead of group-relative ones (null = GRPO's).</summary>
    public SignedAdvantage? Signed { get; init; }
    /// <summary>Where <see cref="Signed"/> advantages split positives from negatives: r &gt; RewardThreshold (reward_threshold).</summary>
    public double RewardThreshold { get; init; }

    /// <summary>The options from the run's keys (`loss_type`, `eps_low`, `beta` ...; L_max is `max_new_tokens`).</summary>
    public static GrpoOptions From(IRunKeys k) => new()
    {
        RewardThreshold = k.Get<double>("reward_threshold"),
        LossType = k.Get<string>("loss_type") switch
        {
            "bnpo" => LossType.Bnpo, "dr_grpo" => LossType.DrGrpo, "dapo" => LossType.Dapo, "cispo" => LossType.Cispo, _ => LossType.Grpo,
        },
        ScaleRewards = k.Get<string>("scale_rewards") switch { "batch" => RewardScaling.Batch, "none" => RewardScaling.None, _ => RewardScaling.Group },
        EpsilonLow = k.Get<double>("eps_low"),
        EpsilonHigh = k.Get<double>("eps_high"),
        Beta = k.Get<double>("beta"),
        NumIterations = k.Get<int>("num_iterations"),
        DynamicSampling = k.Get<bool>("dynamic_sampling"),
        MaxCompletionLength = k.Get<int>("max_new_tokens"),
        ImportanceLevel = k.Get<string>("importance_sampling_level") switch
        {
            "sequence" => ImportanceLevel.Sequence, "sequence_token" => ImportanceLevel.SequenceToken, _ => ImportanceLevel.Token,
        },
        Delta = k.Get<double>("delta") is > 0 and var delta ? delta : null,
        TopEntropyQuantile = k.Get<double>("top_entropy_quantile"),
        MaskTruncatedCompletions = k.Get<bool>("mask_truncated_completions"),
    };
}
