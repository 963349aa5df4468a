namespace Popo.Engine.Training;

/// <summary>
/// Linear warm-up over the first warmupRatio of the steps, then cosine decay to zero (docs/design.md §2.8;
/// `lr_schedule = linear` decays linearly to zero, `constant` holds the rate, as transformers' linear and
/// constant_with_warmup schedules), as a multiplier of the base learning rate for optimizer step s (0-based).
/// </summary>
internal static class LrSchedule
{
    public static double Factor(int step, int totalSteps, double warmupRatio, string shape = "cosine")
    {
        if (totalSteps <= 0) return 1.0;
        int warmup = (int)Math.Ceiling(warmupRatio * totalSteps);
        if (step < warmup) return (step + 1.0) / (warmup + 1.0);
        double progress = Math.Min(1.0, (step - warmup) / (double)Math.Max(1, totalSteps - warmup));
        if (shape == "linear") return 1.0 - progress;
        if (shape == "constant") return 1.0;
        return 0.5 * (1.0 + Math.Cos(Math.PI * Math.Min(1.0, progress)));
    }
}
