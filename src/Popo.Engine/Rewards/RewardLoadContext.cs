using System.Reflection;
using System.Runtime.Loader;
using Popo.Rewards;

namespace Popo.Engine.Rewards;

/// <summary>
/// The load context of one user reward assembly: its own dependencies come from its folder (its deps.json when it has
/// one, else a file of the same name beside it), while the assemblies the reward interface is made of (Popo.Rewards,
/// System.Text.Json for the columns) are the host's, so the user's types implement the host's
/// <see cref="IRewardFunction"/> and not a copy of it.
/// </summary>
internal sealed class RewardLoadContext : AssemblyLoadContext
{
    static readonly HashSet<string> Shared = new(StringComparer.OrdinalIgnoreCase)
    {
        typeof(IRewardFunction).Assembly.GetName().Name!,
        typeof(System.Text.Json.Nodes.JsonObject).Assembly.GetName().Name!,
    };

    readonly string _folder;
    readonly AssemblyDependencyResolver? _resolver;

    /// <summary>A context resolving from the folder of <paramref name="mainAssembly"/> (which may not exist yet: a compiled script's).</summary>
    public RewardLoadContext(string mainAssembly, string name) : base($"reward {name}", isCollectible: false)
    {
        _folder = Path.GetDirectoryName(mainAssembly)!;
        // The resolver needs the assembly on disk; a script compiled to memory has only its folder.
        _resolver = File.Exists(mainAssembly) ? new AssemblyDependencyResolver(mainAssembly) : null;
    }

    /// <inheritdoc />
    protected override Assembly? Load(AssemblyName assemblyName)
    {
        var name = assemblyName.Name;
        if (name is null || Shared.Contains(name)) return null;  // the host's (default context)
        var path = _resolver?.ResolveAssemblyToPath(assemblyName);
        if (path is null)
        {
            var beside = Path.Combine(_folder, name + ".dll");
            // A framework assembly is the host's even when a copy lies beside the user's.
            if (File.Exists(beside) && !IsFramework(name)) path = beside;
        }
        return path is null ? null : LoadFromAssemblyPath(path);
    }

    /// <inheritdoc />
    protected override IntPtr LoadUnmanagedDll(string unmanagedDllName)
    {
        var path = _resolver?.ResolveUnmanagedDllToPath(unmanagedDllName);
        return path is null ? IntPtr.Zero : LoadUnmanagedDllFromPath(path);
    }

    static bool IsFramework(string name) =>
        File.Exists(Path.Combine(Path.GetDirectoryName(typeof(object).Assembly.Location)!, name + ".dll"));
}
