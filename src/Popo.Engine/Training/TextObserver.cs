using System.Globalization;

namespace Popo.Engine.Training;

/// <summary>
/// A plain observer for programs that call Popo as a library: one line per phase, per log message, and per
/// <c>every</c>-th step (with its reward, pass rate and, where evaluated, held-out mean reward), written to a text writer
/// (the console's standard error by default). The CLI draws its own progress bar instead.
/// </summary>
public sealed class TextObserver(TextWriter? output = null, int every = 1) : ITrainingObserver
{
    private readonly TextWriter output = output ?? Console.Error;
    private string phase = "";
    private int total;

    /// <inheritdoc />
    public void Phase(string name, int totalSteps, int startStep)
    {
        phase = name;
        total = totalSteps;
        output.WriteLine($"{name}: {totalSteps} steps{(startStep > 0 ? $", from step {startStep}" : "")}");
    }

    /// <inheritdoc />
    public void Step(int step, IReadOnlyDictionary<string, double> metrics)
    {
        if (every <= 0 || (step % every != 0 && step != total)) return;
        string Show(string key) => metrics.TryGetValue(key, out var v) && double.IsFinite(v) ? $" {key} {v.ToString("G4", CultureInfo.InvariantCulture)}" : "";
        output.WriteLine($"{phase} step {step}/{total}:{Show("loss")}{Show("reward_mean")}{Show("pass_rate")}{Show("reward_errors")}{Show("eval_reward_mean")}{Show("eval_pass1")}");
    }

    /// <inheritdoc />
    public void Log(string message) => output.WriteLine(message);
}
