using System.Diagnostics;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Events;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.State;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// The event journal and the restart policy with real containers: each kind from where it happens
/// (the cmdlets, the supervisor), in order; OOM kills on whichever cgroup version holds the memory
/// controller (v1 here, v2 in the guest of tools/test-v2-guest.sh); restarts by policy, also with
/// the starting pwsh gone; nothing lost across rapid cycles with two listeners; the journal's bound.
/// </summary>
[Collection("Containers")]
public sealed class ContainerEventTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly ModuleSession _ps;

    public ContainerEventTests()
    {
        try { _ps = _store.OpenSession(); }
        catch { _store.Dispose(); throw; }
    }

    public void Dispose()
    {
        _ps.Dispose();
        _store.Dispose();
    }

    private EventJournal Journal => _store.Manager.Events;

    private List<ContainerEvent> EventsOf(string name) => Journal.Read().Where(e => e.Container == name).ToList();

    private void NewBusybox(string name, string command, string yaml = "", string extra = "")
    {
        _ps.Run($"New-Container -Name $args[0] -Template busybox -Command sh,-c,$args[1] {extra}", name, command);
        if (yaml.Length > 0) File.AppendAllText(_store.Manager.Store.ConfigPath(name), yaml + "\n");
    }

    /// <summary>Waits (on the journal, woken by inotify) until <paramref name="done"/> holds for the container's events.</summary>
    private List<ContainerEvent> WaitFor(string name, Func<List<ContainerEvent>, bool> done, int seconds = 30)
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        var seen = EventsOf(name);
        if (done(seen)) return seen;
        foreach (var e in Journal.Follow(DateTimeOffset.Now.AddMinutes(-10), cancel.Token))
        {
            seen = EventsOf(name);
            if (done(seen)) return seen;
        }
        Assert.Fail($"timed out; events of {name}: {string.Join(", ", EventsOf(name).Select(e => e.ToString()))}");
        return seen;
    }

    private static ContainerEventKind[] Kinds(IEnumerable<ContainerEvent> events) => events.Select(e => e.Kind).ToArray();

    [Fact]
    public void LifecycleKinds_AreRecorded_InOrder_WithDetails()
    {
        var name = TestStore.NewName("evk");
        NewBusybox(name, "sleep 1000");
        _ps.Run("Start-Container $args[0]", name);
        _ps.Run("Suspend-Container $args[0]", name);
        _ps.Run("Resume-Container $args[0]", name);
        _ps.Run("Set-CgroupLimit -Name $args[0] -MemoryMax 64MB", name);
        _ps.Run("Stop-Container $args[0] -Kill", name);
        // Init ending on its own: reported by the supervisor, not by a cmdlet.
        File.WriteAllText(_store.Manager.Store.ConfigPath(name), File.ReadAllText(_store.Manager.Store.ConfigPath(name)).Replace("sleep 1000", "exit 7"));
        _ps.Run("Start-Container $args[0]", name);
        WaitFor(name, ev => ev.Any(e => e.Kind == ContainerEventKind.Died));
        var info = _ps.Run("Get-Container $args[0]", name).Single().BaseObject as ContainerInfo;
        Assert.Equal("exit code 7", info!.LastExit);
        _ps.Run("Remove-Container $args[0] -Force", name);

        var events = EventsOf(name);
        Assert.Equal(new[]
        {
            ContainerEventKind.Created, ContainerEventKind.Started, ContainerEventKind.Frozen, ContainerEventKind.Thawed,
            ContainerEventKind.LimitsChanged, ContainerEventKind.Stopped, ContainerEventKind.Started, ContainerEventKind.Died,
            ContainerEventKind.Removed,
        }, Kinds(events));
        Assert.Equal("killed", events[5].Details["reason"]);
        Assert.Equal("7", events[7].Details["code"]);
        Assert.Contains(events[4].Details, kv => kv.Key is "memory.max" or "memory.limit_in_bytes");
        Assert.True(events.Zip(events.Skip(1)).All(p => p.First.Time <= p.Second.Time), "the journal is in time order");
        // -Since filters by time, and the cmdlet reads the same journal.
        var since = events[6].Time;
        var later = _ps.Run("Get-ContainerEvent -Name $args[0] -Since $args[1]", name, since.LocalDateTime).Select(o => (ContainerEvent)o.BaseObject).ToList();
        Assert.Equal(new[] { ContainerEventKind.Started, ContainerEventKind.Died, ContainerEventKind.Removed }, Kinds(later));
        var onlyStops = _ps.Run("Get-ContainerEvent -Name $args[0] -Kind Stopped", name);
        Assert.Single(onlyStops);
    }

    [Fact]
    public void OomKill_IsReportedBySupervisor_AndIsTheLastExit()
    {
        var name = TestStore.NewName("evoom");
        // Init itself holds the allocation (a 200 MB shell variable) past a 16 MB limit.
        NewBusybox(name, "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived", extra: "-MemoryLimit 16MB");
        _ps.Run("Start-Container $args[0]", name);
        var events = WaitFor(name, ev => ev.Any(e => e.Kind == ContainerEventKind.Died));
        var oom = Assert.Single(events, e => e.Kind == ContainerEventKind.OomKilled);
        Assert.True(int.Parse(oom.Details["kills"]) >= 1);
        var died = events.Single(e => e.Kind == ContainerEventKind.Died);
        Assert.Equal("9", died.Details["signal"]);
        Assert.Equal("1", died.Details["oom"]);
        Assert.True(oom.Time <= died.Time);
        var info = (ContainerInfo)_ps.Run("Get-Container $args[0]", name).Single().BaseObject;
        Assert.Equal(ContainerStatus.Stopped, info.State);
        Assert.Equal(ContainerStopReason.OomKilled, info.StopReason);
        Assert.Equal("OOM kill", info.LastExit);
    }

    [Fact]
    public void RestartOnFailure_StopsAtMaxRetries_WithDoublingBackoff()
    {
        var name = TestStore.NewName("evrf");
        NewBusybox(name, "exit 3", "restart: { policy: on-failure, maxRetries: 2, backoff: 300ms }");
        _ps.Run("Start-Container $args[0]", name);
        var events = WaitFor(name, ev => ev.Count(e => e.Kind == ContainerEventKind.Died) == 3);
        _ps.Run("Wait-Container $args[0] Stopped -Timeout 20", name);
        events = EventsOf(name);
        Assert.Equal(new[]
        {
            ContainerEventKind.Created, ContainerEventKind.Started, ContainerEventKind.Died, ContainerEventKind.RestartedByPolicy,
            ContainerEventKind.Died, ContainerEventKind.RestartedByPolicy, ContainerEventKind.Died,
        }, Kinds(events));
        Assert.Equal(new[] { "1", "2" }, events.Where(e => e.Kind == ContainerEventKind.RestartedByPolicy).Select(e => e.Details["attempt"]));
        Assert.Equal(new[] { "300ms", "600ms" }, events.Where(e => e.Kind == ContainerEventKind.RestartedByPolicy).Select(e => e.Details["delay"]));
        // The recorded times show the backoff (loosely: at least the delay, between the death and the restart).
        Assert.True(events[3].Time - events[2].Time >= TimeSpan.FromMilliseconds(250));
        Assert.True(events[5].Time - events[4].Time >= TimeSpan.FromMilliseconds(550));
        var info = (ContainerInfo)_ps.Run("Get-Container $args[0]", name).Single().BaseObject;
        Assert.Equal(ContainerStatus.Stopped, info.State);
        Assert.Equal(2, info.Restarts);
        Assert.Equal("exit code 3", info.LastExit);
    }

    [Fact]
    public void RestartAlways_RestartsACleanExit_ButNeverAfterStop()
    {
        var name = TestStore.NewName("evra");
        NewBusybox(name, "sleep 1; exit 0", "restart: { policy: always, backoff: 100ms }");
        _ps.Run("Start-Container $args[0]", name);
        WaitFor(name, ev => ev.Count(e => e.Kind == ContainerEventKind.RestartedByPolicy) >= 1);
        var running = (ContainerInfo)_ps.Run("Get-Container $args[0]", name).Single().BaseObject;
        Assert.Equal(ContainerStatus.Running, running.State);
        Assert.True(running.Restarts >= 1);
        Assert.Equal("exit code 0", running.LastExit);
        Assert.NotNull(running.Uptime);
        _ps.Run("Stop-Container $args[0] -Kill", name);
        var count = EventsOf(name).Count;
        // Longer than the backoff and the workload: a restart after the stop would show.
        Thread.Sleep(2500);
        var after = EventsOf(name);
        Assert.Equal(count, after.Count);
        Assert.Equal(ContainerEventKind.Stopped, after[^1].Kind);
        Assert.Equal(ContainerStatus.Stopped, ((ContainerInfo)_ps.Run("Get-Container $args[0]", name).Single().BaseObject).State);
    }

    [Fact]
    public void RestartNo_DiesOnce()
    {
        var name = TestStore.NewName("evrn");
        NewBusybox(name, "exit 4", "restart: { policy: no }");
        _ps.Run("Start-Container $args[0]", name);
        WaitFor(name, ev => ev.Any(e => e.Kind == ContainerEventKind.Died));
        _ps.Run("Wait-Container $args[0] Stopped -Timeout 20", name);
        Thread.Sleep(1500);
        Assert.Equal(new[] { ContainerEventKind.Created, ContainerEventKind.Started, ContainerEventKind.Died }, Kinds(EventsOf(name)));
        Assert.Equal(0, ((ContainerInfo)_ps.Run("Get-Container $args[0]", name).Single().BaseObject).Restarts);
    }

    [Theory]
    [InlineData("-Privileged")]
    [InlineData("-Unprivileged")]
    public void RestartWorks_WithTheStartingPwshGone_AndKeepsTheNetwork(string mode)
    {
        var name = TestStore.NewName("evrg");
        NewBusybox(name, "sleep 1000", "restart: { policy: on-failure, backoff: 100ms }", mode == "-Unprivileged" ? mode : "");
        var module = Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "..", "out", "PSContainers", "PSContainers.psd1");
        var psi = new ProcessStartInfo("pwsh", new[] { "-NoProfile", "-Command", $"Import-Module '{Path.GetFullPath(module)}'; Start-Container '{name}' -StorePath '{_store.StorePath}'" })
        { RedirectStandardOutput = true, RedirectStandardError = true };
        using (var pwsh = Process.Start(psi)!)
        {
            Assert.True(pwsh.WaitForExit(120_000));
            Assert.True(pwsh.ExitCode == 0, pwsh.StandardError.ReadToEnd());
        }
        var first = (ContainerInfo)_ps.Run("Get-Container $args[0]", name).Single().BaseObject;
        Assert.Equal(ContainerStatus.Running, first.State);
        var netBefore = new FileInfo($"/proc/{first.Pid}/ns/net").LinkTarget;
        var userBefore = new FileInfo($"/proc/{first.Pid}/ns/user").LinkTarget;
        Runtime.Native.Sys.Kill(first.Pid!.Value, 9);
        WaitFor(name, ev => ev.Any(e => e.Kind == ContainerEventKind.RestartedByPolicy));
        var second = (ContainerInfo)_ps.Run("Get-Container $args[0]", name).Single().BaseObject;
        Assert.Equal(ContainerStatus.Running, second.State);
        Assert.NotEqual(first.Pid, second.Pid);
        Assert.Equal(1, second.Restarts);
        Assert.Equal("signal SIGKILL", second.LastExit);
        // The network namespace (with what the start's hooks set up in it) and the user namespace
        // (its id maps) are the same ones; the new init is pid 1 of a new pid namespace (the old one
        // died with the old init: its inode number may be reused, so only pid 1 tells; sh execs its last command).
        Assert.Equal(netBefore, new FileInfo($"/proc/{second.Pid}/ns/net").LinkTarget);
        Assert.Equal(userBefore, new FileInfo($"/proc/{second.Pid}/ns/user").LinkTarget);
        var self = (ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] -Command sh,-c,'cat /proc/1/cmdline; echo; hostname'", name).Single().BaseObject;
        Assert.Equal(new[] { "sleep1000", name }, self.Output.Select(l => l.Replace("\0", "")).ToArray());
        var died = EventsOf(name).Single(e => e.Kind == ContainerEventKind.Died);
        Assert.Equal("9", died.Details["signal"]);
        _ps.Run("Stop-Container $args[0] -Kill", name);
        Assert.Equal(ContainerStatus.Stopped, ((ContainerInfo)_ps.Run("Get-Container $args[0]", name).Single().BaseObject).State);
    }

    [Fact]
    public void FiftyCycles_TwoListeners_LoseNothing()
    {
        var name = TestStore.NewName("evcy");
        NewBusybox(name, "sleep 1000");
        using var cancel = new CancellationTokenSource();
        var ready = new CountdownEvent(2);
        List<ContainerEvent> Listen()
        {
            var seen = new List<ContainerEvent>();
            var journal = new EventJournal(_store.StorePath);
            // Follow from a time just before: nothing between the start of the listener and the first cycle is missed.
            var from = DateTimeOffset.Now;
            ready.Signal();
            foreach (var e in journal.Follow(from, cancel.Token))
                if (e.Container == name) seen.Add(e);
            return seen;
        }
        var listeners = new[] { Task.Factory.StartNew(Listen, TaskCreationOptions.LongRunning), Task.Factory.StartNew(Listen, TaskCreationOptions.LongRunning) };
        Assert.True(ready.Wait(TimeSpan.FromSeconds(30)));
        for (var i = 0; i < 50; i++)
        {
            _ps.Run("Start-Container $args[0]", name);
            _ps.Run("Stop-Container $args[0] -Kill", name);
        }
        WaitFor(name, ev => ev.Count(e => e.Kind == ContainerEventKind.Stopped) == 50);
        Thread.Sleep(500);
        cancel.Cancel();
        var expected = Enumerable.Range(0, 50).SelectMany(_ => new[] { ContainerEventKind.Started, ContainerEventKind.Stopped }).ToArray();
        foreach (var listener in listeners)
            Assert.Equal(expected, Kinds(listener.Result));
        Assert.Equal(listeners[0].Result.Select(e => e.Time), listeners[1].Result.Select(e => e.Time));
    }

    [Fact]
    public void Journal_IsBounded_AndKeepsTheNewest()
    {
        var journal = new EventJournal(_store.StorePath) { MaxBytes = 16 * 1024 };
        var name = TestStore.NewName("evb");
        for (var i = 0; i < 2000; i++)
            Assert.Null(journal.Append(name, ContainerEventKind.LimitsChanged, new[] { KeyValuePair.Create("n", i.ToString()), KeyValuePair.Create("note", "a value with spaces = and %") }));
        var size = new FileInfo(journal.JournalPath).Length + (File.Exists(journal.RotatedPath) ? new FileInfo(journal.RotatedPath).Length : 0);
        Assert.True(size <= journal.MaxBytes, $"the journal holds {size} bytes, over its bound of {journal.MaxBytes}");
        var events = journal.Read();
        Assert.Equal("1999", events[^1].Details["n"]);
        Assert.Equal("a value with spaces = and %", events[^1].Details["note"]);
        // Consecutive and in order: the newest are kept without a gap.
        var numbers = events.Select(e => int.Parse(e.Details["n"])).ToArray();
        Assert.Equal(Enumerable.Range(numbers[0], numbers.Length), numbers);
        Assert.True(numbers.Length > 50);
        // -Since on the bound journal.
        var since = events[^10].Time;
        Assert.True(journal.Read(since).Count >= 10);
    }
}
