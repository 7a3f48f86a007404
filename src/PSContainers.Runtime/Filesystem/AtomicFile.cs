using System.Text;

namespace PSContainers.Runtime.Filesystem;

/// <summary>
/// Writes a file so that readers see either the old or the new content, never a torn one, even if
/// the writing process is killed: temp file in the same directory, rename over the target. With
/// <paramref name="durable"/> the data is fsync'ed first, so it also survives a power loss.
/// </summary>
public static class AtomicFile
{
    public static void WriteAllText(string path, string content, bool durable = true) =>
        WriteAllBytes(path, Encoding.UTF8.GetBytes(content), durable);

    /// <summary>
    /// Like <see cref="WriteAllText"/> with exact bytes. With <paramref name="tempPath"/> the new
    /// content is staged there (a fixed name such as shadow-utils' "file+", for callers that hold a
    /// lock on the target); with <paramref name="ownershipFrom"/> the new file gets the owner, group
    /// and mode of that file (usually the one it replaces), as system files like /etc/subuid must keep them.
    /// </summary>
    public static void WriteAllBytes(string path, byte[] content, bool durable = true, string? tempPath = null, string? ownershipFrom = null)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var tmp = tempPath ?? Path.Combine(dir, $".{Path.GetFileName(path)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = new FileStream(tmp, tempPath is null ? FileMode.CreateNew : FileMode.Create, FileAccess.Write, FileShare.None))
            {
                fs.Write(content, 0, content.Length);
                fs.Flush(flushToDisk: durable);
            }
            if (ownershipFrom is not null && File.Exists(ownershipFrom)) CopyOwnership(ownershipFrom, tmp);
            File.Move(tmp, path, overwrite: true);
            if (tempPath is null) RemoveStaleTemps(dir, Path.GetFileName(path));
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }

    /// <summary>".FILE.PID.GUID.tmp" files of writers that were killed before their rename (their process is gone).</summary>
    private static void RemoveStaleTemps(string dir, string file)
    {
        var prefix = $".{file}.";
        try
        {
            foreach (var stale in Directory.EnumerateFiles(dir, prefix + "*.tmp"))
            {
                var middle = Path.GetFileName(stale)[prefix.Length..^".tmp".Length].Split('.');
                if (middle.Length == 2 && int.TryParse(middle[0], out var pid) && pid > 0 && Native.Sys.ProcessStartTime(pid) is null)
                    File.Delete(stale);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { /* best effort: the write itself succeeded */ }
    }

    private static unsafe void CopyOwnership(string from, string to)
    {
        Tmds.Linux.stat st;
        var src = Encoding.UTF8.GetBytes(from + "\0");
        var dst = Encoding.UTF8.GetBytes(to + "\0");
        fixed (byte* s = src)
        fixed (byte* d = dst)
        {
            if (Tmds.Linux.LibC.stat(s, &st) != 0 || Tmds.Linux.LibC.chown(d, st.st_uid, st.st_gid) != 0)
                throw new IOException($"Cannot give '{to}' the owner of '{from}': {Native.Sys.ErrnoMessage(Native.Sys.Errno)}.");
        }
        File.SetUnixFileMode(to, (UnixFileMode)((uint)st.st_mode & 0xFFF));
    }
}

/// <summary>
/// Reads small files the runtime keeps in the store (state.json, checkpoint.json, snapshot records)
/// with a size cap: a damaged or hostile file of any size costs at most that much memory, and is
/// reported as invalid data rather than read whole.
/// </summary>
public static class BoundedFile
{
    /// <summary>The cap for the runtime's own JSON records: 1 MiB (they are a few hundred bytes).</summary>
    public const int MaxRecordBytes = 1 << 20;

    /// <summary>The text of <paramref name="path"/>; <see cref="InvalidDataException"/> when it holds more than <paramref name="maxBytes"/>.</summary>
    public static string ReadAllText(string path, int maxBytes = MaxRecordBytes)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 12);
        var buffer = new byte[Math.Min((long)maxBytes + 1, Math.Max(stream.Length + 1, 4096))];
        int total = 0, n;
        while (true)
        {
            if (total == buffer.Length)
            {
                if (buffer.Length > maxBytes) break;
                Array.Resize(ref buffer, (int)Math.Min((long)maxBytes + 1, buffer.Length * 2L));
            }
            if ((n = stream.Read(buffer, total, buffer.Length - total)) <= 0) break;
            total += n;
        }
        if (total > maxBytes)
            throw new InvalidDataException($"{path} is larger than {maxBytes} bytes, far more than this record ever holds");
        return new UTF8Encoding(false, false).GetString(buffer, 0, total).TrimStart('\uFEFF');
    }
}
