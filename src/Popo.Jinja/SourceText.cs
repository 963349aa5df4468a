namespace Popo.Jinja;

/// <summary>
/// The template source as Jinja2 sees it: newlines normalised to \n and, as keep_trailing_newline = False
/// does, one trailing newline dropped; plus offset -> line:column for error messages.
/// </summary>
internal sealed class SourceText
{
    private readonly int[] lineStarts;

    public string Name { get; }
    public string Text { get; }

    public SourceText(string text, string name)
    {
        Name = name;
        var normalised = text.Replace("\r\n", "\n").Replace('\r', '\n');
        if (normalised.EndsWith('\n')) normalised = normalised[..^1];
        Text = normalised;
        var starts = new List<int> { 0 };
        for (var i = 0; i < normalised.Length; i++)
            if (normalised[i] == '\n') starts.Add(i + 1);
        lineStarts = [.. starts];
    }

    public (int Line, int Column) Position(int offset)
    {
        var index = Array.BinarySearch(lineStarts, offset);
        if (index < 0) index = ~index - 1;
        return (index + 1, offset - lineStarts[index] + 1);
    }

    public TemplateException Error(int offset, string detail, bool raised = false)
    {
        var (line, column) = Position(offset);
        return new TemplateException(Name, line, column, detail, raised);
    }
}
