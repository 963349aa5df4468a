using System.Text;

namespace Popo.Jinja;

/// <summary>
/// A Hugging Face chat template (Jinja2) parsed once and rendered as transformers' apply_chat_template renders
/// it: ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with raise_exception, strftime_now,
/// Python json.dumps as tojson, and the loopcontrols extension (break, continue). See README.md in this folder
/// for the supported subset and why it is not a template package.
/// </summary>
public sealed class JinjaTemplate
{
    private readonly SourceText source;
    private readonly List<Stmt> body;

    private JinjaTemplate(SourceText source, List<Stmt> body)
    {
        this.source = source;
        this.body = body;
    }

    /// <summary>Parses <paramref name="text"/>; <paramref name="sourceName"/> (e.g. "DIR/tokenizer_config.json") prefixes every error.</summary>
    public static JinjaTemplate Parse(string text, string sourceName)
    {
        var source = new SourceText(text, sourceName);
        var tokens = new Lexer(source).Tokenize();
        return new JinjaTemplate(source, new Parser(source, tokens).ParseTemplate());
    }

    /// <summary>The name the template was loaded under (errors name it).</summary>
    public string SourceName => source.Name;

    /// <summary>
    /// Renders with the given variables (strings, bools, numbers, lists and string-keyed maps, or JSON elements).
    /// <paramref name="now"/> is the clock of strftime_now (default: the local time).
    /// </summary>
    public string Render(IReadOnlyDictionary<string, object?> variables, Func<DateTime>? now = null)
    {
        var renderer = new Renderer(source, now ?? (() => DateTime.Now));
        var context = new Scope(renderer.Globals());
        foreach (var (name, value) in variables) context.Set(name, PyValue.From(value));
        var output = new StringBuilder();
        renderer.Render(body, context, output);
        return output.ToString();
    }
}
