using System.Globalization;
using Popo.Engine.Training;
using Spectre.Console;

namespace Popo.Cli.Commands;

/// <summary>
/// Live progress on stderr: a bar with step, reward, pass rate, tokens/s and ETA on a terminal; one line
/// per few steps when stderr is redirected (CI, logs). Results go to files, never to this stream.
/// </summary>
public sealed class ProgressObserver : ITrainingObserver, IDisposable
{
    private readonly IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
    private readonly bool live = !Console.IsErrorRedirected;
    private string phase = "";
    private int total, start;
    private DateTime phaseStart;
    private int lastPrinted;

    public void Phase(string name, int totalSteps, int startStep)
    {
        phase = name; total = totalSteps; start = startStep; phaseStart = DateTime.UtcNow; lastPrinted = startStep;
        console.MarkupLine($"[bold]{Markup.Escape(name)}[/]: {totalSteps} steps" + (startStep > 0 ? $" (from step {startStep})" : ""));
    }

    public void Step(int step, IReadOnlyDictionary<string, double> m)
    {
        if (!live && step - lastPrinted < Math.Max(1, total / 20) && step != total) return;
        lastPrinted = step;
        var elapsed = (DateTime.UtcNow - phaseStart).TotalSeconds;
        var eta = step > start ? elapsed / (step - start) * (total - step) : double.NaN;
        var parts = new List<string> { $"{phase} {step}/{total}" };
        void Add(string label, string key, string format)
        {
            if (m.TryGetValue(key, out var v) && double.IsFinite(v)) parts.Add($"{label} {v.ToString(format, CultureInfo.InvariantCulture)}");
        }
        Add("loss", "loss", "F4");
        Add("reward", "reward_mean", "F3");
        Add("pass", "pass_rate", "P0");
        Add("tok/s", "tokens_per_s", "F0");
        Add("eval pass@1", "eval_pass1", "F3");
        if (double.IsFinite(eta)) parts.Add($"ETA {TimeSpan.FromSeconds(eta):mm\\:ss}");
        var line = string.Join("  ", parts);
        if (!live) { console.WriteLine(line); return; }
        Console.Error.Write("\r" + Bar(step) + " " + line.PadRight(100));   // redraw in place
        if (step == total) Console.Error.WriteLine();
    }

    private string Bar(int step)
    {
        const int width = 20;
        int filled = total == 0 ? width : (int)Math.Round(width * (double)step / total);
        return "[" + new string('#', filled) + new string('.', width - filled) + "]";
    }

    public void Log(string message)
    {
        if (live) Console.Error.WriteLine();
        console.MarkupLine($"[grey]{Markup.Escape(message)}[/]");
    }

    public void Dispose() { }
}
