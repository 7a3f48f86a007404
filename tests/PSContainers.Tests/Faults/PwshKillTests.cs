using System.Diagnostics;
using PSContainers.Runtime;
using PSContainers.Runtime.Checkpoint;
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
/// (stopped, and -Force of a running container), Import, Checkpoint (and Save), Restore (and Start
/// of a saved container) and Remove. Every trial: the call in its
/// own pwsh, killed after a random delay from the moment it begins (seeded: the seed and every
/// delay are logged, PSC_FAULT_SEED replays them) or at a chosen moment of the start; then the
/// state must agree with what runs; then the next command of the same kind must succeed and leave
/// things clean; then, all containers removed, nothing may be left (FaultChecker).
/// </summary>
[Collection("Containers")]
public sealed class PwshKillTests : FaultTests
{
    private readonly Random _random;

    public PwshKillTests(ITestOutputHelper log) : base(log) => _random = new Random(Seed);

    /// <summary>A busybox container with a few MB of files, so copies, archives and removals take a while.</summary>
    private string Bulky(string hint, string? backend = null)
    {
        var name = TestStore.NewName(hint);
        // overlay with an id map comes with idmapped layers (issue 15, 15a): until then privileged.
        var info = M.Create(name, new CreateOptions { Template = "busybox", Backend = backend, Privileged = backend is "overlay" or "btrfs" });
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
    /// <paramref name="settle"/>: waits for what the call left running on its own (CRIU, which goes on
    /// without the pwsh that asked for it) before the state is judged.
    private void Trial(string what, string call, TimeSpan? delay, Func<bool>? killWhen, Action next, Action? settle = null)
    {
        var outcome = KilledPwsh.Run(Store.StorePath, call, delay, killWhen, TimeSpan.FromSeconds(120));
        var where = $"{what}, delay {delay?.TotalMilliseconds.ToString("0.0") ?? "-"} ms: " +
                    (outcome.Killed ? $"killed {outcome.SinceGo.TotalMilliseconds:0.0} ms into the call" : $"not killed (exit {outcome.ExitCode})");
        Log.WriteLine(where);
        if (!outcome.Killed && outcome.ExitCode != 0) Log.WriteLine("  stderr: " + outcome.StdErr.Trim());
        settle?.Invoke();
        Log.WriteLine("  then: " + string.Join(", ", M.Names().Select(n => $"{n} {Safe(() => M.Get(n).State.ToString())}")));
        AssertTruth(where, allowFrozen: true);
        next();
        AssertTruth($"{where}: after the next command");
        AssertNoLeaks(where);
    }

    private static string Safe(Func<string> f)
    {
        try { return f(); }
        catch (Exception ex) { return ex.Message; }
    }

    /// <summary>How long the uninterrupted call takes (from GO to its end): kill delays are drawn below that.</summary>
    private TimeSpan Calibrate(string what, string call)
    {
        var outcome = KilledPwsh.Run(Store.StorePath, call);
        Assert.True(outcome.ExitCode == 0 && outcome.StdOut.Contains("DONE"), $"{what} fails without a fault: {outcome.StdErr}");
        Log.WriteLine($"{what}: {outcome.SinceGo.TotalMilliseconds:0} ms uninterrupted");
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
            Check.Veths.Add(hook.HostEndName(name, 0));
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
                        Assert.Equal("ContainerNotStopped", Assert.Throws<ContainerException>(() => ContainerArchive.Export(M, name, Path.Combine(Store.Root, "st.tar"), force: false)).ErrorId);
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
        var outcome = KilledPwsh.Run(Store.StorePath, $"Start-Container {name}", killWhen: () => ReadOrEmpty(record).Contains(" released "));
        Log.WriteLine($"killed {outcome.Killed} at {outcome.SinceGo.TotalMilliseconds:0} ms");
        var run = RunRecord.Read(record);
        Assert.NotNull(run);
        Log.WriteLine($"state.json records the run: {run.IsRecordedIn(PersistedState.Load(M.Store.StatePath(name)))} (expected: no, pwsh was killed first)");
        // The orphan runs and is reported running; then its init ends before any command recorded it.
        Assert.Equal(ContainerStatus.Running, M.Get(name).State);
        Assert.Equal(run.InitPid, M.Get(name).Pid);
        PSContainers.Runtime.Native.Sys.Kill(run.InitPid, 9);
        PSContainers.Runtime.Native.Sys.WaitForExit(run.SupervisorPid, run.SupervisorStartTime, TimeSpan.FromSeconds(10));
        Assert.Equal(ContainerStatus.Stopped, M.Get(name).State);
        AssertTruth("its init ended");
        // The next command that changes it records how that run ended.
        Assert.Equal("ContainerNotRunning", Assert.Throws<ContainerException>(() => M.Stop(name)).ErrorId);
        var info = M.Get(name);
        Assert.Equal("SIGKILL", info.ExitSignal);
        Assert.Equal(ContainerStatus.Running, M.Start(name).State);
        AssertNoLeaks("removed");
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
        var dest = Path.Combine(Store.Root, "exports");
        Directory.CreateDirectory(dest);
        Check.ExtraDirectories.Add(dest);
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
        var archive = Path.Combine(Store.Root, "src.tar");
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

    /// <summary>A running counter beside 64 MiB of memory (CounterContainer.Heavy), counted to 20: a restart would be seen counting from 1.</summary>
    private string HeavyCounter(string hint)
    {
        var name = TestStore.NewName(hint);
        M.Create(name, new CreateOptions { Template = "busybox", Command = ["/bin/sh", "-c", CounterContainer.Heavy] });
        M.Start(name);
        CounterContainer.WaitCount(Store, name, 20);
        return name;
    }

    /// <summary>CRIU goes on without the killed pwsh: wait until no process has anything open in the images directory.</summary>
    private static void CriuDone(string dir) =>
        Assert.True(SpinWait.SpinUntil(() => FaultChecker.ProcessesUsing(dir).Count == 0, TimeSpan.FromSeconds(90)),
            $"CRIU still works in {dir}: {string.Join(", ", FaultChecker.ProcessesUsing(dir).Select(p => p.What))}");

    /// <summary>
    /// A kill point: <paramref name="lag"/> after <paramref name="file"/> appears (CRIU has begun:
    /// its log exists).
    /// </summary>
    private static Func<bool> After(string file, TimeSpan lag)
    {
        Stopwatch? seen = null;
        return () =>
        {
            if (seen is null && File.Exists(file)) seen = Stopwatch.StartNew();
            return seen is not null && seen.Elapsed >= lag;
        };
    }

    /// <summary>
    /// After a checkpoint or restore trial: nobody holds the container's lock, CRIU left no mount
    /// (its cgroup yard, .criu.cgyard.*) or directory of its own in the images directory, and a
    /// plain Get-Container in a session of its own lists the container in the state the runtime sees.
    /// </summary>
    private void AssertQuiet(string name, string dir)
    {
        using (M.Store.Lock(name, TimeSpan.Zero)) { }
        var mounts = File.ReadLines("/proc/self/mountinfo").Select(l => l.Split(' ')[4]).Where(p => p.StartsWith(dir + "/", StringComparison.Ordinal)).ToList();
        Assert.True(mounts.Count == 0, $"mounts left in {dir}: {string.Join(", ", mounts)}");
        if (Directory.Exists(dir)) Assert.Empty(Directory.EnumerateDirectories(dir, ".criu.*"));
        using var session = Store.OpenSession();
        var listed = session.Invoke("Get-Container");
        Assert.Empty(listed.Errors);
        var info = Assert.Single(listed.Output.Select(o => (ContainerInfo)o.BaseObject), c => c.Name == name);
        Assert.Equal(M.Get(name).State, info.State);
    }

    /// <summary>Restored, not restarted: the count goes on from where the checkpoint took it.</summary>
    private void AssertCountsOnFrom(string name, int atCheckpoint)
    {
        Thread.Sleep(300);
        var now = CounterContainer.Count(Store, name);
        Assert.True(now >= atCheckpoint, $"{name} counts from {now}, below {atCheckpoint} at its checkpoint: it was restarted, not restored");
        CounterContainer.WaitCount(Store, name, now + 3);
    }

    /// <summary>Where the trials put their checkpoints (outside the store; checked for leftovers too).</summary>
    private string CheckpointsDirectory()
    {
        var dirs = Path.Combine(Store.Root, "ckpt");
        Directory.CreateDirectory(dirs);
        Check.ExtraDirectories.Add(dirs);
        return dirs;
    }

    /// <summary>
    /// Kill points of a CRIU operation: random ones over its span, and some while CRIU works (from
    /// its log's appearing); every other one of each kind takes the alternative command (Save, or
    /// Start of a saved container).
    /// </summary>
    private List<(string What, bool Alternative, TimeSpan? Delay, TimeSpan? Lag)> CriuPlan(TimeSpan span, string during)
    {
        var plan = new List<(string, bool, TimeSpan?, TimeSpan?)>();
        for (var i = 0; i < 4; i++) plan.Add(($"random #{i}", i % 2 == 1, Delay(span), null));
        for (var i = 0; i < 3; i++) plan.Add(($"{during} #{i}", i == 1, null, Delay(span / 2)));
        return plan;
    }

    /// <summary>
    /// After a killed checkpoint or restore: a Stopped container restores from <paramref name="dir"/>,
    /// a Saved one starts (and its images go); either way it counts on from its checkpoint, and once
    /// stopped again it is Stopped: its checkpoint is history, not resumed a second time.
    /// </summary>
    private void AssertResumes(string name, string dir, bool saved, int atCheckpoint, string after)
    {
        var state = M.Get(name).State;
        Log.WriteLine($"  {name} is {state}");
        switch (state)
        {
            case ContainerStatus.Running:
                break;
            case ContainerStatus.Stopped:
                Assert.False(saved, $"a killed {after} left a saved container Stopped: Start-Container would not resume it");
                Assert.Equal(ContainerStatus.Running, new CheckpointManager(M).Restore(dir, null, new RestoreOptions()).State);
                break;
            case ContainerStatus.Saved:
                Assert.True(saved, $"a killed {after} left a container Saved that was not being saved");
                Assert.Equal(ContainerStatus.Running, M.Start(name).State);
                Assert.False(Directory.Exists(dir), "the saved images outlived the resume");
                break;
            default:
                Assert.Fail($"{name} is {state} after a killed {after}");
                break;
        }
        AssertCountsOnFrom(name, atCheckpoint);
        M.Stop(name, kill: true);
        Assert.Equal(ContainerStatus.Stopped, M.Get(name).State);
    }

    [Fact]
    public void KilledCheckpoint_LeavesTheContainerRunning_OrStoppedAndRestorable()
    {
        var dirs = CheckpointsDirectory();
        var checkpoints = new CheckpointManager(M);
        var cal = HeavyCounter("cal");
        var span = Calibrate("Checkpoint-Container", $"Checkpoint-Container {cal} '{Path.Combine(dirs, cal)}'");
        M.Remove(cal, force: true);
        // Checkpoint-Container and Save-Container; killed while CRIU dumps, the dump goes on
        // without pwsh and ends the processes.
        foreach (var (what, save, delay, lag) in CriuPlan(span, "while CRIU dumps"))
        {
            var name = HeavyCounter("ck");
            var dir = save ? checkpoints.SavedCheckpointDirectory(name) : Path.Combine(dirs, name);
            var call = save ? $"Save-Container {name}" : $"Checkpoint-Container {name} '{dir}'";
            var command = save ? "Save-Container" : "Checkpoint-Container";
            var saved = save;
            Trial($"{command}, {what}{(lag is { } l ? $" (+{l.TotalMilliseconds:0} ms)" : "")}", call, delay,
                lag is { } after ? After(Path.Combine(dir, "dump.log"), after) : null, () =>
            {
                AssertQuiet(name, dir);
                if (M.Get(name).State == ContainerStatus.Running)
                {
                    // The dump never took the processes (or CRIU gave up and resumed them): they
                    // count on, and the next checkpoint, into a new directory, works.
                    CounterContainer.WaitCount(Store, name, CounterContainer.Count(Store, name) + 2);
                    dir = Path.Combine(dirs, name + "-again");
                    saved = false;
                    checkpoints.Checkpoint(name, dir, new CheckpointOptions());
                    Assert.Equal(ContainerStatus.Stopped, M.Get(name).State);
                }
                AssertResumes(name, dir, saved, CounterContainer.CountNow(Store, name), command);
            }, settle: () => CriuDone(dir));
        }
    }

    [Fact]
    public void KilledRestore_LeavesTheContainerRunning_OrStoppedAndRestorableAgain()
    {
        var dirs = CheckpointsDirectory();
        var checkpoints = new CheckpointManager(M);
        var cal = HeavyCounter("cal");
        checkpoints.Checkpoint(cal, Path.Combine(dirs, cal), new CheckpointOptions());
        var span = Calibrate("Restore-Container", $"Restore-Container '{Path.Combine(dirs, cal)}'");
        M.Remove(cal, force: true);
        // Restore-Container, and Start-Container of a saved container (which restores, then
        // deletes the images).
        foreach (var (what, saved, delay, lag) in CriuPlan(span, "while CRIU restores"))
        {
            var name = HeavyCounter("rs");
            string dir;
            if (saved)
            {
                checkpoints.Save(name);
                dir = checkpoints.SavedCheckpointDirectory(name);
            }
            else checkpoints.Checkpoint(name, dir = Path.Combine(dirs, name), new CheckpointOptions());
            var atCheckpoint = CounterContainer.CountNow(Store, name);
            var call = saved ? $"Start-Container {name}" : $"Restore-Container '{dir}'";
            var command = saved ? "Start-Container (saved)" : "Restore-Container";
            Trial($"{command}, {what}{(lag is { } l ? $" (+{l.TotalMilliseconds:0} ms)" : "")}", call, delay,
                lag is { } after ? After(Path.Combine(dir, "restore.log"), after) : null, () =>
            {
                AssertQuiet(name, dir);
                AssertResumes(name, dir, saved, atCheckpoint, command);
            }, settle: () => CriuDone(dir));
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
