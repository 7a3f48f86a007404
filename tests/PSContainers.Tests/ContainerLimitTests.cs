using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.State;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// Limits bite on the real kernel (v1 controllers on a hybrid host, the one v2 tree on a pure one): OOM at memory.max, a fork
/// bomb stopped by pids.max, /dev/null denied and allowed again, CPU quota throttling. Through the
/// module's cmdlets, each test with its own store.
/// </summary>
[Collection("Containers")]
public sealed class ContainerLimitTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly ModuleSession _ps;

    public ContainerLimitTests()
    {
        try { _ps = _store.OpenSession(); }
        catch { _store.Dispose(); throw; }
    }

    public void Dispose()
    {
        _ps.Dispose();
        _store.Dispose();
    }

    private string NewRunning(string hint, string? beforeStart = null)
    {
        var name = TestStore.NewName(hint);
        _ps.Run("New-Container -Name $args[0] -Template busybox", name);
        if (beforeStart is not null) _ps.Run(beforeStart, name);
        _ps.Run("Start-Container $args[0]", name);
        return name;
    }

    private ContainerCommandResult Exec(string name, params string[] command) =>
        (ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] -Command $args[1]", name, command).Single().BaseObject;

    private CgroupUsage Measure(string name) => (CgroupUsage)_ps.Run("Measure-Container $args[0]", name).Single().BaseObject;

    private static string Id(System.Management.Automation.ErrorRecord e) => e.FullyQualifiedErrorId.Split(',')[0];

    [Fact]
    public void MemoryHog_IsOomKilled_AtThePersistedLimit_AndMeasureShowsIt()
    {
        // Persisted on the stopped container, applied at start from config.yaml.
        var name = NewRunning("oom", "Set-CgroupLimit $args[0] -MemoryMax 32MB -Persist");
        Assert.Contains("memory: 32M", File.ReadAllText(Path.Combine(_store.StorePath, name, "config.yaml")));
        var limits = (CgroupLimitReport)_ps.Run("Get-CgroupLimit $args[0]", name).Single().BaseObject;
        Assert.Equal(32L << 20, limits.MemoryMax);
        Assert.Equal(CgroupManager.ForHost().ControllerVersions()["memory"], limits.ControllerVersions["memory"]);

        var before = Measure(name);
        Assert.Equal(0, before.OomKills);
        // awk doubles a string until the 32 MiB limit is hit.
        var hog = Exec(name, "/bin/busybox", "awk", "BEGIN { s = \"x\"; while (1) s = s s }");
        Assert.Equal(137, hog.ExitCode);
        var after = Measure(name);
        Assert.True(after.OomKills >= 1, $"OomKills = {after.OomKills}");
        Assert.Equal(32L << 20, after.MemoryMax?.Value);
        Assert.True(after.MemoryPeak <= 32L << 20, $"peak {after.MemoryPeak}");
        Assert.True(after.MemoryPeak > 8L << 20, $"peak {after.MemoryPeak}");
        // The container itself survived.
        Assert.Equal(ContainerStatus.Running, ((ContainerInfo)_ps.Run("Get-Container $args[0]", name).Single().BaseObject).State);
    }

    [Fact]
    public void Measure_ARunningContainerWithoutLimits_CountsWhatItsInitUsed()
    {
        // No limit was ever set: the usage is charged to the container from its first moment
        // (on v2 the accounting controllers are on before init starts, not when a limit comes).
        var name = NewRunning("meas");
        var usage = Measure(name);
        Assert.True(usage.MemoryCurrent > 0, $"MemoryCurrent = {usage.MemoryCurrent}");
        Assert.True(usage.PidsCurrent >= 1, $"PidsCurrent = {usage.PidsCurrent}");
        Assert.True(usage.CpuUsage > TimeSpan.Zero, $"CpuUsage = {usage.CpuUsage}");
        if (HostCgroups.VersionOf("memory") == "v2")
        {
            var path = ((ContainerInfo)_ps.Run("Get-Container $args[0]", name).Single().BaseObject).CgroupPath!;
            var inner = File.ReadAllText(Path.Combine(HostCgroups.V2Mount, CgroupManager.InnerOf(path), "cgroup.controllers")).Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            Assert.Equal(CgroupManager.AccountingControllers.Intersect(HostCgroups.V2RootControllers).Order(), inner.Intersect(CgroupManager.AccountingControllers).Order());
            // A limit set later holds what init already has (memory.peak counts from the start).
            Assert.True(usage.MemoryPeak >= usage.MemoryCurrent, $"MemoryPeak = {usage.MemoryPeak}");
        }
    }

    [Fact]
    public void ForkBomb_StopsAtPidsMax()
    {
        var name = NewRunning("pids");
        _ps.Run("Set-CgroupLimit $args[0] -PidsMax 20", name);
        var bomb = Exec(name, "sh", "-c", "i=0; while [ $i -lt 100 ]; do sleep 60 >/dev/null 2>&1 & i=$((i+1)); done; echo survived");
        Assert.DoesNotContain("survived", bomb.Output);
        var usage = Measure(name);
        Assert.Equal(20, usage.PidsMax?.Value);
        Assert.True(usage.PidsCurrent is > 10 and <= 20, $"pids.current = {usage.PidsCurrent}");
        Assert.True(usage.PidsLimitHits >= 1, $"pids.events max = {usage.PidsLimitHits}");
        // Raising the limit live lets it fork again.
        _ps.Run("Set-CgroupLimit $args[0] -PidsMax max", name);
        Assert.Equal(0, Exec(name, "sh", "-c", "sleep 0 & wait").ExitCode);
    }

    [Fact]
    public void DevNull_DeniedThenAllowedAgain()
    {
        var name = NewRunning("dev");
        Assert.Equal(0, Exec(name, "sh", "-c", "echo hi > /dev/null").ExitCode);
        _ps.Run("Set-CgroupLimit $args[0] -DeviceDeny 'c 1:3 rwm'", name);
        var denied = Exec(name, "sh", "-c", "echo hi > /dev/null");
        Assert.NotEqual(0, denied.ExitCode);
        Assert.Contains(denied.Error, l => l.Contains("Operation not permitted"));
        // Other devices still work.
        Assert.Equal(new[] { "1" }, Exec(name, "sh", "-c", "head -c 1 /dev/zero | wc -c").Output.Select(s => s.Trim()));
        _ps.Run("Set-CgroupLimit $args[0] -DeviceAllow 'c 1:3 rwm'", name);
        Assert.Equal(0, Exec(name, "sh", "-c", "echo hi > /dev/null").ExitCode);
    }

    [Fact]
    public void LiveDeviceRules_ReachTheInnerCgroup_AndAWholeListResetIsAPreciseError()
    {
        // The container's processes are in the inner cgroup: an allow given live must reach them
        // (v1 does not pass allows down), a deny holds at once, and on v1 a reset of the whole list
        // ('a') is refused by the kernel for a cgroup with a child: a precise error, nothing changed.
        var name = NewRunning("devlive");
        _ps.Run("Set-CgroupLimit $args[0] -DeviceDeny 'c 1:5 rwm'", name);
        Assert.NotEqual(0, Exec(name, "sh", "-c", "head -c 1 /dev/zero").ExitCode);
        _ps.Run("Set-CgroupLimit $args[0] -DeviceAllow 'c 1:5 rwm'", name);
        Assert.Equal(new[] { "1" }, Exec(name, "sh", "-c", "head -c 1 /dev/zero | wc -c").Output.Select(l => l.Trim()));
        if (CgroupManager.ForHost().ControllerVersions().GetValueOrDefault("devices") == "v1")
        {
            var r = _ps.Invoke("Set-CgroupLimit $args[0] -DeviceDeny a", name);
            Assert.Equal("DeviceRuleNeedsRestart", Id(r.SingleError));
            Assert.Contains("-Persist", r.SingleError.Exception.Message);
            Assert.Equal(0, Exec(name, "sh", "-c", "echo hi > /dev/null").ExitCode);
        }
    }

    [Fact]
    public void DenyAllAllowOne_FromConfig()
    {
        var name = NewRunning("devcfg", "Set-CgroupLimit $args[0] -DeviceDeny a -DeviceAllow 'c 1:3 rwm', 'c 136:* rwm', 'c 5:2 rwm' -Persist");
        var limits = (CgroupLimitReport)_ps.Run("Get-CgroupLimit $args[0]", name).Single().BaseObject;
        // v1 devices.list shows only the allowed devices (the console needs its pty: 136:* and 5:2);
        // v2 reads back the rule list its eBPF program enforces, in order.
        var allowed = new[] { "allow c 1:3 rwm", "allow c 136:* rwm", "allow c 5:2 rwm" };
        Assert.Equal(HostCgroups.VersionOf("devices") == "v1" ? allowed : allowed.Prepend("deny a *:* rwm").ToArray(), limits.Devices.Select(d => d.ToString()));
        Assert.Equal(0, Exec(name, "sh", "-c", "echo hi > /dev/null").ExitCode);
        Assert.NotEqual(0, Exec(name, "sh", "-c", "head -c 1 /dev/zero").ExitCode);
    }

    [Fact]
    public void CpuQuota_ThrottlesABusyLoop()
    {
        var name = NewRunning("cpu");
        _ps.Run("Set-CgroupLimit $args[0] -CpuMax 0.2", name);
        var limits = (CgroupLimitReport)_ps.Run("Get-CgroupLimit $args[0]", name).Single().BaseObject;
        Assert.Equal(20_000, limits.CpuQuota);
        Assert.Equal(100_000, limits.CpuPeriod);
        Exec(name, "sh", "-c", "while :; do :; done >/dev/null 2>&1 &");
        Thread.Sleep(300);
        var t0 = Measure(name);
        Thread.Sleep(2000);
        var t1 = Measure(name);
        var used = (t1.CpuUsage!.Value - t0.CpuUsage!.Value).TotalSeconds;
        Assert.True(used <= 0.6, $"{used:0.000} s of CPU in 2 s at a 0.2 CPU quota");
        Assert.True(used >= 0.1, $"{used:0.000} s of CPU in 2 s: the busy loop did not run");
        Assert.True(t1.CpuThrottledPeriods > t0.CpuThrottledPeriods, "the cgroup was throttled");
    }

    [Fact]
    public void WhatIf_ChangesNothing_AndPassThruReadsBack()
    {
        var name = NewRunning("whatif");
        var path = ((ContainerInfo)_ps.Run("Get-Container $args[0]", name).Single().BaseObject).CgroupPath!;
        var pidsFile = HostCgroups.ControllerFile(path, "pids", "pids.max");
        _ps.Run("Set-CgroupLimit $args[0] -PidsMax 33 -WhatIf", name);
        Assert.Equal("max", File.ReadAllText(pidsFile).Trim());
        // cpuset where the kernel has it (not under user-mode Linux).
        var cpuset = HostCgroups.VersionOf("cpuset") == "v1" || HostCgroups.V2RootControllers.Contains("cpuset");
        var report = (CgroupLimitReport)_ps.Run($"Get-Container $args[0] | Set-CgroupLimit -PidsMax 33 -CpuWeight 50 {(cpuset ? "-CpusetCpus 0" : "")} -MemoryLow '16M' -PassThru", name).Single().BaseObject;
        Assert.Equal("33", File.ReadAllText(pidsFile).Trim());
        Assert.Equal(33, report.PidsMax);
        Assert.Equal(50, report.CpuWeight);
        if (cpuset) Assert.Equal("0", report.CpusetCpus);
        Assert.Equal(16L << 20, report.MemoryLow);
        // Not persisted without -Persist.
        Assert.DoesNotContain("pids", File.ReadAllText(Path.Combine(_store.StorePath, name, "config.yaml")));
    }

    [Fact]
    public void BadValues_ArePreciseErrors_AndNothingIsHalfApplied()
    {
        var name = NewRunning("err");
        var path = ((ContainerInfo)_ps.Run("Get-Container $args[0]", name).Single().BaseObject).CgroupPath!;
        var pidsFile = HostCgroups.ControllerFile(path, "pids", "pids.max");
        var negative = _ps.Invoke("Set-CgroupLimit $args[0] -PidsMax -5", name).SingleError;
        Assert.True(negative.Exception.Message.Contains("negative"), negative.Exception.Message);
        Assert.Equal("ParameterArgumentTransformationError", Id(negative));
        var negSize = _ps.Invoke("Set-CgroupLimit $args[0] -MemoryMax -1", name).SingleError.Exception.Message;
        Assert.True(negSize.Contains("negative"), negSize);
        Assert.Equal("InvalidDeviceRule", Id(_ps.Invoke("Set-CgroupLimit $args[0] -DeviceAllow 'q 1:3 rwm'", name).SingleError));
        var cpus = _ps.Invoke("Set-CgroupLimit $args[0] -PidsMax 7 -CpusetCpus 0-511", name).SingleError;
        // The cpu list is checked against the machine first, also where the kernel has no cpuset controller.
        Assert.Equal("CgroupCpusNotOnline", Id(cpus));
        Assert.Contains("not on this machine", cpus.Exception.Message);
        // The pids limit given together with the bad cpuset was not applied either.
        Assert.Equal("max", File.ReadAllText(pidsFile).Trim());
        Assert.Equal("NoLimitGiven", Id(_ps.Invoke("Set-CgroupLimit $args[0]", name).SingleError));
        // memory.high is v2 only.
        if (HostCgroups.VersionOf("memory") == "v1")
            Assert.Equal("CgroupLimitUnsupported", Id(_ps.Invoke("Set-CgroupLimit $args[0] -MemoryHigh 64MB", name).SingleError));
        _ps.Run("Stop-Container $args[0] -Kill", name);
        Assert.Equal("ContainerNotRunning", Id(_ps.Invoke("Set-CgroupLimit $args[0] -PidsMax 10", name).SingleError));
        // One behaviour for a stopped container, however it is named: skipped (said in -Verbose), no error.
        foreach (var script in new[] { "Measure-Container $args[0] -Verbose", "Measure-Container 'psct-err-*' -Verbose",
                     "Get-Container $args[0] | Measure-Container -Verbose", "Get-Container 'psct-err-*' | Measure-Container -Verbose",
                     "Get-CgroupLimit $args[0] -Verbose" })
        {
            var r = _ps.Invoke(script, name);
            Assert.True(r.Errors.Count == 0, script + ": " + string.Join("; ", r.Errors));
            Assert.Empty(r.Output);
            Assert.Contains(r.Verbose, v => v.Contains($"Skipping container '{name}'") && v.Contains("stopped"));
        }
        Assert.Equal("ContainerNotFound", Id(_ps.Invoke("Measure-Container 'psct-err-nosuch'").SingleError));
    }

    [Fact]
    public void ContainerNamespaces_DifferFromTheHost_AndCgroupIsItsOwn()
    {
        var name = NewRunning("ns");
        var info = (ContainerInfo)_ps.Run("Get-Container $args[0]", name).Single().BaseObject;
        var ns = _ps.Run("Get-Container $args[0] | Get-ProcessNamespace -ReferenceId $args[1]", name, Environment.ProcessId)
            .Select(o => (ProcessNamespace)o.BaseObject).ToDictionary(n => n.Type);
        // A user namespace too: the default container is unprivileged.
        foreach (var t in new[] { "mnt", "pid", "uts", "ipc", "net", "cgroup", "user" }) Assert.True(ns[t].Isolated, t);
        Assert.All(ns.Values, n => Assert.Equal(info.Pid, n.ProcessId));
        var cgroups = _ps.Run("Get-ProcessNamespace -Id $args[0] -Cgroup", info.Pid).Select(o => (ProcessCgroup)o.BaseObject).ToList();
        // Init is in the inner cgroup, below the one with the limits.
        if (!HostCgroups.IsUnified)
            Assert.Contains(cgroups, c => c.Controllers.Contains("memory") && c.Path.EndsWith($"/{name}/{CgroupManager.InnerName}"));
        Assert.Contains(cgroups, c => c.Version == "v2" && c.Path.EndsWith($"/{name}/{CgroupManager.InnerName}"));
    }
}
