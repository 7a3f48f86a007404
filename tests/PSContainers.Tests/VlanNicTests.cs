using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Devices;
using PSContainers.Runtime.Network;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// A fact that runs only where the kernel can make the named link kind (a module in
/// /lib/modules, loaded or built in): this host's kernel has neither vlan nor ipvlan, so these run
/// in the v2 guest (tools/test-v2-guest.sh lists the class), whose kernel has both.
/// </summary>
public sealed class LinkKindFactAttribute : FactAttribute
{
    public LinkKindFactAttribute(params string[] modules)
    {
        var missing = modules.Where(m => !KernelHas(m)).ToList();
        if (missing.Count > 0) Skip = $"this kernel cannot make {string.Join(", ", missing)} links (no module); the v2 guest runs this test";
    }

    private static bool KernelHas(string module)
    {
        if (Directory.Exists("/sys/module/" + module)) return true;
        var release = File.Exists("/proc/sys/kernel/osrelease") ? File.ReadAllText("/proc/sys/kernel/osrelease").Trim() : "";
        foreach (var list in new[] { "modules.dep", "modules.builtin" })
        {
            var path = $"/lib/modules/{release}/{list}";
            if (File.Exists(path) && File.ReadLines(path).Any(l => l.Split(':')[0].EndsWith("/" + module + ".ko", StringComparison.Ordinal) || l.Split(':')[0].EndsWith("/" + module + ".ko.xz", StringComparison.Ordinal))) return true;
        }
        return false;
    }
}

/// <summary>
/// vlan and ipvlan NICs plugged into a running (user-namespaced) container and taken out again,
/// over a veth pair in a test namespace whose far end answers: tagged frames for the vlan, the
/// parent's own frames for the ipvlan.
/// </summary>
[Collection("Containers")]
public sealed class VlanNicTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly NetLab _lab = new();

    public void Dispose()
    {
        try { foreach (var n in _store.Manager.Names().ToList()) _store.Manager.Remove(n, force: true); } catch (Exception) { }
        _lab.Dispose();
        _store.Dispose();
    }

    private ContainerManager M => _store.Manager;
    private ContainerNetworkInterfaces Nics => new(M);

    /// <summary>A test namespace with veth up0 (the parent) and up1 (the far end), both up.</summary>
    private string Wire(string suffix)
    {
        var ns = _lab.NewNamespace(suffix);
        using var c = new NetworkClient(NetworkLocation.ForNamespace(ns));
        c.CreateVeth("up0", "up1");
        c.SetLink("up0", new LinkChanges { Up = true });
        c.SetLink("up1", new LinkChanges { Up = true });
        return ns;
    }

    private string Running(string hint)
    {
        var name = TestStore.NewName(hint);
        M.Create(name, new CreateOptions { Template = "busybox", Unprivileged = true, Network = new[] { new NicConfig { Type = "empty" } } });
        M.Start(name);
        return name;
    }

    private List<NetworkLink> Inside(string name)
    {
        using var c = new NetworkClient(NetworkLocation.ForPid(M.Get(name).Pid!.Value));
        return c.GetLinks();
    }

    private void Pings(string name, string to)
    {
        var r = M.Exec(name, new[] { "ping", "-c1", "-W3", to });
        Assert.True(r.ExitCode == 0, $"ping {to}: {string.Join("\n", r.Output.Concat(r.Error))}");
    }

    [LinkKindFact("8021q")]
    public void Vlan_PluggedLive_CarriesTaggedTraffic_ThenUnpluggedLeavesTheParent()
    {
        var ns = Wire("vl");
        using (var c = new NetworkClient(NetworkLocation.ForNamespace(ns)))
        {
            c.CreateVlan("up1.7", "up1", 7);
            c.AddAddress("up1.7", "192.168.236.1/24");
            c.SetLink("up1.7", new LinkChanges { Up = true });
        }
        var name = Running("vl");
        var added = Nics.Add(name, new NicConfig { Type = "vlan", Link = "up0", LinkNamespace = ns, VlanId = 7, Name = "vl7", IPv4 = { "192.168.236.2/24" } }, persist: false);
        Assert.Equal("vl7", added.InterfaceName);
        var vl = Inside(name).Single(l => l.Name == "vl7");
        Assert.Equal("vlan", vl.Kind);
        Assert.True(vl.IsUp);
        Assert.Contains("192.168.236.2/24", vl.Addresses);
        // Only frames tagged 7 reach up1.7: the answer proves the tag.
        Pings(name, "192.168.236.1");

        Nics.Remove(name, "vl7", persist: false);
        Assert.DoesNotContain(Inside(name), l => l.Name == "vl7");
        using (var c = new NetworkClient(NetworkLocation.ForNamespace(ns)))
            Assert.Equal(new[] { "lo", "up0", "up1", "up1.7" }, c.GetLinks().Select(l => l.Name).Order());
    }

    [LinkKindFact("ipvlan")]
    public void Ipvlan_PluggedLive_Pings_ThenUnplugged()
    {
        var ns = Wire("iv");
        using (var c = new NetworkClient(NetworkLocation.ForNamespace(ns)))
            c.AddAddress("up1", "192.168.237.1/24");
        var name = Running("iv");
        var added = Nics.Add(name, new NicConfig { Type = "ipvlan", Link = "up0", LinkNamespace = ns, IpvlanMode = "l2", Name = "iv0", IPv4 = { "192.168.237.2/24" } }, persist: false);
        var iv = Inside(name).Single(l => l.Name == "iv0");
        Assert.Equal("ipvlan", iv.Kind);
        Assert.True(iv.IsUp);
        Assert.Equal(new[] { "192.168.237.2" }, M.Get(name).IPv4);
        Pings(name, "192.168.237.1");

        Nics.Remove(name, "iv0", persist: false);
        Assert.DoesNotContain(Inside(name), l => l.Name == "iv0");
        Assert.Empty(M.Get(name).IPv4);
    }
}
