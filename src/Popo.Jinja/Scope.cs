namespace Popo.Jinja;

/// <summary>
/// Variables visible at one point of a render. Each {% for %} iteration and each macro call gets a child scope,
/// so a {% set %} inside stays inside (Jinja2's rule; a namespace() attribute is how a value leaves a loop);
/// {% if %} opens none. The root's parent is the globals.
/// </summary>
internal sealed class Scope(Scope? parent)
{
    private readonly Scope? parent = parent;
    private readonly Dictionary<string, object?> variables = new(StringComparer.Ordinal);

    public object? Lookup(string name)
    {
        for (var scope = this; scope is not null; scope = scope.parent)
            if (scope.variables.TryGetValue(name, out var value)) return value;
        return Undefined.Variable(name);
    }

    public void Set(string name, object? value) => variables[name] = value;
}
