using PSContainers.Runtime;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Manifests;
using PSContainers.Runtime.Network;
using PSContainers.Runtime.State;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// Planner and executor on real containers: from nothing, from a half-applied state, from a state
/// changed by hand; a second apply writes nothing; order, readiness, failure isolation, ownership.
/// </summary>
[Collection("Containers")]
public sealed class ManifestExecutorTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly string _db = TestStore.NewName("mdb"), _web = TestStore.NewName("mweb"), _other = TestStore.NewName("moth");
    private readonly string _id = "psc-test-" + Guid.NewGuid().ToString("N")[..8];

    public void Dispose() => _store.Dispose();

    private ContainerManager M => _store.Manager;

    private string Body(string extra = "", string command = "exec sleep 1000") => $$"""
            template: busybox
            init: { command: [/bin/sh, -c, "{{command}}"] }
            stop: { signal: SIGKILL }
        {{extra}}
        """;

    private Manifest Site(string webCommand = "exec sleep 1000", string dbMemory = "64M") => ManifestParser.Parse(new[] { ("/m/site.yaml", $$"""
        id: {{_id}}
        containers:
          {{_web}}:
            dependsOn: [{{_db}}]
        {{Body("    limits: { memory: 32M }", webCommand)}}
          {{_db}}:
        {{Body($"    limits: {{ memory: {dbMemory} }}\n    readiness: {{ command: [test, -e, /tmp/ready], timeout: 20s, interval: 100ms }}", DbCommand)}}
        """) });

    private const string DbCommand = "sleep 0.5; touch /tmp/ready; exec sleep 1000";

    private IReadOnlyList<ManifestDrift> Plan(Manifest m, bool prune = false, bool adopt = false) => new ManifestPlanner(M, m).Plan(prune, adopt);

    private Dictionary<string, ManifestResult> Apply(Manifest m, bool allowRestart = false, bool prune = false, bool adopt = false) =>
        new ManifestExecutor(new ManifestPlanner(M, m), new ManifestApplyOptions { AllowRestart = allowRestart, Prune = prune, Adopt = adopt })
            .Apply().ToDictionary(r => r.Name);

    /// <summary>What a write to a container's files or a lifecycle call would change.</summary>
    private (DateTime ConfigTime, long ConfigInode, DateTime StateTime, DateTimeOffset? StartedAt) Footprint(string name)
    {
        var config = M.Store.ConfigPath(name);
        return (File.GetLastWriteTimeUtc(config), PSContainers.Runtime.Filesystem.FsNative.TryLstat(config, out var st) ? (long)(ulong)st.st_ino : -1, File.GetLastWriteTimeUtc(M.Store.StatePath(name)), M.Get(name).StartedAt);
    }

    [Fact]
    public void FromNothing_InOrder_ThenASecondApplyWritesNothing()
    {
        var site = Site();
        var plan = Plan(site);
        Assert.Equal(new[]
        {
            $"create container {_db} (template busybox)",
            $"start container {_db} and wait for its readiness probe",
            $"create container {_web} (template busybox)",
            $"start container {_web}",
        }, plan.Select(p => p.Step));

        var first = Apply(site);
        Assert.All(first.Values, r => Assert.Equal(ManifestOutcome.Changed, r.Outcome));
        Assert.Contains(first[_db].Changes, c => c.StartsWith($"readiness probe of {_db} passed", StringComparison.Ordinal));
        // web started after db's probe passed: /tmp/ready existed before web's init ran.
        var db = M.Get(_db);
        var web = M.Get(_web);
        Assert.Equal(ContainerStatus.Running, db.State);
        Assert.Equal(ContainerStatus.Running, web.State);
        Assert.True(web.StartedAt > db.StartedAt!.Value.AddMilliseconds(400), $"web started {web.StartedAt:O}, db {db.StartedAt:O}");
        Assert.Equal(32L << 20, new ContainerLimits(M).GetLimits(_web).MemoryMax);
        Assert.Equal(_id, ManifestOwnership.OwnerOf(M.Store, _db));

        var before = new[] { _db, _web }.ToDictionary(n => n, Footprint);
        Assert.Empty(Plan(site));
        var second = Apply(site);
        Assert.All(second.Values, r => { Assert.Equal(ManifestOutcome.Unchanged, r.Outcome); Assert.Empty(r.Changes); });
        foreach (var n in new[] { _db, _web }) Assert.Equal(before[n], Footprint(n));
    }

    [Fact]
    public void FromHalfApplied_OnlyTheMissingIsDone()
    {
        var site = Site();
        // A first apply that got as far as creating db (a killed pwsh, say): made and marked, never started.
        var dbOnly = ManifestParser.Parse(new[] { ("/m/site.yaml", $"id: {_id}\ncontainers:\n  {_db}:\n{Body("    state: Stopped", DbCommand)}\n") });
        Assert.Equal(ManifestOutcome.Changed, Apply(dbOnly)[_db].Outcome);
        var created = Footprint(_db);

        var plan = Plan(site);
        Assert.Equal(new[] { $"{_db}:limits.memory", $"{_db}:state", $"{_web}:state", $"{_web}:state" }, plan.Select(p => $"{p.Name}:{p.Property}"));
        Assert.Equal($"set limit memory 64M on {_db} (config.yaml; the next start uses it)", plan[0].Step);
        Assert.Equal(new[] { ManifestAction.Set, ManifestAction.Start, ManifestAction.Create, ManifestAction.Start }, plan.Select(p => p.Action));
        var results = Apply(site);
        Assert.Equal(ManifestOutcome.Changed, results[_db].Outcome);
        Assert.DoesNotContain(results[_db].Changes, c => c.StartsWith("create", StringComparison.Ordinal));
        Assert.NotEqual(created.ConfigInode, Footprint(_db).ConfigInode); // config.yaml rewritten (atomically) for the limit
        Assert.Equal(ContainerStatus.Running, M.Get(_db).State);
        Assert.Equal(ContainerStatus.Running, M.Get(_web).State);
        Assert.Empty(Plan(site));
    }

    [Fact]
    public void ChangedByHand_LiveWhereItCan_RestartOnlyWhenAllowed()
    {
        var site = Site();
        Apply(site);
        // By hand: db's limit on the running cgroup only, web's command in its config.
        new ContainerLimits(M).SetLimits(_db, new PSContainers.Runtime.Cgroups.CgroupLimits { MemoryMax = 100L << 20 }, persist: false);
        var changed = Site(webCommand: "exec sleep 2000");
        var plan = Plan(changed);
        var live = Assert.Single(plan, p => p.Name == _db);
        Assert.Equal(("limits.memory", "64M", "100M (in the cgroup)", true, false), (live.Property, live.Desired, live.Actual, live.Live, live.RequiresRestart));
        Assert.Equal($"set limit memory 64M on {_db} (live)", live.Step);
        var command = Assert.Single(plan, p => p.Name == _web && p.Property == "init.command");
        Assert.True(command.RequiresRestart);
        Assert.Equal($"set init.command [/bin/sh, -c, exec sleep 2000] on {_web} (needs restart: init.command changed)", command.Step);
        Assert.Equal($"restart {_web} (needs restart: init.command changed; only with -AllowRestart)", plan.Last().Step);

        var webStarted = M.Get(_web).StartedAt;
        var webConfig = Footprint(_web);
        var results = Apply(changed);
        Assert.Equal(ManifestOutcome.Changed, results[_db].Outcome);
        Assert.Equal(64L << 20, new ContainerLimits(M).GetLimits(_db).MemoryMax);
        Assert.Equal(ManifestOutcome.NotApplied, results[_web].Outcome);
        Assert.Contains("-AllowRestart", results[_web].Reason);
        Assert.Equal(webConfig, Footprint(_web)); // nothing of it written

        results = Apply(changed, allowRestart: true);
        Assert.Equal(ManifestOutcome.Changed, results[_web].Outcome);
        Assert.Equal(ManifestOutcome.Unchanged, results[_db].Outcome);
        var web = M.Get(_web);
        Assert.Equal(ContainerStatus.Running, web.State);
        Assert.NotEqual(webStarted, web.StartedAt);
        Assert.Equal(new[] { "/bin/sh", "-c", "exec sleep 2000" }, web.Command);
        Assert.Empty(Plan(changed));
    }

    [Fact]
    public void AFailure_SkipsItsDependents_AndNothingElse()
    {
        var m = ManifestParser.Parse(new[] { ("/m/site.yaml", $$"""
            id: {{_id}}
            containers:
              {{_db}}:
            {{Body("    readiness: { command: [/bin/false], timeout: 600ms, interval: 100ms }")}}
              {{_web}}:
                dependsOn: [{{_db}}]
            {{Body()}}
              {{_other}}:
            {{Body()}}
            """) });
        var results = Apply(m);
        Assert.Equal(ManifestOutcome.Failed, results[_db].Outcome);
        Assert.Equal(ManifestExecutor.ReadinessErrorId, results[_db].Error!.ErrorId);
        Assert.Equal(ManifestOutcome.Skipped, results[_web].Outcome);
        Assert.Equal($"depends on container/{_db}, which failed", results[_web].Reason);
        Assert.False(M.Exists(_web));
        Assert.Equal(ManifestOutcome.Changed, results[_other].Outcome);
        Assert.Equal(ContainerStatus.Running, M.Get(_other).State);
    }

    [Fact]
    public void HandMadeContainers_AreNotAdopted_NorPruned_UnlessAsked()
    {
        M.Create(_other, new CreateOptions { Template = "busybox" });
        var m = ManifestParser.Parse(new[] { ("/m/site.yaml", $"id: {_id}\ncontainers:\n  {_other}:\n{Body("    state: Stopped")}\n  {_db}:\n{Body("    state: Stopped")}\n") });
        var adopt = Assert.Single(Plan(m), p => p.Action == ManifestAction.Adopt);
        Assert.Equal(("managedBy", _id, "(none)"), (adopt.Property, adopt.Desired, adopt.Actual));
        var results = Apply(m);
        Assert.Equal(ManifestExecutor.NotOwnedErrorId, results[_other].Error!.ErrorId);
        Assert.Null(ManifestOwnership.OwnerOf(M.Store, _other));
        Assert.Equal(ManifestOutcome.Changed, results[_db].Outcome);

        // Dropped from the manifest: -Prune removes what the manifest made, never the hand-made one.
        var dropped = ManifestParser.Parse(new[] { ("/m/site.yaml", $"id: {_id}\ncontainers:\n  {_web}:\n{Body("    state: Stopped")}\n") });
        Assert.Equal(new[] { $"remove container {_db} (dropped from the manifest)", $"create container {_web} (template busybox)" }, Plan(dropped, prune: true).Select(p => p.Step));
        results = Apply(dropped, prune: true);
        Assert.Equal(ManifestOutcome.Changed, results[_db].Outcome);
        Assert.False(M.Exists(_db));
        Assert.True(M.Exists(_other));

        // A copy of a managed container carries no valid mark (the mark is bound to its directory).
        var copyDir = M.Store.ContainerDirectory(_other);
        File.Copy(Path.Combine(M.Store.ContainerDirectory(_web), ManifestOwnership.FileName), Path.Combine(copyDir, ManifestOwnership.FileName));
        Assert.Null(ManifestOwnership.OwnerOf(M.Store, _other));

        results = Apply(m, adopt: true);
        Assert.Equal(ManifestOutcome.Changed, results[_other].Outcome);
        Assert.Equal(_id, ManifestOwnership.OwnerOf(M.Store, _other));
    }

    [Fact]
    public void ANicAddedOrRemoved_OnARunningContainer_IsPluggedLive_WithoutARestart()
    {
        using var lab = new NetLab();
        var ns = lab.NewNamespace("mf");
        using (var c = new PSContainers.Runtime.Network.NetworkClient(PSContainers.Runtime.Network.NetworkLocation.ForNamespace(ns))) c.CreateBridge("br0");
        Manifest Net(string network) => ManifestParser.Parse(new[] { ("/m/net.yaml", $$"""
            id: {{_id}}
            containers:
              {{_web}}:
            {{Body($"    network: {network}")}}
            """) });
        var one = Net("[{ type: empty }]");
        Apply(one);
        var pid = M.Get(_web).Pid;
        Assert.NotNull(pid);

        var two = Net($"[{{ type: empty }}, {{ type: veth, link: br0, linkNamespace: {ns}, hostName: pstmf0, ipv4: [192.168.236.2/24] }}]");
        var drift = Assert.Single(Plan(two));
        Assert.Equal("network", drift.Property);
        Assert.False(drift.RequiresRestart);
        Assert.True(drift.Live);
        Assert.EndsWith($"(live: plug eth0 (veth on br0 in {ns}))", drift.Step);
        var applied = Apply(two)[_web];
        Assert.Equal(ManifestOutcome.Changed, applied.Outcome);
        Assert.Equal(pid, M.Get(_web).Pid);
        using (var inside = new PSContainers.Runtime.Network.NetworkClient(PSContainers.Runtime.Network.NetworkLocation.ForPid(pid!.Value)))
            Assert.Contains("192.168.236.2/24", inside.GetLink("eth0").Addresses);
        using (var c = new PSContainers.Runtime.Network.NetworkClient(PSContainers.Runtime.Network.NetworkLocation.ForNamespace(ns)))
            Assert.Equal("br0", c.GetLink("pstmf0").Master);
        Assert.Equal(2, PSContainers.Runtime.Config.ConfigLoader.Load(M.Store.ConfigPath(_web)).Network.Count);
        Assert.Empty(Plan(two));

        // Taken out again: unplugged live, its pair gone.
        var back = Assert.Single(Plan(one));
        Assert.True(back.Live && !back.RequiresRestart);
        Assert.EndsWith("(live: unplug eth0)", back.Step);
        Apply(one);
        Assert.Equal(pid, M.Get(_web).Pid);
        using (var c = new PSContainers.Runtime.Network.NetworkClient(PSContainers.Runtime.Network.NetworkLocation.ForNamespace(ns)))
            Assert.False(c.LinkExists("pstmf0"));
        Assert.Empty(Plan(one));

        // A network decided at start still needs a restart.
        var pasta = Plan(Net("[{ type: pasta }]"));
        Assert.True(pasta.Single(d => d.Property == "network").RequiresRestart);
        Assert.Contains(pasta, d => d.Action == ManifestAction.Restart);
    }

    [Fact]
    public void BridgesAndNamespaces_ItMade_ArePrunedWhenDropped_OthersNever()
    {
        static string Short() => "psct-" + Guid.NewGuid().ToString("N")[..9];   // a link name: at most 15 bytes
        string lab = TestStore.NewName("mlab"), hand = TestStore.NewName("mhand");
        string br1 = Short(), br2 = Short(), brHand = Short(), port = Short(), peer = Short();
        try
        {
            // Made by hand: a namespace with a bridge in it. The manifest declares both, so it uses them, but never marks them.
            NetNamespaces.Create(hand);
            using (var c = new NetworkClient(NetworkLocation.ForNamespace(hand)))
            {
                c.CreateBridge(brHand);
                c.SetLink(brHand, new LinkChanges { Up = true });
            }
            Manifest Net(params string[] bridges) => ManifestParser.Parse(new[] { ("/m/net.yaml",
                $"id: {_id}\nnamespaces:\n  {lab}: {{}}\n  {hand}: {{}}\nbridges:\n" + string.Concat(bridges.Select(b => $"  {b}: {{ namespace: {(b == brHand ? hand : lab)} }}\n"))) });

            var results = Apply(Net(br1, br2, brHand));
            Assert.Equal(ManifestOutcome.Changed, results[lab].Outcome);
            Assert.Equal(ManifestOutcome.Unchanged, results[hand].Outcome);
            Assert.Equal(ManifestOutcome.Unchanged, results[brHand].Outcome);
            Assert.True(ManifestOwnership.OwnsNamespace(lab, _id));
            Assert.False(ManifestOwnership.OwnsNamespace(hand, _id));
            Assert.False(ManifestOwnership.OwnsNamespace(lab, _id + "-other"));
            using (var c = new NetworkClient(NetworkLocation.ForNamespace(lab)))
            {
                Assert.Equal(ManifestOwnership.LinkMark(_id), c.GetLink(br1).Alias);
                Assert.Equal(ManifestOwnership.LinkMark(_id), c.GetLink(br2).Alias);
            }
            using (var c = new NetworkClient(NetworkLocation.ForNamespace(hand))) Assert.Null(c.GetLink(brHand).Alias);

            // br2 and the hand-made bridge are dropped: only br2, which the manifest made, is pruned; and only with -Prune.
            var dropped = Net(br1);
            Assert.Empty(Plan(dropped));
            Assert.Equal(new[] { $"remove bridge {br2} in namespace {lab} (dropped from the manifest)" }, Plan(dropped, prune: true).Select(p => p.Step));
            Assert.Empty(Apply(dropped).Values.Where(r => r.Outcome != ManifestOutcome.Unchanged));
            results = Apply(dropped, prune: true);
            Assert.Equal(ManifestOutcome.Changed, results[br2].Outcome);
            using (var c = new NetworkClient(NetworkLocation.ForNamespace(lab)))
            {
                Assert.False(c.LinkExists(br2));
                Assert.True(c.LinkExists(br1));
            }
            using (var c = new NetworkClient(NetworkLocation.ForNamespace(hand))) Assert.True(c.LinkExists(brHand));

            // lab and br1 dropped too, but something the manifest did not make is attached to br1: both are left, and the result says why.
            using (var c = new NetworkClient(NetworkLocation.ForNamespace(lab)))
            {
                c.CreateVeth(port, peer);
                c.SetLink(port, new LinkChanges { Master = br1 });
            }
            var onlyHand = ManifestParser.Parse(new[] { ("/m/net.yaml", $"id: {_id}\nnamespaces:\n  {hand}: {{}}\n") });
            Assert.Equal(new[] { $"remove bridge {br1} in namespace {lab} (dropped from the manifest)", $"remove network namespace {lab} (dropped from the manifest)" },
                Plan(onlyHand, prune: true).Select(p => p.Step));
            results = Apply(onlyHand, prune: true);
            Assert.Equal(ManifestOutcome.Failed, results[br1].Outcome);
            Assert.Equal(ManifestExecutor.PruneInUseErrorId, results[br1].Error!.ErrorId);
            Assert.Contains(port, results[br1].Reason);
            Assert.Equal(ManifestOutcome.Skipped, results[lab].Outcome);
            Assert.True(NetNamespaces.Exists(lab));

            // Detached: the next apply prunes both, the bridge first. The hand-made namespace stays.
            using (var c = new NetworkClient(NetworkLocation.ForNamespace(lab))) c.DeleteLink(port);
            results = Apply(onlyHand, prune: true);
            Assert.Equal(ManifestOutcome.Changed, results[br1].Outcome);
            Assert.Equal(ManifestOutcome.Changed, results[lab].Outcome);
            Assert.False(NetNamespaces.Exists(lab));
            Assert.True(NetNamespaces.Exists(hand));

            // A namespace made again by hand under the dropped name carries no mark: never pruned.
            NetNamespaces.Create(lab);
            Assert.Empty(Plan(onlyHand, prune: true));
        }
        finally
        {
            foreach (var ns in new[] { lab, hand })
                if (NetNamespaces.Exists(ns)) NetNamespaces.Remove(ns);
        }
    }
}
