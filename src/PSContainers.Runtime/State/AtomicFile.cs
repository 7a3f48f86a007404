using System.Text;

namespace PSContainers.Runtime.State;

/// <summary>
/// Writes a file so that readers see either the old or the new content, never a torn one, even if
/// the writing process is killed: temp file in the same directory, rename over the target. With
/// <paramref name="durable"/> the data is fsync'ed first, so it also survives a power loss.
/// </summary>
public static class AtomicFile
{
    public static void WriteAllText(string path, string content, bool durable = true)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var tmp = Path.Combine(dir, $".{Path.GetFileName(path)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                var bytes = Encoding.UTF8.GetBytes(content);
                fs.Write(bytes, 0, bytes.Length);
                fs.Flush(flushToDisk: durable);
            }
            File.Move(tmp, path, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }
}
