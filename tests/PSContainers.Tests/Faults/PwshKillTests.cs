using PSContainers.Runtime;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Network;
using PSContainers.Runtime.State;
using PSContainers.Runtime.Storage;
using PSContainers.Tests.Infrastructure;
using Xunit.Abstractions;
using PSContainers.Runtime.NetworkHooks;

namespace PSContainers.Tests.Faults;

/// <summary>
/// kill -9 of a real pwsh at random points of New, Start (with a NIC on a bridge), Copy, Export
/// (stopped, and -Force of a running container), Import and Remove. Every trial: the call in its
/// own pwsh, killed after a random delay from the moment it begins (seeded: the seed and every
/// delay are logged, PSC_FAULT_SEED replays them) or at a chosen moment of the start; then the
/// state must agree with what runs; then the next command of the same kind must succeed and leave
/// things clean; then, all containers removed, nothing may be left (FaultChecker).
/// Checkpoint and Restore trials belong with their fixes (branch faults-a), written on this harness.
/// </summary>
[Collection("Containers")]
public sealed class PwshKillTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly FaultChecker _check;
    private readonly ITestOutputHelper _log;
    private readonly int _seed = FaultSeed.Next();
    private readonly Random _random;

    public PwshKillTests(ITestOutputHelper log)
    {
        _log = log;
        _random = new Random(_seed);
        _check = new FaultChecker(_store);
        _log.WriteLine($"fault seed {_seed} (PSC_FAULT_SEED={_seed} replays this run)");
    }

    public void Dispose() => _store.Dispose();

    private ContainerManager M => _store.Manager;

    /// <summary>A busybox container with a few MB of files, so copies, archives and removals take a while.</summary>
    private string Bulky(string hint, string? backend = null)
    {
        var name = TestStore.NewName(hint);
        var info = M.Create(name, new CreateOptions { Template = "busybox", Backend = backend });
        var bulk = Path.Combine(backend == "overlay" ? Path.Combine(info.Path, "upper") : info.RootfsPath, "bulk");
        Directory.CreateDirectory(bulk);
        var block = new byte[32 * 1024];
        for (var i = 0; i < 160; i++)
        {
            var sub = Path.Combine(bulk, (i % 8).ToString());
            Directory.CreateDirectory(sub);
            File.WriteAllBytes(Path.Combine(sub, $"f{i}"), block);
        }
        return name;
    }

    /// <summary>
    /// One trial. <paramref name="call"/> runs in pwsh and is killed per <paramref name="delay"/> or
    /// <paramref name="killWhen"/>; <paramref name="next"/> is the next command (in this process,
    /// through the runtime a fresh session would use).
    /// </summary>
    private void Trial(string what, string call, TimeSpan? delay, Func<bool>? killWhen, Action next)
    {
        var outcome = KilledPwsh.Run(_store.StorePath, call, delay, killWhen);
        var where = $"seed {_seed}, {what}, delay {delay?.TotalMilliseconds.ToString("0.0") ?? "-"} ms: " +
                    (outcome.Killed ? $"killed {outcome.SinceGo.TotalMilliseconds:0.0} ms into the call" : $"not killed (exit {outcome.ExitCode})");
        _log.WriteLine(where);
        if (!outcome.Killed && outcome.ExitCode != 0) _log.WriteLine("  stderr: " + outcome.StdErr.Trim());
        var truth = FaultChecker.Settled(() => _check.Truth(allowFrozen: true));
        _log.WriteLine("  then: " + string.Join(", ", M.Names().Select(n => $"{n} {Safe(() => M.Get(n).State.ToString())}")));
        Assert.True(truth.Count == 0, $"{where}: state disagrees with what runs: {string.Join("; ", truth)}");
        next();
        truth = FaultChecker.Settled(() => _check.Truth());
        Assert.True(truth.Count == 0, $"{where}: after the next command: {string.Join("; ", truth)}");
        foreach (var name in M.Names().ToList()) M.Remove(name, force: true);
        var leaks = FaultChecker.Settled(_check.Leaks);
        Assert.True(leaks.Count == 0, $"{where}: left behind: {string.Join("; ", leaks)}");
    }

    private static string Safe(Func<string> f)
    {
        try { return f(); }
        catch (Exception ex) { return ex.Message; }
    }

    /// <summary>How long the uninterrupted call takes (from GO to its end): kill delays are drawn below that.</summary>
    private TimeSpan Calibrate(string what, string call)
    {
        var outcome = KilledPwsh.Run(_store.StorePath, call);
        Assert.True(outcome.ExitCode == 0 && outcome.StdOut.Contains("DONE"), $"{what} fails without a fault: {outcome.StdErr}");
        _log.WriteLine($"{what}: {outcome.SinceGo.TotalMilliseconds:0} ms uninterrupted");
        return outcome.SinceGo;
    }

    /// <summary>A kill point: as soon as something matching <paramref name="pattern"/> appears in <paramref name="dir"/>.</summary>
    private static Func<bool> Appears(string dir, string pattern) =>
        () => Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir, pattern).Any();

    private TimeSpan Delay(TimeSpan span) => TimeSpan.FromMilliseconds(_random.NextDouble() * span.TotalMilliseconds * 1.1);

    [Fact]
    public void KilledNew_LeavesNoHalfContainer_AndTheNextNewCleansUp()
    {
        var span = Calibrate("New-Container", $"New-Container {TestStore.NewName("cal")} | Out-Null");
        foreach (var n in M.Names().ToList()) M.Remove(n, force: true);
        for (var trial = 0; trial < 5; trial++)
        {
            var name = TestStore.NewName("new");
            // The last trial: killed while the container is being built in .tmp.
            var building = trial == 4;
            Trial($"New-Container #{trial}{(building ? " while building" : "")}", $"New-Container {name} | Out-Null", building ? null : Delay(span),
                building ? Appears(M.Store.TempDirectory, name + ".*") : null, () =>
            {
                // It exists whole, or not at all; the next create of it (or another) succeeds and cleans .tmp.
                if (M.Exists(name)) Assert.NotNull(M.Get(name).Command);
                else M.Create(name, new CreateOptions { Template = "busybox" });
                M.Create(TestStore.NewName("new2"), new CreateOptions { Template = "busybox" });
            });
        }
    }

    [Fact]
    public void KilledStart_WithANic_IsEitherRunningAndReported_OrUndone()
    {
        using var lab = new NetLab();
        var subnet = $"10.{201 + _random.Next(40)}.{_random.Next(256)}.0/24";
        DefaultBridge.Save(M.Store, new BridgeSettings { Name = lab.HostLink("br"), Subnet = subnet, Nat = false, EnableForwarding = false });
        var hook = M.Hooks.OfType<NetworkHook>().Single();
        string WithNic()
        {
            var name = TestStore.NewName("st");
            M.Create(name, new CreateOptions { Template = "busybox", Network = [new NicConfig { Type = "veth", Link = DefaultBridge.ConfigName }] });
            _check.Veths.Add(hook.HostEndName(name, 0));
            return name;
        }
        try
        {
            var cal = WithNic();
            var span = Calibrate("Start-Container", $"Start-Container {cal}");
            M.Remove(cal, force: true);
            // Random points, and the two moments that matter: init waiting for its network (the
            // supervisor's record says paused), and init released before pwsh recorded anything.
            var plan = new List<(string What, TimeSpan? Delay, string? Phase)>();
            for (var i = 0; i < 4; i++) plan.Add(($"random #{i}", Delay(span), null));
            plan.Add(("while init waits", null, "paused"));
            plan.Add(("while init waits", null, "paused"));
            plan.Add(("once init is released", null, "released"));
            plan.Add(("once init is released", null, "released"));
            foreach (var (what, delay, phase) in plan)
            {
                var name = WithNic();
                var record = M.Store.RunRecordPath(name);
                Func<bool>? when = phase is null ? null : () => File.Exists(record) && ReadOrEmpty(record).Contains(" " + phase + " ");
                Trial($"Start-Container with a NIC, {what}", $"Start-Container {name}", delay, when, () =>
                {
                    var state = M.Get(name).State;
                    if (state == ContainerStatus.Running)
                    {
                        // Every command sees it running: a plain Remove refuses (it is not silently
                        // killed), Start says so, Copy and Export refuse to read its live rootfs.
                        Assert.Equal("ContainerRunning", Assert.Throws<ContainerException>(() => M.Remove(name)).ErrorId);
                        Assert.Equal("ContainerAlreadyRunning", Assert.Throws<ContainerException>(() => M.Start(name)).ErrorId);
                        Assert.Equal("ContainerNotStopped", Assert.Throws<ContainerException>(() => new StorageManager(M).Copy(name, TestStore.NewName("stc"), new CopyOptions())).ErrorId);
                        Assert.Equal("ContainerNotStopped", Assert.Throws<ContainerException>(() => ContainerArchive.Export(M, name, Path.Combine(_store.Root, "st.tar"), force: false)).ErrorId);
                        M.Stop(name, kill: true);
                    }
                    else Assert.Equal(ContainerStatus.Stopped, state);
                    // The next start works, and its NIC has its address.
                    var info = M.Start(name);
                    Assert.Equal(ContainerStatus.Running, info.State);
                    Assert.Single(info.IPv4);
                    M.Stop(name, kill: true);
                });
            }
        }
        finally
        {
            foreach (var n in M.Names().ToList()) try { M.Remove(n, force: true); } catch (Exception) { }
            try { DefaultBridge.For(M.Store).Remove(); } catch (Exception) { }
        }
    }

    [Fact]
    public void KilledStart_WhoseInitThenEnds_IsRecordedStoppedWithItsExit_ByTheNextCommand()
    {
        var name = TestStore.NewName("se");
        M.Create(name, new CreateOptions { Template = "busybox" });
        var record = M.Store.RunRecordPath(name);
        var outcome = KilledPwsh.Run(_store.StorePath, $"Start-Container {name}", killWhen: () => ReadOrEmpty(record).Contains(" released "));
        _log.WriteLine($"killed {outcome.Killed} at {outcome.SinceGo.TotalMilliseconds:0} ms");
        var run = RunRecord.Read(record);
        Assert.NotNull(run);
        _log.WriteLine($"state.json records the run: {run.IsRecordedIn(PersistedState.Load(M.Store.StatePath(name)))} (expected: no, pwsh was killed first)");
        // The orphan runs and is reported running; then its init ends before any command recorded it.
        Assert.Equal(ContainerStatus.Running, M.Get(name).State);
        Assert.Equal(run.InitPid, M.Get(name).Pid);
        PSContainers.Runtime.Native.Sys.Kill(run.InitPid, 9);
        PSContainers.Runtime.Native.Sys.WaitForExit(run.SupervisorPid, run.SupervisorStartTime, TimeSpan.FromSeconds(10));
        Assert.Equal(ContainerStatus.Stopped, M.Get(name).State);
        var truth = FaultChecker.Settled(() => _check.Truth());
        Assert.True(truth.Count == 0, string.Join("; ", truth));
        // The next command that changes it records how that run ended.
        Assert.Equal("ContainerNotRunning", Assert.Throws<ContainerException>(() => M.Stop(name)).ErrorId);
        var info = M.Get(name);
        Assert.Equal("SIGKILL", info.ExitSignal);
        Assert.Equal(ContainerStatus.Running, M.Start(name).State);
        M.Remove(name, force: true);
        var leaks = FaultChecker.Settled(_check.Leaks);
        Assert.True(leaks.Count == 0, string.Join("; ", leaks));
    }

    private static string ReadOrEmpty(string path)
    {
        try { return File.ReadAllText(path); }
        catch (IOException) { return ""; }
    }

    [Fact]
    public void KilledCopy_LeavesNoHalfCopy_AndTheNextCopyCleansUp()
    {
        var cal = Bulky("cal", "overlay");
        var span = Calibrate("Copy-Container", $"Copy-Container {cal} {TestStore.NewName("calc")} | Out-Null");
        foreach (var n in M.Names().ToList()) M.Remove(n, force: true);
        for (var trial = 0; trial < 5; trial++)
        {
            var source = Bulky("cp", trial % 2 == 0 ? "overlay" : null);
            var copy = TestStore.NewName("cpy");
            // The last trial: killed while the copy is being made (its overlay view mounted).
            var copying = trial == 4;
            Trial($"Copy-Container #{trial}{(copying ? " while copying" : "")}", $"Copy-Container {source} {copy} | Out-Null", copying ? null : Delay(span),
                copying ? Appears(M.Store.TempDirectory, copy + ".*") : null, () =>
            {
                var storage = new StorageManager(M);
                if (!M.Exists(copy)) storage.Copy(source, copy, new CopyOptions());
                storage.Copy(source, TestStore.NewName("cpy2"), new CopyOptions());
                Assert.Equal(ContainerStatus.Stopped, M.Get(copy).State);
            });
        }
    }

    [Fact]
    public void KilledExport_LeavesNoPartialFileOrView_AndNoFrozenContainer()
    {
        var dest = Path.Combine(_store.Root, "exports");
        Directory.CreateDirectory(dest);
        _check.ExtraDirectories.Add(dest);
        var archive = Path.Combine(dest, "c.tar");
        var cal = Bulky("cal", "overlay");
        var span = Calibrate("Export-Container", $"Export-Container {cal} '{archive}'");
        File.Delete(archive);
        M.Remove(cal, force: true);
        for (var trial = 0; trial < 6; trial++)
        {
            // Half the trials: -Force on a running container, which it freezes for the export.
            // The last two: killed while the archive is being written (and the container frozen).
            var running = trial % 2 == 1;
            var writing = trial >= 4;
            var name = Bulky("ex", "overlay");
            if (running) M.Start(name);
            Trial($"Export-Container{(running ? " -Force (running)" : "")} #{trial}{(writing ? " while writing" : "")}", $"Export-Container {name} '{archive}'{(running ? " -Force" : "")}",
                writing ? null : Delay(span), writing ? Appears(dest, ".c.tar.*.partial") : null, () =>
            {
                ContainerArchive.Export(M, name, archive, force: running);
                Assert.Equal(running ? ContainerStatus.Running : ContainerStatus.Stopped, M.Get(name).State);
            });
            File.Delete(archive);
        }
    }

    [Fact]
    public void KilledImport_LeavesNoHalfContainer_AndTheNextImportCleansUp()
    {
        var archive = Path.Combine(_store.Root, "src.tar");
        var source = Bulky("imsrc");
        ContainerArchive.Export(M, source, archive, force: false);
        M.Remove(source);
        var span = Calibrate("Import-Container", $"Import-Container '{archive}' {TestStore.NewName("cal")} | Out-Null");
        foreach (var n in M.Names().ToList()) M.Remove(n, force: true);
        for (var trial = 0; trial < 5; trial++)
        {
            var name = TestStore.NewName("im");
            var extracting = trial == 4;
            Trial($"Import-Container #{trial}{(extracting ? " while extracting" : "")}", $"Import-Container '{archive}' {name} | Out-Null", extracting ? null : Delay(span),
                extracting ? Appears(M.Store.TempDirectory, name + ".*") : null, () =>
            {
                if (!M.Exists(name)) ContainerArchive.Import(M, archive, name);
                ContainerArchive.Import(M, archive, TestStore.NewName("im2"));
                Assert.True(File.Exists(Path.Combine(M.Get(name).RootfsPath, "bulk", "7", "f159")));
            });
        }
    }

    [Fact]
    public void KilledRemove_LeavesNoHalfDeletedTree_AndTheNextRemoveCleansUp()
    {
        var cal = Bulky("cal");
        var span = Calibrate("Remove-Container", $"Remove-Container {cal}");
        for (var trial = 0; trial < 5; trial++)
        {
            var name = Bulky("rm");
            var other = TestStore.NewName("rm2");
            M.Create(other, new CreateOptions { Template = "busybox" });
            var deleting = trial == 4;
            Trial($"Remove-Container #{trial}{(deleting ? " while deleting" : "")}", $"Remove-Container {name}", deleting ? null : Delay(span),
                deleting ? Appears(M.Store.TrashDirectory, name + ".*") : null, () =>
            {
                // Gone entirely or still whole; the next removal (of it, or of another) empties .trash and .locks.
                if (M.Exists(name)) { Assert.NotNull(M.Get(name).Command); M.Remove(name); }
                M.Remove(other);
                Assert.Empty(Directory.EnumerateFileSystemEntries(M.Store.TrashDirectory));
            });
        }
    }
}
