using PSContainers.Runtime;
using PSContainers.Runtime.Batch;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.State;
using PSContainers.Runtime.Network;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// The runtime's parallel starter (Batch/ParallelRunner) on real containers: many starts at once
/// share the cgroup parent, the event journal, the netlink worker and a lab bridge; all must run,
/// all their events must be there, and the throttle must hold (counted, not timed). Plus the
/// config cache that makes Get-Container cheap: an edit of config.yaml is seen at once.
/// </summary>
[Collection("Containers")]
public sealed class ParallelStartTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly NetLab _lab = new();

    public void Dispose()
    {
        _store.Dispose();
        _lab.Dispose();
    }

    /// <summary>Busybox containers; every third on a veth into a lab bridge with an address of its own.</summary>
    private List<string> NewContainers(int count, string ns)
    {
        var names = new List<string>();
        for (var i = 0; i < count; i++)
        {
            var name = TestStore.NewName("par");
            _store.Manager.Create(name, new CreateOptions
            {
                Template = "busybox",
                Network = i % 3 == 0
                    ? new[] { new NicConfig { Type = "veth", Link = "br0", LinkNamespace = ns, IPv4 = new() { $"10.77.0.{i + 2}/24" } } }
                    : new[] { new NicConfig { Type = "empty" } },
            });
            names.Add(name);
        }
        return names;
    }

    [Fact]
    public void ThirtyStarts_EightAtOnce_AllRun_WithEveryEvent_AndTheThrottleHolds()
    {
        var ns = _lab.NewNamespace("b");
        using (var c = new NetworkClient(NetworkLocation.ForNamespace(ns))) c.CreateBridge("br0");
        var names = NewContainers(30, ns);
        const int throttle = 8;
        for (var round = 0; round < 3; round++)
        {
            int inFlight = 0, most = 0;
            var outcomes = ParallelLifecycle.Run(names, throttle, name =>
            {
                var now = Interlocked.Increment(ref inFlight);
                for (var seen = Volatile.Read(ref most); now > seen; seen = Volatile.Read(ref most))
                    Interlocked.CompareExchange(ref most, now, seen);
                try { return _store.Manager.Start(name); }
                finally { Interlocked.Decrement(ref inFlight); }
            }).ToList();

            Assert.All(outcomes, o => Assert.Null(o.Error));
            Assert.Equal(names.Order(), outcomes.Select(o => o.Name).Order());
            Assert.InRange(most, 2, throttle);
            foreach (var name in names)
            {
                var info = _store.Manager.Get(name);
                Assert.Equal(ContainerStatus.Running, info.State);
                Assert.True(Directory.Exists($"/proc/{info.Pid}"));
            }
            // The addressed ones got their own address, in their own namespace.
            for (var i = 0; i < names.Count; i += 3)
                Assert.Equal(new[] { $"10.77.0.{i + 2}" }, _store.Manager.Get(names[i]).IPv4);
            // Every start was recorded, by each supervisor: nothing lost to the concurrent appends
            // (counted over the whole journal: after round r, r starts of each container).
            var rounds = round + 1;
            var started = _store.Manager.Events.Read().Where(e => e.Kind == ContainerEventKind.Started).Select(e => e.Container).ToList();
            Assert.Equal(names.SelectMany(n => Enumerable.Repeat(n, rounds)).Order(), started.Order());

            var stopped = ParallelLifecycle.Stop(_store.Manager, names, throttle, kill: true).ToList();
            Assert.All(stopped, o => Assert.Null(o.Error));
            Assert.All(names, n => Assert.Equal(ContainerStatus.Stopped, _store.Manager.Get(n).State));
            var stopEvents = _store.Manager.Events.Read().Where(e => e.Kind == ContainerEventKind.Stopped).Select(e => e.Container).ToList();
            Assert.Equal(names.SelectMany(n => Enumerable.Repeat(n, rounds)).Order(), stopEvents.Order());
        }
        // Nothing of the runs is left: no container cgroup under the store's parent.
        foreach (var dir in Runtime.Cgroups.CgroupManager.ForHost().Directories(_store.CgroupParent))
            if (Directory.Exists(dir)) Assert.Empty(Directory.EnumerateDirectories(dir));
    }

    [Fact]
    public void AFailedStart_IsItsOwnOutcome_AndTheSameNameTwiceStartsOnce()
    {
        var ns = _lab.NewNamespace("e");
        using (var c = new NetworkClient(NetworkLocation.ForNamespace(ns))) c.CreateBridge("br0");
        var names = NewContainers(4, ns);
        var input = names.Append("psct-par-missing").Append(names[1]).ToList();
        var outcomes = ParallelLifecycle.Start(_store.Manager, input, 3).ToList();
        Assert.Equal(input.Count, outcomes.Count);
        var missing = Assert.IsType<ContainerException>(Assert.Single(outcomes, o => o.Name == "psct-par-missing").Error);
        Assert.Equal("ContainerNotFound", missing.ErrorId);
        // The per-container lock makes the two starts of one name take turns: one starts it, the other finds it running.
        var twice = outcomes.Where(o => o.Name == names[1]).ToList();
        Assert.Single(twice, o => o.Error is null);
        Assert.Equal("ContainerAlreadyRunning", Assert.IsType<ContainerException>(Assert.Single(twice, o => o.Error is not null).Error).ErrorId);
        Assert.All(names, n => Assert.Equal(ContainerStatus.Running, _store.Manager.Get(n).State));
    }

    [Fact]
    public void TheRunner_NeverHasMoreThanItsThrottleInFlight_AndCancelStartsNothingMore()
    {
        using var gate = new ManualResetEventSlim();
        int inFlight = 0, most = 0, ran = 0;
        using var runner = new ParallelRunner<int>(4);
        for (var i = 0; i < 20; i++)
        {
            var n = i;
            runner.Add("item" + i, () =>
            {
                var now = Interlocked.Increment(ref inFlight);
                for (var seen = Volatile.Read(ref most); now > seen; seen = Volatile.Read(ref most))
                    Interlocked.CompareExchange(ref most, now, seen);
                Interlocked.Increment(ref ran);
                gate.Wait(TimeSpan.FromSeconds(30));
                Interlocked.Decrement(ref inFlight);
                return n;
            });
        }
        // Four are held at the gate; a fifth never gets in while they are.
        Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref inFlight) == 4, TimeSpan.FromSeconds(20)));
        Thread.Sleep(200);
        Assert.Equal(4, Volatile.Read(ref most));
        Assert.Equal(4, runner.InFlight);
        Assert.False(runner.TryTake(out _));
        runner.Cancel();
        gate.Set();
        var done = runner.Drain().ToList();
        // Only the four that were running finished; the sixteen queued were never started.
        Assert.Equal(4, done.Count);
        Assert.Equal(4, Volatile.Read(ref ran));
        Assert.Equal(4, most);
        Assert.All(done, o => Assert.Null(o.Error));
    }

    [Fact]
    public void TheRunner_RefusesAThrottleOutOfRange()
    {
        Assert.Equal("InvalidThrottleLimit", Assert.Throws<ContainerException>(() => new ParallelRunner<int>(0)).ErrorId);
        Assert.Equal("InvalidThrottleLimit", Assert.Throws<ContainerException>(() => new ParallelRunner<int>(ParallelLifecycle.MaxThrottle + 1)).ErrorId);
    }

    [Fact]
    public void GetContainer_SeesAnEditOfConfigYaml_ThroughTheConfigCache()
    {
        var name = TestStore.NewName("cache");
        _store.Manager.Create(name, new CreateOptions { Template = "busybox", Hostname = "aaaa", Network = new[] { new NicConfig { Type = "empty" } } });
        var path = _store.Manager.Store.ConfigPath(name);
        // Settled (unchanged for longer than the cache's guard): from now on it is served parsed.
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddSeconds(-10));
        Thread.Sleep(ConfigCache.Settle + TimeSpan.FromMilliseconds(200));
        Assert.Equal("aaaa", _store.Manager.Get(name).Hostname);
        var (hits, _) = ConfigCache.Counters;
        Assert.Equal("aaaa", _store.Manager.Get(name).Hostname);
        Assert.True(ConfigCache.Counters.Hits > hits, "the second read of an unchanged config was not served from the cache");

        // An edit in place with the same size, and the same mtime put back: the ctime still tells.
        var mtime = File.GetLastWriteTimeUtc(path);
        var text = File.ReadAllText(path);
        Assert.Contains("hostname: aaaa", text);
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Write))
        {
            var bytes = System.Text.Encoding.UTF8.GetBytes(text.Replace("hostname: aaaa", "hostname: bbbb"));
            stream.Write(bytes);
        }
        File.SetLastWriteTimeUtc(path, mtime);
        Assert.Equal("bbbb", _store.Manager.Get(name).Hostname);

        // Replaced by a new file (how AtomicFile and editors write): seen at once, even within the same second.
        File.WriteAllText(path + ".new", text.Replace("hostname: aaaa", "hostname: cc"));
        File.Move(path + ".new", path, overwrite: true);
        Assert.Equal("cc", _store.Manager.Get(name).Hostname);

        // Broken: listed as Broken with the reason, and fixed again: running through the cache both ways.
        File.WriteAllText(path, "hostname: [unclosed\n");
        var broken = _store.Manager.List().Single(c => c.Name == name);
        Assert.Equal(ContainerStatus.Broken, broken.State);
        File.WriteAllText(path, text);
        Assert.Equal("aaaa", _store.Manager.Get(name).Hostname);
    }
}
