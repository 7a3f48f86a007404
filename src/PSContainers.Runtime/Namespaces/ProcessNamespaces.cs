using System.Globalization;
using System.Text.RegularExpressions;

namespace PSContainers.Runtime.Namespaces;

/// <summary>One namespace of a process, as <c>ls -l /proc/PID/ns</c> shows it.</summary>
public sealed class ProcessNamespace
{
    public int ProcessId { get; init; }
    /// <summary>mnt, pid, net, uts, ipc, user, cgroup, time, pid_for_children, time_for_children.</summary>
    public string Type { get; init; } = "";
    public ulong Inode { get; init; }
    /// <summary>The link text, e.g. net:[4026531840].</summary>
    public string Link { get; init; } = "";
    /// <summary>The process compared with: pid 1 (the host's init) unless told otherwise.</summary>
    public int ReferenceProcessId { get; init; } = 1;
    /// <summary>The reference process's inode for the same type; null if it cannot be read (e.g. inside a sandbox).</summary>
    public ulong? ReferenceInode { get; init; }
    /// <summary>True when the process is in a different namespace than the reference (isolated in this respect); null if unknown.</summary>
    public bool? Isolated => ReferenceInode is { } i ? i != Inode : null;
}

/// <summary>One line of /proc/PID/cgroup: a hierarchy and the process's cgroup in it.</summary>
public sealed class ProcessCgroup
{
    public int ProcessId { get; init; }
    /// <summary>Hierarchy id; 0 is the cgroup v2 (unified) hierarchy.</summary>
    public int HierarchyId { get; init; }
    /// <summary>Controllers bound to the hierarchy (empty for v2, name=systemd for named ones).</summary>
    public IReadOnlyList<string> Controllers { get; init; } = Array.Empty<string>();
    public string Path { get; init; } = "";
    public string Version => HierarchyId == 0 ? "v2" : "v1";
}

public static class ProcessNamespaces
{
    private static readonly Regex LinkPattern = new(@"^(?<type>[a-z_]+):\[(?<inode>\d+)\]$", RegexOptions.CultureInvariant);

    private static ContainerException NoProcess(int pid) =>
        new("ProcessNotFound", ContainerErrorKind.ObjectNotFound, $"No process with id {pid} exists (or its /proc entry cannot be read).", pid);

    /// <summary>Each namespace of <paramref name="pid"/>, compared with <paramref name="referencePid"/>'s (pid 1: the host).</summary>
    public static IReadOnlyList<ProcessNamespace> Read(int pid, int referencePid = 1)
    {
        var dir = $"/proc/{pid}/ns";
        if (!Directory.Exists(dir)) throw NoProcess(pid);
        var result = new List<ProcessNamespace>();
        IEnumerable<string> entries;
        try { entries = Directory.EnumerateFileSystemEntries(dir).Order(StringComparer.Ordinal).ToList(); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { throw NoProcess(pid); }
        foreach (var entry in entries)
        {
            var link = ReadLink(entry);
            if (link is null) continue;
            var m = LinkPattern.Match(link);
            if (!m.Success) continue;
            var init = ReadLink($"/proc/{referencePid}/ns/{System.IO.Path.GetFileName(entry)}");
            var im = init is null ? null : LinkPattern.Match(init);
            result.Add(new ProcessNamespace
            {
                ProcessId = pid,
                Type = System.IO.Path.GetFileName(entry),
                Inode = ulong.Parse(m.Groups["inode"].Value, CultureInfo.InvariantCulture),
                Link = link,
                ReferenceProcessId = referencePid,
                ReferenceInode = im is { Success: true } ? ulong.Parse(im.Groups["inode"].Value, CultureInfo.InvariantCulture) : null,
            });
        }
        return result;
    }

    private static string? ReadLink(string path)
    {
        try { return new FileInfo(path).LinkTarget; }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return null; }
    }

    /// <summary>The cgroups <paramref name="pid"/> belongs to, from /proc/PID/cgroup.</summary>
    public static IReadOnlyList<ProcessCgroup> ReadCgroups(int pid)
    {
        string[] lines;
        try { lines = File.ReadAllLines($"/proc/{pid}/cgroup"); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { throw NoProcess(pid); }
        var result = new List<ProcessCgroup>();
        foreach (var line in lines)
        {
            // hierarchy-ID:controller-list:cgroup-path (the path may itself contain ':')
            var first = line.IndexOf(':');
            var second = first < 0 ? -1 : line.IndexOf(':', first + 1);
            if (second < 0) continue;
            result.Add(new ProcessCgroup
            {
                ProcessId = pid,
                HierarchyId = int.Parse(line[..first], CultureInfo.InvariantCulture),
                Controllers = line[(first + 1)..second].Split(',', StringSplitOptions.RemoveEmptyEntries),
                Path = line[(second + 1)..],
            });
        }
        return result;
    }
}
