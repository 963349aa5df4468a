namespace Popo.Jinja;

/// <summary>
/// Jinja2's default Undefined: a missing variable, attribute or item. It prints as "", is false, has length 0
/// and iterates as empty; using it any further (attribute, item, arithmetic, call) is an error that says what
/// was missing.
/// </summary>
internal sealed class Undefined(string description)
{
    public string Description { get; } = description;

    public TemplateValueError Error() => new(Description);

    public static Undefined Variable(string name) => new($"'{name}' is undefined");
    public static Undefined Attribute(object? owner, string name) => new($"'{PyValue.TypeName(owner)} object' has no attribute '{name}'");
    public static Undefined Item(object? owner, object? key) => new($"'{PyValue.TypeName(owner)} object' has no item {PyValue.Repr(key)}");
}
