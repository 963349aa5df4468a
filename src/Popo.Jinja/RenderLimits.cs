using System.Runtime.CompilerServices;

namespace Popo.Jinja;

/// <summary>
/// A chat template comes from a model folder: untrusted input. These bounds turn a template that would overflow
/// the stack (a self-recursive macro, thousands of nested parentheses), run without end (nested loops over
/// range(100000)) or exhaust memory ('x' * 10**10, a string doubled in a loop) into a <see cref="TemplateException"/>
/// at its position, as Jinja2's sandbox and Python's recursion limit do. Each is far above what a chat template
/// needs: the real Qwen3, Llama 3 and Gemma 3 templates take about 20 steps and produce a few hundred characters per
/// message of a conversation, so the bounds allow conversations of tens of thousands of messages and outputs of
/// millions of tokens.
/// </summary>
public static class RenderLimits
{
    /// <summary>Macro calls active at once (Python's recursion limit of 1000 frames allows about this many Jinja2 macro calls).</summary>
    public const int MaxCallDepth = 200;

    /// <summary>Syntax nesting (statements in statements, expressions in expressions) the parser and renderer follow.</summary>
    public const int MaxNesting = 500;

    /// <summary>Statements executed, loop iterations and expressions evaluated in one render.</summary>
    public const long MaxSteps = 1_000_000;

    /// <summary>The longest string (in UTF-16 units) or list one operation may build, and the longest rendered output.</summary>
    public const int MaxLength = 1 << 23;

    /// <summary>Characters and list items produced by all the expressions of one render together.</summary>
    public const long MaxProduced = 1L << 27;

    /// <summary>Refuses an operation about to build a string or list of <paramref name="length"/>, before it is built.</summary>
    internal static void CheckLength(long length, string what = "string")
    {
        if (length > MaxLength)
            throw new TemplateValueError($"{what} too long: {length} elements, more than the renderer's limit of {MaxLength}");
    }

    /// <summary>Guards a recursive step: the nesting bound, and the thread's stack whatever its size.</summary>
    internal static bool StackAllows(int depth) => depth <= MaxNesting && RuntimeHelpers.TryEnsureSufficientExecutionStack();

    /// <summary>Before recursing into a nested value (repr, json, equality): data built in a loop can nest deeper than the stack.</summary>
    internal static void EnsureStack()
    {
        if (!RuntimeHelpers.TryEnsureSufficientExecutionStack())
            throw new TemplateValueError("value nested too deeply for the renderer's stack");
    }

    /// <summary><see cref="string.Join(string, IEnumerable{string})"/> that stops as soon as the result would exceed <see cref="MaxLength"/>.</summary>
    internal static string Join(string separator, IEnumerable<string> items)
    {
        var text = new System.Text.StringBuilder();
        var first = true;
        foreach (var item in items)
        {
            var add = (first ? 0L : separator.Length) + item.Length;
            CheckLength(text.Length + add);
            if (!first) text.Append(separator);
            text.Append(item);
            first = false;
        }
        return text.ToString();
    }
}
