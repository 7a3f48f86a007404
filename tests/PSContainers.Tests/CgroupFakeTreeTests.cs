using PSContainers.Runtime;
using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Config;

namespace PSContainers.Tests;

/// <summary>
/// Both drivers against directory trees that mimic a cgroup2 mount and v1 hierarchies, so the exact
/// file writes of every limit are asserted, including controllers this kernel keeps elsewhere.
/// The machine facts the drivers check (online cpus and memory nodes, huge page sizes, block
/// devices) come from a fake host tree too: these tests depend on the fake trees only.
/// </summary>
public sealed class CgroupFakeTreeTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "psc-test-cgfake-" + Guid.NewGuid().ToString("N")[..8]);

    public void Dispose()
    {
        try { Directory.Delete(_root, recursive: true); } catch (DirectoryNotFoundException) { }
    }

    private static readonly string[] V2Files =
    {
        "cgroup.controllers", "cgroup.subtree_control", "cgroup.procs", "memory.max", "memory.high", "memory.swap.max", "memory.low",
        "cpu.weight", "cpu.max", "cpuset.cpus", "cpuset.mems", "pids.max", "io.weight", "io.max", "hugetlb.2MB.max", "hugetlb.1GB.max",
    };

    private string HostDir(params string[] parts) => Path.Combine(new[] { _root, "host" }.Concat(parts).ToArray());

    /// <summary>
    /// A fake machine: cpus 0-3 and memory node 0 online, 2 MB and 1 GB huge pages, and a block
    /// device /dev/vda (host/dev/vda) numbered 254:0. Returns the driver settings that point at it.
    /// </summary>
    private (string Cpus, string Nodes, string HugePages, string SysClassBlock, string Dev) FakeHost()
    {
        Directory.CreateDirectory(HostDir("cpu"));
        File.WriteAllText(HostDir("cpu", "online"), "0-3\n");
        File.WriteAllText(HostDir("cpu", "nodes"), "0\n");
        foreach (var size in new[] { "2048kB", "1048576kB" }) Directory.CreateDirectory(HostDir("hugepages", "hugepages-" + size));
        Directory.CreateDirectory(HostDir("dev"));
        File.WriteAllText(HostDir("dev", "vda"), "");
        Directory.CreateDirectory(HostDir("block", "vda"));
        File.WriteAllText(HostDir("block", "vda", "dev"), "254:0\n");
        return (HostDir("cpu", "online"), HostDir("cpu", "nodes"), HostDir("hugepages"), HostDir("block"), HostDir("dev"));
    }

    /// <summary>root/ and root/psc/ delegate <paramref name="controllers"/>; root/psc/c1 has empty control files.</summary>
    private CgroupManager FakeV2(string controllers = "cpuset cpu io memory hugetlb pids")
    {
        foreach (var dir in new[] { _root, Path.Combine(_root, "psc") })
        {
            Directory.CreateDirectory(dir);
            File.WriteAllText(Path.Combine(dir, "cgroup.controllers"), controllers + "\n");
            File.WriteAllText(Path.Combine(dir, "cgroup.subtree_control"), "");
        }
        var leaf = Path.Combine(_root, "psc", "c1");
        Directory.CreateDirectory(leaf);
        foreach (var f in V2Files) File.WriteAllText(Path.Combine(leaf, f), "");
        var host = FakeHost();
        return new CgroupManager(null, new CgroupV2Driver(_root)
        {
            CpusOnlineFile = host.Cpus, NodesOnlineFile = host.Nodes, HugePagesDir = host.HugePages, SysClassBlockDir = host.SysClassBlock, DevDir = host.Dev,
        });
    }

    private string Leaf(string file) => File.ReadAllText(Path.Combine(_root, "psc", "c1", file));

    private static CgroupLimits FullSet() => new()
    {
        MemoryMax = 512L << 20,
        MemoryHigh = 400L << 20,
        MemorySwapMax = 1L << 30,
        MemoryLow = 128L << 20,
        CpuWeight = 250,
        CpuQuota = CgroupLimits.CpusToQuota(1.5, 100_000),
        CpuPeriod = 100_000,
        CpusetCpus = "0-1",
        CpusetMems = "0",
        PidsMax = 200,
        IoWeight = 300,
        IoDeviceLimits = { new IoDeviceLimit { Device = "254:0", ReadBps = 10L << 20, WriteIops = 100 } },
        HugetlbMax = { ["2MB"] = 64L << 20 },
    };

    [Fact]
    public void V2_ContainerLayout_LimitsOnTheOuterCgroup_ControllersEnabledForTheInnerOne()
    {
        var cg = FakeV2();
        // What the kernel shows in the outer cgroup once its parent enabled them.
        File.WriteAllText(Path.Combine(_root, "psc", "c1", "cgroup.controllers"), "cpuset cpu io memory hugetlb pids\n");
        File.WriteAllText(Path.Combine(_root, "psc", "c1", "cgroup.subtree_control"), "");
        cg.CreateContainer("psc/c1", new CgroupLimits { MemoryMax = 64L << 20, PidsMax = 40 });
        Assert.Equal("67108864", Leaf("memory.max"));
        Assert.Equal("40", Leaf("pids.max"));
        var inner = Path.Combine(_root, "psc", "c1", CgroupManager.InnerName);
        Assert.True(Directory.Exists(inner));
        // The limits are not on the inner cgroup (the container's namespace root): nothing was written there.
        Assert.Empty(Directory.EnumerateFiles(inner));
        // The outer cgroup enables the controllers for the inner one (it holds no process itself).
        Assert.Equal(new[] { "+memory", "+pids" }, Leaf("cgroup.subtree_control").Split(' ').Order());
        Assert.Equal("psc/c1/" + CgroupManager.InnerName, cg.JoinPathOf("psc/c1"));
        // A container started before the inner layout is joined in its outer cgroup.
        Directory.CreateDirectory(Path.Combine(_root, "psc", "old"));
        Assert.Equal("psc/old", cg.JoinPathOf("psc/old"));
        // Live limits go to the outer cgroup and enable what they need for the inner one.
        File.WriteAllText(Path.Combine(_root, "psc", "c1", "cgroup.subtree_control"), "");
        cg.ApplyContainerLimits("psc/c1", new CgroupLimits { CpuWeight = 50 });
        Assert.Equal("50", Leaf("cpu.weight"));
        Assert.Equal("+cpu", Leaf("cgroup.subtree_control"));
        Assert.Empty(Directory.EnumerateFiles(inner));
    }

    [Fact]
    public void V2_ContainerWithoutLimits_GetsTheAccountingControllers_WhereDelegated()
    {
        // Everything delegated: memory, pids, cpu and io are on from the outer cgroup down before init starts.
        var cg = FakeV2();
        File.WriteAllText(Path.Combine(_root, "psc", "c1", "cgroup.controllers"), "cpuset cpu io memory hugetlb pids\n");
        cg.CreateContainer("psc/c1", new CgroupLimits());
        foreach (var dir in new[] { _root, Path.Combine(_root, "psc"), Path.Combine(_root, "psc", "c1") })
            Assert.Equal(new[] { "+cpu", "+io", "+memory", "+pids" }, File.ReadAllText(Path.Combine(dir, "cgroup.subtree_control")).Split(' ').Order());
        Assert.True(Directory.Exists(Path.Combine(_root, "psc", "c1", CgroupManager.InnerName)));

        Directory.Delete(_root, recursive: true);
        // A subtree given only memory and pids: those, and no error for cpu and io (no limit asks for them).
        cg = FakeV2("memory pids");
        File.WriteAllText(Path.Combine(_root, "psc", "c1", "cgroup.controllers"), "memory pids\n");
        cg.CreateContainer("psc/c1", new CgroupLimits());
        Assert.Equal(new[] { "+memory", "+pids" }, Leaf("cgroup.subtree_control").Split(' ').Order());
        // A level holding processes (a non-root caller's own cgroup) is left alone, and so is what is
        // below it: enabling pids or cpu there would make it a thread root, where no new cgroup can
        // hold a process.
        Directory.Delete(_root, recursive: true);
        cg = FakeV2();
        File.WriteAllText(Path.Combine(_root, "psc", "cgroup.type"), "domain\n");
        File.WriteAllText(Path.Combine(_root, "psc", "cgroup.procs"), "4242\n");
        cg.CreateContainer("psc/c1", new CgroupLimits());
        Assert.Equal(new[] { "+cpu", "+io", "+memory", "+pids" }, File.ReadAllText(Path.Combine(_root, "cgroup.subtree_control")).Split(' ').Order());
        Assert.Equal("", File.ReadAllText(Path.Combine(_root, "psc", "cgroup.subtree_control")));
        Assert.Equal("", Leaf("cgroup.subtree_control"));

        // A limit on a controller that is not there is still an error, never a silently skipped limit.
        Directory.Delete(_root, recursive: true);
        cg = FakeV2("memory pids");
        var ex = Assert.Throws<ContainerException>(() => cg.CreateContainer("psc/c1", new CgroupLimits { CpuWeight = 50 }));
        Assert.Equal("CgroupControllerUnavailable", ex.ErrorId);
    }

    [Fact]
    public void V2_EveryLimit_WritesExactFileContents()
    {
        var cg = FakeV2();
        cg.ApplyLimits("psc/c1", FullSet());
        Assert.Equal("536870912", Leaf("memory.max"));
        Assert.Equal("419430400", Leaf("memory.high"));
        Assert.Equal("1073741824", Leaf("memory.swap.max"));
        Assert.Equal("134217728", Leaf("memory.low"));
        Assert.Equal("250", Leaf("cpu.weight"));
        Assert.Equal("150000 100000", Leaf("cpu.max"));
        Assert.Equal("0-1", Leaf("cpuset.cpus"));
        Assert.Equal("0", Leaf("cpuset.mems"));
        Assert.Equal("200", Leaf("pids.max"));
        Assert.Equal("default 300", Leaf("io.weight"));
        Assert.Equal("254:0 rbps=10485760 wiops=100", Leaf("io.max"));
        Assert.Equal("67108864", Leaf("hugetlb.2MB.max"));
        // The controllers were enabled in every ancestor's subtree_control.
        foreach (var dir in new[] { _root, Path.Combine(_root, "psc") })
        {
            var enabled = File.ReadAllText(Path.Combine(dir, "cgroup.subtree_control")).Split(' ');
            Assert.Equal(new[] { "+cpu", "+cpuset", "+hugetlb", "+io", "+memory", "+pids" }, enabled.Order());
        }
    }

    [Fact]
    public void V2_Unlimited_IsMax_AndBlockDeviceByPath()
    {
        var cg = FakeV2();
        cg.ApplyLimits("psc/c1", new CgroupLimits
        {
            MemoryMax = CgroupLimits.Unlimited, PidsMax = CgroupLimits.Unlimited, CpuQuota = CgroupLimits.Unlimited,
            IoDeviceLimits = { new IoDeviceLimit { Device = "/dev/vda", WriteBps = CgroupLimits.Unlimited, ReadIops = 50 } },
            HugetlbMax = { ["1GB"] = CgroupLimits.Unlimited },
        });
        Assert.Equal("max", Leaf("memory.max"));
        Assert.Equal("max", Leaf("pids.max"));
        Assert.Equal("max 100000", Leaf("cpu.max"));
        Assert.Equal("254:0 wbps=max riops=50", Leaf("io.max"));
        Assert.Equal("max", Leaf("hugetlb.1GB.max"));
    }

    [Fact]
    public void V2_CpuPeriodAlone_KeepsTheQuota()
    {
        var cg = FakeV2();
        File.WriteAllText(Path.Combine(_root, "psc", "c1", "cpu.max"), "50000 100000\n");
        var plan = cg.PlanLimits("psc/c1", new CgroupLimits { CpuPeriod = 200_000 });
        Assert.Equal("50000 200000", Assert.Single(plan).Value);
    }

    [Fact]
    public void V2_Devices_AreOneEbpfProgramWithAllRules_Last()
    {
        var cg = FakeV2();
        var plan = cg.PlanLimits("psc/c1", new CgroupLimits
        {
            PidsMax = 10,
            Devices = { DeviceRule.Parse("a", allow: false), DeviceRule.Parse("c 1:3 rwm", allow: true) },
        });
        Assert.Equal(2, plan.Count);
        Assert.Equal(Path.Combine(_root, "psc", "c1", "pids.max"), plan[0].File);
        var dev = plan[1];
        Assert.Equal("devices", dev.Controller);
        Assert.Equal(Path.Combine(_root, "psc", "c1"), dev.File);
        Assert.Equal(new[] { "deny a *:* rwm", "allow c 1:3 rwm" }, dev.DeviceProgram!.Select(r => r.ToString()));
        // The assembled program decodes back to the same rules.
        var code = CgroupDeviceProgram.Assemble(dev.DeviceProgram!);
        Assert.Equal(dev.DeviceProgram, CgroupDeviceProgram.Disassemble(code));
    }

    [Fact]
    public void V2_MissingController_IsAnErrorNamingIt()
    {
        var cg = FakeV2("cpu memory pids");
        var ex = Assert.Throws<ContainerException>(() => cg.ApplyLimits("psc/c1", new CgroupLimits { IoWeight = 100 }));
        Assert.Equal("CgroupControllerUnavailable", ex.ErrorId);
        Assert.Contains("io", ex.Message);
        Assert.Equal("", Leaf("io.weight"));
    }

    [Fact]
    public void V2_NetClsHasNoV2Counterpart()
    {
        var cg = FakeV2();
        var ex = Assert.Throws<ContainerException>(() => cg.PlanLimits("psc/c1", new CgroupLimits { NetClassId = 0x100001 }));
        Assert.Contains("net_cls", ex.Message);
    }

    [Fact]
    public void V2_ReadLimits_ReadsBackWhatWasWritten()
    {
        var cg = FakeV2();
        cg.ApplyLimits("psc/c1", FullSet());
        var r = cg.ReadLimits("psc/c1");
        Assert.Equal(512L << 20, r.MemoryMax);
        Assert.Equal(400L << 20, r.MemoryHigh);
        Assert.Equal(1L << 30, r.MemorySwapMax);
        Assert.Equal(250, r.CpuWeight);
        Assert.Equal(150_000, r.CpuQuota);
        Assert.Equal(100_000, r.CpuPeriod);
        Assert.Equal("0-1", r.CpusetCpus);
        Assert.Equal(200, r.PidsMax);
        Assert.Equal(300, r.IoWeight);
        var io = Assert.Single(r.IoDeviceLimits);
        Assert.Equal(("254:0", 10L << 20, 100L), (io.Device, io.ReadBps!.Value.Value, io.WriteIops!.Value.Value));
        Assert.Equal(64L << 20, r.HugetlbMax["2MB"].Value);
        Assert.Equal("v2", r.ControllerVersions["memory"]);
    }

    [Fact]
    public void V2_FailedWrite_UndoesEarlierWrites()
    {
        var cg = FakeV2();
        File.WriteAllText(Path.Combine(_root, "psc", "c1", "memory.max"), "1048576");
        // pids.max missing: the write fails after memory.max was written.
        File.Delete(Path.Combine(_root, "psc", "c1", "pids.max"));
        Assert.Throws<ContainerException>(() => cg.ApplyLimits("psc/c1", new CgroupLimits { MemoryMax = 2L << 20, PidsMax = 5 }));
        Assert.Equal("1048576", Leaf("memory.max"));
    }

    // ---- v1 --------------------------------------------------------------------------------------

    private CgroupManager FakeV1()
    {
        var mounts = new Dictionary<string, string>();
        var files = new Dictionary<string, string[]>
        {
            ["memory"] = new[] { "memory.limit_in_bytes", "memory.soft_limit_in_bytes", "memory.memsw.limit_in_bytes" },
            ["cpu"] = new[] { "cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us" },
            ["cpuset"] = new[] { "cpuset.cpus", "cpuset.mems" },
            ["pids"] = new[] { "pids.max" },
            ["blkio"] = new[] { "blkio.weight", "blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device", "blkio.throttle.read_iops_device", "blkio.throttle.write_iops_device" },
            ["hugetlb"] = new[] { "hugetlb.2MB.limit_in_bytes" },
            ["devices"] = new[] { "devices.allow", "devices.deny", "devices.list" },
            ["net_cls"] = new[] { "net_cls.classid" },
            ["net_prio"] = new[] { "net_prio.ifpriomap" },
        };
        foreach (var (controller, names) in files)
        {
            var root = Path.Combine(_root, controller);
            mounts[controller] = root;
            var leaf = Path.Combine(root, "psc", "c1");
            Directory.CreateDirectory(leaf);
            foreach (var f in names) File.WriteAllText(Path.Combine(leaf, f), "");
        }
        var host = FakeHost();
        return new CgroupManager(new CgroupV1Driver(mounts)
        {
            CpusOnlineFile = host.Cpus, NodesOnlineFile = host.Nodes, HugePagesDir = host.HugePages, SysClassBlockDir = host.SysClassBlock, DevDir = host.Dev,
        }, null);
    }

    private string V1(string controller, string file) => File.ReadAllText(Path.Combine(_root, controller, "psc", "c1", file));

    [Fact]
    public void V1_EveryLimit_WritesExactFileContents()
    {
        var cg = FakeV1();
        var limits = FullSet();
        limits.MemoryHigh = null; // no v1 equivalent, see below
        limits.IoWeight = 500;
        limits.NetClassId = 0x100001;
        limits.NetPrioIfPrioMap["eth0"] = 5;
        cg.ApplyLimits("psc/c1", limits);
        Assert.Equal("536870912", V1("memory", "memory.limit_in_bytes"));
        Assert.Equal("134217728", V1("memory", "memory.soft_limit_in_bytes"));
        Assert.Equal((512L + 1024) * 1024 * 1024 + "", V1("memory", "memory.memsw.limit_in_bytes"));
        Assert.Equal("2560", V1("cpu", "cpu.shares"));
        Assert.Equal("150000", V1("cpu", "cpu.cfs_quota_us"));
        Assert.Equal("100000", V1("cpu", "cpu.cfs_period_us"));
        Assert.Equal("0-1", V1("cpuset", "cpuset.cpus"));
        Assert.Equal("0", V1("cpuset", "cpuset.mems"));
        Assert.Equal("200", V1("pids", "pids.max"));
        Assert.Equal("500", V1("blkio", "blkio.weight"));
        Assert.Equal("254:0 10485760", V1("blkio", "blkio.throttle.read_bps_device"));
        Assert.Equal("254:0 100", V1("blkio", "blkio.throttle.write_iops_device"));
        Assert.Equal("", V1("blkio", "blkio.throttle.write_bps_device"));
        Assert.Equal("67108864", V1("hugetlb", "hugetlb.2MB.limit_in_bytes"));
        Assert.Equal("1048577", V1("net_cls", "net_cls.classid"));
        Assert.Equal("eth0 5", V1("net_prio", "net_prio.ifpriomap"));
    }

    [Fact]
    public void V1_DeviceRules_GoToAllowAndDenyInOrder()
    {
        var cg = FakeV1();
        var plan = cg.PlanLimits("psc/c1", new CgroupLimits { Devices = { DeviceRule.Parse("a", false), DeviceRule.Parse("c 1:3 rwm", true), DeviceRule.Parse("b *:* m", true) } });
        Assert.Equal(new[] { "devices.deny <- a *:* rwm", "devices.allow <- c 1:3 rwm", "devices.allow <- b *:* m" },
            plan.Select(w => $"{Path.GetFileName(w.File)} <- {w.Value}"));
    }

    [Fact]
    public void V1_UnlimitedIsMinusOne_AndMemoryHighIsRefused()
    {
        var cg = FakeV1();
        cg.ApplyLimits("psc/c1", new CgroupLimits { MemoryMax = CgroupLimits.Unlimited, CpuQuota = CgroupLimits.Unlimited, PidsMax = CgroupLimits.Unlimited });
        Assert.Equal("-1", V1("memory", "memory.limit_in_bytes"));
        Assert.Equal("-1", V1("cpu", "cpu.cfs_quota_us"));
        Assert.Equal("max", V1("pids", "pids.max"));
        var ex = Assert.Throws<ContainerException>(() => cg.PlanLimits("psc/c1", new CgroupLimits { MemoryHigh = 1L << 20 }));
        Assert.Equal("CgroupLimitUnsupported", ex.ErrorId);
        Assert.Contains("memory.high", ex.Message);
    }

    [Fact]
    public void V1_SwapWithoutMemoryMax_IsAPreciseError()
    {
        var cg = FakeV1();
        File.WriteAllText(Path.Combine(_root, "memory", "psc", "c1", "memory.limit_in_bytes"), "9223372036854771712");
        var ex = Assert.Throws<ContainerException>(() => cg.PlanLimits("psc/c1", new CgroupLimits { MemorySwapMax = 1L << 30 }));
        Assert.Equal("SwapNeedsMemoryMax", ex.ErrorId);
    }

    // ---- validation ------------------------------------------------------------------------------

    [Theory]
    [InlineData("c 1:3 rwm", "allow c 1:3 rwm")]
    [InlineData("b *:* m", "allow b *:* m")]
    [InlineData("a", "allow a *:* rwm")]
    [InlineData("deny c 5:* rw", "deny c 5:* rw")]
    public void DeviceRule_Parses(string text, string expected) => Assert.Equal(expected, DeviceRule.Parse(text, allow: true).ToString());

    [Theory]
    [InlineData("x 1:3 rwm")]
    [InlineData("c 1:3 rwx")]
    [InlineData("c 1 rwm")]
    [InlineData("c 1:3 rr")]
    [InlineData("a 1:3 rwm")]
    [InlineData("")]
    public void DeviceRule_BadSyntax_IsPreciseError(string text)
    {
        var ex = Assert.Throws<ContainerException>(() => DeviceRule.Parse(text, allow: true));
        Assert.Equal("InvalidDeviceRule", ex.ErrorId);
        Assert.Contains($"'{text}'", ex.Message);
    }

    [Fact]
    public void CpusNotOnThisMachine_IsPreciseError()
    {
        var cg = FakeV2();
        var ex = Assert.Throws<ContainerException>(() => cg.PlanLimits("psc/c1", new CgroupLimits { CpusetCpus = "0-1,4096" }));
        Assert.Equal("CgroupCpusNotOnline", ex.ErrorId);
        Assert.Contains("4096", ex.Message);
    }

    [Fact]
    public void NegativeAndOutOfRangeValues_AreRejected()
    {
        Assert.Equal("InvalidCgroupLimit", Assert.Throws<ContainerException>(() => new CgroupLimits { PidsMax = -5 }.Validate()).ErrorId);
        Assert.Contains("MemoryMax", Assert.Throws<ContainerException>(() => new CgroupLimits { MemoryMax = -1 }.Validate()).Message);
        Assert.Throws<ContainerException>(() => new CgroupLimits { CpuWeight = 0 }.Validate());
        Assert.Throws<ContainerException>(() => new CgroupLimits { CpuQuota = 10 }.Validate());
        Assert.Throws<ContainerException>(() => CgroupLimits.CpusToQuota(-1, 100_000));
        Assert.Throws<ContainerException>(() => IoDeviceLimit.Parse("/dev/vda rbps=-1"));
        Assert.Throws<ContainerException>(() => IoDeviceLimit.Parse("vda rbps=1M"));
        Assert.Equal("HugePageSizeUnavailable", Assert.Throws<ContainerException>(() =>
            FakeV2().PlanLimits("psc/c1", new CgroupLimits { HugetlbMax = { ["64KB"] = 1 } })).ErrorId);
    }

    // ---- config.yaml -----------------------------------------------------------------------------

    [Fact]
    public void Config_AllLimitKeys_RoundTrip()
    {
        var config = ConfigLoader.Parse("""
            limits:
              memory: 512M
              memoryHigh: 400MB
              memorySwap: max
              memoryLow: 128M
              cpuWeight: 200
              cpus: 1.5
              cpuPeriod: 200000
              cpusetCpus: 0-1
              cpusetMems: 0
              pids: 100
              ioWeight: 50
              io:
                - { device: /dev/vda, readBps: 10M, writeIops: 100 }
              hugetlb: { 2MB: 64M }
              devices: [deny a, allow c 1:3 rwm]
              netClassId: 0x100001
              netPrio: { eth0: 5 }
            """, "t.yaml");
        var l = config.Limits;
        Assert.Equal(512L << 20, l.MemoryMax);
        Assert.Equal(CgroupLimits.Unlimited, l.MemorySwapMax);
        Assert.Equal(300_000, l.CpuQuota);
        Assert.Equal(200_000, l.CpuPeriod);
        Assert.Equal(100, l.PidsMax);
        Assert.Equal("/dev/vda", l.IoDeviceLimits[0].Device);
        Assert.Equal(64L << 20, l.HugetlbMax["2MB"].Value);
        Assert.Equal(new[] { "deny a *:* rwm", "allow c 1:3 rwm" }, l.Devices.Select(d => d.ToString()));
        Assert.Equal(0x100001u, l.NetClassId);
        Assert.Equal(5u, l.NetPrioIfPrioMap["eth0"]);
        var again = ConfigLoader.Parse(ConfigLoader.Serialize(config), "again").Limits;
        Assert.Equal(ConfigLoader.Serialize(config), ConfigLoader.Serialize(new ContainerConfig { Limits = (LimitsConfig)again }));
        Assert.Equal(l.Controllers(), again.Controllers());
        Assert.Equal(l.CpuQuota, again.CpuQuota);
        Assert.Equal(l.Devices, again.Devices);
        Assert.Equal(l.IoDeviceLimits.Single().ToString(), again.IoDeviceLimits.Single().ToString());
    }

    [Theory]
    [InlineData("limits:\n  pids: -5\n", "t.yaml:2:9", "limits.pids")]
    [InlineData("limits:\n  devices: [allow q 1:3]\n", "t.yaml:2:13", "Invalid device rule")]
    [InlineData("limits:\n  devices: [c 1:3 rwm]\n", "t.yaml:2:13", "must start with allow or deny")]
    [InlineData("limits:\n  cpus: -1\n", "t.yaml:2:9", "limits.cpus")]
    [InlineData("limits:\n  cpusetCpus: 3-1\n", "t.yaml:2:15", "ranges")]
    [InlineData("limits:\n  hugetlb: { 3MB: 1M }\n", "t.yaml:2:14", "page size")]
    [InlineData("limits:\n  io: [{ readBps: 1M }]\n", "t.yaml:2:8", "block device")]
    [InlineData("limits:\n  cpuWeight: 0\n", "t.yaml:2:14", "limits.cpuWeight")]
    [InlineData("limits:\n  bogus: 1\n", "t.yaml:2:3", "unknown key 'bogus'")]
    public void Config_BadLimit_IsErrorWithPosition(string yaml, string position, string fragment)
    {
        var ex = Assert.Throws<ContainerException>(() => ConfigLoader.Parse(yaml, "t.yaml"));
        Assert.StartsWith(position + ":", ex.Message);
        Assert.Contains(fragment, ex.Message);
    }
}
