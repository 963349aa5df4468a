using Popo.Engine.Checkpoints;
using Popo.Engine.Configuration;
using Popo.Engine.Data;
using Popo.Engine.Model;
using Popo.Engine.Tokenizers;
using Popo.Engine.Training;
using Popo.Engine.Runtime;

namespace Popo.Cli.Commands;

/// <summary>Runs a command body and turns the project's error types into a message and an exit code.</summary>
public static class CommandRunner
{
    public const int Usage = 2, Failure = 1;

    public static int Run(Func<int> body)
    {
        try { return body(); }
        catch (ConfigException e) { return Fail(e.Message, Usage); }
        catch (Exception e) when (e is CheckpointFormatException or DatasetFormatException or TokenizerFormatException
                                      or ModelConfigException or TrainingDivergedException or MemoryPreflightException or ContextLengthException or ArgumentException
                                      or IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            return Fail(e.Message, Failure);
        }
    }

    private static int Fail(string message, int code)
    {
        Console.Error.WriteLine($"popo: error: {message}");
        return code;
    }
}
