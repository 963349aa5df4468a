namespace Popo.Engine.Training;

/// <summary>
/// Writes a folder atomically: everything goes to a hidden sibling temp folder, which is renamed into
/// place only once complete, so a reader (or a resumed run) sees either the old state or the whole new
/// one, never a partial folder.
/// </summary>
internal static class AtomicFolder
{
    public const string TempPrefix = ".tmp-";

    public static void Write(string finalPath, Action<string> writeInto)
    {
        var parent = Path.GetDirectoryName(Path.GetFullPath(finalPath))!;
        Directory.CreateDirectory(parent);
        var temp = Path.Combine(parent, TempPrefix + Path.GetFileName(finalPath) + "-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            Directory.CreateDirectory(temp);
            writeInto(temp);
            if (Directory.Exists(finalPath))
                throw new IOException($"{finalPath} already exists; refusing to overwrite it");
            Directory.Move(temp, finalPath);
        }
        catch
        {
            try { if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }   // the first error is the one to report
            throw;
        }
    }

    /// <summary>Removes temp folders (this class) and temp files (<see cref="Checkpoints.AtomicFile"/>) left by a killed writer.</summary>
    public static void CleanLeftovers(string folder)
    {
        if (!Directory.Exists(folder)) return;
        foreach (var d in Directory.GetDirectories(folder, TempPrefix + "*")) Directory.Delete(d, recursive: true);
        foreach (var f in Directory.GetFiles(folder, ".*.tmp").Where(Checkpoints.AtomicFile.IsTemp)) File.Delete(f);
    }
}
