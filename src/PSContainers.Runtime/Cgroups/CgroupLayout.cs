using PSContainers.Runtime.Filesystem;

namespace PSContainers.Runtime.Cgroups;

public enum CgroupLayoutKind
{
    /// <summary>Pure cgroup v2 at /sys/fs/cgroup: what current distributions run.</summary>
    Unified,
    /// <summary>v1 controllers under /sys/fs/cgroup/&lt;controller&gt; plus a cgroup2 tree (usually /sys/fs/cgroup/unified).</summary>
    Hybrid,
    /// <summary>Only v1 hierarchies.</summary>
    Legacy,
}

/// <summary>Which cgroup hierarchies this host has mounted, read from /proc/self/mountinfo.</summary>
public sealed class CgroupLayout
{
    private static readonly HashSet<string> KnownV1Controllers = new()
    {
        "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "net_prio",
        "blkio", "perf_event", "hugetlb", "pids", "rdma", "misc",
    };

    public CgroupLayoutKind Kind { get; }
    public string? UnifiedMount { get; }
    public IReadOnlyDictionary<string, string> V1Mounts { get; }

    public CgroupLayout(CgroupLayoutKind kind, string? unifiedMount, IReadOnlyDictionary<string, string> v1Mounts)
    {
        Kind = kind;
        UnifiedMount = unifiedMount;
        V1Mounts = v1Mounts;
    }

    public static CgroupLayout Detect(string mountinfoPath = "/proc/self/mountinfo") =>
        Parse(File.ReadAllLines(mountinfoPath));

    public static CgroupLayout Parse(IEnumerable<string> mountinfoLines)
    {
        string? unified = null;
        var v1 = new Dictionary<string, string>();
        foreach (var mount in MountInfo.Parse(mountinfoLines))
        {
            // Only hierarchies mounted at their root: a bind of a sub-cgroup is not where we create ours.
            if (mount.Root != "/") continue;
            if (mount.FsType == "cgroup2")
                unified ??= mount.MountPoint;
            else if (mount.FsType == "cgroup")
                foreach (var opt in mount.SuperOptions.Split(','))
                    if (KnownV1Controllers.Contains(opt))
                        v1.TryAdd(opt, mount.MountPoint);
        }
        var kind = v1.Count == 0 ? CgroupLayoutKind.Unified : unified is null ? CgroupLayoutKind.Legacy : CgroupLayoutKind.Hybrid;
        if (kind == CgroupLayoutKind.Unified && unified is null)
            throw new ContainerException("NoCgroupFilesystem", ContainerErrorKind.NotInstalled,
                "No cgroup filesystem is mounted (neither cgroup2 nor any cgroup v1 controller). " +
                "Mount one, e.g. 'mount -t cgroup2 none /sys/fs/cgroup'.");
        return new CgroupLayout(kind, unified, v1);
    }
}
