using System.Text;
using Microsoft.Win32.SafeHandles;

namespace PSContainers.Runtime.Cgroups;

/// <summary>
/// Reads a cgroup's usage counters (Measure-Container) through descriptors opened once: each
/// <see cref="Read"/> is one pread per counter file, no path lookups, no directory walks. The
/// drivers say which files hold which counters (<see cref="ICgroupDriver.UsageCounters"/>); a
/// counter summed over the cgroups below (v1 OOM kills, refused forks) covers those that existed
/// when the reader was opened. A file that cannot be read leaves its counters null, as the kernel
/// not accounting them would.
/// </summary>
public sealed class CgroupUsageReader : IDisposable
{
    private readonly List<(SafeFileHandle?[] Files, Action<CgroupUsage, string?[]> Apply)> _counters = new();
    private readonly byte[] _buffer = new byte[16 * 1024];

    public string CgroupPath { get; }
    public string? Name { get; }

    internal CgroupUsageReader(string path, string? name)
    {
        CgroupPath = path;
        Name = name;
    }

    /// <summary>A counter in one file; <paramref name="apply"/> gets its trimmed text, or null.</summary>
    internal void Add(string file, Action<CgroupUsage, string?> apply) =>
        _counters.Add((new[] { Open(file) }, (u, t) => apply(u, t[0])));

    /// <summary>A counter in <paramref name="file"/> of <paramref name="dir"/> and of every cgroup below it (as they are now).</summary>
    internal void AddTree(string dir, string file, Action<CgroupUsage, string?[]> apply)
    {
        var dirs = new List<string> { dir };
        try { dirs.AddRange(Directory.EnumerateDirectories(dir, "*", SearchOption.AllDirectories)); }
        catch (IOException) { }
        _counters.Add((dirs.Select(d => Open(Path.Combine(d, file))).ToArray(), apply));
    }

    private static SafeFileHandle? Open(string file)
    {
        try { return File.OpenHandle(file, FileMode.Open, FileAccess.Read); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return null; }
    }

    /// <summary>The counters as they are now.</summary>
    public CgroupUsage Read()
    {
        var usage = new CgroupUsage { Name = Name, CgroupPath = CgroupPath };
        foreach (var (files, apply) in _counters)
        {
            var texts = new string?[files.Length];
            for (var i = 0; i < files.Length; i++) texts[i] = ReadText(files[i]);
            apply(usage, texts);
        }
        return usage;
    }

    /// <summary>The file's whole text from offset 0 (kernfs and seq_file regenerate it on a read from 0), trimmed.</summary>
    private string? ReadText(SafeFileHandle? handle)
    {
        if (handle is null) return null;
        try
        {
            var total = 0;
            int n;
            while (total < _buffer.Length && (n = RandomAccess.Read(handle, _buffer.AsSpan(total), total)) > 0) total += n;
            return Encoding.ASCII.GetString(_buffer, 0, total).Trim();
        }
        catch (IOException) { return null; } // the cgroup was removed (ENODEV)
    }

    public void Dispose()
    {
        foreach (var (files, _) in _counters)
            foreach (var f in files) f?.Dispose();
        _counters.Clear();
    }
}
