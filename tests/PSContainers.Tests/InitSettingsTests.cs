using PSContainers.Runtime;
using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.State;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// limits.prlimit, sysctl and oomScoreAdj (LXC's lxc.prlimit.*, lxc.sysctl.*, lxc.proc.oom_score_adj):
/// read and refused at file:line:column, then applied to real containers in the store's default
/// mode (user-namespaced unless the store says otherwise) and seen from inside; the host's own
/// values never change.
/// </summary>
public sealed class InitSettingsConfigTests
{
    private static ContainerException Invalid(string yaml)
    {
        var ex = Assert.Throws<ContainerException>(() => ConfigLoader.Parse(yaml, "c.yaml"));
        Assert.Equal("InvalidConfig", ex.ErrorId);
        return ex;
    }

    [Fact]
    public void Keys_AreReadAndWrittenBack()
    {
        const string yaml = "limits:\n  prlimit: { nofile: \"1024:4096\", core: unlimited }\nsysctl:\n  net.ipv4.ip_forward: \"1\"\n  kernel.msgmax: \"12345\"\noomScoreAdj: -500\n";
        var config = ConfigLoader.Parse(yaml, "c.yaml");
        Assert.Equal("1024:4096", config.Limits.Prlimit["nofile"]);
        Assert.Equal("unlimited", config.Limits.Prlimit["core"]);
        Assert.Equal("1", config.Sysctl["net.ipv4.ip_forward"]);
        Assert.Equal(-500, config.OomScoreAdj);
        var text = ConfigLoader.Serialize(config);
        var again = ConfigLoader.Parse(text, "again.yaml");
        Assert.Equal(text, ConfigLoader.Serialize(again));
        Assert.Equal("12345", again.Sysctl["kernel.msgmax"]);
        Assert.Equal("1024:4096", again.Limits.Prlimit["nofile"]);
        Assert.Equal(-500, again.OomScoreAdj);
        // prlimit alone (no cgroup limit) sits in a flow-style limits mapping and still reads back.
        var only = ConfigLoader.Parse(ConfigLoader.Serialize(ConfigLoader.Parse("limits:\n  prlimit: { nproc: 100 }\n", "c.yaml")), "c.yaml");
        Assert.Equal("100", only.Limits.Prlimit["nproc"]);
    }

    [Fact]
    public void Defaults_AreNotWritten()
    {
        var text = ConfigLoader.Serialize(ConfigLoader.Parse("hostname: h\n", "c.yaml"));
        Assert.DoesNotContain("sysctl", text);
        Assert.DoesNotContain("oomScoreAdj", text);
        Assert.DoesNotContain("prlimit", text);
    }

    [Theory]
    [InlineData("sysctl:\n  kernel.panic: \"1\"\n", "c.yaml:2:3: sysctl 'kernel.panic' is not namespaced: writing it would change the host")]
    [InlineData("sysctl:\n  vm.swappiness: \"1\"\n", "c.yaml:2:3: sysctl 'vm.swappiness' is not namespaced")]
    [InlineData("sysctl:\n  kernel.hostname: x\n", "c.yaml:2:3: sysctl 'kernel.hostname' is not accepted: set the container's name with the hostname key")]
    [InlineData("sysctl:\n  net/../../kernel/panic: \"1\"\n", "c.yaml:2:3: 'net/../../kernel/panic' is not a sysctl name")]
    [InlineData("sysctl:\n  net.ipv4.ip_forward: \"\"\n", "c.yaml:2:24: invalid value for sysctl.net.ipv4.ip_forward")]
    [InlineData("sysctl: [a]\n", "c.yaml:1:9: expected a mapping of name: value for sysctl")]
    [InlineData("limits:\n  prlimit: { files: 10 }\n", "c.yaml:2:21: unknown resource 'files' in limits.prlimit (expected one of: cpu, fsize")]
    [InlineData("limits:\n  prlimit: { nofile: \"4096:1024\" }\n", "c.yaml:2:22: limits.prlimit.nofile: the soft limit 4096 is above the hard limit 1024")]
    [InlineData("limits:\n  prlimit: { nofile: \"1:2:3\" }\n", "c.yaml:2:22: invalid value '1:2:3' for limits.prlimit.nofile")]
    [InlineData("limits:\n  prlimit: { nofile: -1 }\n", "c.yaml:2:22: invalid value '-1' for limits.prlimit.nofile")]
    [InlineData("oomScoreAdj: 1001\n", "c.yaml:1:14: invalid value '1001' for oomScoreAdj (expected a whole number from -1000")]
    [InlineData("oomScoreAdj: low\n", "c.yaml:1:14: invalid value 'low' for oomScoreAdj")]
    public void BadValues_AreRefusedAtTheirLineAndColumn(string yaml, string expected) =>
        Assert.StartsWith(expected, Invalid(yaml).Message);

