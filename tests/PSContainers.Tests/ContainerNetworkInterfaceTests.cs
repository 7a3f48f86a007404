using PSContainers.Runtime;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Devices;
using PSContainers.Runtime.Events;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Network;
using PSContainers.Runtime.NetworkHooks;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// NICs plugged into and out of running containers (Add-/Remove-ContainerNetworkInterface), privileged
/// and user-namespaced, on real namespaces: every bridge and parent link lives in a test namespace
/// (NetLab, "pst..."), never on the host.
/// </summary>
[Collection("Containers")]
public sealed class ContainerNetworkInterfaceTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly NetLab _lab = new();
    private DefaultBridge? _bridge;

    public void Dispose()
    {
        // Containers first (their stop undoes their NICs), then the test's bridge and namespaces.
        try { foreach (var n in _store.Manager.Names().ToList()) _store.Manager.Remove(n, force: true); } catch (Exception) { }
        try { _bridge?.Remove(); } catch (Exception) { }
        _lab.Dispose();
        _store.Dispose();
    }

    private ContainerManager M => _store.Manager;
    private ContainerNetworkInterfaces Nics => new(M);

    /// <summary>A running busybox container with no NIC but loopback ('empty'), privileged or user-namespaced.</summary>
    private string Running(bool privileged, string hint)
    {
        var name = TestStore.NewName(hint);
        M.Create(name, new CreateOptions
        {
            Template = "busybox",
            Privileged = privileged,
            Unprivileged = !privileged,
            Network = new[] { new NicConfig { Type = "empty" } },
        });
        M.Start(name);
        Assert.Equal(privileged, ConfigLoader.Load(M.Store.ConfigPath(name)).IdMap is null);
        return name;
    }

    /// <summary>A test namespace with bridge br0 holding <paramref name="address"/>.</summary>
    private string BridgeNamespace(string suffix, string address)
    {
        var ns = _lab.NewNamespace(suffix);
        using var c = new NetworkClient(NetworkLocation.ForNamespace(ns));
        c.SetLink("lo", new LinkChanges { Up = true });
        c.CreateBridge("br0");
        c.AddAddress("br0", address);
        c.SetLink("br0", new LinkChanges { Up = true });
        return ns;
    }

    private List<NetworkLink> Inside(string name)
    {
        using var c = new NetworkClient(NetworkLocation.ForPid(M.Get(name).Pid!.Value));
        return c.GetLinks();
    }

    private static List<NetworkLink> In(string ns)
    {
        using var c = new NetworkClient(NetworkLocation.ForNamespace(ns));
        return c.GetLinks();
    }

    private ContainerCommandResult Ping(string name, string to)
    {
        using var s = _store.OpenSession();
        return (ContainerCommandResult)s.Run("Invoke-ContainerCommand -Name $args[0] -Command $args[1]", name, new[] { "ping", "-c1", "-W3", to }).Single().BaseObject;
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void VethOnABridge_PluggedLive_Pings_ThenUnpluggedLeavesNothing(bool privileged)
    {
        var ns = BridgeNamespace("v", "192.168.231.1/24");
        var name = Running(privileged, "hv");
        var pid = M.Get(name).Pid;

        var added = Nics.Add(name, new NicConfig { Type = "veth", Link = "br0", LinkNamespace = ns, IPv4 = { "192.168.231.2/24" }, Mtu = 1400, HwAddress = "00:16:3e:xx:xx:xx" }, persist: false);
        Assert.Equal("eth0", added.InterfaceName);
        Assert.True(added.Live);
        Assert.False(added.Persisted);
        var eth0 = Inside(name).Single(l => l.Name == "eth0");
        Assert.Equal("veth", eth0.Kind);
        Assert.True(eth0.IsUp);
        Assert.Equal(1400, eth0.Mtu);
        Assert.StartsWith("00:16:3e:", eth0.MacAddress);
        Assert.Equal(added.MacAddress, eth0.MacAddress);
        var hostEnd = In(ns).Single(l => l.Name == added.HostName);
        Assert.Equal("br0", hostEnd.Master);
        var ping = Ping(name, "192.168.231.1");
        Assert.True(ping.ExitCode == 0, string.Join("\n", ping.Output.Concat(ping.Error)));
        // Live only: config.yaml unchanged; the container did not restart.
        Assert.Equal("empty", Assert.Single(ConfigLoader.Load(M.Store.ConfigPath(name)).Network).Type);
        Assert.Equal(pid, M.Get(name).Pid);
        Assert.Contains(M.Events.Read(), e => e.Container == name && e.Kind == ContainerEventKind.NetworkInterfaceAdded && e.Details["interface"] == "eth0" && e.Details["type"] == "veth" && e.Details["link"] == "br0");
        Assert.DoesNotContain(M.Events.Read(), e => e.Container == name && e.Kind == ContainerEventKind.DeviceAdded);

        var removed = Nics.Remove(name, "eth0", persist: false);
        Assert.True(removed.Live);
        Assert.DoesNotContain(Inside(name), l => l.Name == "eth0");
        Assert.Equal(new[] { "br0", "lo" }, In(ns).Select(l => l.Name).Order());
        Assert.Empty(new NicPlumbing(M.Store).Load(name)!);
        Assert.Contains(M.Events.Read(), e => e.Container == name && e.Kind == ContainerEventKind.NetworkInterfaceRemoved && e.Details["interface"] == "eth0" && e.Details["type"] == "veth" && e.Details["link"] == "br0");
        Assert.Equal("NicNotInContainer", Assert.Throws<ContainerException>(() => Nics.Remove(name, "eth0", persist: false)).ErrorId);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Macvlan_PluggedLive_WithItsNameAndMac_ThenUnplugged(bool privileged)
    {
        var ns = _lab.NewNamespace("m");
        using (var c = new NetworkClient(NetworkLocation.ForNamespace(ns))) { c.CreateVeth("up0", "up1"); c.SetLink("up0", new LinkChanges { Up = true }); }
        var name = Running(privileged, "hm");
        var added = Nics.Add(name, new NicConfig { Type = "macvlan", Link = "up0", LinkNamespace = ns, Name = "mv4", MacvlanMode = "bridge", HwAddress = "00:16:3e:aa:bb:04", IPv4 = { "192.168.232.2/24" } }, persist: false);
        Assert.Equal("mv4", added.InterfaceName);
        var mv = Inside(name).Single(l => l.Name == "mv4");
        Assert.Equal("macvlan", mv.Kind);
        Assert.Equal("00:16:3e:aa:bb:04", mv.MacAddress);
        Assert.Contains("192.168.232.2/24", mv.Addresses);
        Assert.Equal(new[] { "192.168.232.2" }, M.Get(name).IPv4);

        Nics.Remove(name, "mv4", persist: false);
        Assert.Equal(new[] { "lo" }, Inside(name).Select(l => l.Name));
        // The parent is untouched.
        Assert.Equal(new[] { "lo", "up0", "up1" }, In(ns).Select(l => l.Name).Order());
    }

    [Fact]
    public void Persisted_SurvivesARestart_AndARemovalWithPersistTakesItOutOfConfig()
    {
        var ns = BridgeNamespace("p", "192.168.233.1/24");
        var name = Running(privileged: false, "hp");
        var added = Nics.Add(name, new NicConfig { Type = "veth", Link = "br0", LinkNamespace = ns, IPv4 = { "192.168.233.2/24" } }, persist: true);
        Assert.True(added.Live && added.Persisted);
        var config = ConfigLoader.Load(M.Store.ConfigPath(name));
        Assert.Equal(new[] { "empty", "veth" }, config.Network.Select(n => n.Type));
        Assert.Equal(new[] { "192.168.233.2/24" }, config.Network[1].IPv4);

        M.Stop(name, kill: true);
        // The stop undid it: no host end is left in the namespace, nor the ledger.
        Assert.Equal(new[] { "br0", "lo" }, In(ns).Select(l => l.Name).Order());
        Assert.Null(new NicPlumbing(M.Store).Load(name));
        M.Start(name);
        Assert.Contains("192.168.233.2/24", Inside(name).Single(l => l.Name == "eth0").Addresses);
        var ping = Ping(name, "192.168.233.1");
        Assert.True(ping.ExitCode == 0, string.Join("\n", ping.Output.Concat(ping.Error)));

        Nics.Remove(name, "eth0", persist: true);
        Assert.Equal("empty", Assert.Single(ConfigLoader.Load(M.Store.ConfigPath(name)).Network).Type);
        Assert.Equal(new[] { "br0", "lo" }, In(ns).Select(l => l.Name).Order());

        // A stopped container: -Persist only records it; without -Persist it is refused.
        M.Stop(name, kill: true);
        var recorded = Nics.Add(name, new NicConfig { Type = "veth", Link = "br0", LinkNamespace = ns }, persist: true);
        Assert.False(recorded.Live);
        Assert.True(recorded.Persisted);
        Assert.Equal(2, ConfigLoader.Load(M.Store.ConfigPath(name)).Network.Count);
        Assert.Equal("ContainerNotRunning", Assert.Throws<ContainerException>(() => Nics.Add(name, new NicConfig { Type = "veth", Link = "br0", LinkNamespace = ns }, persist: false)).ErrorId);
    }

    // A hot-unplug gives the default bridge's lease back at once (not when the container is removed),
    // but a lease the container's NICs still use is kept: a live change that replugs the NIC in the
    // same place keeps its address.
    [Fact]
    public void ADefaultBridgeNic_UnpluggedLive_GivesItsLeaseBack_ButAReplugInItsPlaceKeepsIt()
    {
        var bridgeName = _lab.HostLink("db");
        var subnet = ContainerNetworkTests.FreeSubnet();
        DefaultBridge.Save(M.Store, new BridgeSettings { Name = bridgeName, Subnet = subnet, Nat = false, EnableForwarding = false });
        _bridge = DefaultBridge.For(M.Store);
        var first = subnet[..subnet.LastIndexOf('.')] + ".2";
        var name = Running(privileged: false, "hl");
        string[] LeasesOf(string c) => _bridge.Leases().Where(l => l.Container == c).Select(l => l.Address).ToArray();

        var added = Nics.Add(name, new NicConfig { Type = "veth", Link = DefaultBridge.ConfigName }, persist: true);
        Assert.Equal(new[] { first + "/24" }, added.Addresses);
        Assert.Equal(new[] { first }, LeasesOf(name));

        // Replugged in its place (a manifest's live change of its MTU): the same address, still leased.
        var steps = Nics.ApplyNetwork(name, new List<NicConfig> { new() { Type = "empty" }, new() { Type = "veth", Link = DefaultBridge.ConfigName, Mtu = 1400 } });
        Assert.Equal(new[] { "unplug eth0 (veth)", "plug eth0 (veth on default)" }, steps);
        var eth0 = Inside(name).Single(l => l.Name == "eth0");
        Assert.Equal(1400, eth0.Mtu);
        Assert.Contains(first + "/24", eth0.Addresses);
        Assert.Equal(new[] { first }, LeasesOf(name));

        // Unplugged (live only, so config.yaml keeps it): the lease goes, and the next container gets the address.
        var removed = Nics.Remove(name, "eth0", persist: false);
        Assert.False(removed.Persisted);
        Assert.Empty(LeasesOf(name));
        Assert.Contains(M.Events.Read(), e => e.Container == name && e.Kind == ContainerEventKind.NetworkInterfaceRemoved
            && e.Details["interface"] == "eth0" && e.Details["type"] == "veth" && e.Details["link"] == DefaultBridge.ConfigName);
        var other = TestStore.NewName("hl");
        M.Create(other, new CreateOptions { Template = "busybox", Privileged = false, Unprivileged = true, Network = new[] { new NicConfig { Type = "veth", Link = DefaultBridge.ConfigName } } });
        M.Start(other);
        Assert.Equal(new[] { first }, M.Get(other).IPv4);
        Assert.Equal(new[] { first }, LeasesOf(other));
    }

    [Fact]
    public void ANameTakenInside_OrAFailingRoute_LeavesNothingMadeNorRecorded()
    {
        var ns = BridgeNamespace("r", "192.168.234.1/24");
        var name = Running(privileged: false, "hr");
        Nics.Add(name, new NicConfig { Type = "veth", Link = "br0", LinkNamespace = ns, HostName = "pstkeep0" }, persist: false);
        var configBefore = File.ReadAllText(M.Store.ConfigPath(name));
        var ledgerBefore = new NicPlumbing(M.Store).Load(name)!.Select(p => p.Name).ToList();

        var taken = Assert.Throws<ContainerException>(() =>
            Nics.Add(name, new NicConfig { Type = "veth", Link = "br0", LinkNamespace = ns, Name = "eth0", HostName = "pstnew0" }, persist: true));
        Assert.Equal("NicNameInUse", taken.ErrorId);

        // A gateway off the NIC's subnet: the kernel refuses the route after the pair was made; the pair goes again.
        Assert.Throws<ContainerException>(() =>
            Nics.Add(name, new NicConfig { Type = "veth", Link = "br0", LinkNamespace = ns, Name = "eth9", HostName = "pstnew1", IPv4 = { "192.168.234.9/24" }, IPv4Gateway = "10.254.254.254" }, persist: true));

        Assert.Equal(new[] { "br0", "lo", "pstkeep0" }, In(ns).Select(l => l.Name).Order());
        Assert.Equal(new[] { "eth0", "lo" }, Inside(name).Select(l => l.Name).Order());
        Assert.Equal(configBefore, File.ReadAllText(M.Store.ConfigPath(name)));
        Assert.Equal(ledgerBefore, new NicPlumbing(M.Store).Load(name)!.Select(p => p.Name));
        Assert.DoesNotContain(M.Events.Read(), e => e.Container == name && e.Kind == ContainerEventKind.NetworkInterfaceAdded && e.Details["interface"] == "eth9");
    }

    [Fact]
    public void APhysPluggedLive_GoesBackUnderItsOwnName_WhenTheContainerStops()
    {
        var ns = _lab.NewNamespace("ph");
        using (var c = new NetworkClient(NetworkLocation.ForNamespace(ns))) c.CreateVeth("ph0", "ph1");
        var name = Running(privileged: true, "hph");
        Nics.Add(name, new NicConfig { Type = "phys", Link = "ph0", LinkNamespace = ns, Name = "wan5", IPv4 = { "192.168.235.2/24" } }, persist: false);
        Assert.Contains("192.168.235.2/24", Inside(name).Single(l => l.Name == "wan5").Addresses);
        Assert.DoesNotContain(In(ns), l => l.Name == "ph0");
        Assert.True(File.Exists(Path.Combine(M.Store.ContainerDirectory(name), "netns")));

        M.Stop(name, kill: true);
        var back = In(ns).Single(l => l.Name == "ph0");
        Assert.Equal("ph1", back.Parent);
        Assert.False(File.Exists(Path.Combine(M.Store.ContainerDirectory(name), "netns")));
    }

    [Fact]
    public void StartTimeNetworks_AreRefusedLive()
    {
        var name = Running(privileged: true, "hx");
        foreach (var type in new[] { "pasta", "empty", "none" })
            Assert.Equal("NicNotHotpluggable", Assert.Throws<ContainerException>(() => Nics.Add(name, new NicConfig { Type = type }, persist: false)).ErrorId);
        Assert.Equal(new[] { "lo" }, Inside(name).Select(l => l.Name));
    }

    [Fact]
    public void LiveChange_IsTheChangedTail_OrNullForStartTimeNetworks()
    {
        var a = new NicConfig { Type = "veth", Link = "br0" };
        var b = new NicConfig { Type = "macvlan", Link = "eth0" };
        var change = ContainerNetworkInterfaces.LiveChange(new[] { a }, new[] { new NicConfig { Type = "veth", Link = "br0" }, b });
        Assert.NotNull(change);
        Assert.Equal(1, change.Value.Keep);
        Assert.Empty(change.Value.Removed);
        Assert.Equal("macvlan", Assert.Single(change.Value.Added).Type);
        var swap = ContainerNetworkInterfaces.LiveChange(new[] { a, b }, new[] { b });
        Assert.Equal(0, swap!.Value.Keep);
        Assert.Equal(2, swap.Value.Removed.Count);
        Assert.Null(ContainerNetworkInterfaces.LiveChange(new[] { a }, new[] { a, new NicConfig { Type = "pasta" } }));
        Assert.Null(ContainerNetworkInterfaces.LiveChange(new[] { new NicConfig { Type = "none" } }, new[] { a }));
    }
}
