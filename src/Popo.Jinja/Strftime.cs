using System.Globalization;
using System.Text;

namespace Popo.Jinja;

/// <summary>
/// Python's datetime.strftime for the directives chat templates use (Llama 3.1+ writes "%d %b %Y"), in the C
/// locale, with glibc's "-" no-padding flag (%-d). Hugging Face's strftime_now(format) formats the current
/// local time; the renderer takes the clock as a parameter so tests are deterministic.
/// </summary>
internal static class Strftime
{
    public static string Format(DateTime time, string format)
    {
        var text = new StringBuilder();
        for (var i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length)
            {
                text.Append(format[i]);
                continue;
            }
            var noPad = format[i + 1] == '-' && i + 2 < format.Length;
            var directive = format[noPad ? i + 2 : i + 1];
            i += noPad ? 2 : 1;
            string Num(int value, int width) => noPad ? value.ToString(CultureInfo.InvariantCulture) : value.ToString(new string('0', width), CultureInfo.InvariantCulture);
            text.Append(directive switch
            {
                'a' => CultureInfo.InvariantCulture.DateTimeFormat.GetAbbreviatedDayName(time.DayOfWeek),
                'A' => CultureInfo.InvariantCulture.DateTimeFormat.GetDayName(time.DayOfWeek),
                'b' or 'h' => CultureInfo.InvariantCulture.DateTimeFormat.GetAbbreviatedMonthName(time.Month),
                'B' => CultureInfo.InvariantCulture.DateTimeFormat.GetMonthName(time.Month),
                'd' => Num(time.Day, 2),
                'e' => noPad ? Num(time.Day, 1) : time.Day.ToString(CultureInfo.InvariantCulture).PadLeft(2),
                'm' => Num(time.Month, 2),
                'y' => Num(time.Year % 100, 2),
                'Y' => time.Year.ToString(CultureInfo.InvariantCulture),
                'H' => Num(time.Hour, 2),
                'I' => Num(time.Hour % 12 == 0 ? 12 : time.Hour % 12, 2),
                'M' => Num(time.Minute, 2),
                'S' => Num(time.Second, 2),
                'p' => time.Hour < 12 ? "AM" : "PM",
                'j' => Num(time.DayOfYear, 3),
                'w' => ((int)time.DayOfWeek).ToString(CultureInfo.InvariantCulture),
                'f' => (time.Ticks % TimeSpan.TicksPerSecond / 10).ToString("000000", CultureInfo.InvariantCulture),
                '%' => "%",
                _ => throw new TemplateValueError($"strftime directive '%{directive}' is not supported by this Jinja subset"),
            });
        }
        return text.ToString();
    }
}
