using System.Diagnostics;
using PSContainers.Runtime.Checkpoint;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.State;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// Checkpoint and restore under faults (issue 12, items 1 and 4), with the real CRIU: a pwsh killed
/// while CRIU dumps leaves a restorable checkpoint and no "crash"; a restore from damaged images
/// fails within its timeout and leaves nothing behind.
/// </summary>
[Collection("Containers")]
public sealed class CheckpointFaultTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly List<Process> _hosts = new();

    public void Dispose()
    {
        foreach (var p in _hosts)
            try { if (!p.HasExited) p.Kill(entireProcessTree: true); p.Dispose(); } catch (Exception) { }
        try { foreach (var n in _store.Manager.Names().ToList()) _store.Manager.Remove(n, force: true); } catch (Exception) { }
        // CRIU's cgroup yard in a checkpoint directory, when a test failed before its restore was undone.
        if (Directory.Exists(_store.Root))
            foreach (var dir in Directory.EnumerateDirectories(_store.Root, "ckpt-*"))
                try { CriuService.UnmountLeftovers(dir); } catch (Exception) { }
        _store.Dispose();
    }

    private string StartHeavyCounter(ModuleSession s, string hint)
    {
        var name = TestStore.NewName(hint);
        s.Run("New-Container -Name $args[0] -Command /bin/sh,-c,$args[1]", name, CounterContainer.Heavy);
        s.Run("Start-Container -Name $args[0]", name);
        CounterContainer.WaitCount(_store, name, 5);
        return name;
    }

    /// <summary>Runs a script in a psc-scripthost process of its own (a separate pwsh stand-in) and returns at once.</summary>
    private Process Spawn(string script)
    {
        var cmd = ScriptHost.CommandLine();
        var psi = new ProcessStartInfo(cmd[0]) { UseShellExecute = false, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in cmd[1..]) psi.ArgumentList.Add(a);
        foreach (var a in new[] { "-NoProfile", "-NonInteractive", "-Command", "-" }) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        _hosts.Add(p);
        p.StandardInput.Write($"Import-Module '{TestPaths.ModuleFolder}' -ErrorAction Stop\n{script}\n");
        p.StandardInput.Close();
        _ = p.StandardOutput.ReadToEndAsync();
        _ = p.StandardError.ReadToEndAsync();
        return p;
    }

    private static void WaitFor(Func<bool> condition, TimeSpan timeout, string what) =>
        Assert.True(SpinWait.SpinUntil(condition, timeout), $"timed out waiting for {what}");

    [Fact]
    public void PwshKilledWhileCriuDumps_LeavesARestorableCheckpoint_AndTheContainerIsNotReportedKilled()
    {
        using var s = _store.OpenSession();
        var name = StartHeavyCounter(s, "kck");
        var dir = Path.Combine(_store.Root, "ckpt-" + name);
        var host = Spawn($"Checkpoint-Container -Name '{name}' -Path '{dir}' -StorePath '{_store.StorePath}'");

        // CRIU is running once its log exists; kill the pwsh (only it: CRIU goes on by itself).
        WaitFor(() => File.Exists(Path.Combine(dir, "dump.log")), TimeSpan.FromSeconds(60), "CRIU's dump.log");
        Thread.Sleep(100);
        host.Kill();
        host.WaitForExit();
        // Before CRIU took the processes, the directory already described itself.
        Assert.True(File.Exists(Path.Combine(dir, CheckpointManifest.FileName)));
        Assert.True(File.Exists(Path.Combine(dir, CheckpointManifest.ConfigFileName)));
        Assert.False(File.Exists(Path.Combine(dir, "stats-dump")), "the dump had already finished when pwsh was killed: the test did not interrupt it");

        // CRIU finishes without the pwsh that asked for it, and ends the processes.
        WaitFor(() => CheckpointManifest.ImagesFinished(dir) && _store.Manager.Get(name).State != ContainerStatus.Running, TimeSpan.FromSeconds(60), "CRIU to finish the dump");
        var stopped = _store.Manager.Get(name);
        Assert.Equal(ContainerStatus.Stopped, stopped.State);
        Assert.Null(stopped.ExitCode);   // a checkpoint, not "137 SIGKILL"
        Assert.Null(stopped.ExitSignal);

        var checkpoint = (CheckpointInfo)s.Run("Get-ContainerCheckpoint -Path $args[0]", dir).Single().BaseObject;
        Assert.True(checkpoint.Interrupted);
        Assert.Equal(name, checkpoint.Container);
        var atCheckpoint = CounterContainer.CountNow(_store, name);

        var restored = s.Invoke("Restore-Container -Path $args[0] -PassThru", dir);
        Assert.Empty(restored.Errors);
        Assert.Equal(ContainerStatus.Running, restored.Single<ContainerInfo>().State);
        CounterContainer.WaitCount(_store, name, atCheckpoint + 3);
        var ticks = CounterContainer.Ticks(_store, name);
        Assert.Equal(Enumerable.Range(1, ticks.Length), ticks);
        s.Run("Remove-Container -Name $args[0] -Force", name);
    }

    [Fact]
    public void SaveKilledWhileCriuDumps_IsSaved_AndStartContainerResumesIt()
    {
        using var s = _store.OpenSession();
        var name = StartHeavyCounter(s, "ksv");
        var dir = Path.Combine(_store.Manager.Store.ContainerDirectory(name), "checkpoint");
        var host = Spawn($"Save-Container -Name '{name}' -StorePath '{_store.StorePath}'");
        WaitFor(() => File.Exists(Path.Combine(dir, "dump.log")), TimeSpan.FromSeconds(60), "CRIU's dump.log");
        Thread.Sleep(100);
        host.Kill();
        host.WaitForExit();
        Assert.False(File.Exists(Path.Combine(dir, "stats-dump")), "the dump had already finished when pwsh was killed");

        WaitFor(() => CheckpointManifest.ImagesFinished(dir) && _store.Manager.Get(name).State != ContainerStatus.Running, TimeSpan.FromSeconds(60), "CRIU to finish the dump");
        Assert.Equal(ContainerStatus.Saved, _store.Manager.Get(name).State);
        var atCheckpoint = CounterContainer.CountNow(_store, name);

        var started = s.Invoke("Start-Container -Name $args[0] -PassThru", name);
        Assert.Empty(started.Errors);
        Assert.Equal(ContainerStatus.Running, started.Single<ContainerInfo>().State);
        CounterContainer.WaitCount(_store, name, atCheckpoint + 3);
        Assert.False(Directory.Exists(dir), "the saved images outlived the resume");
        s.Run("Remove-Container -Name $args[0] -Force", name);
    }

    [Fact]
    public void ACheckpointWhoseDumpNeverFinished_IsRefusedWithTheReason()
    {
        using var s = _store.OpenSession();
        var name = StartHeavyCounter(s, "inc");
        var dir = Path.Combine(_store.Root, "ckpt-" + name);
        var host = Spawn($"Checkpoint-Container -Name '{name}' -Path '{dir}' -StorePath '{_store.StorePath}'");
        WaitFor(() => File.Exists(Path.Combine(dir, "dump.log")), TimeSpan.FromSeconds(60), "CRIU's dump.log");
        // pwsh and CRIU both die: the dump never finishes, CRIU's processes go on.
        host.Kill(entireProcessTree: true);
        host.WaitForExit();
        Assert.False(CheckpointManifest.ImagesFinished(dir));

        var read = s.Invoke("Get-ContainerCheckpoint -Path $args[0]", dir);
        Assert.Equal("CheckpointIncomplete", read.SingleError.FullyQualifiedErrorId.Split(',')[0]);
        Assert.Contains("interrupted before CRIU finished", read.SingleError.Exception.Message);
        var restore = s.Invoke("Restore-Container -Path $args[0]", dir);
        Assert.Equal("CheckpointIncomplete", restore.SingleError.FullyQualifiedErrorId.Split(',')[0]);

        // The container was not lost: it runs on (CRIU is gone; the processes were never ended).
        var info = _store.Manager.Get(name);
        Assert.True(info.State is ContainerStatus.Running or ContainerStatus.Frozen, $"state {info.State}");
        if (info.State == ContainerStatus.Frozen) s.Run("Resume-Container -Name $args[0]", name);
        var now = CounterContainer.Count(_store, name);
        CounterContainer.WaitCount(_store, name, now + 3);
        s.Run("Remove-Container -Name $args[0] -Force", name);
    }
    /// <summary>Pids of processes whose command line holds <paramref name="marker"/>.</summary>
    private static List<int> ProcessesWith(string marker)
    {
        var found = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            try { if (File.ReadAllText(Path.Combine(dir, "cmdline")).Contains(marker, StringComparison.Ordinal)) found.Add(pid); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        return found;
    }

    /// <summary>A stopped counter's checkpoint whose memory image is cut to 1000 bytes (CRIU's restorer then loops).</summary>
    private (string Name, string Dir, string Marker) TruncatedCheckpoint(ModuleSession s, string hint)
    {
        var name = TestStore.NewName(hint);
        var marker = "marker-" + Guid.NewGuid().ToString("N");
        s.Run("New-Container -Name $args[0] -Command /bin/sh,-c,$args[1]", name, $"{CounterContainer.Script} # {marker}");
        s.Run("Start-Container -Name $args[0]", name);
        CounterContainer.WaitCount(_store, name, 5);
        var dir = Path.Combine(_store.Root, "ckpt-" + name);
        s.Run("Checkpoint-Container -Name $args[0] -Path $args[1]", name, dir);
        Assert.Empty(ProcessesWith(marker));
        var pages = Directory.GetFiles(dir, "pages-*.img").OrderByDescending(f => new FileInfo(f).Length).First();
        using (var f = new FileStream(pages, FileMode.Open)) f.SetLength(1000);
        return (name, dir, marker);
    }

    private void AssertNothingLeftBehind(string name, string dir, string marker)
    {
        Assert.Empty(ProcessesWith(marker));
        foreach (var cg in _store.Manager.Cgroups.Directories($"{_store.CgroupParent}/{name}"))
            Assert.False(Directory.Exists(cg), $"{cg} is left behind");
        var mounts = File.ReadAllText("/proc/self/mountinfo");
        Assert.DoesNotContain(dir, mounts);
        Assert.Empty(Directory.GetDirectories(dir, ".criu.*"));
        // The lock is free: another operation takes it at once.
        using (_store.Manager.Store.Lock(name, TimeSpan.Zero)) { }
        Assert.Equal(ContainerStatus.Stopped, _store.Manager.Get(name).State);
    }

    [Fact]
    public void RestoreOfATruncatedMemoryImage_StopsAtTheLogCap_AndLeavesNothingBehind()
    {
        using var s = _store.OpenSession();
        var (name, dir, marker) = TruncatedCheckpoint(s, "trl");
        var clock = Stopwatch.StartNew();
        var result = s.Invoke("Restore-Container -Path $args[0] -Timeout 120 -CriuLogLevel 4", dir);
        clock.Stop();
        var error = result.SingleError;
        Assert.Equal("RestoreFailed", error.FullyQualifiedErrorId.Split(',')[0]);
        Assert.Contains("more than 16 MiB of log", error.Exception.Message);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(90), $"took {clock.Elapsed}");
        var log = new FileInfo(Path.Combine(dir, "restore.log"));
        Assert.InRange(log.Length, 1, CheckpointManager.MaxLogBytes + 200);
        Assert.Contains("[PSContainers: the log was cut here", File.ReadLines(log.FullName).Last());
        AssertNothingLeftBehind(name, dir, marker);
        // The log stays capped: nothing writes to it any more.
        Thread.Sleep(500);
        Assert.Equal(log.Length, new FileInfo(log.FullName).Length);
    }

    [Fact]
    public void RestoreOfATruncatedMemoryImage_TimesOut_AndKillsEverythingItRestored()
    {
        using var s = _store.OpenSession();
        var (name, dir, marker) = TruncatedCheckpoint(s, "trt");
        var clock = Stopwatch.StartNew();
        var result = s.Invoke("Restore-Container -Path $args[0] -Timeout 8", dir);
        clock.Stop();
        var error = result.SingleError;
        Assert.Equal("CriuTimeout", error.FullyQualifiedErrorId.Split(',')[0]);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(40), $"took {clock.Elapsed}");
        Assert.True(new FileInfo(Path.Combine(dir, "restore.log")).Length < 1 << 20, "the default log level logs the loop");
        AssertNothingLeftBehind(name, dir, marker);
    }
    [Fact]
    public void PwshKilledDuringAHangingRestore_TheSupervisorKillsEverythingItRestored()
    {
        using var s = _store.OpenSession();
        var (name, dir, marker) = TruncatedCheckpoint(s, "trk");
        var host = Spawn($"Restore-Container -Path '{dir}' -StorePath '{_store.StorePath}'");
        // The restored task (still named criu: its command line comes back at the end of a restore)
        // is looping in CRIU's restorer once it is in the container's cgroup.
        // (The container's cgroup and below: restored tasks live in its inner cgroup.)
        int[] Restored()
        {
            try { return _store.Manager.Cgroups.AllPids($"{_store.CgroupParent}/{name}").Distinct().ToArray(); }
            catch (Exception ex) when (ex is IOException or PSContainers.Runtime.ContainerException) { return Array.Empty<int>(); }
        }
        WaitFor(() => Restored().Length > 0, TimeSpan.FromSeconds(60), "the restored task");
        Thread.Sleep(1000);
        var restored = Restored();
        Assert.NotEmpty(restored);
        host.Kill();
        host.WaitForExit();

        // The supervisor reads the caller's end of its pipe close: criu and the tasks go, the cgroup too.
        WaitFor(() => restored.All(p => !Directory.Exists($"/proc/{p}")) && ProcessesWith(marker).Count == 0, TimeSpan.FromSeconds(15), "the restored tasks to be killed");
        WaitFor(() => _store.Manager.Cgroups.Directories($"{_store.CgroupParent}/{name}").All(d => !Directory.Exists(d)), TimeSpan.FromSeconds(15), "the cgroup to go");
        using (_store.Manager.Store.Lock(name, TimeSpan.FromSeconds(5))) { }
        Assert.Equal(ContainerStatus.Stopped, _store.Manager.Get(name).State);
        // criu's cgroup yard lived in criu's own mount namespace: it died with criu.
        Assert.DoesNotContain(dir, File.ReadAllText("/proc/self/mountinfo"));
        Assert.Empty(Directory.GetDirectories(dir, ".criu.*"));

        // The next restore fails again, the same way, and leaves nothing either.
        var again = s.Invoke("Restore-Container -Path $args[0] -Timeout 5", dir);
        Assert.Equal("CriuTimeout", again.SingleError.FullyQualifiedErrorId.Split(',')[0]);
        AssertNothingLeftBehind(name, dir, marker);
    }
}
