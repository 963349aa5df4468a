namespace Popo.Engine.Tokenizers;

/// <summary>A tokenizer file that cannot be read, or text a tokenizer cannot encode; the message names the file or character.</summary>
internal sealed class TokenizerFormatException(string message) : Exception(message);
