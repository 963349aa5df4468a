using Popo.Engine.Checkpoints;
using Popo.Engine.Configuration;
using Popo.Engine.Data;
using Popo.Engine.Model;
using Popo.Engine.Tokenizers;
using Popo.Engine.Training;
using Popo.Engine.Runtime;
using Popo.Jinja;

namespace Popo.Cli.Commands;

/// <summary>Runs a command body and turns the project's error types into a message and an exit code.</summary>
public static class CommandRunner
{
    public const int Usage = 2, Failure = 1;

    /// <summary>
    /// The errors a command reports as one line and exit 1, without a stack trace: bad input (every file format the
    /// project reads, the template of a model folder), a refused or failed run, and the system's I/O errors. Every
    /// public exception type the project's libraries declare belongs here (a test enumerates them), so a new one
    /// cannot escape as an unhandled exception.
    /// </summary>
    public static readonly IReadOnlyList<Type> Reported =
    [
        typeof(CheckpointFormatException), typeof(DatasetFormatException), typeof(TokenizerFormatException),
        typeof(ModelConfigException), typeof(TemplateException), typeof(TrainingDivergedException),
        typeof(MemoryPreflightException), typeof(ContextLengthException), typeof(ArgumentException),
        typeof(IOException), typeof(UnauthorizedAccessException), typeof(InvalidOperationException),
        typeof(Popo.Engine.Rewards.RewardLoadException), typeof(Popo.Engine.Rewards.RewardFunctionException), typeof(Popo.Engine.Rewards.RewardCommandException),
        typeof(Popo.Engine.Rollout.RolloutServerException),
    ];

    public static bool Reports(Exception e) => e is ConfigException || Reported.Any(t => t.IsInstanceOfType(e));

    public static int Run(Func<int> body)
    {
        try { return body(); }
        catch (ConfigException e) { return Fail(e.Message, Usage); }
        catch (Exception e) when (Reports(e)) { return Fail(e.Message, Failure); }
    }

    private static int Fail(string message, int code)
    {
        Console.Error.WriteLine($"popo: error: {message}");
        return code;
    }
}
