using System.IO.Compression;
using System.Text;
using PSContainers.Runtime.IdMapping;
using PSContainers.Tests.Infrastructure;
using PSContainers.Runtime.HostCheck;

namespace PSContainers.Tests;

/// <summary>
/// ContainerHostCheck on a prepared /proc-like tree (a kernel without some features, a cgroup2
/// mount with a delegated user subtree) and on real binaries made setuid-less or given file
/// capabilities with setcap - what this machine's kernel has is checked in SubordinateIdCmdletTests.
/// </summary>
public sealed class HostCheckTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private ContainerHostCheck FakeHost(string searchDir)
    {
        var proc = _dir.Combine("proc");
        foreach (var ns in new[] { "user", "mnt", "pid", "net", "uts", "ipc" }) _dir.Write($"proc/self/ns/{ns}", "");
        _dir.Write("proc/sys/user/max_user_namespaces", "0\n");
        _dir.Write("proc/sys/kernel/unprivileged_userns_clone", "0\n");
        _dir.Write("proc/filesystems", "nodev\tsysfs\nnodev\tproc\n\text4\n");
        _dir.Write("proc/self/status", "Name:\ttest\nUid:\t0\t0\t0\t0\n");
        var cgroup = _dir.Combine("cgroup");
        _dir.Write("cgroup/cgroup.controllers", "cpu memory io\n");
        _dir.Write("proc/self/mountinfo", $"30 1 0:26 / {cgroup} rw,nosuid - cgroup2 cgroup2 rw\n");
        _dir.Write("proc/self/cgroup", "0::/\n");
        using (var gz = new GZipStream(File.Create(_dir.Combine("proc/config.gz")), CompressionLevel.Fastest))
            gz.Write(Encoding.ASCII.GetBytes("CONFIG_SECCOMP=y\n# CONFIG_SECCOMP_FILTER is not set\n"));
        _dir.Write("ids/subuid", "daemon:100000:1000\n");
        _dir.Write("ids/subgid", "");
        return new ContainerHostCheck
        {
            ProcRoot = proc,
            SubordinateIds = new SubordinateIdDatabase(SubordinateIdPaths.InDirectory(_dir.Combine("ids"))),
            SearchPath = new[] { searchDir },
        };
    }

    [Fact]
    public void AKernelWithoutFeatures_FailsAndWarns_WithRemedies()
    {
        var bin = _dir.Combine("bin");
        Directory.CreateDirectory(bin);
        var daemon = UserAccounts.Require("daemon");
        var findings = FakeHost(bin).Run(daemon);
        HostCheckFinding F(string name) => findings.Single(f => f.Name == name);

        Assert.Equal(HostCheckStatus.Pass, F("user namespace").Status);
        Assert.Equal(HostCheckStatus.Warn, F("time namespace").Status);
        Assert.Contains("CONFIG_TIME_NS", F("time namespace").Remedy);
        Assert.Equal(HostCheckStatus.Warn, F("cgroup namespace").Status);
        Assert.Equal(HostCheckStatus.Fail, F("user.max_user_namespaces").Status);
        Assert.Equal(HostCheckStatus.Fail, F("kernel.unprivileged_userns_clone").Status);
        Assert.Contains("sysctl -w kernel.unprivileged_userns_clone=1", F("kernel.unprivileged_userns_clone").Remedy);
        Assert.Equal(HostCheckStatus.Warn, F("overlay filesystem").Status);
        Assert.Equal(HostCheckStatus.Fail, F("seccomp").Status);
        Assert.Contains("CONFIG_SECCOMP", F("seccomp").Remedy);
        Assert.Equal(HostCheckStatus.Pass, F("cgroup layout").Status);
        Assert.StartsWith("cgroup v2 at", F("cgroup layout").Detail);
        Assert.Equal(HostCheckStatus.Warn, F("cgroup controllers").Status);
        Assert.Contains("pids", F("cgroup controllers").Detail);
        Assert.Equal(HostCheckStatus.Warn, F("cgroup delegation").Status);
        Assert.Equal(HostCheckStatus.Fail, F("newuidmap").Status);
        Assert.Contains("apt-get install uidmap", F("newuidmap").Remedy);
        // 1000 ids are fewer than a container maps; no gid range at all.
        Assert.Equal(HostCheckStatus.Warn, F("subuid range").Status);
        Assert.Equal(HostCheckStatus.Fail, F("subgid range").Status);
        Assert.All(findings.Where(f => f.Status != HostCheckStatus.Pass), f => Assert.False(string.IsNullOrWhiteSpace(f.Remedy), f.Name));
        Assert.All(findings, f => Assert.Equal("daemon", f.User));

        // New-Container's default (unprivileged) cannot be met: one finding says what is missing.
        var unprivileged = F("unprivileged default");
        Assert.Equal(HostCheckStatus.Fail, unprivileged.Status);
        foreach (var missing in new[] { "user.max_user_namespaces", "kernel.unprivileged_userns_clone", "newuidmap", "subgid range" })
            Assert.Contains(missing, unprivileged.Detail);
        Assert.Contains("apt-get install uidmap", unprivileged.Remedy);
        Assert.DoesNotContain("-Privileged", unprivileged.Remedy);

        // For root the unprivileged-only settings are warnings.
        var root = FakeHost(bin).Run(UserAccounts.Require("root"));
        Assert.Equal(HostCheckStatus.Warn, root.Single(f => f.Name == "kernel.unprivileged_userns_clone").Status);
        Assert.Equal(HostCheckStatus.Pass, root.Single(f => f.Name == "cgroup delegation").Status);
        // Root without a range: its first container allocates one from the free window (daemon has 100000-100999).
        var rootRange = root.Single(f => f.Name == "subuid range");
        Assert.Equal(HostCheckStatus.Pass, rootRange.Status);
        Assert.Contains("allocates 101000-166535", rootRange.Detail);
        // What root misses is only the kernel's user namespaces here (no newuidmap needed, it writes its maps).
        var rootDefault = root.Single(f => f.Name == "unprivileged default");
        Assert.Equal(HostCheckStatus.Fail, rootDefault.Status);
        Assert.Contains("user.max_user_namespaces", rootDefault.Detail);
        Assert.DoesNotContain("newuidmap", rootDefault.Detail);
        Assert.Contains("New-Container -Privileged", rootDefault.Remedy);
    }

    [Fact]
    public void Delegation_PassesForASubtreeOwnedByTheUser()
    {
        var check = FakeHost(_dir.Path);
        var daemon = UserAccounts.Require("daemon");
        var service = _dir.Write($"cgroup/user.slice/user-{daemon.Uid}.slice/user@{daemon.Uid}.service/cgroup.procs", "");
        Assert.Equal(HostCheckStatus.Warn, check.Run(daemon).Single(f => f.Name == "cgroup delegation").Status);

        HostCommand.Run("chown", daemon.Uid.ToString(), service);
        var finding = check.Run(daemon).Single(f => f.Name == "cgroup delegation");
        Assert.Equal(HostCheckStatus.Pass, finding.Status);
        Assert.Contains($"user@{daemon.Uid}.service", finding.Detail);
    }

    [Fact]
    public void IdMapTools_SetuidOrFileCapabilities_AsSetcapWritesThem()
    {
        var bin = _dir.Combine("bin");
        Directory.CreateDirectory(bin);
        // A copy loses the setuid bit: neither setuid nor capabilities.
        File.Copy("/usr/bin/newuidmap", Path.Combine(bin, "newuidmap"));
        File.Copy("/usr/bin/newgidmap", Path.Combine(bin, "newgidmap"));
        var daemon = UserAccounts.Require("daemon");
        var check = FakeHost(bin);
        var plain = check.Run(daemon).Single(f => f.Name == "newuidmap");
        Assert.Equal(HostCheckStatus.Fail, plain.Status);
        Assert.Contains("setcap cap_setuid+ep", plain.Remedy);

        // Capabilities of the wrong kind, or without the effective bit, are not enough.
        HostCommand.Run("setcap", "cap_setgid+ep", Path.Combine(bin, "newuidmap"));
        HostCommand.Run("setcap", "cap_setgid+p", Path.Combine(bin, "newgidmap"));
        var wrong = check.Run(daemon);
        Assert.Equal(HostCheckStatus.Fail, wrong.Single(f => f.Name == "newuidmap").Status);
        Assert.Equal(HostCheckStatus.Fail, wrong.Single(f => f.Name == "newgidmap").Status);

        HostCommand.Run("setcap", "cap_setuid+ep", Path.Combine(bin, "newuidmap"));
        HostCommand.Run("setcap", "cap_setgid+ep", Path.Combine(bin, "newgidmap"));
        var good = check.Run(daemon);
        Assert.Equal(HostCheckStatus.Pass, good.Single(f => f.Name == "newuidmap").Status);
        Assert.Contains("cap_setuid=ep", good.Single(f => f.Name == "newuidmap").Detail);
        Assert.Equal(HostCheckStatus.Pass, good.Single(f => f.Name == "newgidmap").Status);

        // setuid root is the other accepted way (Debian's packaging).
        File.Delete(Path.Combine(bin, "newuidmap"));
        File.Copy("/usr/bin/newuidmap", Path.Combine(bin, "newuidmap"));
        HostCommand.Run("chmod", "u+s", Path.Combine(bin, "newuidmap"));
        Assert.Contains("setuid root", check.Run(daemon).Single(f => f.Name == "newuidmap").Detail);
    }

    [Fact]
    public void FileCapabilities_ParseEveryRevision()
    {
        var file = _dir.Write("capfile", "x");
        HostCommand.Run("setcap", "cap_setuid,cap_setgid+ep cap_net_admin+ei", file);
        var caps = FileCapabilities.Read(file)!;
        Assert.True(caps.Grants(FileCapabilities.CapSetuid));
        Assert.True(caps.Grants(FileCapabilities.CapSetgid));
        Assert.Equal(1UL << 12, caps.Inheritable); // CAP_NET_ADMIN
        Assert.Null(FileCapabilities.Read(_dir.Write("nocaps", "x")));

        // Revision 1 (32 bits), revision 3 (with the namespace root uid), and garbage.
        var v1 = FileCapabilities.Parse(new byte[] { 1, 0, 0, 1, 0x80, 0, 0, 0, 0, 0, 0, 0 })!;
        Assert.True(v1.Grants(FileCapabilities.CapSetuid));
        var v3 = FileCapabilities.Parse(new byte[] { 0, 0, 0, 3, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xE8, 0x03, 0, 0 })!;
        Assert.False(v3.Effective);
        Assert.Equal(1UL << 6, v3.Permitted);
        Assert.Equal(1000u, v3.RootUid);
        Assert.Null(FileCapabilities.Parse(new byte[] { 0, 0, 0, 9, 0, 0, 0, 0 }));
    }

    [Fact]
    public void Criu_FromPscontainersCriuOrPath()
    {
        var check = new ContainerHostCheck { ProcRoot = "/proc", SearchPath = new[] { _dir.Path } };
        var previous = Environment.GetEnvironmentVariable(ContainerHostCheck.CriuEnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(ContainerHostCheck.CriuEnvironmentVariable, _dir.Combine("no-criu"));
            var missing = check.Run().Single(f => f.Name == "criu");
            Assert.Equal(HostCheckStatus.Warn, missing.Status);
            // One variable names criu for the host check and for checkpointing.
            Assert.Equal("PSCONTAINERS_CRIU", ContainerHostCheck.CriuEnvironmentVariable);
            Assert.Equal(PSContainers.Runtime.Checkpoint.CriuService.EnvironmentVariable, ContainerHostCheck.CriuEnvironmentVariable);
            Assert.Contains("PSCONTAINERS_CRIU", missing.Detail);

            // A criu that checkpointing would refuse (older than 4.2) is not a pass.
            var old = _dir.Write("old-criu", "#!/bin/sh\necho 'Version: 3.17.1'\n");
            File.SetUnixFileMode(old, UnixFileMode.UserRead | UnixFileMode.UserExecute);
            Environment.SetEnvironmentVariable(ContainerHostCheck.CriuEnvironmentVariable, old);
            var tooOld = check.Run().Single(f => f.Name == "criu");
            Assert.Equal(HostCheckStatus.Warn, tooOld.Status);
            Assert.Contains("older than 4.2", tooOld.Detail);

            // A program that answers --version like criu does.
            var fake = _dir.Write("criu", "#!/bin/sh\necho 'Version: 9.8.7'\n");
            File.SetUnixFileMode(fake, UnixFileMode.UserRead | UnixFileMode.UserExecute);
            Environment.SetEnvironmentVariable(ContainerHostCheck.CriuEnvironmentVariable, null);
            var found = check.Run().Single(f => f.Name == "criu");
            Assert.Equal(HostCheckStatus.Pass, found.Status);
            Assert.Equal($"criu 9.8.7 at {fake}", found.Detail);
        }
        finally { Environment.SetEnvironmentVariable(ContainerHostCheck.CriuEnvironmentVariable, previous); }
    }
}
