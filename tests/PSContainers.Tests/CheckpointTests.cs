using PSContainers.Runtime.Namespaces;
using System.Diagnostics;
using System.Management.Automation;
using PSContainers.Runtime;
using PSContainers.Runtime.Checkpoint;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Network;
using PSContainers.Runtime.State;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// Checkpoint/restore with the real CRIU (installed by .ci/install-criu) on real containers: the
/// processes go on from where they were, under a supervisor like a started container.
/// </summary>
[Collection("Containers")]
public sealed class CheckpointTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly NetLab _lab = new();
    private readonly List<Process> _peers = new();

    public void Dispose()
    {
        foreach (var p in _peers)
            try { p.Kill(entireProcessTree: true); p.Dispose(); } catch (Exception) { }
        try { foreach (var n in _store.Manager.Names().ToList()) _store.Manager.Remove(n, force: true); } catch (Exception) { }
        _lab.Dispose();
        _store.Dispose();
    }

    /// <summary>pid 1 counts (console and /tmp/count) until /tmp/quit appears, then exits 7.</summary>
    private const string Counter = "i=0; while [ ! -e /tmp/quit ]; do i=$((i+1)); echo $i > /tmp/count; echo tick $i; sleep 0.1; done; exit 7";

    private string Checkpoints(string name) => Path.Combine(_store.Root, "ckpt-" + name);

    private string NewCounter(ModuleSession s, string hint, string extra = "")
    {
        var name = TestStore.NewName(hint);
        s.Run($"New-Container -Name $args[0] -Command /bin/sh,-c,$args[1] {extra}", name, Counter);
        return name;
    }

    private int Count(string name) => CounterContainer.Count(_store, name);

    private void WaitCount(string name, int atLeast) => CounterContainer.WaitCount(_store, name, atLeast);

    /// <summary>
    /// Where a checkpoint (or save) froze the counter: the console's last tick. Not /tmp/count: the
    /// shell's `echo $i > /tmp/count` truncates the file before it writes, and CRIU may freeze the shell
    /// between the two; the file then stays empty until the restore, and no retry reads a number from it.
    /// </summary>
    private int CountAtCheckpoint(string name) => Ticks(name).Last();

    /// <summary>The "tick N" numbers of the console log, in order.</summary>
    private int[] Ticks(string name) => _store.Manager.ReadConsoleLog(name)
        .Where(l => l.StartsWith("tick ", StringComparison.Ordinal))
        .Select(l => int.TryParse(l[5..].Trim(), out var n) ? n : -1).Where(n => n > 0).ToArray();

    private void AssertNoCgroupLeft(string name)
    {
        foreach (var dir in _store.Manager.Cgroups.Directories($"{_store.CgroupParent}/{name}"))
            Assert.False(Directory.Exists(dir), $"{dir} is left behind");
    }

    [Fact]
    public void CheckpointAndRestore_TheCounterGoesOnFromWhereItStopped_UnderASupervisor()
    {
        using var s = _store.OpenSession();
        var name = NewCounter(s, "cr", "-MemoryLimit 64MB");
        s.Run("Set-CgroupLimit -Name $args[0] -PidsMax 50 -Persist", name);
        s.Run("Start-Container -Name $args[0]", name);
        WaitCount(name, 5);
        var dir = Checkpoints(name);

        var result = s.Invoke("Checkpoint-Container -Name $args[0] -Path $args[1]", name, dir);
        Assert.Empty(result.Errors);
        var checkpoint = result.Single<CheckpointInfo>();
        Assert.NotEmpty(result.Progress);
        Assert.Equal(name, checkpoint.Container);
        Assert.Equal(dir, checkpoint.Path);
        Assert.True(checkpoint.ProcessCount >= 1);
        Assert.True(checkpoint.Size > 0);
        Assert.StartsWith("4.", checkpoint.CriuVersion);
        Assert.Equal(File.ReadAllText("/proc/sys/kernel/osrelease").Trim(), checkpoint.Kernel);
        Assert.True(File.Exists(Path.Combine(dir, "pstree.img")));
        Assert.True(File.Exists(Path.Combine(dir, "config.yaml")));

        // CRIU stopped it: recorded as a clean stop (no exit code), cgroup gone, counter frozen.
        var stopped = (ContainerInfo)s.Run("Get-Container -Name $args[0]", name).Single().BaseObject;
        Assert.Equal(ContainerStatus.Stopped, stopped.State);
        Assert.Null(stopped.ExitCode);
        Assert.Null(stopped.ExitSignal);
        AssertNoCgroupLeft(name);
        var atCheckpoint = CountAtCheckpoint(name);
        var countFile = Path.Combine(_store.Manager.Get(name).RootfsPath, "tmp", "count");
        var frozen = File.ReadAllText(countFile);
        Thread.Sleep(300);
        Assert.Equal(frozen, File.ReadAllText(countFile));
        var read = (CheckpointInfo)s.Run("Get-ContainerCheckpoint -Path $args[0]", dir).Single().BaseObject;
        Assert.Equal(checkpoint.ProcessCount, read.ProcessCount);

        var restored = s.Invoke("Restore-Container -Path $args[0] -PassThru", dir);
        Assert.Empty(restored.Errors);
        var info = restored.Single<ContainerInfo>();
        Assert.Equal(ContainerStatus.Running, info.State);
        Assert.NotNull(info.SupervisorPid);
        // The restored init is the supervisor's child (rst_sibling), like a started one.
        Assert.Equal(info.SupervisorPid, ParentOf(info.Pid!.Value));
        WaitCount(name, atCheckpoint + 5);
        // One unbroken sequence on the console: 1, 2, ... through the checkpoint and on.
        var ticks = Ticks(name);
        Assert.True(ticks.Length > atCheckpoint, $"{ticks.Length} ticks");
        Assert.Equal(Enumerable.Range(1, ticks.Length), ticks);

        // The limits are in force again in the restored cgroup.
        Assert.Equal(64L << 20, _store.Manager.Cgroups.GetMemoryMax(info.CgroupPath!));
        Assert.Equal(50, _store.Manager.Cgroups.ReadLimits(info.CgroupPath!).PidsMax);

        // Restoring again while it runs is a clear error.
        var twice = s.Invoke("Restore-Container -Path $args[0]", dir);
        Assert.Equal("ContainerAlreadyRunning", twice.SingleError.FullyQualifiedErrorId.Split(',')[0]);

        // It ends on its own: the supervisor records the exit code and removes the cgroups.
        File.WriteAllText(Path.Combine(info.RootfsPath, "tmp", "quit"), "");
        var done = (ContainerInfo)s.Run("Wait-Container -Name $args[0] -State Stopped -Timeout 20 -PassThru", name).Single().BaseObject;
        Assert.Equal(7, done.ExitCode);
        AssertNoCgroupLeft(name);
        s.Run("Remove-Container -Name $args[0]", name);
        Assert.False(_store.Manager.Exists(name));
        // The journal has it all, in order: the dump's kill is no death (it was asked for); the restored init's own end is.
        var events = _store.Manager.Events.Read().Where(e => e.Container == name).ToList();
        Assert.Equal(new[]
        {
            ContainerEventKind.Created, ContainerEventKind.LimitsChanged, ContainerEventKind.Started, ContainerEventKind.Checkpointed,
            ContainerEventKind.Restored, ContainerEventKind.Died, ContainerEventKind.Removed,
        }, events.Select(e => e.Kind));
        Assert.Equal(dir, events[3].Details["directory"]);
        Assert.Equal("7", events[5].Details["code"]);
    }

    [Fact]
    public void OverlayBackedContainer_IsCheckpointedAndRestored_AndCountsOn()
    {
        using var s = _store.OpenSession();
        var name = NewCounter(s, "ov", "-Backend overlay -Privileged"); // overlay with an id map: 15a
        s.Run("Start-Container -Name $args[0]", name);
        // The overlay is mounted only inside the container: its writes land in the upper layer.
        var count = Path.Combine(_store.Manager.Get(name).Path, "overlay", "upper", "tmp", "count");
        int Counted() => int.TryParse(File.ReadAllText(count).Trim(), out var n) ? n : 0;
        SpinWait.SpinUntil(() => File.Exists(count) && Counted() >= 3, TimeSpan.FromSeconds(20));
        var dir = Checkpoints(name);
        s.Run("Checkpoint-Container -Name $args[0] -Path $args[1]", name, dir);
        var atCheckpoint = CountAtCheckpoint(name);
        Assert.True(atCheckpoint >= 3, $"counted to {atCheckpoint}");

        var info = (ContainerInfo)s.Run("Restore-Container -Path $args[0] -PassThru", dir).Single().BaseObject;
        Assert.Equal(ContainerStatus.Running, info.State);
        Assert.True(SpinWait.SpinUntil(() => Counted() >= atCheckpoint + 3, TimeSpan.FromSeconds(20)), $"stuck at {Counted()}");
        Assert.Equal(Enumerable.Range(1, Ticks(name).Length), Ticks(name));
        // No overlay mount of the restore is left on the host.
        Assert.DoesNotContain(info.RootfsPath, File.ReadAllText("/proc/self/mountinfo"));
        s.Run("Stop-Container -Name $args[0] -Kill", name);
        AssertNoCgroupLeft(name);
        s.Run("Remove-Container -Name $args[0]", name);
    }

    private static int ParentOf(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        return int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1]);
    }

    [Fact]
    public void LeaveRunning_ThenRestoreUnderANewName_RunsACopyBesideTheOriginal_AndStopWorks()
    {
        using var s = _store.OpenSession();
        var name = NewCounter(s, "lr");
        s.Run("Start-Container -Name $args[0]", name);
        WaitCount(name, 3);
        var dir = Checkpoints(name);
        var checkpoint = (CheckpointInfo)s.Run("Checkpoint-Container $args[0] $args[1] -LeaveRunning", name, dir).Single().BaseObject;
        Assert.True(checkpoint.LeftRunning);
        var original = _store.Manager.Get(name);
        Assert.Equal(ContainerStatus.Running, original.State);
        var atCheckpoint = Count(name);

        // Onto the running original: refused, nothing changed.
        var busy = s.Invoke("Restore-Container -Path $args[0]", dir);
        Assert.Equal("ContainerAlreadyRunning", busy.SingleError.FullyQualifiedErrorId.Split(',')[0]);
        Assert.Equal(original.Pid, _store.Manager.Get(name).Pid);

        // A copy needs the original's files as at checkpoint time: not while the original runs on.
        var copy = TestStore.NewName("lrc");
        var whileRunning = s.Invoke("Restore-Container -Path $args[0] -Name $args[1]", dir, copy);
        Assert.Equal("ContainerNotStopped", whileRunning.SingleError.FullyQualifiedErrorId.Split(',')[0]);
        Assert.False(_store.Manager.Exists(copy));

        // Stopped, the original can be restored as a copy and as itself from the one checkpoint.
        s.Run("Stop-Container -Name $args[0] -Kill", name);
        var info = (ContainerInfo)s.Run("Get-ContainerCheckpoint $args[0] | Restore-Container -Name $args[1] -PassThru", dir, copy).Single().BaseObject;
        Assert.Equal(ContainerStatus.Running, info.State);
        Assert.NotEqual(original.RootfsPath, info.RootfsPath);
        s.Run("Restore-Container -Path $args[0]", dir);
        Assert.Equal(ContainerStatus.Running, _store.Manager.Get(name).State);
        WaitCount(copy, atCheckpoint + 3);
        WaitCount(name, atCheckpoint + 3);

        var stopped = (ContainerInfo)s.Run("Stop-Container -Name $args[0] -Kill -PassThru", copy).Single().BaseObject;
        Assert.Equal(ContainerStatus.Stopped, stopped.State);
        Assert.Equal(137, stopped.ExitCode);
        AssertNoCgroupLeft(copy);
        s.Run("Remove-Container -Name $args[0],$args[1] -Force", name, copy);
    }

    [Fact]
    public void SaveContainer_ShowsSaved_AndStartContainerResumesIt()
    {
        using var s = _store.OpenSession();
        var name = NewCounter(s, "sv");
        s.Run("Start-Container -Name $args[0]", name);
        WaitCount(name, 3);
        var saved = s.Invoke("Save-Container -Name $args[0] -PassThru", name);
        Assert.Empty(saved.Errors);
        Assert.Equal(ContainerStatus.Saved, saved.Single<ContainerInfo>().State);
        Assert.Equal(ContainerStatus.Saved, ((ContainerInfo)s.Run("Get-Container -Name $args[0]", name).Single().BaseObject).State);
        var imageDir = new CheckpointManager(_store.Manager).SavedCheckpointDirectory(name);
        Assert.True(File.Exists(Path.Combine(imageDir, CheckpointManifest.FileName)));
        AssertNoCgroupLeft(name);
        var atSave = CountAtCheckpoint(name);

        // A saved container is not running: Stop-Container says so and points at Start-Container.
        var stop = s.Invoke("Stop-Container -Name $args[0]", name);
        Assert.Contains("Start-Container", stop.SingleError.Exception.Message);

        var started = (ContainerInfo)s.Run("Start-Container -Name $args[0] -PassThru", name).Single().BaseObject;
        Assert.Equal(ContainerStatus.Running, started.State);
        WaitCount(name, atSave + 3);
        Assert.Equal(Enumerable.Range(1, Ticks(name).Length), Ticks(name));
        Assert.False(Directory.Exists(imageDir), "the saved images are discarded once the container runs again");
        s.Run("Remove-Container -Name $args[0] -Force", name);
        AssertNoCgroupLeft(name);
    }

    // Both modes: CRIU moves a veth pair made beforehand into the restored network namespace (a
    // user-namespaced container's CRIU cannot create one whose peer is on the host's side).
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TcpEstablished_AConnectionToAPeerInAnotherNamespace_SurvivesCheckpointAndRestore(bool privileged)
    {
        // Lab: namespace with a bridge (10.x.y.1/24); the container's veth host end joins it.
        var ns = _lab.NewNamespace("tcp");
        var subnet = $"10.{200 + Random.Shared.Next(50)}.{Random.Shared.Next(256)}";
        using (var lab = new NetworkClient(NetworkLocation.ForNamespace(ns)))
        {
            lab.CreateBridge("br0");
            lab.AddAddress("br0", subnet + ".1/24");
            lab.SetLink("br0", new LinkChanges { Up = true });
        }
        using var s = _store.OpenSession();
        var name = TestStore.NewName("tcp");
        // pid 1 (a session leader) runs a pipeline: numbers into the connection, what arrives into /tmp/recv.
        const string server = "i=0; while true; do i=$((i+1)); echo n$i; sleep 0.1; done | nc -l -p 5000 > /tmp/recv";
        s.Run("New-Container -Name $args[0] -Privileged:$args[4] -Command /bin/sh,-c,$args[1] -Network @{type='veth'; link='br0'; linkNamespace=$args[2]; ipv4=@($args[3])}",
            name, server, ns, subnet + ".2/24", privileged);
        Assert.Equal(privileged ? ContainerMode.Privileged : ContainerMode.Unprivileged, _store.Manager.Get(name).Mode);
        s.Run("Start-Container -Name $args[0]", name);

        var peer = StartPeer(ns, subnet + ".2", 5000);
        peer.StandardInput.WriteLine("before");
        peer.StandardInput.Flush();
        var beforeCheckpoint = ReadNumbers(peer, 5);

        var dir = Checkpoints(name);
        var checkpoint = s.Invoke("Checkpoint-Container -Name $args[0] -Path $args[1] -TcpEstablished", name, dir);
        Assert.Empty(checkpoint.Errors);
        Assert.True(checkpoint.Single<CheckpointInfo>().TcpEstablished);
        Assert.Equal(ContainerStatus.Stopped, _store.Manager.Get(name).State);
        var recv = Path.Combine(_store.Manager.Get(name).RootfsPath, "tmp", "recv");
        Assert.Contains("before", File.ReadAllText(recv));

        var restored = s.Invoke("Restore-Container -Path $args[0] -PassThru", dir);
        Assert.Empty(restored.Errors);
        Assert.Equal(new[] { subnet + ".2" }, restored.Single<ContainerInfo>().IPv4);
        // The same connection carries data both ways: the numbers go on, our line arrives.
        peer.StandardInput.WriteLine("after");
        peer.StandardInput.Flush();
        var afterRestore = ReadNumbers(peer, 10);
        Assert.Equal(beforeCheckpoint.Last() + 1, afterRestore.First());
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!File.ReadAllText(recv).Contains("after") && DateTime.UtcNow < deadline) Thread.Sleep(50);
        Assert.Equal(new[] { "before", "after" }, File.ReadAllLines(recv));
        Assert.False(peer.HasExited);

        s.Run("Remove-Container -Name $args[0] -Force", name);
        AssertNoCgroupLeft(name);
        using var labClient = new NetworkClient(NetworkLocation.ForNamespace(ns));
        Assert.Empty(labClient.GetLinks().Where(l => l.Master == "br0"));
    }

    // A checkpoint is of the running container's NICs (its ledger), not of config.yaml's: a veth
    // plugged live without -Persist is restored with its host end on its bridge, its MAC and address;
    // a configured one removed live stays out; the restored run's stop undoes what the restore made.
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void LiveNics_AreWhatACheckpointRestores_AndTheRestoredStopUndoesThem(bool privileged)
    {
        var ns = _lab.NewNamespace("lv");
        var subnet = $"10.{200 + Random.Shared.Next(50)}.{Random.Shared.Next(256)}";
        using (var lab = new NetworkClient(NetworkLocation.ForNamespace(ns)))
        {
            lab.CreateBridge("br0");
            lab.AddAddress("br0", subnet + ".1/24");
            lab.SetLink("br0", new LinkChanges { Up = true });
        }
        string[] LabLinks() { using var c = new NetworkClient(NetworkLocation.ForNamespace(ns)); return c.GetLinks().Select(l => l.Name).Order().ToArray(); }
        using var s = _store.OpenSession();
        var name = NewCounter(s, "lv", $"-Privileged:${privileged.ToString().ToLowerInvariant()} -Network @{{type='veth'; link='br0'; linkNamespace='{ns}'; ipv4=@('{subnet}.2/24')}}");
        s.Run("Start-Container -Name $args[0]", name);
        var plugged = (Runtime.Devices.ContainerNetworkInterface)s.Run(
            "Add-ContainerNetworkInterface -Name $args[0] -Type veth -Link br0 -LinkNamespace $args[1] -InterfaceName lan7 -IPv4 $args[2] -HwAddress 00:16:3e:xx:xx:xx",
            name, ns, subnet + ".7/24").Single().BaseObject;
        s.Run("Remove-ContainerNetworkInterface -Name $args[0] -InterfaceName eth0", name);
        WaitCount(name, 3);
        var dir = Checkpoints(name);

        var checkpoint = s.Invoke("Checkpoint-Container -Name $args[0] -Path $args[1]", name, dir);
        Assert.Empty(checkpoint.Errors);
        var manifest = CheckpointManifest.Load(dir);
        Assert.Equal(new[] { "lan7" }, manifest.Veths);
        Assert.Equal(plugged.HostName, Assert.Single(manifest.Nics!).HostEnd);
        Assert.Equal(new[] { "br0", "lo" }, LabLinks());

        var restored = s.Invoke("Restore-Container -Path $args[0] -PassThru", dir);
        Assert.True(restored.Errors.Count == 0, string.Join("\n", restored.Errors.Select(e => e.ToString())));
        Assert.Equal(new[] { subnet + ".7" }, restored.Single<ContainerInfo>().IPv4);
        WaitCount(name, CountAtCheckpoint(name) + 2);
        using (var inside = new NetworkClient(NetworkLocation.ForPid(_store.Manager.Get(name).Pid!.Value)))
        {
            Assert.Equal(new[] { "lan7", "lo" }, inside.GetLinks().Select(l => l.Name).Order());
            var lan7 = inside.GetLink("lan7");
            Assert.Equal(plugged.MacAddress, lan7.MacAddress);
            Assert.Contains(subnet + ".7/24", lan7.Addresses);
        }
        using (var lab = new NetworkClient(NetworkLocation.ForNamespace(ns)))
        {
            var hostEnd = lab.GetLink(plugged.HostName!);
            Assert.Equal("br0", hostEnd.Master);
            Assert.True(hostEnd.IsUp);
        }
        var ping = (ContainerCommandResult)s.Run("Invoke-ContainerCommand -Name $args[0] -Command $args[1]", name, new[] { "ping", "-c1", "-W3", subnet + ".1" }).Single().BaseObject;
        Assert.True(ping.ExitCode == 0, string.Join("\n", ping.Output.Concat(ping.Error)));
        Assert.Equal(new[] { "lan7" }, new Runtime.NetworkHooks.NicPlumbing(_store.Manager.Store).Load(name)!.Select(p => p.Name));

        s.Run("Stop-Container -Name $args[0] -Kill", name);
        Assert.Equal(new[] { "br0", "lo" }, LabLinks());
        Assert.Null(new Runtime.NetworkHooks.NicPlumbing(_store.Manager.Store).Load(name));
        // The next start is config.yaml's again: eth0 back, lan7 (never persisted) not.
        s.Run("Start-Container -Name $args[0]", name);
        using (var inside = new NetworkClient(NetworkLocation.ForPid(_store.Manager.Get(name).Pid!.Value)))
            Assert.Equal(new[] { "eth0", "lo" }, inside.GetLinks().Select(l => l.Name).Order());
        s.Run("Remove-Container -Name $args[0] -Force", name);
        Assert.Equal(new[] { "br0", "lo" }, LabLinks());
        AssertNoCgroupLeft(name);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void RestoredContainer_FollowsItsRestartPolicy_InTheNamespacesCriuRestored(bool privileged)
    {
        using var s = _store.OpenSession();
        var name = NewCounter(s, "rsp", privileged ? "-Privileged" : "");
        File.AppendAllText(_store.Manager.Store.ConfigPath(name), "restart: { policy: on-failure, maxRetries: 3, backoff: 200ms }\n");
        s.Run("Start-Container -Name $args[0]", name);
        WaitCount(name, 5);
        var dir = Checkpoints(name);
        Assert.Empty(s.Invoke("Checkpoint-Container -Name $args[0] -Path $args[1]", name, dir).Errors);
        var restored = s.Invoke("Restore-Container -Path $args[0] -PassThru", dir);
        Assert.Empty(restored.Errors);
        var first = restored.Single<ContainerInfo>();
        Assert.Equal(privileged ? ContainerMode.Privileged : ContainerMode.Unprivileged, first.Mode);
        WaitCount(name, CountAtCheckpoint(name) + 2);
        var atRestore = CountAtCheckpoint(name);
        var netBefore = new FileInfo($"/proc/{first.Pid}/ns/net").LinkTarget;
        var userBefore = new FileInfo($"/proc/{first.Pid}/ns/user").LinkTarget;
        // No restart plan is left behind in the store's temporaries (psc-helper deleted it as it read it).
        Assert.Empty(Directory.Exists(_store.Manager.Store.TempDirectory) ? Directory.GetFiles(_store.Manager.Store.TempDirectory, "restart-spec-*") : Array.Empty<string>());

        Runtime.Native.Sys.Kill(first.Pid!.Value, 9);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!_store.Manager.Events.Read().Any(e => e.Container == name && e.Kind == ContainerEventKind.RestartedByPolicy) && DateTime.UtcNow < deadline) Thread.Sleep(100);
        var second = (ContainerInfo)s.Run("Get-Container -Name $args[0]", name).Single().BaseObject;
        Assert.Equal(ContainerStatus.Running, second.State);
        Assert.NotEqual(first.Pid, second.Pid);
        Assert.Equal(1, second.Restarts);
        Assert.Equal("signal SIGKILL", second.LastExit);
        Assert.Equal(second.SupervisorPid, ParentOf(second.Pid!.Value));
        // The user namespace (CRIU's, with the maps) and the network namespace are kept; init is new
        // and counts from 1 again (a fresh boot of the same container).
        Assert.Equal(netBefore, new FileInfo($"/proc/{second.Pid}/ns/net").LinkTarget);
        Assert.Equal(userBefore, new FileInfo($"/proc/{second.Pid}/ns/user").LinkTarget);
        // On the same console: 1, 2, ... N before the kill, then 1, 2, 3 from the new init.
        bool CountsAgain() => Ticks(name) is var t && Array.LastIndexOf(t, 1) > 0 && t.Length - Array.LastIndexOf(t, 1) >= 3;
        Assert.True(SpinWait.SpinUntil(CountsAgain, TimeSpan.FromSeconds(20)), $"ticks: {string.Join(' ', Ticks(name).TakeLast(10))}");
        var ticks = Ticks(name);
        Assert.True(Array.LastIndexOf(ticks, 1) >= atRestore, "the restored init counted on from the checkpoint first");

        var events = _store.Manager.Events.Read().Where(e => e.Container == name).ToList();
        Assert.Equal(new[]
        {
            ContainerEventKind.Created, ContainerEventKind.Started, ContainerEventKind.Checkpointed,
            ContainerEventKind.Restored, ContainerEventKind.Died, ContainerEventKind.RestartedByPolicy,
        }, events.Select(e => e.Kind));
        Assert.Equal("9", events[4].Details["signal"]);
        Assert.Equal("1", events[5].Details["attempt"]);
        Assert.Equal(second.Pid.ToString(), events[5].Details["init"]);

        // A stop that is asked for ends it for good.
        s.Run("Stop-Container -Name $args[0] -Kill", name);
        Assert.Equal(ContainerStatus.Stopped, _store.Manager.Get(name).State);
        s.Run("Remove-Container -Name $args[0] -Force", name);
        AssertNoCgroupLeft(name);
    }

    private Process StartPeer(string ns, string address, int port)
    {
        var psi = new ProcessStartInfo("nsenter") { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { $"--net=/run/netns/{ns}", "busybox", "nc", address, port.ToString() }) psi.ArgumentList.Add(a);
        // nc may start before the server listens: retry the connection for a while.
        for (var attempt = 0; ; attempt++)
        {
            var p = Process.Start(psi)!;
            _peers.Add(p);
            var first = p.StandardOutput.ReadLineAsync();
            if (first.Wait(TimeSpan.FromSeconds(2)) && first.Result is not null) return p;
            Assert.True(attempt < 10, "the peer could not connect to the container");
            try { p.Kill(); } catch (InvalidOperationException) { }
            Thread.Sleep(200);
        }
    }

    private static List<int> ReadNumbers(Process peer, int count)
    {
        var numbers = new List<int>();
        while (numbers.Count < count)
        {
            var line = peer.StandardOutput.ReadLineAsync();
            Assert.True(line.Wait(TimeSpan.FromSeconds(20)), "no data from the container within 20 s");
            Assert.NotNull(line.Result);
            numbers.Add(int.Parse(line.Result!.TrimStart('n')));
        }
        return numbers;
    }

    [Fact]
    public void Errors_AreClear_StoppedContainer_MissingCriu_UsedDirectory_AndAFailedRestoreRollsBackTheCopy()
    {
        using var s = _store.OpenSession();
        var name = NewCounter(s, "er");
        var dir = Checkpoints(name);

        var notRunning = s.Invoke("Checkpoint-Container -Name $args[0] -Path $args[1]", name, dir);
        Assert.Equal("ContainerNotRunning", notRunning.SingleError.FullyQualifiedErrorId.Split(',')[0]);
        Assert.Equal(ErrorCategory.InvalidOperation, notRunning.SingleError.CategoryInfo.Category);
        Assert.Equal(name, notRunning.SingleError.TargetObject);

        s.Run("Start-Container -Name $args[0]", name);
        var missing = new CheckpointManager(_store.Manager) { CriuPath = "/nonexistent/psc-test/criu" };
        var ex = Assert.Throws<ContainerException>(() => missing.Checkpoint(name, dir, new CheckpointOptions()));
        Assert.Equal("CriuNotFound", ex.ErrorId);
        Assert.Equal(ContainerErrorKind.NotInstalled, ex.Kind);
        Assert.Contains("/nonexistent/psc-test/criu", ex.Message);
        Assert.Contains("install-criu", ex.Message);
        Assert.Equal(ContainerStatus.Running, _store.Manager.Get(name).State);

        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "something"), "");
        var used = s.Invoke("Checkpoint-Container -Name $args[0] -Path $args[1]", name, dir);
        Assert.Equal("CheckpointExists", used.SingleError.FullyQualifiedErrorId.Split(',')[0]);
        File.Delete(Path.Combine(dir, "something"));

        // Pre-dump needs soft-dirty tracking: where the kernel lacks it, a clear refusal.
        var manager = new CheckpointManager(_store.Manager);
        if (!manager.Criu().MemoryTracking)
        {
            var pre = Assert.Throws<ContainerException>(() => manager.Checkpoint(name, dir, new CheckpointOptions { PreDump = true, LeaveRunning = true }));
            Assert.Equal("PreDumpUnsupported", pre.ErrorId);
            Assert.Contains("soft-dirty", pre.Message);
            Assert.Empty(Directory.EnumerateFileSystemEntries(dir));
        }

        s.Run("Checkpoint-Container -Name $args[0] -Path $args[1]", name, dir);
        // A damaged checkpoint: CRIU's own message and its log are quoted, and the copy made for
        // -Name is removed again.
        File.Delete(Path.Combine(dir, "core-1.img"));
        var copy = TestStore.NewName("erc");
        var failed = s.Invoke("Restore-Container -Path $args[0] -Name $args[1]", dir, copy);
        var error = failed.SingleError;
        Assert.Equal("RestoreFailed", error.FullyQualifiedErrorId.Split(',')[0]);
        Assert.Contains(Path.Combine(dir, "restore.log"), error.Exception.Message);
        Assert.Contains("CRIU could not restore", error.Exception.Message);
        var criuSaid = File.ReadLines(Path.Combine(dir, "restore.log")).Where(l => l.Contains("Error (")).Select(CriuService.Reason).OfType<string>().ToList();
        Assert.NotEmpty(criuSaid);
        Assert.Contains(criuSaid, reason => error.Exception.Message.Contains(reason));
        Assert.DoesNotContain("rlimit", error.Exception.Message);
        Assert.False(_store.Manager.Exists(copy));
        AssertNoCgroupLeft(copy);

        var noManifest = s.Invoke("Get-ContainerCheckpoint -Path $args[0]", _store.Root);
        Assert.Equal("CheckpointNotFound", noManifest.SingleError.FullyQualifiedErrorId.Split(',')[0]);
    }
    private static string Map(int pid, string file) =>
        string.Join(' ', File.ReadAllText($"/proc/{pid}/{file}").Split(' ', StringSplitOptions.RemoveEmptyEntries)).Trim();

    private static string HostUid(int pid) =>
        File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("Uid:")).Split('\t', StringSplitOptions.RemoveEmptyEntries)[1];

    [Fact]
    public void UserNamespacedContainer_CheckpointsAndRestores_IntoItsUserNamespace_AndSavesAndResumes()
    {
        // What New-Container -Unprivileged writes to config.yaml, on a range of its own (root writes its maps itself).
        using var s = _store.OpenSession();
        var name = TestStore.NewName("crun");
        var start = 1_500_000_000u + (uint)Random.Shared.Next(0, 4000) * 65536u;
        var config = Path.Combine(_store.Root, "idmap.yaml");
        File.WriteAllText(config, $"idMap: [u 0 {start} 65536, g 0 {start} 65536]\n");
        s.Run("New-Container -Name $args[0] -Command /bin/sh,-c,$args[1] -ConfigPath $args[2]", name, Counter, config);
        var started = (ContainerInfo)s.Run("Start-Container -Name $args[0] -PassThru", name).Single().BaseObject;
        Assert.Equal(start.ToString(), HostUid(started.Pid!.Value));
        WaitCount(name, 5);
        var dir = Checkpoints(name);

        var result = s.Invoke("Checkpoint-Container -Name $args[0] -Path $args[1]", name, dir);
        Assert.Empty(result.Errors);
        Assert.Equal(ContainerStatus.Stopped, ((ContainerInfo)s.Run("Get-Container -Name $args[0]", name).Single().BaseObject).State);
        AssertNoCgroupLeft(name);
        var atCheckpoint = CountAtCheckpoint(name);

        var restored = s.Invoke("Restore-Container -Path $args[0] -PassThru", dir);
        Assert.Empty(restored.Errors);
        var info = restored.Single<ContainerInfo>();
        Assert.Equal(ContainerStatus.Running, info.State);
        Assert.Equal(info.SupervisorPid, ParentOf(info.Pid!.Value));
        // Back in a user namespace with the same maps, still an unprivileged uid on the host, root inside.
        Assert.Equal($"0 {start} 65536", Map(info.Pid.Value, "uid_map"));
        Assert.Equal($"0 {start} 65536", Map(info.Pid.Value, "gid_map"));
        Assert.Equal(start.ToString(), HostUid(info.Pid.Value));
        var id = (ContainerCommandResult)s.Run("Invoke-ContainerCommand $args[0] -Command id,-u", name).Single().BaseObject;
        Assert.Equal(["0"], id.Output);
        WaitCount(name, atCheckpoint + 5);

        // Save-Container and Start-Container (a restore from the container's own directory) as well.
        var saved = s.Invoke("Save-Container -Name $args[0] -PassThru", name);
        Assert.Empty(saved.Errors);
        Assert.Equal(ContainerStatus.Saved, saved.Single<ContainerInfo>().State);
        var atSave = CountAtCheckpoint(name);
        var resumed = (ContainerInfo)s.Run("Start-Container -Name $args[0] -PassThru", name).Single().BaseObject;
        Assert.Equal($"0 {start} 65536", Map(resumed.Pid!.Value, "uid_map"));
        WaitCount(name, atSave + 5);
        // One unbroken sequence on the console through both checkpoints.
        var ticks = Ticks(name);
        Assert.Equal(Enumerable.Range(1, ticks.Length), ticks);

        File.WriteAllText(Path.Combine(resumed.RootfsPath, "tmp", "quit"), "");
        var done = (ContainerInfo)s.Run("Wait-Container -Name $args[0] -State Stopped -Timeout 20 -PassThru", name).Single().BaseObject;
        Assert.Equal(7, done.ExitCode);
        AssertNoCgroupLeft(name);
        s.Run("Remove-Container -Name $args[0]", name);
    }
}
