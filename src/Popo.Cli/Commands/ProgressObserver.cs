using System.Globalization;
using Popo.Engine.Training;
using Spectre.Console;

namespace Popo.Cli.Commands;

/// <summary>
/// Live progress on stderr: a bar with step, reward, pass rate, tokens/s and ETA on a terminal; one plain line
/// per few steps when stderr is redirected (CI, logs), written as is: no markup codes and no wrapping at a console
/// width, however long the line. Results go to files, never to this stream.
/// </summary>
public sealed class ProgressObserver : ITrainingObserver, IDisposable
{
    private readonly TextWriter output;
    private readonly IAnsiConsole console;   // markup, on a terminal only
    private readonly bool live;
    private string phase = "";
    private int total, start;
    private DateTime phaseStart;
    private int lastPrinted;

    /// <summary>Progress on stderr: live when stderr is a terminal.</summary>
    public ProgressObserver() : this(Console.Error, !Console.IsErrorRedirected) { }

    /// <param name="output">where progress goes (stderr).</param>
    /// <param name="terminal">true when <paramref name="output"/> is a terminal: a bar redrawn in place.</param>
    public ProgressObserver(TextWriter output, bool terminal)
    {
        this.output = output;
        live = terminal;
        console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output) });
        console.Profile.Width = UnwrappedWidth;   // the terminal wraps what it must; Spectre would hard-wrap at its guess
    }

    /// <summary>Spectre breaks lines at the console's width (80 when it cannot tell): this wide, a line stays whole.</summary>
    private const int UnwrappedWidth = 1 << 20;

    private void Line(string text, string style)
    {
        if (live) console.MarkupLine($"[{style}]{Markup.Escape(text)}[/]");
        else output.WriteLine(text);
    }

    public void Phase(string name, int totalSteps, int startStep)
    {
        phase = name; total = totalSteps; start = startStep; phaseStart = DateTime.UtcNow; lastPrinted = startStep;
        Line($"{name}: {totalSteps} steps" + (startStep > 0 ? $" (from step {startStep})" : ""), "bold");
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
        if (!live) { output.WriteLine(line); return; }
        output.Write("\r" + Bar(step) + " " + line.PadRight(100));   // redraw in place
        if (step == total) output.WriteLine();
    }

    private string Bar(int step)
    {
        const int width = 20;
        int filled = total == 0 ? width : (int)Math.Round(width * (double)step / total);
        return "[" + new string('#', filled) + new string('.', width - filled) + "]";
    }

    public void Log(string message)
    {
        if (live) output.WriteLine();
        Line(message, "grey");
    }

    public void Dispose() { }
}
