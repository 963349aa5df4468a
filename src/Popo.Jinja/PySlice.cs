namespace Popo.Jinja;

/// <summary>A slice [start:stop:step] as Python applies it to a sequence of the given length.</summary>
internal sealed record PySlice(long? Start, long? Stop, long? Step)
{
    public IEnumerable<int> Indices(int length)
    {
        var step = Step ?? 1;
        if (step == 0) throw new TemplateValueError("slice step cannot be zero");
        long Clamp(long? value, long fallback, long low, long high)
        {
            if (value is not long v) return fallback;
            if (v < 0) v += length;
            return Math.Clamp(v, low, high);
        }
        if (step > 0)
        {
            var start = Clamp(Start, 0, 0, length);
            var stop = Clamp(Stop, length, 0, length);
            for (var i = start; i < stop; i += step) yield return (int)i;
        }
        else
        {
            var start = Clamp(Start, length - 1, -1, length - 1);
            var stop = Clamp(Stop, -1, -1, length - 1);
            for (var i = start; i > stop; i += step) yield return (int)i;
        }
    }
}
