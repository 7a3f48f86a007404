using PSContainers.Runtime;
using PSContainers.Runtime.Cgroups;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

public sealed class CgroupLayoutTests
{
    private static readonly string[] OtherMounts =
    {
        "22 28 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw",
        "23 28 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw",
        "28 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw",
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
    };

    // Copied from /proc/self/mountinfo of the hybrid development host.
    private static readonly string[] HybridV1 =
    {
        "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu",
        "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct",
        "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset",
        "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
        "36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices",
        "37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer",
        "38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio",
        "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids",
        "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd",
    };
    private const string HybridV2 = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw";

    [Fact]
    public void PureV2()
    {
        var layout = CgroupLayout.Parse(new[]
        {
            OtherMounts[0], OtherMounts[2],
            "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot",
        });
        Assert.Equal(CgroupLayoutKind.Unified, layout.Kind);
        Assert.Equal("/sys/fs/cgroup", layout.UnifiedMount);
        Assert.Empty(layout.V1Mounts);
    }

    [Fact]
    public void Hybrid_LikeThisHost()
    {
        var layout = CgroupLayout.Parse(OtherMounts.Concat(HybridV1).Append(HybridV2));
        Assert.Equal(CgroupLayoutKind.Hybrid, layout.Kind);
        Assert.Equal("/sys/fs/cgroup/unified", layout.UnifiedMount);
        Assert.Equal(new[] { "blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids" }, layout.V1Mounts.Keys.Order());
        foreach (var (controller, mount) in layout.V1Mounts)
            Assert.Equal("/sys/fs/cgroup/" + controller, mount);
    }

    [Fact]
    public void LegacyV1Only()
    {
        var layout = CgroupLayout.Parse(OtherMounts.Concat(HybridV1));
        Assert.Equal(CgroupLayoutKind.Legacy, layout.Kind);
        Assert.Null(layout.UnifiedMount);
        Assert.Equal(8, layout.V1Mounts.Count);
        Assert.Equal("/sys/fs/cgroup/memory", layout.V1Mounts["memory"]);
    }

    [Fact]
    public void CoMountedCpuCpuacct_OneHierarchyForBoth()
    {
        var layout = CgroupLayout.Parse(new[]
        {
            "25 24 0:22 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:8 - cgroup cgroup rw,cpu,cpuacct",
            "26 24 0:23 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,net_cls,net_prio",
            "27 24 0:24 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,memory",
        });
        Assert.Equal(CgroupLayoutKind.Legacy, layout.Kind);
        Assert.Equal("/sys/fs/cgroup/cpu,cpuacct", layout.V1Mounts["cpu"]);
        Assert.Equal("/sys/fs/cgroup/cpu,cpuacct", layout.V1Mounts["cpuacct"]);
        Assert.Equal("/sys/fs/cgroup/net_cls,net_prio", layout.V1Mounts["net_prio"]);
        // The driver creates a cgroup once per hierarchy, not once per controller.
        var driver = new CgroupV1Driver(layout.V1Mounts);
        Assert.Equal(new[] { "/sys/fs/cgroup/cpu,cpuacct/p", "/sys/fs/cgroup/memory/p", "/sys/fs/cgroup/net_cls,net_prio/p" },
            driver.Directories("p").Order());
    }

    [Fact]
    public void NoCgroupFilesystem_IsAnError()
    {
        var ex = Assert.Throws<ContainerException>(() => CgroupLayout.Parse(OtherMounts));
        Assert.Equal("NoCgroupFilesystem", ex.ErrorId);
        Assert.Equal(ContainerErrorKind.NotInstalled, ex.Kind);
        Assert.Throws<ContainerException>(() => CgroupLayout.Parse(Array.Empty<string>()));
    }

    [Fact]
    public void OnlyNamedV1Hierarchy_IsNoController()
    {
        // name=systemd carries no controller: without cgroup2 there is nothing to use.
        var ex = Assert.Throws<ContainerException>(() => CgroupLayout.Parse(new[] { HybridV1[^1] }));
        Assert.Equal("NoCgroupFilesystem", ex.ErrorId);
    }

    [Fact]
    public void BindMountsOfSubCgroups_AreIgnored_AndEscapesDecoded()
    {
        var layout = CgroupLayout.Parse(new[]
        {
            // A container's view of its own cgroup bound somewhere: not a hierarchy root.
            "50 31 0:32 /docker/abc /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
            "51 31 0:38 /sub /mnt/sub rw,relatime - cgroup2 cgroup2 rw",
            "52 31 0:38 / /mnt/my\\040cgroups rw,relatime shared:7 master:3 - cgroup2 cgroup2 rw",
        });
        Assert.Equal(CgroupLayoutKind.Unified, layout.Kind);
        Assert.Equal("/mnt/my cgroups", layout.UnifiedMount);
        Assert.Empty(layout.V1Mounts);
    }

    [Fact]
    public void Detect_ReadsThisHost()
    {
        var layout = CgroupLayout.Detect();
        var lines = File.ReadAllLines("/proc/self/mountinfo");
        Assert.Equal(lines.Any(l => l.Contains(" - cgroup2 ")), layout.UnifiedMount is not null);
        Assert.Equal(lines.Any(l => l.Contains(" - cgroup cgroup ") && l.Contains(",memory")), layout.V1Mounts.ContainsKey("memory"));
    }
}

/// <summary>CgroupManager routing on a fake hybrid host: limits through v1, freeze through v2.</summary>
public sealed class CgroupManagerHybridTests : IDisposable
{
    private readonly TempDir _tree = new();
    private readonly CgroupManager _manager;

