namespace Popo.Engine.Rollout;

/// <summary>
/// A generation batch on its way (<see cref="IRolloutEngine.Begin"/>): a server's requests run in the background while the
/// trainer updates; <see cref="Complete"/> waits for them and builds the batch on the caller's thread, so no tensor is
/// made off the training thread. The built-in sampler's is complete from the start.
/// </summary>
internal sealed class PendingGeneration : IDisposable
{
    private readonly Task? work;
    private Func<GenerationBatch>? build;

    private PendingGeneration(Task? work, Func<GenerationBatch> build) { this.work = work; this.build = build; }

    /// <summary>A batch already generated.</summary>
    public static PendingGeneration Done(GenerationBatch batch) => new(null, () => batch);

    /// <summary>Background <paramref name="work"/>; <paramref name="build"/> turns its result into the batch once it is done.</summary>
    public static PendingGeneration Running(Task work, Func<GenerationBatch> build) => new(work, build);

    /// <summary>The batch (once): waits for the requests and rethrows their failure (a <see cref="RolloutServerException"/>) unwrapped.</summary>
    public GenerationBatch Complete()
    {
        var make = build ?? throw new InvalidOperationException("this generation was already completed or abandoned");
        build = null;
        work?.GetAwaiter().GetResult();
        return make();
    }

    /// <summary>Waits until no request is in flight, keeping any failure for <see cref="Complete"/>.</summary>
    public void Settle()
    {
        try { work?.Wait(); } catch (AggregateException) { }
    }

    /// <summary>Abandons a batch never completed: its requests are let finish (nothing outlives the engine's HTTP client) and their answers dropped.</summary>
    public void Dispose()
    {
        if (build is null) return;
        Settle();
        if (work is null) build().Dispose();   // a built-in batch holds tensors
        build = null;
    }
}
