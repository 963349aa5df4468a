namespace Popo.Engine.Tokenizers;

/// <summary>Text to token ids and back, with the ids the sampler and trainer need.</summary>
internal interface ITokenizer
{
    /// <summary>One more than the largest id the tokenizer can produce.</summary>
    int VocabSize { get; }
    int PadId { get; }
    int EosId { get; }
    int? BosId { get; }

    /// <summary>Ids of the text; special-token strings in it map to their ids where the tokenizer has them.</summary>
    int[] Encode(string text);

    /// <summary>Text of the ids; special tokens are written out unless <paramref name="skipSpecialTokens"/>.</summary>
    string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false);
}
