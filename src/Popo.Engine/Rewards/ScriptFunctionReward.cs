using System.Reflection;
using System.Runtime.ExceptionServices;
using Popo.Rewards;

namespace Popo.Engine.Rewards;

/// <summary>A script's top-level <c>reward</c> function as a reward function: one call per sample; <c>None</c> is null.</summary>
internal sealed class ScriptFunctionReward : RewardFunction
{
    readonly MethodInfo _method;
    readonly Func<object?, double?> _value;

    ScriptFunctionReward(MethodInfo method, string name, Func<object?, double?> value) =>
        (_method, Name, _value) = (method, name, value);

    /// <inheritdoc />
    public override string Name { get; }

    /// <summary>The function <paramref name="method"/> (checked: one <see cref="RewardSample"/> in, a float or a float option out), named <paramref name="name"/>.</summary>
    public static ScriptFunctionReward From(MethodInfo method, string name, string spec)
    {
        var parameters = method.GetParameters();
        if (parameters.Length != 1 || parameters[0].ParameterType != typeof(RewardSample))
            throw new RewardLoadException($"reward function '{spec}': `{method.Name}` takes ({string.Join(", ", parameters.Select(p => p.ParameterType.Name))}); expected one RewardSample (`let reward (sample: RewardSample) = ...`)");
        var returns = method.ReturnType;
        Func<object?, double?>? value =
            returns == typeof(double) ? v => (double)v! :
            returns == typeof(double?) ? v => (double?)v :
            // F#'s option: None is null, Some carries Value.
            returns.IsGenericType && returns.GetGenericArguments() is [var arg] && arg == typeof(double)
                && returns.GetGenericTypeDefinition().FullName == "Microsoft.FSharp.Core.FSharpOption`1"
                ? OptionValue(returns) : null;
        if (value is null)
            throw new RewardLoadException($"reward function '{spec}': `{method.Name}` returns {returns.Name}; expected float option (None: not applicable) or float");
        return new ScriptFunctionReward(method, name, value);
    }

    static Func<object?, double?> OptionValue(Type option)
    {
        var property = option.GetProperty("Value")!;
        return v => v is null ? null : (double)property.GetValue(v)!;
    }

    /// <inheritdoc />
    public override double? Score(RewardSample sample)
    {
        try
        {
            return _value(_method.Invoke(null, [sample]));
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            // The script's own exception, not reflection's wrapper.
            ExceptionDispatchInfo.Capture(e.InnerException).Throw();
            throw;
        }
    }
}