    [Fact]
    public void AConfigMadeInCode_IsCheckedByTheSameRules()
    {
        var config = new ContainerConfig();
        config.Sysctl["kernel.panic"] = "1";
        Assert.Contains("not namespaced", Assert.Throws<ContainerException>(() => ConfigLoader.Validate(config)).Message);
        config.Sysctl.Clear();
        config.Limits.Prlimit["nofile"] = "9:1";
        Assert.Contains("limits.prlimit.nofile", Assert.Throws<ContainerException>(() => ConfigLoader.Validate(config)).Message);
        config.Limits.Prlimit.Clear();
        config.OomScoreAdj = -1001;
        Assert.Contains("oomScoreAdj", Assert.Throws<ContainerException>(() => ConfigLoader.Validate(config)).Message);
        config.OomScoreAdj = -1000;
        ConfigLoader.Validate(config);
    }
}

[Collection("Containers")]
public sealed class InitSettingsTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly ModuleSession _ps;

    public InitSettingsTests()
    {
        try { _ps = _store.OpenSession(); }
        catch { _store.Dispose(); throw; }
    }

    public void Dispose()
    {
        _ps.Dispose();
        _store.Dispose();
    }

    // Init records what it was given before it sleeps: its limits (busybox sh's ulimit), and the
    // sysctls as its namespaces see them.
    private const string Init = """
        init:
          command: [/bin/sh, -c, "ulimit -Sn > /psc-test-seen; ulimit -Hn >> /psc-test-seen; cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax >> /psc-test-seen; exec sleep 600"]
        """;

    private string Create(string hint, string yaml)
    {
        var name = TestStore.NewName(hint);
        var config = Path.Combine(_store.Root, name + ".yaml");
        File.WriteAllText(config, yaml);
        _ps.Run("New-Container -Name $args[0] -Template busybox -ConfigPath $args[1]", name, config);
        return name;
    }

    private ContainerCommandResult Exec(string name, params string[] command) =>
        (ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] -Command $args[1]", name, command).Single().BaseObject;

    private string[] Seen(string name)
    {
        for (int i = 0; i < 100; i++)
        {
            var r = Exec(name, "cat", "/psc-test-seen");
            if (r.ExitCode == 0 && r.Output.Length == 4) return r.Output;
            Thread.Sleep(50);
        }
        throw new Xunit.Sdk.XunitException($"init of {name} never wrote /psc-test-seen");
    }

    [Fact]
    public void PrlimitSysctlAndOomScore_ReachInit_AndNotTheHost()
    {
        var hostForward = File.ReadAllText("/proc/sys/net/ipv4/ip_forward").Trim();
        var hostMsgmax = File.ReadAllText("/proc/sys/kernel/msgmax").Trim();
        var otherForward = hostForward == "1" ? "0" : "1";
        var name = Create("keys", Init + $"""

            limits:
              prlimit: {"{"} nofile: "1000:2000" {"}"}
            sysctl:
              net.ipv4.ip_forward: "{otherForward}"
              kernel.msgmax: "12345"
            oomScoreAdj: 321
            """);
        var info = (ContainerInfo)_ps.Run("Start-Container $args[0] -PassThru", name).Single().BaseObject;
        Assert.Equal(new[] { "1000", "2000", otherForward, "12345" }, Seen(name));
        // Init's own score, from the host and from inside.
        Assert.Equal("321", File.ReadAllText($"/proc/{info.Pid}/oom_score_adj").Trim());
        Assert.Equal("321", Exec(name, "cat", "/proc/1/oom_score_adj").Output.Single());
        Assert.Contains("Max open files            1000                 2000", File.ReadAllText($"/proc/{info.Pid}/limits"));
        // The host's values are untouched.
        Assert.Equal(hostForward, File.ReadAllText("/proc/sys/net/ipv4/ip_forward").Trim());
        Assert.Equal(hostMsgmax, File.ReadAllText("/proc/sys/kernel/msgmax").Trim());
    }

    [Fact]
    public void WithoutTheKeys_InitKeepsTheDefaults()
    {
        var name = Create("nokeys", Init);
        var info = (ContainerInfo)_ps.Run("Start-Container $args[0] -PassThru", name).Single().BaseObject;
        var seen = Seen(name);
        // A new network namespace does not forward; init inherits the starter's limits and score.
        Assert.Equal("0", seen[2]);
        var ownFiles = File.ReadLines("/proc/self/limits").Single(l => l.StartsWith("Max open files", StringComparison.Ordinal));
        Assert.Equal(ownFiles, File.ReadLines($"/proc/{info.Pid}/limits").Single(l => l.StartsWith("Max open files", StringComparison.Ordinal)));
        Assert.Equal(File.ReadAllText("/proc/self/oom_score_adj"), File.ReadAllText($"/proc/{info.Pid}/oom_score_adj"));
    }

    /// <summary>
    /// A negative score needs CAP_SYS_RESOURCE in the host's user namespace: with it init gets the
    /// score; without it (a confined root, or a non-root caller) the start fails, said so, and leaves nothing.
    /// </summary>
    [Fact]
    public void ALowerOomScore_NeedsSysResource()
    {
        const int CapSysResource = 24;
        var effective = Convert.ToUInt64(File.ReadLines("/proc/self/status").Single(l => l.StartsWith("CapEff:", StringComparison.Ordinal))[7..].Trim(), 16);
        var name = Create("oomlow", Init + "\noomScoreAdj: -200\n");
        var result = _ps.Invoke("Start-Container $args[0] -PassThru", name);
        if ((effective & (1UL << CapSysResource)) != 0)
        {
            Assert.Empty(result.Errors);
            Assert.Equal("-200", File.ReadAllText($"/proc/{result.Single<ContainerInfo>().Pid}/oom_score_adj").Trim());
            return;
        }
        var error = result.SingleError;
        Assert.Equal("OomScoreAdjFailed", error.FullyQualifiedErrorId.Split(',')[0]);
        Assert.Contains("oomScoreAdj -200", error.ToString());
        Assert.Equal(ContainerStatus.Stopped, ((ContainerInfo)_ps.Run("Get-Container $args[0]", name).Single().BaseObject).State);
        foreach (var dir in CgroupManager.ForHost().Directories(Path.Combine(_store.CgroupParent, name)))
            Assert.False(Directory.Exists(dir), $"cgroup {dir} was left behind");
    }

    [Fact]
    public void ASysctlTheKernelDoesNotHave_FailsTheStart_AndLeavesNothing()
    {
        var name = Create("badsysctl", "sysctl:\n  net.ipv4.psc_test_no_such_key: \"1\"\n");
        var error = _ps.Invoke("Start-Container $args[0]", name).SingleError;
        Assert.Contains("sysctl net.ipv4.psc_test_no_such_key", error.ToString());
        Assert.Equal("StartFailed", error.FullyQualifiedErrorId.Split(',')[0]);
        var info = (ContainerInfo)_ps.Run("Get-Container $args[0]", name).Single().BaseObject;
        Assert.Equal(ContainerStatus.Stopped, info.State);
        foreach (var dir in CgroupManager.ForHost().Directories(Path.Combine(_store.CgroupParent, name)))
            Assert.False(Directory.Exists(dir), $"cgroup {dir} was left behind");
    }

    [Fact]
    public void NetSysctl_InTheHostsNetworkNamespace_IsRefused()
    {
        var name = Create("hostnet", "network:\n  - type: none\nsysctl:\n  net.ipv4.ip_forward: \"1\"\n");
        var error = _ps.Invoke("Start-Container $args[0]", name).SingleError;
        Assert.Equal("SysctlNeedsNetworkNamespace", error.FullyQualifiedErrorId.Split(',')[0]);
        Assert.Equal(ContainerStatus.Stopped, ((ContainerInfo)_ps.Run("Get-Container $args[0]", name).Single().BaseObject).State);
    }
}

