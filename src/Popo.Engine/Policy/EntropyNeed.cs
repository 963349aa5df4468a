namespace Popo.Engine.Policy;

/// <summary>What a caller of the head's token statistics needs of the per-token entropy.</summary>
internal enum EntropyNeed
{
    /// <summary>Not computed.</summary>
    None,
    /// <summary>Its value only (a metric): no gradient flows through it.</summary>
    Value,
    /// <summary>Part of the loss: differentiable.</summary>
    Differentiable,
}
