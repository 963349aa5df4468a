using System.Diagnostics;
using System.Reflection;
using Popo.Rewards;
using Popo.Scripting;

namespace Popo.Engine.Rewards;

/// <summary>
/// A reward function written as an F# script (<c>FILE.fsx</c>), compiled in process once, when the run loads it, with
/// FSharp.Compiler.Service against the running runtime, FSharp.Core and Popo.Rewards (referenced for the script: it
/// needs no <c>#r</c>). The script gives either a top-level function <c>reward : RewardSample -> float option</c> (or
/// <c>-> float</c>), named after the script's file, or one public class implementing <see cref="IRewardFunction"/>
/// (e.g. a <see cref="RewardFunction"/> subclass) with a public parameterless constructor; not both.
/// </summary>
internal static class ScriptRewards
{
    /// <summary>The name of the top-level function a script may define.</summary>
    public const string FunctionName = "reward";

    const string Expected = "a top-level function `let reward (sample: RewardSample) : float option` (or `: float`), or one public class implementing IRewardFunction with a public parameterless constructor";

    /// <summary>The function the script <paramref name="file"/> defines, compiled now; its compile errors as a <see cref="RewardLoadException"/>.</summary>
    public static IRewardFunction Load(string file, RewardSourceOptions options)
    {
        var path = RewardSources.Resolve(file, options);
        if (!File.Exists(path))
            throw new RewardLoadException($"reward function '{file}': script not found: {path} (relative to {options.BaseDirectory})");
        var stem = Path.GetFileNameWithoutExtension(path);
        var folder = Directory.CreateTempSubdirectory("popo-fsx-");
        try
        {
            var output = Path.Combine(folder.FullName, stem + ".dll");
            var clock = Stopwatch.StartNew();
            var result = FSharpCompiler.Compile([path], [typeof(IRewardFunction).Assembly.Location], output, executable: false);
            if (!result.Succeeded)
                throw new RewardLoadException(
                    $"reward function '{file}': the script does not compile ({result.Errors.Count} error(s)):\n  " +
                    string.Join("\n  ", result.Diagnostics));
            foreach (var warning in result.Diagnostics) options.Log($"reward function '{file}': {warning}");
            // Loaded from memory so the temporary file can go; its own #r assemblies come from the script's folder.
            var context = new RewardLoadContext(Path.Combine(Path.GetDirectoryName(path)!, "<script>"), stem);
            Assembly assembly;
            using (var bytes = File.OpenRead(output)) assembly = context.LoadFromStream(bytes);
            var function = Discover(assembly, file, stem);
            options.Log($"reward function '{file}': compiled in {clock.Elapsed.TotalSeconds:0.0} s (name '{function.Name}')");
            return function;
        }
        finally
        {
            try { folder.Delete(recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    static IRewardFunction Discover(Assembly assembly, string spec, string stem)
    {
        var classes = AssemblyRewards.Candidates(assembly, spec);
        var functions = assembly.GetExportedTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Static))
            .Where(m => m.Name == FunctionName)
            .ToArray();
        if (functions.Length > 1 || functions.Length == 1 && classes.Count > 0 || classes.Count > 1)
            throw new RewardLoadException(
                $"reward function '{spec}': the script defines several reward functions " +
                $"({string.Join(", ", classes.Select(c => c.FullName).Concat(functions.Select(f => $"{f.DeclaringType?.Name}.{f.Name}")))}); expected exactly one: {Expected}");
        if (classes.Count == 1) return AssemblyRewards.Instantiate(classes[0], spec);
        if (functions.Length == 0)
            throw new RewardLoadException($"reward function '{spec}': the script defines no reward function; expected {Expected}");
        return ScriptFunctionReward.From(functions[0], stem, spec);
    }
}
