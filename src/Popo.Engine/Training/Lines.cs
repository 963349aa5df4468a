namespace Popo.Engine.Training;

/// <summary>
/// Replaces a log file with some of its lines, atomically: a run killed while resuming keeps either the
/// old file or the new one, never a half-rewritten log.
/// </summary>
internal static class Lines
{
    public static void Rewrite(string path, IEnumerable<string> lines) =>
        Checkpoints.AtomicFile.WriteAllText(path, string.Concat(lines.Select(l => l + Environment.NewLine)));
}
