using System.Buffers;
using System.Text.Unicode;

namespace Popo.Engine.Data;

/// <summary>
/// The lines of a UTF-8 text file as <see cref="File.ReadLines(string)"/> splits them (\n, \r\n or a lone \r; a
/// leading byte order mark dropped), but strict: File.ReadLines turns invalid UTF-8 into U+FFFD without a word, so
/// a corrupt dataset line would train as text nobody wrote. Here such a line comes back with its text null and the
/// offset of its first invalid byte, for the reader to refuse or skip as it does any malformed line.
/// </summary>
internal static class Utf8Lines
{
    /// <summary>Line <paramref name="Number"/> (from 1): its text, or null with <paramref name="BadByte"/> the offset of its first invalid byte.</summary>
    public readonly record struct Line(int Number, string? Text, int BadByte);

    public static IEnumerable<Line> Read(string path)
    {
        using var stream = new BufferedStream(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read), 1 << 16);
        var bytes = new MemoryStream();
        var number = 0;
        var pending = -1;   // a byte read after a \r that was not \n
        while (true)
        {
            var b = pending >= 0 ? pending : stream.ReadByte();
            pending = -1;
            if (b < 0) break;
            if (b is '\n' or '\r')
            {
                if (b == '\r' && stream.ReadByte() is var next && next != '\n') pending = next;
                yield return Decode(++number, bytes);
                bytes.SetLength(0);
            }
            else bytes.WriteByte((byte)b);
        }
        if (bytes.Length > 0) yield return Decode(++number, bytes);
    }

    private static Line Decode(int number, MemoryStream buffer)
    {
        var span = buffer.GetBuffer().AsSpan(0, (int)buffer.Length);
        if (number == 1 && span.StartsWith("\uFEFF"u8)) span = span[3..];
        var chars = new char[span.Length];
        var status = Utf8.ToUtf16(span, chars, out var read, out var written, replaceInvalidSequences: false);
        return status == OperationStatus.Done ? new Line(number, new string(chars, 0, written), -1) : new Line(number, null, read);
    }
}
