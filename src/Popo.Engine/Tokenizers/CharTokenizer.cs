using System.Text;

namespace Popo.Engine.Tokenizers;

/// <summary>
/// Fixed character vocabulary for the built-in tasks: 0 &lt;pad&gt;, 1 &lt;bos&gt;, 2 &lt;eos&gt;, 3 '\n', then printable
/// ASCII 32..126 at ids 4..98 (99 ids). Any ASCII text encodes; any other character is an error naming it.
/// </summary>
internal sealed class CharTokenizer : ITokenizer
{
    public const int Pad = 0, Bos = 1, Eos = 2, Newline = 3, FirstPrintable = 4;
    private static readonly string[] SpecialNames = ["<pad>", "<bos>", "<eos>"];

    public int VocabSize => FirstPrintable + 95;
    public int PadId => Pad;
    public int EosId => Eos;
    public int? BosId => Bos;

    public int[] Encode(string text)
    {
        var ids = new int[text.Length];
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            ids[i] = c == '\n' ? Newline
                : c is >= ' ' and <= '~' ? FirstPrintable + (c - ' ')
                : throw new TokenizerFormatException(
                    $"character U+{(int)c:X4} at index {i} is not in the character vocabulary (newline and printable ASCII 32-126 only)");
        }
        return ids;
    }

    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        var text = new StringBuilder();
        foreach (var id in ids)
        {
            if (id is >= 0 and < FirstPrintable - 1)
            {
                if (!skipSpecialTokens) text.Append(SpecialNames[id]);
            }
            else if (id == Newline) text.Append('\n');
            else if (id >= FirstPrintable && id < VocabSize) text.Append((char)(' ' + id - FirstPrintable));
            else throw new ArgumentOutOfRangeException(nameof(ids), $"token id {id} is outside the character vocabulary [0, {VocabSize})");
        }
        return text.ToString();
    }
}
