namespace Popo.Engine.Training;

/// <summary>How a run reports progress to whoever watches it (the CLI draws a progress bar).</summary>
public interface ITrainingObserver
{
    /// <summary>A new phase ("warm-up", "rl") with its number of steps.</summary>
    void Phase(string name, int totalSteps, int startStep);

    /// <summary>A finished step of the current phase with its metrics.</summary>
    void Step(int step, IReadOnlyDictionary<string, double> metrics);

    /// <summary>A line for the run's log (what was loaded, skipped or decided).</summary>
    void Log(string message);
}