/// <summary>
/// mounts: entries with a type and options (lxc.mount.entry): a tmpfs with its size and mode, a
/// read-only bind given as an option, and a target that is a symlink out of the root, which lands
/// inside the root instead (the native side opens every target with RESOLVE_IN_ROOT).
/// </summary>
[Collection("Containers")]
public sealed class MountEntryTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly ModuleSession _ps;
    private readonly string _hostDir = Path.Combine(Path.GetTempPath(), "psc-test-mnt-" + Guid.NewGuid().ToString("N")[..8]);

    public MountEntryTests()
    {
        try { _ps = _store.OpenSession(); Directory.CreateDirectory(_hostDir); }
        catch { _store.Dispose(); throw; }
    }

    public void Dispose()
    {
        _ps.Dispose();
        _store.Dispose();
        try { Directory.Delete(_hostDir, recursive: true); } catch (IOException) { }
    }

    [Theory]
    [InlineData("mounts:\n  - { target: /t, type: 'Tmp fs' }\n", "c.yaml:2:25: invalid filesystem type 'Tmp fs' for mounts[0].type")]
    [InlineData("mounts:\n  - { source: /srv, target: /t, options: 'ro,size=1m' }\n", "c.yaml:2:42: mounts[0].options: a bind mount takes only ro, rw, nosuid, nodev and noexec, not 'size=1m'")]
    [InlineData("mounts:\n  - { target: /t, type: tmpfs, options: 'ro,,size=1m' }\n", "c.yaml:2:41: mounts[0].options has an empty option")]
    [InlineData("mounts:\n  - { target: /t }\n", "c.yaml:2:5: mounts[0] needs a source")]
    [InlineData("mounts:\n  - { source: srv, target: /t }\n", "c.yaml:2:15: ")]
    public void BadEntries_AreRefusedAtTheirLineAndColumn(string yaml, string expected)
    {
        var ex = Assert.Throws<ContainerException>(() => ConfigLoader.Parse(yaml, "c.yaml"));
        Assert.StartsWith(expected, ex.Message);
    }

    [Fact]
    public void Entries_AreWrittenBack()
    {
        var config = ConfigLoader.Parse("mounts:\n  - { target: /run/t, type: tmpfs, options: 'nosuid,size=1m,mode=0700' }\n", "c.yaml");
        Assert.Equal("", config.Mounts[0].Source);
        var again = ConfigLoader.Parse(ConfigLoader.Serialize(config), "c.yaml");
        Assert.Equal("tmpfs", again.Mounts[0].Type);
        Assert.Equal("nosuid,size=1m,mode=0700", again.Mounts[0].Options);
    }

    [Fact]
    public void TmpfsReadOnlyBindAndAnEscapingLink_OnARealContainer()
    {
        File.WriteAllText(Path.Combine(_hostDir, "file"), "from the host");
        var name = TestStore.NewName("mnt");
        var config = Path.Combine(_store.Root, name + ".yaml");
        File.WriteAllText(config, $"""
            init:
              command: [/bin/sleep, "600"]
            mounts:
              - {"{"} target: /psc-tmp, type: tmpfs, options: "nosuid,nodev,size=1m,mode=0710" {"}"}
              - {"{"} source: {_hostDir}, target: /psc-ro, options: "ro,nosuid" {"}"}
            """);
        _ps.Run("New-Container -Name $args[0] -Template busybox -ConfigPath $args[1]", name, config);
        _ps.Run("Start-Container $args[0]", name);

        string Sh(string script)
        {
            var r = (ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] -Command $args[1]", name, new[] { "/bin/sh", "-c", script }).Single().BaseObject;
            return string.Join("\n", r.Output.Concat(r.Error)).Trim();
        }
        var mounts = Sh("cat /proc/mounts");
        var tmp = mounts.Split('\n').Single(l => l.Split(' ')[1] == "/psc-tmp");
        Assert.StartsWith("tmpfs /psc-tmp tmpfs rw,nosuid,nodev", tmp);
        Assert.Contains("size=1024k", tmp);
        Assert.Contains("mode=710", tmp);
        Assert.Contains(mounts.Split('\n'), l => l.Split(' ') is [_, "/psc-ro", _, var o, ..] && o.Split(',').Contains("ro") && o.Split(',').Contains("nosuid"));
        Assert.Equal("from the host", Sh("cat /psc-ro/file"));
        Assert.Contains("Read-only file system", Sh("echo x > /psc-ro/new"));
        Assert.False(File.Exists(Path.Combine(_hostDir, "new")));
    }

    [Fact]
    public void AMountTargetThroughALinkOutOfTheRoot_IsResolvedInsideIt()
    {
        var name = TestStore.NewName("mntlink");
        var config = Path.Combine(_store.Root, name + ".yaml");
        File.WriteAllText(config, "init:\n  command: [/bin/sleep, \"600\"]\nmounts:\n  - { target: /psc-out/inner, type: tmpfs, options: \"size=2m\" }\n");
        _ps.Run("New-Container -Name $args[0] -Template busybox -ConfigPath $args[1]", name, config);
        // A hostile rootfs: /psc-out is a link to the host's test directory, by its absolute host path.
        var rootfs = (string)_ps.Run("(Get-Container $args[0]).RootfsPath", name).Single().BaseObject;
        File.CreateSymbolicLink(Path.Combine(rootfs, "psc-out"), _hostDir);
        var error = _ps.Invoke("Start-Container $args[0]", name).SingleError;
        // Inside the root that path does not exist: the start is refused, and the host directory is untouched.
        Assert.Equal("StartFailed", error.FullyQualifiedErrorId.Split(',')[0]);
        Assert.Contains("/psc-out is a symlink to " + _hostDir + ", which does not exist inside the container", error.ToString());
        Assert.Empty(Directory.EnumerateFileSystemEntries(_hostDir));
        Assert.DoesNotContain(File.ReadAllLines("/proc/self/mountinfo"), l => l.Contains(_hostDir, StringComparison.Ordinal));
        // Made inside the root, the same path is where the mount lands: the link resolves to rootfs/<host dir>.
        Directory.CreateDirectory(rootfs + _hostDir);
        _ps.Run("Start-Container $args[0]", name);
        var r = (ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] -Command $args[1]", name, new[] { "cat", "/proc/mounts" }).Single().BaseObject;
        Assert.Contains(r.Output, l => l.Split(' ')[1] == _hostDir + "/inner" && l.Contains("size=2048k"));
        Assert.Empty(Directory.EnumerateFileSystemEntries(_hostDir));
    }
}
