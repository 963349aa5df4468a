namespace Popo.Engine.Runtime;

/// <summary>
/// The random streams one run's `seed` drives, each offset by a fixed constant so that no two share a generator: changing
/// any of these changes every run's trajectory, so they are stated once, here. The model's initial weights, POPO's
/// predictor and feature noise, and the warm-up's problem draws use the seed itself.
/// </summary>
internal static class SeedStreams
{
    /// <summary>The rollout sampler's generator.</summary>
    public static ulong Sampler(long seed) => (ulong)seed + 1;

    /// <summary>Held-out evaluation's sampling (the same draws at every evaluation of a run).</summary>
    public static long Evaluation(long seed) => seed + 7;

    /// <summary>LoRA's initialisation (A Kaiming-uniform); its dropout generator takes the next seed (<see cref="LoraDropout"/>).</summary>
    public static long LoraInit(long seed) => seed + 11;

    /// <summary>The adapters' dropout masks, from the seed their initialisation used.</summary>
    public static long LoraDropout(long initSeed) => initSeed + 1;
}
