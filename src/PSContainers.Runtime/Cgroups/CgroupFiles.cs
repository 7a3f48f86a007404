namespace PSContainers.Runtime.Cgroups;

/// <summary>Reading and writing cgroup control files, with errors that name the file and the value.</summary>
internal static class CgroupFiles
{
    public static string Read(string file)
    {
        try { return File.ReadAllText(file).Trim(); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ContainerException("CgroupReadFailed", ContainerErrorKind.DeviceError,
                $"Cannot read cgroup file {file}: {ex.Message}", file, ex);
        }
    }

    public static string? TryRead(string file)
    {
        try { return File.ReadAllText(file).Trim(); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return null; }
    }

    public static void Write(string file, string value)
    {
        try
        {
            // One write(2) of the whole value: cgroup files act on each write call.
            using var fs = new FileStream(file, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1, FileOptions.None);
            var bytes = System.Text.Encoding.ASCII.GetBytes(value);
            fs.Write(bytes, 0, bytes.Length);
            // Control files report size 0 and take each write whole, but a regular file (a fake tree)
            // would keep the tail of a longer old value ("max" over "268435456" -> "max435456").
            if (fs.CanSeek && fs.Length > bytes.Length) fs.SetLength(bytes.Length);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            var kind = ex is UnauthorizedAccessException ? ContainerErrorKind.PermissionDenied : ContainerErrorKind.InvalidOperation;
            throw new ContainerException("CgroupWriteFailed", kind,
                $"Cannot write '{value}' to cgroup file {file}: {ex.Message}", file, ex);
        }
    }

    public static IReadOnlyList<int> ReadPids(string file)
    {
        var text = TryRead(file);
        if (string.IsNullOrEmpty(text)) return Array.Empty<int>();
        return text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
    }

    /// <summary>The pids in the cgroup directory <paramref name="dir"/> and every cgroup below it.</summary>
    public static IReadOnlyList<int> ReadPidsTree(string dir)
    {
        var pids = new List<int>(ReadPids(Path.Combine(dir, "cgroup.procs")));
        try
        {
            foreach (var sub in Directory.EnumerateDirectories(dir, "*", SearchOption.AllDirectories))
                pids.AddRange(ReadPids(Path.Combine(sub, "cgroup.procs")));
        }
        catch (DirectoryNotFoundException) { }
        return pids;
    }

    /// <summary>rmdir of a cgroup; EBUSY while the kernel still releases exiting tasks, so retry briefly.</summary>
    public static bool RemoveDirectory(string dir, TimeSpan wait)
    {
        var deadline = DateTime.UtcNow + wait;
        while (true)
        {
            if (!Directory.Exists(dir)) return true;
            try { Directory.Delete(dir); return true; }
            catch (DirectoryNotFoundException) { return true; }
            catch (IOException) when (DateTime.UtcNow < deadline) { Thread.Sleep(5); }
            catch (IOException) { return false; }
        }
    }

    /// <summary>Polls a condition on a control file until true or timeout (cgroup files do not support inotify everywhere).</summary>
    public static bool WaitUntil(Func<bool> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var delay = 1;
        while (!condition())
        {
            if (DateTime.UtcNow >= deadline) return false;
            Thread.Sleep(delay);
            delay = Math.Min(delay * 2, 20);
        }
        return true;
    }
}
