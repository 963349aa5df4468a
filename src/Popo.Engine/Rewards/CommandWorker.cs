using System.Diagnostics;
using System.Text;

namespace Popo.Engine.Rewards;

/// <summary>One process of an external reward command: a line in, a line out, every exchange bounded by a timeout, the
/// tail of its stderr kept for the error messages.</summary>
internal sealed class CommandWorker : IDisposable
{
    const int TailChars = 2000;

    readonly Process _process;
    readonly StringBuilder _stderr = new();

    CommandWorker(Process process) => _process = process;

    /// <summary>The process's id (for the log).</summary>
    public int Id => _process.Id;

    /// <summary>Whether the process has ended.</summary>
    public bool HasExited
    {
        get { try { return _process.HasExited; } catch (InvalidOperationException) { return true; } }
    }

    /// <summary>A started process of <paramref name="program"/>; the operating system's error when it cannot start.</summary>
    public static CommandWorker Start(string program, IReadOnlyList<string> arguments, string workingDirectory)
    {
        var info = new ProcessStartInfo(program)
        {
            WorkingDirectory = workingDirectory,
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardInputEncoding = new UTF8Encoding(false),
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var a in arguments) info.ArgumentList.Add(a);
        // A Python reward answers at once even when it forgets to flush.
        info.Environment["PYTHONUNBUFFERED"] = "1";
        var process = new Process { StartInfo = info };
        var worker = new CommandWorker(process);
        process.ErrorDataReceived += (_, e) => worker.Append(e.Data);
        process.Start();
        process.BeginErrorReadLine();
        process.StandardInput.NewLine = "\n";
        return worker;
    }

    void Append(string? line)
    {
        if (line is null) return;
        lock (_stderr)
        {
            _stderr.Append(line).Append('\n');
            if (_stderr.Length > 2 * TailChars) _stderr.Remove(0, _stderr.Length - TailChars);
        }
    }

    /// <summary>The last lines the process wrote to stderr (waiting briefly for what a dying process still had in the pipe).</summary>
    public string StderrTail()
    {
        if (HasExited) _process.WaitForExit(500);  // drains the asynchronous stderr reader
        lock (_stderr)
        {
            var text = _stderr.ToString().TrimEnd();
            return text.Length <= TailChars ? text : "..." + text[^TailChars..];
        }
    }

    /// <summary>The exit code when the process has ended (waiting up to a second for it), else null.</summary>
    public int? ExitCode()
    {
        try { return _process.WaitForExit(1000) ? _process.ExitCode : null; }
        catch (InvalidOperationException) { return null; }
    }

    /// <summary>Writes <paramref name="line"/> and reads the answer line: null when the process ended (or closed its
    /// output) instead of answering; a <see cref="TimeoutException"/> after <paramref name="timeout"/>, the process killed.</summary>
    public async Task<string?> ExchangeAsync(string line, TimeSpan timeout, CancellationToken cancellation)
    {
        var exchange = Task.Run(async () =>
        {
            try
            {
                await _process.StandardInput.WriteLineAsync(line).ConfigureAwait(false);
                await _process.StandardInput.FlushAsync().ConfigureAwait(false);
            }
            catch (IOException) { return null; }  // a broken pipe: the process is gone
            return await _process.StandardOutput.ReadLineAsync().ConfigureAwait(false);
        }, CancellationToken.None);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        var finished = await Task.WhenAny(exchange, Task.Delay(timeout, stop.Token)).ConfigureAwait(false);
        if (finished == exchange)
        {
            await stop.CancelAsync().ConfigureAwait(false);  // ends the delay
            return await exchange.ConfigureAwait(false);
        }
        // Killing the process ends the pending read (its pipe closes); its result is no longer wanted.
        Kill();
        _ = exchange.ContinueWith(t => t.Exception, TaskScheduler.Default);
        cancellation.ThrowIfCancellationRequested();
        throw new TimeoutException($"no answer within {timeout.TotalSeconds:0.###} s");
    }

    /// <summary>Ends the process and its children now.</summary>
    public void Kill()
    {
        try { if (!_process.HasExited) _process.Kill(entireProcessTree: true); }
        catch (InvalidOperationException) { }  // already gone
        catch (System.ComponentModel.Win32Exception) { }
    }

    /// <summary>Closes the process's input (a well-behaved command ends there), waits briefly, then kills it.</summary>
    public void Dispose()
    {
        try { _process.StandardInput.Close(); } catch (IOException) { } catch (InvalidOperationException) { }
        try { if (!_process.WaitForExit(200)) Kill(); } catch (InvalidOperationException) { }
        _process.Dispose();
    }
}
