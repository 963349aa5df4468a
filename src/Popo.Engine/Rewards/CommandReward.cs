using System.ComponentModel;
using Popo.Rewards;

namespace Popo.Engine.Rewards;

/// <summary>
/// A reward function that is an external program (<c>command:PROGRAM ARGS</c>) speaking <see cref="CommandProtocol"/>:
/// its processes stay alive across batches; a batch's groups go out one line each to at most
/// <see cref="RewardSourceOptions.Workers"/> processes at once; each call is bounded by
/// <see cref="RewardSourceOptions.Timeout"/>. A process that dies during a call is restarted once and the call
/// repeated; a process that times out or answers wrongly is killed (a fresh one serves the next call). Every failure is
/// a <see cref="RewardCommandException"/> naming the function, the command, the group and row, and the stderr tail.
/// Disposing it kills its processes.
/// </summary>
internal sealed class CommandReward : IRewardFunction, IAsyncDisposable, IDisposable
{
    readonly string _program;
    readonly IReadOnlyList<string> _arguments;
    readonly string _commandLine;
    readonly RewardSourceOptions _options;
    readonly SemaphoreSlim _slots;
    readonly Stack<CommandWorker> _idle = new();
    readonly HashSet<CommandWorker> _all = [];
    readonly EventHandler _onExit;
    bool _disposed;

    CommandReward(string program, IReadOnlyList<string> arguments, string commandLine, RewardSourceOptions options)
    {
        (_program, _arguments, _commandLine, _options) = (program, arguments, commandLine, options);
        _slots = new SemaphoreSlim(Math.Max(1, options.Workers));
        Name = NameOf(program, arguments);
        // Children outlive a parent that forgets to dispose: end them with the process.
        _onExit = (_, _) => Dispose();
        AppDomain.CurrentDomain.ProcessExit += _onExit;
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <summary>The command line as given.</summary>
    public string CommandLine => _commandLine;

    /// <summary>The function <paramref name="commandLine"/> runs, with its first process started now (so a program
    /// that is missing or cannot start fails the load, before any training work).</summary>
    public static CommandReward Start(string commandLine, RewardSourceOptions options)
    {
        var spec = RewardSources.CommandPrefix + commandLine;
        IReadOnlyList<string> words;
        try { words = CommandProtocol.Split(commandLine); }
        catch (FormatException e) { throw new RewardLoadException($"reward function '{spec}': {e.Message}; expected {RewardSources.CommandPrefix}PROGRAM ARGS", e); }
        if (words.Count == 0)
            throw new RewardLoadException($"reward function '{spec}': no program; expected {RewardSources.CommandPrefix}PROGRAM ARGS");
        var program = Locate(words[0], options)
            ?? throw new RewardLoadException(words[0].IndexOfAny(['/', '\\']) >= 0
                ? $"reward function '{spec}': program not found: {RewardSources.Resolve(words[0], options)}"
                : $"reward function '{spec}': program '{words[0]}' not found on PATH (give a path, relative to {options.BaseDirectory}, for a program of your own)");
        var reward = new CommandReward(program, words.Skip(1).ToArray(), commandLine, options);
        try
        {
            var first = reward.StartWorker();
            lock (reward._idle) reward._idle.Push(first);
        }
        catch (RewardCommandException e)
        {
            reward.Dispose();
            throw new RewardLoadException(e.Message, e.InnerException);
        }
        options.Log($"reward function '{reward.Name}': {spec} (working folder {options.BaseDirectory}, {Math.Max(1, options.Workers)} worker(s), {options.Timeout.TotalSeconds:0.###} s per call)");
        return reward;
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<double?>> ScoreAsync(IReadOnlyList<RewardSample> samples, CancellationToken cancellation)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var values = new double?[samples.Count];
        var calls = new List<Task>();
        for (int start = 0; start < samples.Count;)
        {
            int end = start + 1;
            while (end < samples.Count && samples[end].Group == samples[start].Group) end++;
            int from = start, count = end - start;
            calls.Add(ScoreGroupAsync(samples.Skip(from).Take(count).ToArray(), values, from, cancellation));
            start = end;
        }
        await Task.WhenAll(calls).ConfigureAwait(false);
        return values;
    }

    async Task ScoreGroupAsync(RewardSample[] group, double?[] values, int offset, CancellationToken cancellation)
    {
        await _slots.WaitAsync(cancellation).ConfigureAwait(false);
        try
        {
            var line = CommandProtocol.Request(group[0].Group, group);
            for (int attempt = 0; ; attempt++)
            {
                var worker = TakeWorker(group);
                string? reply;
                try
                {
                    reply = await worker.ExchangeAsync(line, _options.Timeout, cancellation).ConfigureAwait(false);
                }
                catch (TimeoutException e)
                {
                    var tail = worker.StderrTail();
                    Discard(worker);
                    throw Failure(group, $"timed out: {e.Message} (the process was killed; a fresh one serves the next call)", tail, e);
                }
                catch (OperationCanceledException)
                {
                    Discard(worker);  // it may still answer the abandoned line
                    throw;
                }
                if (reply is null)
                {
                    var code = worker.ExitCode();
                    var tail = worker.StderrTail();
                    Discard(worker);
                    var what = code is int c ? $"the process ended (exit code {c})" : "the process closed its output";
                    if (attempt == 0)
                    {
                        _options.Log($"reward function '{Name}': {what} without answering group {group[0].Group}{RowOf(group)}; restarting it once for this call");
                        continue;
                    }
                    throw Failure(group, $"{what} without answering, twice (restarted once)", tail, null);
                }
                try
                {
                    var parsed = CommandProtocol.Reply(reply, group.Length);
                    Array.Copy(parsed, 0, values, offset, parsed.Length);
                }
                catch (FormatException e)
                {
                    var tail = worker.StderrTail();
                    Discard(worker);  // out of step with its input now
                    throw Failure(group, $"{e.Message}; the line: {Shorten(reply)}", tail, e);
                }
                lock (_idle) _idle.Push(worker);
                return;
            }
        }
        finally
        {
            _slots.Release();
        }
    }

    CommandWorker TakeWorker(RewardSample[] group)
    {
        lock (_idle)
        {
            while (_idle.TryPop(out var worker))
            {
                if (!worker.HasExited) return worker;
                _options.Log($"reward function '{Name}': process {worker.Id} ended between calls (exit code {worker.ExitCode()}); starting a fresh one");
                Discard(worker);
            }
        }
        try { return StartWorker(); }
        catch (RewardCommandException e) { throw Failure(group, e.Message, "", e); }
    }

    CommandWorker StartWorker()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CommandWorker worker;
        try { worker = CommandWorker.Start(_program, _arguments, _options.BaseDirectory); }
        catch (Exception e) when (e is Win32Exception or InvalidOperationException or IOException)
        {
            throw new RewardCommandException($"reward function '{RewardSources.CommandPrefix}{_commandLine}': {_program} cannot start: {e.Message}", e);
        }
        lock (_all) _all.Add(worker);
        return worker;
    }

