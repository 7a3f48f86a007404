using PSContainers.Runtime;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Network;
using PSContainers.Runtime.State;
using PSContainers.Tests.Infrastructure;
using PSContainers.Runtime.NetworkHooks;

namespace PSContainers.Tests;

/// <summary>Container NICs (config network list / New-Container -Network), made by the network start hook.</summary>
[Collection("Containers")]
public sealed class ContainerNetworkTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly NetLab _lab = new();
    private DefaultBridge? _bridge;

    public void Dispose()
    {
        // Containers first (their stop removes their host ends), then the test's bridge and NAT table.
        try { foreach (var n in _store.Manager.Names().ToList()) _store.Manager.Remove(n, force: true); } catch (Exception) { }
        try { _bridge?.Remove(); } catch (Exception) { }
        _lab.Dispose();
        _store.Dispose();
    }

    private static ContainerCommandResult Exec(ModuleSession s, string container, params string[] command) =>
        (ContainerCommandResult)s.Run("Invoke-ContainerCommand -Name $args[0] -Command $args[1]", container, command).Single().BaseObject;

    /// <summary>A private /24 that no host route covers, for the test's own bridge.</summary>
    internal static string FreeSubnet()
    {
        using var host = NetworkClient.Host();
        var used = host.GetRoutes().Select(r => r.Destination).ToHashSet();
        var rnd = new Random();
        for (var i = 0; i < 100; i++)
        {
            var subnet = $"10.{200 + rnd.Next(50)}.{rnd.Next(256)}.0/24";
            if (!used.Contains(subnet)) return subnet;
        }
        throw new InvalidOperationException("no free test subnet");
    }

    [Fact]
    public void TwoContainers_OnTheDefaultBridge_ReachEachOtherByAddressAndName_AndTheBridge()
    {
        var bridgeName = _lab.HostLink("br");
        var subnet = FreeSubnet();
        DefaultBridge.Save(_store.Manager.Store, new BridgeSettings { Name = bridgeName, Subnet = subnet, Nat = true, EnableForwarding = false });
        _bridge = DefaultBridge.For(_store.Manager.Store);
        using var s = _store.OpenSession();
        var a = TestStore.NewName("na");
        var b = TestStore.NewName("nb");
        s.Run("New-Container -Name $args[0] -Network @{type='veth'; link='default'}; New-Container -Name $args[1] -Network @{type='veth'; link='default'; hwAddress='00:16:3e:xx:xx:xx'}", a, b);
        var ia = (ContainerInfo)s.Run("Start-Container -Name $args[0] -PassThru", a).Single().BaseObject;
        var ib = (ContainerInfo)s.Run("Start-Container -Name $args[0] -PassThru", b).Single().BaseObject;
        var prefix = subnet[..subnet.LastIndexOf('.')];
        Assert.Equal(new[] { prefix + ".2" }, ia.IPv4);
        Assert.Equal(new[] { prefix + ".3" }, ib.IPv4);

        // The bridge exists on the host with its address and NAT table; the host ends are its ports.
        using (var host = NetworkClient.Host())
        {
            var br = host.GetLink(bridgeName);
            Assert.Equal("bridge", br.Kind);
            Assert.Contains(prefix + ".1/24", br.Addresses);
            Assert.Equal(2, host.GetLinks().Count(l => l.Master == bridgeName));
        }
        Assert.True(_bridge.NatTableExists());

        var inside = (NetworkLink)s.Run("Get-NetworkLink -Container $args[0] -Name eth0", b).Single().BaseObject;
        Assert.StartsWith("00:16:3e:", inside.MacAddress);
        Assert.True(inside.IsUp);
        Assert.Contains(s.Run("Get-NetworkRoute -Container $args[0]", a), o => ((NetworkRoute)o.BaseObject) is { Destination: "default" } r && r.Gateway == prefix + ".1");

        foreach (var (from, to) in new[] { (a, prefix + ".3"), (b, prefix + ".2"), (a, b), (b, a), (a, prefix + ".1"), (b, "gateway") })
        {
            var r = Exec(s, from, "ping", "-c1", "-W3", to);
            Assert.True(r.ExitCode == 0, $"{from} -> {to}: {string.Join("\n", r.Output.Concat(r.Error))}");
        }

        // Leases survive a restart: same address again; the host ends go away on stop.
        s.Run("Stop-Container -Name $args[0] -Kill", a);
        using (var host = NetworkClient.Host()) Assert.Equal(1, host.GetLinks().Count(l => l.Master == bridgeName));
        var again = (ContainerInfo)s.Run("Start-Container -Name $args[0] -PassThru", a).Single().BaseObject;
        Assert.Equal(new[] { prefix + ".2" }, again.IPv4);
        Assert.Equal(new[] { prefix + ".2", prefix + ".3" }, _bridge.Leases().Select(l => l.Address).Order());

        s.Run("Remove-Container -Name $args[0],$args[1] -Force", a, b);
        // Removing the bridge removes its NAT table too.
        s.Run("Remove-NetworkLink $args[0]", bridgeName);
        Assert.False(_bridge.NatTableExists());
        using (var host = NetworkClient.Host()) Assert.False(host.LinkExists(bridgeName));
    }

    /// <summary>
    /// Two NICs on the default bridge (and a third plugged live): each gets its own lease; the
    /// bridge's implied gateway becomes the default route once, through the first, instead of the
    /// second failing the start with RouteExists.
    /// </summary>
    [Fact]
    public void TwoDefaultBridgeNics_EachGetALease_AndOneDefaultRoute()
    {
        var bridgeName = _lab.HostLink("br");
        var subnet = FreeSubnet();
        DefaultBridge.Save(_store.Manager.Store, new BridgeSettings { Name = bridgeName, Subnet = subnet, Nat = false, EnableForwarding = false });
        _bridge = DefaultBridge.For(_store.Manager.Store);
        using var s = _store.OpenSession();
        var name = TestStore.NewName("n2");
        s.Run("New-Container -Name $args[0] -Network @{type='veth'; link='default'}, @{type='veth'; link='default'}", name);
        var info = (ContainerInfo)s.Run("Start-Container -Name $args[0] -PassThru", name).Single().BaseObject;
        var prefix = subnet[..subnet.LastIndexOf('.')];
        Assert.Equal(new[] { prefix + ".2", prefix + ".3" }, info.IPv4.Order());
        var defaults = s.Run("Get-NetworkRoute -Container $args[0]", name).Select(o => (NetworkRoute)o.BaseObject).Where(r => r is { Family: "IPv4", Destination: "default" }).ToList();
        Assert.Equal(("eth0", prefix + ".1"), (Assert.Single(defaults).Device, defaults[0].Gateway));

        s.Run("Add-ContainerNetworkInterface -Name $args[0] -Link default -InterfaceName eth2", name);
        var after = (ContainerInfo)s.Run("Get-Container -Name $args[0]", name).Single().BaseObject;
        Assert.Equal(new[] { prefix + ".2", prefix + ".3", prefix + ".4" }, after.IPv4.Order());
        Assert.Single(s.Run("Get-NetworkRoute -Container $args[0]", name).Select(o => (NetworkRoute)o.BaseObject), r => r is { Family: "IPv4", Destination: "default" });
        var ping = Exec(s, name, "ping", "-c1", "-W3", "-I", "eth1", prefix + ".1");
        Assert.True(ping.ExitCode == 0, string.Join("\n", ping.Output.Concat(ping.Error)));
    }

    // Many starts at once on the default bridge share its lock (bridge, leases) and rewrite every
    // leased container's /etc/hosts: none may time out, every NIC gets an address of its own, and
    // every container's hosts block ends naming all of them (no stale writer has the last word).
    [Fact]
    public void TwentyFourStarts_EightAtOnce_OnTheDefaultBridge_AllGetTheirOwnAddress_AndEveryHostsFileNamesAll()
    {
        var bridgeName = _lab.HostLink("pb");
        var subnet = FreeSubnet();
        DefaultBridge.Save(_store.Manager.Store, new BridgeSettings { Name = bridgeName, Subnet = subnet, Nat = false, EnableForwarding = false });
        _bridge = DefaultBridge.For(_store.Manager.Store);
        var names = Enumerable.Range(0, 24).Select(_ => TestStore.NewName("pb")).ToList();
        foreach (var name in names)
            _store.Manager.Create(name, new CreateOptions { Template = "busybox", Network = new[] { new NicConfig { Type = "veth", Link = DefaultBridge.ConfigName } } });
        using var s = _store.OpenSession();

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var started = s.Invoke("Start-Container -Name $args[0] -ThrottleLimit 8 -PassThru", (object)names.ToArray());
        clock.Stop();
        Assert.True(started.Errors.Count == 0, string.Join("\n", started.Errors.Select(e => $"{e.FullyQualifiedErrorId}: {e.Exception.Message}")));
        var infos = started.Output.Select(o => (ContainerInfo)o.BaseObject).ToList();
        Assert.Equal(names.Order(), infos.Select(i => i.Name).Order());
        Assert.All(infos, i => Assert.Equal(ContainerStatus.Running, i.State));
        var prefix = subnet[..subnet.LastIndexOf('.')] + ".";
        var addresses = infos.Select(i => Assert.Single(i.IPv4)).ToList();
        Assert.All(addresses, a => Assert.StartsWith(prefix, a));
        Assert.Equal(24, addresses.Distinct().Count());
        Assert.Equal(addresses.Order(), _bridge.Leases().Select(l => l.Address).Order());
        using (var host = NetworkClient.Host()) Assert.Equal(24, host.GetLinks().Count(l => l.Master == bridgeName));
        foreach (var info in infos)
        {
            var hosts = File.ReadAllText(Path.Combine(info.RootfsPath, "etc", "hosts"));
            foreach (var other in infos) Assert.Contains($"{Assert.Single(other.IPv4)}\t{other.Name}\n", hosts);
        }

        var removed = s.Invoke("Remove-Container -Name $args[0] -Force", (object)names.ToArray());
        Assert.True(removed.Errors.Count == 0, string.Join("\n", removed.Errors.Select(e => $"{e.FullyQualifiedErrorId}: {e.Exception.Message}")));
        Assert.Empty(_bridge.Leases());
        using (var host = NetworkClient.Host()) Assert.Equal(0, host.GetLinks().Count(l => l.Master == bridgeName));
    }

    // The store's network lock is an flock other commands hold for a moment; a start that finds it
    // taken waits for it (up to DefaultBridge.LockTimeout), rather than failing after 5 s as it did.
    [Fact]
    public void AStartOnTheDefaultBridge_WaitsForTheNetworkLock_WhileAnotherCommandHoldsIt()
    {
        var bridgeName = _lab.HostLink("lk");
        DefaultBridge.Save(_store.Manager.Store, new BridgeSettings { Name = bridgeName, Subnet = FreeSubnet(), Nat = false, EnableForwarding = false });
        _bridge = DefaultBridge.For(_store.Manager.Store);
        var name = TestStore.NewName("lk");
        _store.Manager.Create(name, new CreateOptions { Template = "busybox", Network = new[] { new NicConfig { Type = "veth", Link = DefaultBridge.ConfigName } } });
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Task<ContainerInfo> start;
        // Another command's hold: the same flock (FileShare.None) on the same file.
        using (new FileStream(Path.Combine(_store.Manager.Store.Root, ".network.lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None))
        {
            start = Task.Run(() => _store.Manager.Start(name));
            Thread.Sleep(TimeSpan.FromSeconds(7));
            Assert.False(start.IsCompleted, start.Exception?.ToString() ?? "the start did not wait for the lock");
        }
        var info = start.GetAwaiter().GetResult();
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(7));
        Assert.Equal(ContainerStatus.Running, info.State);
        Assert.Single(info.IPv4);
    }

    [Fact]
    public void PhysAndMacvlan_AppearInsideWithTheirNames_AndPhysGoesBackOnStop()
    {
        var ns = _lab.NewNamespace("p");
        using (var c = new NetworkClient(NetworkLocation.ForNamespace(ns))) { c.CreateVeth("ph0", "ph1"); c.CreateVeth("up0", "up1"); }
        var config = Path.Combine(_store.Root, "net.yaml");
        File.WriteAllText(config, $"""
            network:
              - type: phys
                link: ph0
                linkNamespace: {ns}
                name: wan7
                ipv4: [192.168.77.2/24]
              - type: macvlan
                link: up0
                linkNamespace: {ns}
                name: mv3
                macvlanMode: bridge
                hwAddress: 00:16:3e:aa:bb:cc
            """);
        var name = TestStore.NewName("phys");
        using var s = _store.OpenSession();
        s.Run("New-Container -Name $args[0] -ConfigPath $args[1] | Start-Container", name, config);
        var links = s.Run("Get-NetworkLink -Container $args[0]", name).Select(o => (NetworkLink)o.BaseObject).ToList();
        Assert.Equal(new[] { "lo", "mv3", "wan7" }, links.Select(l => l.Name).Order());
        Assert.True(links.Single(l => l.Name == "lo").IsUp);
        Assert.Equal("veth", links.Single(l => l.Name == "wan7").Kind);
        Assert.Contains("192.168.77.2/24", links.Single(l => l.Name == "wan7").Addresses);
        var mv = links.Single(l => l.Name == "mv3");
        Assert.Equal("macvlan", mv.Kind);
        Assert.Equal("00:16:3e:aa:bb:cc", mv.MacAddress);
        Assert.Equal(new[] { "192.168.77.2" }, ((ContainerInfo)s.Run("Get-Container $args[0]", name).Single().BaseObject).IPv4);
        using (var c = new NetworkClient(NetworkLocation.ForNamespace(ns))) Assert.False(c.LinkExists("ph0"));

        s.Run("Stop-Container -Name $args[0] -Kill", name);
        using (var c = new NetworkClient(NetworkLocation.ForNamespace(ns)))
        {
            var back = c.GetLink("ph0");
            Assert.Equal("ph1", back.Parent); // the same veth end, home again under its own name
            Assert.Empty(back.Addresses.Where(x => x.Contains('.')) );
        }
        Assert.False(File.Exists(Path.Combine(_store.Manager.Store.ContainerDirectory(name), "netns")));
    }

    [Fact]
    public void NoneSharesTheHostNetwork_EmptyHasOnlyLoopbackUp()
    {
        using var s = _store.OpenSession();
        var none = TestStore.NewName("none");
        var empty = TestStore.NewName("empty");
        s.Run("New-Container -Name $args[0] -Network @{type='none'}; New-Container -Name $args[1] -Network @{type='empty'}", none, empty);
        var pn = ((ContainerInfo)s.Run("Start-Container $args[0] -PassThru", none).Single().BaseObject).Pid!.Value;
        var pe = ((ContainerInfo)s.Run("Start-Container $args[0] -PassThru", empty).Single().BaseObject).Pid!.Value;
        Assert.Equal(NetNamespaces.InodeOfPid(Environment.ProcessId), NetNamespaces.InodeOfPid(pn));
        Assert.NotEqual(NetNamespaces.InodeOfPid(Environment.ProcessId), NetNamespaces.InodeOfPid(pe));
        // User-namespaced (the default) in the host's network namespace: no sysfs of its own can be
        // mounted there, so the host's /sys is bound in, read-only.
        var sys = (ContainerCommandResult)s.Run("Invoke-ContainerCommand $args[0] -Command /bin/sh,-c,'ls /sys/class/net; touch /sys/x 2>&1'", none).Single().BaseObject;
        Assert.Contains("lo", sys.Output);
        Assert.Contains(sys.Output, l => l.Contains("Read-only file system"));
        var links = s.Run("Get-NetworkLink -Container $args[0]", empty).Select(o => (NetworkLink)o.BaseObject).ToList();
        Assert.Equal("lo", Assert.Single(links).Name);
        Assert.True(links[0].IsUp);
    }

    [Fact]
    public void AFailingSecondNic_AbortsTheStart_AndDeletesTheFirstNicsHostEnd()
    {
        var ns = _lab.NewNamespace("h");
        using (var c = new NetworkClient(NetworkLocation.ForNamespace(ns))) c.CreateBridge("br0");
        var name = TestStore.NewName("half");
        _store.Manager.Create(name, new CreateOptions
        {
            Template = "busybox",
            Network = new[]
            {
                new NicConfig { Type = "veth", Link = "br0", LinkNamespace = ns, HostName = "hostend0" },
                new NicConfig { Type = "macvlan", Link = "ghost0", LinkNamespace = ns },
            },
        });
        var ex = Assert.Throws<ContainerException>(() => _store.Manager.Start(name));
        Assert.Equal("ParentLinkNotFound", ex.ErrorId);
        Assert.Contains("ghost0", ex.Message);
        Assert.Equal(ContainerStatus.Stopped, _store.Manager.Get(name).State);
        using (var c = new NetworkClient(NetworkLocation.ForNamespace(ns)))
            Assert.Equal(new[] { "br0", "lo" }, c.GetLinks().Select(l => l.Name).Order());

        // A host end name that is already taken: precise error, and the existing link is left alone.
        using (var c = new NetworkClient(NetworkLocation.ForNamespace(ns))) c.CreateVeth("hostend0", "other0");
        var taken = TestStore.NewName("taken");
        _store.Manager.Create(taken, new CreateOptions
        {
            Template = "busybox",
            Network = new[] { new NicConfig { Type = "veth", Link = "br0", LinkNamespace = ns, HostName = "hostend0" } },
        });
        var ex2 = Assert.Throws<ContainerException>(() => _store.Manager.Start(taken));
        Assert.Equal("LinkExists", ex2.ErrorId);
        Assert.Contains("link hostend0 already exists", ex2.Message);
        using (var c = new NetworkClient(NetworkLocation.ForNamespace(ns))) Assert.Equal("other0", c.GetLink("hostend0").Parent);

        var missing = TestStore.NewName("nobr");
        _store.Manager.Create(missing, new CreateOptions
        {
            Template = "busybox",
            Network = new[] { new NicConfig { Type = "veth", Link = "nobr0", LinkNamespace = ns } },
        });
        Assert.Equal("BridgeNotFound", Assert.Throws<ContainerException>(() => _store.Manager.Start(missing)).ErrorId);
    }

    [Fact]
    public void NetworkConfig_ErrorsPointAtTheLine()
    {
        ContainerException Bad(string yaml) => Assert.Throws<ContainerException>(() => ConfigLoader.Parse(yaml, "c.yaml"));
        Assert.StartsWith("c.yaml:2:11: invalid value 'bogus' for network[0].type", Bad("network:\n  - type: bogus\n").Message);
        Assert.StartsWith("c.yaml:3:11: invalid interface name 'abcdefghijklmnopq' for network[0].name", Bad("network:\n  - type: veth\n    name: abcdefghijklmnopq\n").Message);
        Assert.Contains("has no prefix length", Bad("network:\n  - type: veth\n    ipv4: 10.0.0.2\n").Message);
        Assert.StartsWith("c.yaml:3:13: 'vlanId' does not apply to a veth interface", Bad("network:\n  - type: veth\n    vlanId: 5\n").Message);
        Assert.Contains("a macvlan interface needs 'link'", Bad("network:\n  - type: macvlan\n").Message);
        Assert.Contains("a vlan interface needs 'vlanId'", Bad("network:\n  - type: vlan\n    link: eth0\n").Message);
        Assert.Contains("must be the only entry", Bad("network:\n  - type: none\n  - type: veth\n").Message);
        Assert.Contains("'eth0' is already used by network[0]", Bad("network:\n  - type: veth\n  - type: veth\n    name: eth0\n").Message);

        var config = ConfigLoader.Parse("network:\n  - type: veth\n    link: default\n    ipv4: [10.0.0.2/24]\n    ipv4Gateway: 10.0.0.1\n    hwAddress: 00:16:3E:xx:xx:xx\n  - type: vlan\n    link: eth0\n    vlanId: 7\n", "c.yaml");
        var again = ConfigLoader.Parse(ConfigLoader.Serialize(config), "round-trip");
        Assert.Equal(2, again.Network.Count);
        Assert.Equal("00:16:3e:xx:xx:xx", again.Network[0].HwAddress);
        Assert.Equal(new[] { "10.0.0.2/24" }, again.Network[0].IPv4);
        Assert.Equal(7, again.Network[1].VlanId);
    }
}
