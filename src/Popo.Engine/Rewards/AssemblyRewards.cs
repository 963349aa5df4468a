using System.Reflection;
using Popo.Rewards;

namespace Popo.Engine.Rewards;

/// <summary>
/// A reward function that is a class in a .NET assembly (<c>FILE.dll:Namespace.Type</c>): the assembly is loaded in its
/// own <see cref="RewardLoadContext"/> and the type instantiated with its public parameterless constructor. Without
/// <c>:Namespace.Type</c>, the assembly's one public class implementing <see cref="IRewardFunction"/> is taken.
/// </summary>
internal static class AssemblyRewards
{
    const string Expected = "a public class implementing Popo.Rewards.IRewardFunction (or deriving from Popo.Rewards.RewardFunction) with a public parameterless constructor";

    /// <summary>The function class <paramref name="typeName"/> of <paramref name="file"/> names (or its only one when null).</summary>
    public static IRewardFunction Load(string file, string? typeName, RewardSourceOptions options)
    {
        var spec = typeName is null ? file : $"{file}:{typeName}";
        var path = RewardSources.Resolve(file, options);
        if (!File.Exists(path))
            throw new RewardLoadException($"reward function '{spec}': assembly not found: {path} (expected FILE.dll:Namespace.Type, FILE relative to {options.BaseDirectory})");
        Assembly assembly;
        try
        {
            assembly = new RewardLoadContext(path, Path.GetFileNameWithoutExtension(path)).LoadFromAssemblyPath(path);
        }
        catch (BadImageFormatException e)
        {
            throw new RewardLoadException($"reward function '{spec}': {path} is not a .NET assembly ({e.Message})", e);
        }
        Type type;
        if (typeName is null)
            type = Single(assembly, spec);
        else
        {
            Type? found;
            try { found = assembly.GetType(typeName, throwOnError: false); }
            catch (Exception e) when (e is FileNotFoundException or FileLoadException or TypeLoadException)
            {
                throw new RewardLoadException($"reward function '{spec}': type '{typeName}' cannot be loaded: {e.Message}", e);
            }
            type = found ?? throw new RewardLoadException(
                $"reward function '{spec}': no type '{typeName}' in {path}; expected {Expected}; its candidates: {Describe(Candidates(assembly, spec))}");
        }
        var function = Instantiate(type, spec);
        options.Log($"reward function '{spec}': {type.FullName} from {path} (name '{function.Name}')");
        return function;
    }

    /// <summary>The public concrete classes of <paramref name="assembly"/> implementing <see cref="IRewardFunction"/>.</summary>
    public static IReadOnlyList<Type> Candidates(Assembly assembly, string spec)
    {
        Type[] types;
        try { types = assembly.GetExportedTypes(); }
        catch (Exception e) when (e is ReflectionTypeLoadException or FileNotFoundException or FileLoadException or TypeLoadException)
        {
            var detail = e is ReflectionTypeLoadException r
                ? string.Join("; ", r.LoaderExceptions.Where(x => x is not null).Select(x => x!.Message).Distinct())
                : e.Message;
            throw new RewardLoadException($"reward function '{spec}': the types of {assembly.GetName().Name} cannot be loaded (a dependency missing from its folder?): {detail}", e);
        }
        return types.Where(t => t.IsClass && !t.IsAbstract && typeof(IRewardFunction).IsAssignableFrom(t)).ToArray();
    }

    /// <summary>The one candidate of <paramref name="assembly"/>; an error listing them when there are none or several.</summary>
    public static Type Single(Assembly assembly, string spec)
    {
        var candidates = Candidates(assembly, spec);
        if (candidates.Count == 1) return candidates[0];
        throw new RewardLoadException(candidates.Count == 0
            ? $"reward function '{spec}': {assembly.GetName().Name} has no {Expected}"
            : $"reward function '{spec}': {assembly.GetName().Name} has several reward classes ({Describe(candidates)}); name one as FILE.dll:Namespace.Type");
    }

    /// <summary>An instance of <paramref name="type"/>, checked to be a reward function the host can call.</summary>
    public static IRewardFunction Instantiate(Type type, string spec)
    {
        var name = type.FullName;
        if (!typeof(IRewardFunction).IsAssignableFrom(type))
        {
            // The same interface from another copy of Popo.Rewards would not be the host's: say so rather than "does not implement".
            var copy = type.GetInterfaces().FirstOrDefault(i => i.FullName == typeof(IRewardFunction).FullName);
            throw new RewardLoadException(copy is null
                ? $"reward function '{spec}': {name} does not implement Popo.Rewards.IRewardFunction; expected {Expected}"
                : $"reward function '{spec}': {name} implements Popo.Rewards.IRewardFunction from another copy of Popo.Rewards ({copy.Assembly.Location}), not the trainer's; reference the trainer's Popo.Rewards");
        }
        if (!type.IsPublic && !type.IsNestedPublic || type.IsAbstract || type.IsGenericTypeDefinition)
            throw new RewardLoadException($"reward function '{spec}': {name} is not a public concrete class; expected {Expected}");
        var constructor = type.GetConstructor(Type.EmptyTypes)
            ?? throw new RewardLoadException($"reward function '{spec}': {name} has no public parameterless constructor; expected {Expected}");
        try
        {
            return (IRewardFunction)constructor.Invoke(null);
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            throw new RewardLoadException($"reward function '{spec}': the constructor of {name} threw {e.InnerException.GetType().Name}: {e.InnerException.Message}", e.InnerException);
        }
    }

    static string Describe(IReadOnlyList<Type> types) =>
        types.Count == 0 ? "none" : string.Join(", ", types.Select(t => t.FullName));
}
