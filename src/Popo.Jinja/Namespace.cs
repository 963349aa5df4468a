namespace Popo.Jinja;

/// <summary>namespace(...): the one mutable object a template may assign attributes to ({% set ns.x = ... %}), so a value can leave a loop.</summary>
internal sealed class Namespace
{
    public Dictionary<string, object?> Attributes { get; } = new(StringComparer.Ordinal);
}