    public CgroupManagerHybridTests()
    {
        _tree.Write("memory/cgroup.procs", "");
        _tree.Write("freezer/cgroup.procs", "");
        _tree.Write("unified/cgroup.controllers", "hugetlb");
        _tree.Write("unified/cgroup.subtree_control", "");
        var v1 = new CgroupV1Driver(new Dictionary<string, string>
        {
            ["memory"] = _tree.Combine("memory"),
            ["freezer"] = _tree.Combine("freezer"),
        });
        _manager = new CgroupManager(v1, new CgroupV2Driver(_tree.Combine("unified")));
    }

    public void Dispose() => _tree.Dispose();

    [Fact]
    public void LayoutIsHybrid_AndControllersResolve()
    {
        Assert.Equal(CgroupLayoutKind.Hybrid, _manager.Layout);
        Assert.True(_manager.HasController("memory"));
        Assert.True(_manager.HasController("freezer"));
        Assert.True(_manager.HasController("hugetlb"));
        Assert.False(_manager.HasController("pids"));
    }

    [Fact]
    public void Create_MakesTheCgroupInBothTrees_AndEnablesNothingOnV2ForV1Controllers()
    {
        _manager.Create("p/c", new[] { "memory" });
        Assert.True(Directory.Exists(_tree.Combine("memory", "p", "c")));
        Assert.True(Directory.Exists(_tree.Combine("freezer", "p", "c")));
        Assert.True(Directory.Exists(_tree.Combine("unified", "p", "c")));
        Assert.Equal("", _tree.Read("unified/cgroup.subtree_control"));
        Assert.Equal(3, _manager.Directories("p/c").Count);
        Assert.Equal(3, _manager.ProcsFiles("p/c").Count);
    }

    [Fact]
    public void MemoryLimit_GoesToV1()
    {
        _manager.Create("p/c", new[] { "memory" });
        _tree.Write("memory/p/c/memory.limit_in_bytes", "9223372036854771712");
        Assert.Null(_manager.GetMemoryMax("p/c"));

        _manager.SetMemoryMax("p/c", 268435456);
        Assert.Equal("268435456", _tree.Read("memory/p/c/memory.limit_in_bytes"));
        Assert.Equal(268435456L, _manager.GetMemoryMax("p/c"));
        Assert.False(File.Exists(_tree.Combine("unified", "p", "c", "memory.max")));

        _manager.SetMemoryMax("p/c", null);
        Assert.Equal("-1", _tree.Read("memory/p/c/memory.limit_in_bytes"));
    }

    [Fact]
    public void Freeze_GoesToV2()
    {
        _manager.Create("p/c", Array.Empty<string>());
        _tree.Write("unified/p/c/cgroup.freeze", "0");
        _tree.Write("unified/p/c/cgroup.events", "populated 0\nfrozen 1\n");
        _tree.Write("freezer/p/c/freezer.state", "THAWED");

        _manager.Freeze("p/c", TimeSpan.FromSeconds(1));
        Assert.Equal("1", _tree.Read("unified/p/c/cgroup.freeze"));
        Assert.Equal("THAWED", _tree.Read("freezer/p/c/freezer.state"));
        Assert.True(_manager.IsFrozen("p/c"));

        _manager.Thaw("p/c");
        Assert.Equal("0", _tree.Read("unified/p/c/cgroup.freeze"));
        Assert.Equal("THAWED", _tree.Read("freezer/p/c/freezer.state"));
    }

    [Fact]
    public void Pids_ComeFromV2()
    {
        _manager.Create("p/c", Array.Empty<string>());
        _tree.Write("unified/p/c/cgroup.procs", "12\n34\n");
        _tree.Write("freezer/p/c/cgroup.procs", "99\n");
        Assert.Equal(new[] { 12, 34 }, _manager.Pids("p/c"));
    }

    [Fact]
    public void Create_UnavailableController_FailsWithoutLeavingTheCgroup()
    {
        var ex = Assert.Throws<ContainerException>(() => _manager.Create("p/c", new[] { "memory", "pids" }));
        Assert.Equal("CgroupControllerUnavailable", ex.ErrorId);
        Assert.Contains("pids", ex.Message);
        Assert.False(_manager.Exists("p/c"));
    }

    [Fact]
    public void Create_V2Failure_RollsBackTheV1Cgroup()
    {
        // hugetlb is offered at the v2 root but not delegated further down (p has no cgroup.controllers).
        var ex = Assert.Throws<ContainerException>(() => _manager.Create("p/c", new[] { "memory", "hugetlb" }));
        Assert.Equal("CgroupControllerUnavailable", ex.ErrorId);
        Assert.Contains("hugetlb", ex.Message);
        Assert.False(Directory.Exists(_tree.Combine("memory", "p", "c")));
        Assert.False(Directory.Exists(_tree.Combine("freezer", "p", "c")));
        Assert.False(_manager.Exists("p/c"));
    }

    [Fact]
    public void Remove_RemovesEverywhere_AndTheEmptyParent()
    {
        _manager.Create("p/c", Array.Empty<string>());
        _manager.Create("p/d", Array.Empty<string>());
        Assert.True(_manager.Remove("p/c"));
        Assert.False(_manager.Exists("p/c"));
        Assert.True(Directory.Exists(_tree.Combine("unified", "p")), "parent removed while p/d still lives");
        Assert.True(_manager.Remove("p/d"));
        Assert.False(Directory.Exists(_tree.Combine("memory", "p")));
        Assert.False(Directory.Exists(_tree.Combine("freezer", "p")));
        Assert.False(Directory.Exists(_tree.Combine("unified", "p")));
    }
}
