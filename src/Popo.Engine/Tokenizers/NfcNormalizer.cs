using System.Text;
using Microsoft.ML.Tokenizers;

namespace Popo.Engine.Tokenizers;

/// <summary>Unicode NFC normalisation, the "NFC" normalizer of HF tokenizer.json files (Qwen2).</summary>
internal sealed class NfcNormalizer : Normalizer
{
    public override string Normalize(string original) => original.Normalize(NormalizationForm.FormC);

    public override string Normalize(ReadOnlySpan<char> original) => original.ToString().Normalize(NormalizationForm.FormC);
}
