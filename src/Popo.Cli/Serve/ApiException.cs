namespace Popo.Cli.Serve;

/// <summary>
/// A request the server refuses, answered as OpenAI's error JSON (<c>{"error": {"message", "type", "param", "code"}}</c>)
/// with <see cref="Status"/>: 400 for a bad field (named in <see cref="Param"/> and the message), 404 for an unknown model.
/// </summary>
internal sealed class ApiException(int status, string message, string? param = null) : Exception(message)
{
    public int Status { get; } = status;

    public string? Param { get; } = param;

    /// <summary>OpenAI's error type for the status (the names vLLM's server answers with).</summary>
    public string Type => Status switch
    {
        404 => "NotFoundError",
        >= 500 => "InternalServerError",
        _ => "BadRequestError",
    };

    /// <summary>A 400 naming the request field.</summary>
    public static ApiException Field(string field, string expected) => new(400, $"{field}: {expected}", field);
}
