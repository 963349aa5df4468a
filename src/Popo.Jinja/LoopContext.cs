namespace Popo.Jinja;

/// <summary>The `loop` variable inside {% for %}: index, index0, revindex, revindex0, first, last, length, previtem, nextitem, depth, depth0, cycle(), changed().</summary>
internal sealed class LoopContext(IReadOnlyList<object?> items, int depth)
{
    public int Index0 { get; set; }

    // loop.changed's memory: the arguments of its last call that returned true (jinja2's _last_changed_value).
    private object?[]? lastChanged;

    public object? Attribute(string name) => name switch
    {
        "index0" => (long)Index0,
        "index" => (long)Index0 + 1,
        "revindex" => (long)(items.Count - Index0),
        "revindex0" => (long)(items.Count - Index0 - 1),
        "first" => Index0 == 0,
        "last" => Index0 == items.Count - 1,
        "length" => (long)items.Count,
        "previtem" => Index0 > 0 ? items[Index0 - 1] : new Undefined("there is no previous item"),
        "nextitem" => Index0 + 1 < items.Count ? items[Index0 + 1] : new Undefined("there is no next item"),
        "depth" => (long)depth,
        "depth0" => (long)depth - 1,
        "cycle" => new Callable("loop.cycle", (args, _) =>
            args.Count == 0 ? throw new TemplateValueError("loop.cycle needs at least one argument") : args[Index0 % args.Count]),
        // true on its first call and whenever its arguments differ from the previous call's (jinja2's LoopContext.changed)
        "changed" => new Callable("loop.changed", (args, _) =>
        {
            var value = args.ToArray();
            if (lastChanged is not null && PyValue.Equals(lastChanged, value)) return false;
            lastChanged = value;
            return true;
        }),
        _ => Undefined.Attribute(this, name),
    };
}
