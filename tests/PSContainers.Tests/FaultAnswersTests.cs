using System.Collections.Concurrent;
using PSContainers.Runtime;
using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.State;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// Issue 12, item 6: under races and faults every command answers the truth with the right error
/// id; sizes out of range are errors everywhere alike; the console log survives a full disk.
/// </summary>
[Collection("Containers")]
public sealed class FaultAnswersTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly List<string> _mounts = new();

    public void Dispose()
    {
        try { foreach (var n in _store.Manager.Names().ToList()) _store.Manager.Stop(n, kill: true); } catch (Exception) { }
        foreach (var m in _mounts) try { HostCommand.Run("umount", "-l", m); } catch (Exception) { }
        _store.Dispose();
    }

    private ContainerManager M => _store.Manager;

    private string NewSleeper(string hint, string script = "while true; do sleep 0.1; done")
    {
        var name = TestStore.NewName(hint);
        M.Create(name, new CreateOptions { Template = "busybox", Command = new[] { "/bin/sh", "-c", script } });
        return name;
    }

    private static string? ErrorId(Action action)
    {
        try { action(); return null; }
        catch (ContainerException ex) { return ex.ErrorId; }
    }

    /// <summary>Runs <paramref name="probe"/> in a loop while <paramref name="change"/> happens once; the probe's error ids.</summary>
    private static List<string> Race(Action probe, Action change)
    {
        var ids = new ConcurrentBag<string>();
        using var done = new ManualResetEventSlim();
        var prober = new Thread(() =>
        {
            for (var i = 0; i < 2000 && !done.IsSet; i++)
                if (ErrorId(probe) is { } id) ids.Add(id);
            // And once more after the change: the settled answer.
            if (ErrorId(probe) is { } last) ids.Add(last);
        });
        prober.Start();
        Thread.Sleep(30);
        try { change(); }
        finally { done.Set(); prober.Join(); }
        return ids.ToList();
    }

    [Fact]
    public void InvokeRacingAStop_IsContainerNotRunning_NeverAttachFailed()
    {
        var name = NewSleeper("ir");
        var seen = new List<string>();
        for (var trial = 0; trial < 6; trial++)
        {
            M.Start(name);
            seen.AddRange(Race(() => M.Exec(name, new[] { "/bin/true" }), () => M.Stop(name, kill: true)));
        }
        Assert.Contains("ContainerNotRunning", seen);
        Assert.All(seen, id => Assert.Equal("ContainerNotRunning", id));
    }

    [Fact]
    public void SetCgroupLimitRacingAStopOrARemove_IsNotRunningOrNotFound_NeverAFalseCgroupClaim()
    {
        var limits = new CgroupLimits { PidsMax = 100, MemoryMax = 64L << 20 };
        var seen = new List<string>();
        for (var trial = 0; trial < 4; trial++)
        {
            var name = NewSleeper("sl");
            M.Start(name);
            seen.AddRange(Race(() => { new ContainerLimits(M).PlanLimits(name, limits); new ContainerLimits(M).SetLimits(name, limits, persist: false); new ContainerLimits(M).GetLimits(name); new ContainerLimits(M).Measure(name); },
                () => M.Stop(name, kill: true)));
            // init ending by itself takes no lock: its supervisor removes the cgroup at any moment.
            var init = M.Start(name).Pid!.Value;
            seen.AddRange(Race(() => { new ContainerLimits(M).PlanLimits(name, limits); new ContainerLimits(M).SetLimits(name, limits, persist: false); new ContainerLimits(M).GetLimits(name); new ContainerLimits(M).Measure(name); },
                () => { HostCommand.Run("kill", "-9", init.ToString()); SpinWait.SpinUntil(() => M.Get(name).State == ContainerStatus.Stopped, TimeSpan.FromSeconds(5)); }));
            seen.AddRange(Race(() => { new ContainerLimits(M).PlanLimits(name, limits); new ContainerLimits(M).SetLimits(name, limits, persist: true); }, () => M.Remove(name, force: true)));
        }
        Assert.Contains("ContainerNotRunning", seen);
        Assert.Contains("ContainerNotFound", seen);
        Assert.All(seen, id => Assert.Contains(id, new[] { "ContainerNotRunning", "ContainerNotFound" }));
    }

    [Fact]
    public void GetContainerRacingARemove_IsContainerNotFound()
    {
        var seen = new List<string>();
        for (var trial = 0; trial < 6; trial++)
        {
            var name = NewSleeper("gr");
            seen.AddRange(Race(() => M.Get(name), () => M.Remove(name)));
        }
        Assert.Contains("ContainerNotFound", seen);
        Assert.All(seen, id => Assert.Equal("ContainerNotFound", id));
    }

    [Fact]
    public void SupervisorKilled_AGracefulExitIsReportedAsUnknown_NotAsSigkill()
    {
        // init exits 3 on the stop signal; with its supervisor gone nobody can record that.
        var name = NewSleeper("sk", "trap 'exit 3' TERM INT USR1 USR2 PWR; while true; do sleep 0.1; done");
        var started = M.Start(name);
        Thread.Sleep(300);
        HostCommand.Run("kill", "-9", started.SupervisorPid!.Value.ToString());
        Assert.True(SpinWait.SpinUntil(() => !Directory.Exists($"/proc/{started.SupervisorPid}"), TimeSpan.FromSeconds(5)));

        var stopped = M.Stop(name, timeout: TimeSpan.FromSeconds(10));
        Assert.Equal(ContainerStatus.Stopped, stopped.State);
        Assert.Null(stopped.ExitCode);
        Assert.Null(stopped.ExitSignal);
        Assert.Null(M.Get(name).ExitCode);

        // A kill we sent ourselves is known: 137 SIGKILL.
        var again = M.Start(name);
        Thread.Sleep(300);
        HostCommand.Run("kill", "-9", again.SupervisorPid!.Value.ToString());
        var killed = M.Stop(name, kill: true);
        Assert.Equal(137, killed.ExitCode);
        Assert.Equal("SIGKILL", killed.ExitSignal);
    }

    [Fact]
    public void SizesOutOfRange_AreErrorsEverywhereAlike()
    {
        using var s = _store.OpenSession();
        var name = TestStore.NewName("sz");
        var huge = s.Invoke("New-Container -Name $args[0] -MemoryLimit 1e30", name);
        Assert.Contains("is not a size in bytes", Assert.Single(huge.Errors).Exception.Message);
        Assert.False(M.Exists(name));
        var twoEiB = s.Invoke("New-Container -Name $args[0] -MemoryLimit 2e18", name);
        Assert.Contains("out of range", Assert.Single(twoEiB.Errors).Exception.Message);
        Assert.False(M.Exists(name));
        var yaml = Path.Combine(_store.Root, "big.yaml");
        File.WriteAllText(yaml, "limits: { memory: 2E }\n");
        Assert.Equal("InvalidConfig", s.Invoke("New-Container -Name $args[0] -ConfigPath $args[1]", name, yaml).SingleError.FullyQualifiedErrorId.Split(',')[0]);

        s.Run("New-Container -Name $args[0]", name);
        var set = s.Invoke("Set-CgroupLimit -Name $args[0] -MemoryMax 2e18 -Persist", name);
        Assert.Equal("InvalidCgroupLimit", set.SingleError.FullyQualifiedErrorId.Split(',')[0]);
        Assert.Contains("is not a size in bytes", Assert.Single(s.Invoke("Set-CgroupLimit -Name $args[0] -MemoryMax 1e30 -Persist", name).Errors).Exception.Message);
        Assert.Null(M.Get(name).MemoryLimit);
        // 'max' still means no limit, and 512MB is 512 MiB.
        s.Run("Set-CgroupLimit -Name $args[0] -MemoryMax 512MB -Persist", name);
        Assert.Equal(512L << 20, M.Get(name).MemoryLimit);
    }

    [Fact]
    public void ConsoleLogOnAFullDisk_KeepsGoing_AndSaysHowMuchWasDropped()
    {
        // The container's directory on a 256 KiB tmpfs, with a console cap (1M) larger than it.
        var rootfsOwner = NewSleeper("rf");
        var rootfs = M.Get(rootfsOwner).RootfsPath;
        var name = TestStore.NewName("full");
        var flood = "sleep 1; i=0; while [ $i -lt 4000 ]; do echo \"line $i ....................................................................................................\"; i=$((i+1)); done; echo THE-END; sleep 600";
        M.Create(name, new CreateOptions { RootfsPath = rootfs, Command = new[] { "/bin/sh", "-c", flood } });
        var dir = M.Store.ContainerDirectory(name);
        var saved = Directory.GetFiles(dir).ToDictionary(Path.GetFileName, File.ReadAllBytes);
        HostCommand.Run("mount", "-t", "tmpfs", "-o", "size=256k", "psc-test-full", dir);
        _mounts.Add(dir);
        foreach (var (file, bytes) in saved) File.WriteAllBytes(Path.Combine(dir, file!), bytes);

        M.Start(name);
        string Logs() => string.Concat(new[] { "console.log.1", "console.log" }.Select(f => Path.Combine(dir, f)).Where(File.Exists).Select(File.ReadAllText));
        Assert.True(SpinWait.SpinUntil(() => Logs().Contains("THE-END"), TimeSpan.FromSeconds(60)), "the end of the output never reached the log");
        var logs = Logs();
        Assert.Matches(@"\[psc-supervise: \d+ bytes of console output were dropped: No space left on device\]", logs);
        // Still running, and still logging.
        Assert.Equal(ContainerStatus.Running, M.Get(name).State);
        M.Stop(name, kill: true);
        HostCommand.Run("umount", dir);
        _mounts.Remove(dir);
    }

    [Fact]
    public void ATruncatedArchive_IsArchiveCorrupt_NamingIt_AndNothingIsLeft()
    {
        using var s = _store.OpenSession();
        var name = NewSleeper("tz");
        var archive = Path.Combine(_store.Root, "c.tar.zst");
        s.Run("Export-Container -Name $args[0] -Path $args[1]", name, archive);
        using (var f = new FileStream(archive, FileMode.Open)) f.SetLength(f.Length / 2);
        var copy = TestStore.NewName("tzc");
        var result = s.Invoke("Import-Container -Path $args[0] -Name $args[1]", archive, copy);
        var error = result.SingleError;
        Assert.Equal("ArchiveCorrupt", error.FullyQualifiedErrorId.Split(',')[0]);
        Assert.Contains(archive, error.Exception.Message);
        Assert.Contains("truncated or damaged", error.Exception.Message);
        Assert.False(M.Exists(copy));
        Assert.Empty(Directory.Exists(M.Store.TempDirectory) ? Directory.GetFileSystemEntries(M.Store.TempDirectory) : Array.Empty<string>());
    }
}