    void Discard(CommandWorker worker)
    {
        lock (_all) _all.Remove(worker);
        worker.Kill();
        worker.Dispose();
    }

    RewardCommandException Failure(RewardSample[] group, string error, string stderrTail, Exception? inner) =>
        new($"reward function '{Name}' (command: {_commandLine}): group {group[0].Group}{RowOf(group)}: {error}" +
            (stderrTail.Length > 0 ? $"; its stderr ends:\n{stderrTail}" : "; its stderr is empty"), inner);

    static string RowOf(RewardSample[] group) =>
        group[0].Columns.TryGetPropertyValue("id", out var id) && id is not null ? $" (row id {id.ToJsonString()})" : "";

    static string Shorten(string line) => line.Length <= 200 ? line : line[..200] + "...";

    /// <summary>The program's full path: a path is taken relative to the base folder; a bare name is looked up on PATH,
    /// as a shell does. Null when there is no such file.</summary>
    static string? Locate(string program, RewardSourceOptions options)
    {
        if (program.IndexOfAny(['/', '\\']) >= 0)
        {
            var path = RewardSources.Resolve(program, options);
            return File.Exists(path) ? path : null;
        }
        var folders = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries);
        var extensions = OperatingSystem.IsWindows() ? new[] { "", ".exe", ".cmd", ".bat" } : [""];
        foreach (var folder in folders)
            foreach (var ext in extensions)
            {
                var path = Path.Combine(folder, program + ext);
                if (File.Exists(path)) return path;
            }
        return null;
    }

    /// <summary>The metric name: the script or assembly a runner is given (<c>python3 score.py</c>: score), else the program's name.</summary>
    static string NameOf(string program, IReadOnlyList<string> arguments)
    {
        var script = arguments.FirstOrDefault(a => !a.StartsWith('-') && Path.HasExtension(a));
        return Path.GetFileNameWithoutExtension(script ?? program);
    }

    /// <summary>Kills every process of this function.</summary>
    public void Dispose()
    {
        CommandWorker[] workers;
        lock (_all)
        {
            if (_disposed) return;
            _disposed = true;
            workers = [.. _all];
            _all.Clear();
        }
        AppDomain.CurrentDomain.ProcessExit -= _onExit;
        foreach (var worker in workers) worker.Dispose();
        lock (_idle) _idle.Clear();
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }
}
