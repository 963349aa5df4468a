namespace Popo.Jinja;

/// <summary>
/// A chat template that does not parse or fails while rendering: names the template's source (e.g. the
/// tokenizer_config.json it came from), the line and column, and what went wrong. <see cref="Raised"/> is true
/// when the template itself called raise_exception (a conversation the template refuses).
/// </summary>
public sealed class TemplateException(string source, int line, int column, string detail, bool raised = false)
    : Exception($"{source}:{line}:{column}: {detail}")
{
    /// <summary>The template's source, e.g. the tokenizer_config.json it came from.</summary>
    public string SourceName { get; } = source;
    /// <summary>The 1-based line in the template.</summary>
    public int Line { get; } = line;
    /// <summary>The 1-based column in the template.</summary>
    public int Column { get; } = column;
    /// <summary>What went wrong, without the position.</summary>
    public string Detail { get; } = detail;
    /// <summary>True when the template itself called raise_exception.</summary>
    public bool Raised { get; } = raised;
}

/// <summary>
/// A Python-semantics error (type error, undefined value) or a raise_exception call, raised below the renderer,
/// which adds the position.
/// </summary>
internal sealed class TemplateValueError(string message, bool raised = false) : Exception(message)
{
    public bool Raised { get; } = raised;
}
