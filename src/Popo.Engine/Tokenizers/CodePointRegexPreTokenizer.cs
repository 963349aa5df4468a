using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Popo.Engine.Tokenizers;

/// <summary>
/// The tokenizer.json splitting regex applied by code point, as Hugging Face's (Oniguruma) regex applies it,
/// with added tokens matched whole first. .NET regexes see a character outside the BMP as two surrogates of
/// category Cs, so `\p{L}` misses 𝑥 and emoji pair up with the wrong neighbours; here each such character is
/// matched as one BMP stand-in of the same general category, and the matches are mapped back to the original
/// UTF-16 offsets. Text without surrogates is matched directly.
/// </summary>
internal sealed class CodePointRegexPreTokenizer : PreTokenizer
{
    private readonly Regex regex;
    private readonly Regex? addedTokens;

    public CodePointRegexPreTokenizer(Regex regex, IEnumerable<string> addedTokens)
    {
        this.regex = regex;
        var alternatives = addedTokens.OrderByDescending(t => t.Length).Select(Regex.Escape).ToList();
        this.addedTokens = alternatives.Count == 0 ? null : new Regex(string.Join("|", alternatives), RegexOptions.Compiled);
    }

    public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text) => PreTokenize(text.ToString());

    public override IEnumerable<(int Offset, int Length)> PreTokenize(string text)
    {
        var splits = new List<(int, int)>();
        var from = 0;
        if (addedTokens is not null)
        {
            foreach (Match m in addedTokens.Matches(text))
            {
                Split(text, from, m.Index, splits);
                splits.Add((m.Index, m.Length));
                from = m.Index + m.Length;
            }
        }
        Split(text, from, text.Length, splits);
        return splits;
    }

    private void Split(string text, int start, int end, List<(int, int)> splits)
    {
        if (start >= end) return;
        var segment = text[start..end];
        if (!HasSurrogates(segment))
        {
            foreach (Match m in regex.Matches(segment))
                if (m.Length > 0) splits.Add((start + m.Index, m.Length));
            return;
        }
        // One UTF-16 unit per code point; offsets[i] is where stand-in i starts in the segment.
        var standIns = new StringBuilder(segment.Length);
        var offsets = new List<int>(segment.Length + 1);
        for (var i = 0; i < segment.Length; i++)
        {
            offsets.Add(i);
            if (char.IsHighSurrogate(segment[i]) && i + 1 < segment.Length && char.IsLowSurrogate(segment[i + 1]))
            {
                standIns.Append(StandIn(CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(segment[i], segment[i + 1]))));
                i++;
            }
            else standIns.Append(segment[i]);
        }
        offsets.Add(segment.Length);
        foreach (Match m in regex.Matches(standIns.ToString()))
            if (m.Length > 0) splits.Add((start + offsets[m.Index], offsets[m.Index + m.Length] - offsets[m.Index]));
    }

    private static bool HasSurrogates(string s)
    {
        foreach (var c in s)
            if (char.IsSurrogate(c)) return true;
        return false;
    }

    /// <summary>
    /// A BMP character of the given general category, so every \p{..} class, \s and \w treat it as they would the
    /// astral character; none is an ASCII letter, so case-insensitive contractions ('s, 'll ...) never match one.
    /// </summary>
    private static char StandIn(UnicodeCategory category) => category switch
    {
        UnicodeCategory.UppercaseLetter => 'Ж',
        UnicodeCategory.LowercaseLetter => 'ж',
        UnicodeCategory.TitlecaseLetter => 'ǅ',
        UnicodeCategory.ModifierLetter => 'ʰ',
        UnicodeCategory.OtherLetter => '一',
        UnicodeCategory.NonSpacingMark => '\u0301',
        UnicodeCategory.SpacingCombiningMark => '\u0903',
        UnicodeCategory.EnclosingMark => '\u20DD',
        UnicodeCategory.DecimalDigitNumber => '٣',
        UnicodeCategory.LetterNumber => 'Ⅰ',
        UnicodeCategory.OtherNumber => '½',
        UnicodeCategory.ConnectorPunctuation => '‿',
        UnicodeCategory.DashPunctuation => '‐',
        UnicodeCategory.OpenPunctuation => '⁅',
        UnicodeCategory.ClosePunctuation => '⁆',
        UnicodeCategory.InitialQuotePunctuation => '«',
        UnicodeCategory.FinalQuotePunctuation => '»',
        UnicodeCategory.OtherPunctuation => '※',
        UnicodeCategory.MathSymbol => '∑',
        UnicodeCategory.CurrencySymbol => '€',
        UnicodeCategory.ModifierSymbol => '˘',
        UnicodeCategory.OtherSymbol => '□',
        UnicodeCategory.Format => '\u200B',
        UnicodeCategory.PrivateUse => '\uE000',
        _ => '\u0378', // unassigned
    };
}
