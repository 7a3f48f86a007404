using PSContainers.Runtime;
using PSContainers.Runtime.Network;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>The rtnetlink client against the kernel, always inside namespaces the test created.</summary>
[Collection("Containers")]
public sealed class NetworkClientTests : IDisposable
{
    private readonly NetLab _lab = new();
    public void Dispose() => _lab.Dispose();

    private NetworkClient In(string ns) => new(NetworkLocation.ForNamespace(ns));

    [Fact]
    public void SetLink_RenamesMovesAttachesAndChangesMacMtuHairpin()
    {
        var a = _lab.NewNamespace("a");
        var b = _lab.NewNamespace("b");
        using var ca = In(a);
        using var cb = In(b);
        ca.CreateBridge("br0");
        ca.CreateVeth("x0", "x1", mtu: 1300, macAddress: "00:16:3e:00:00:01");
        var x0 = ca.GetLink("x0");
        Assert.Equal("00:16:3e:00:00:01", x0.MacAddress);
        Assert.Equal(1300, x0.Mtu);
        Assert.Equal("x1", x0.Parent);

        ca.SetLink("x0", new LinkChanges { Master = "br0", Up = true, Mtu = 1280, MacAddress = "00:16:3e:00:00:02" });
        ca.SetLink("x0", new LinkChanges { Hairpin = true });
        x0 = ca.GetLink("x0");
        Assert.Equal("br0", x0.Master);
        Assert.True(x0.IsUp);
        Assert.Equal(1280, x0.Mtu);
        Assert.Equal("00:16:3e:00:00:02", x0.MacAddress);
        Assert.Equal("1", ReadInNs(a, "/sys/class/net/x0/brport/hairpin_mode")); // /sys of that namespace (netns-exec remounts it)
        ca.SetLink("x0", new LinkChanges { Master = "" });
        Assert.Null(ca.GetLink("x0").Master);

        // Rename and move in one request; then it is gone here and present there.
        ca.SetLink("x1", new LinkChanges { NewName = "eth7", MoveTo = NetworkLocation.ForNamespace(b) });
        Assert.False(ca.LinkExists("x1"));
        Assert.Equal("veth", cb.GetLink("eth7").Kind);
        cb.DeleteLink("eth7");
        Assert.False(ca.LinkExists("x0")); // deleting one end deletes the pair
    }

    private static string ReadInNs(string ns, string path) =>
        NetNamespaces.Exec(ns, new[] { "cat", path }).Output.Single();

    [Fact]
    public void AddressesAndRoutes_AddListRemove()
    {
        var a = _lab.NewNamespace("r");
        using var c = In(a);
        c.CreateVeth("r0", "r1");
        c.SetLink("r0", new LinkChanges { Up = true });
        c.SetLink("r1", new LinkChanges { Up = true });
        c.AddAddress("r0", "10.1.0.1/24");
        c.AddAddress("r0", "fd00:1::1/64");
        var addrs = c.GetAddresses("r0");
        Assert.Contains(addrs, x => x.Cidr == "10.1.0.1/24" && x.Family == "IPv4" && x.Name == "r0");
        Assert.Contains(addrs, x => x.Cidr == "fd00:1::1/64" && x.Family == "IPv6" && x.Name == "r0");
        Assert.Contains("10.1.0.1/24", c.GetLink("r0").Addresses);

        c.AddRoute("default", "10.1.0.254");
        c.AddRoute("192.168.50.0/24", device: "r0", metric: 7);
        var routes = c.GetRoutes();
        Assert.Contains(routes, r => r.Destination == "default" && r.Gateway == "10.1.0.254" && r.Device == "r0");
        Assert.Contains(routes, r => r.Destination == "192.168.50.0/24" && r.Device == "r0" && r.Metric == 7 && r.Scope == "link");
        Assert.Contains(routes, r => r.Destination == "10.1.0.0/24" && r.Protocol == "kernel");
        var dup = Assert.Throws<ContainerException>(() => c.AddRoute("default", "10.1.0.254"));
        Assert.Equal("RouteExists", dup.ErrorId);
        var unreachable = Assert.Throws<ContainerException>(() => c.AddRoute("10.7.0.0/16", "172.31.0.1"));
        Assert.Equal("GatewayUnreachable", unreachable.ErrorId);

        c.RemoveRoute("default", "10.1.0.254");
        c.RemoveRoute("192.168.50.0/24", device: "r0");
        Assert.DoesNotContain(c.GetRoutes(), r => r.Destination is "default" or "192.168.50.0/24");
        Assert.Equal("RouteNotFound", Assert.Throws<ContainerException>(() => c.RemoveRoute("192.168.50.0/24")).ErrorId);

        c.RemoveAddress("r0", "10.1.0.1/24");
        Assert.DoesNotContain(c.GetAddresses("r0"), x => x.Family == "IPv4");
        Assert.Equal("AddressNotFound", Assert.Throws<ContainerException>(() => c.RemoveAddress("r0", "10.1.0.1/24")).ErrorId);
        Assert.Equal("AddressExists", Assert.Throws<ContainerException>(() => c.AddAddress("r0", "fd00:1::1/64")).ErrorId);
    }

    [Fact]
    public void BadInput_GivesPreciseErrors_AndLeavesNothing()
    {
        var a = _lab.NewNamespace("e");
        var b = _lab.NewNamespace("f");
        using var c = In(a);
        var before = c.GetLinks().Select(l => l.Name).ToList();

        var tooLong = Assert.Throws<ContainerException>(() => c.CreateVeth("abcdefghijklmnop", "p0"));
        Assert.Equal("InvalidLinkName", tooLong.ErrorId);
        Assert.Contains("16 bytes", tooLong.Message);
        Assert.Equal("InvalidLinkName", Assert.Throws<ContainerException>(() => c.CreateBridge("a/b")).ErrorId);

        c.CreateBridge("dup0");
        var dup = Assert.Throws<ContainerException>(() => c.CreateBridge("dup0"));
        Assert.Equal("LinkExists", dup.ErrorId);
        Assert.Equal(ContainerErrorKind.ResourceExists, dup.Kind);
        Assert.Contains("link dup0 already exists", dup.Message);

        // The peer name clashes inside the peer's namespace: the kernel makes neither end.
        using (var cb = In(b)) cb.CreateBridge("taken");
        var peerClash = Assert.Throws<ContainerException>(() => c.CreateVeth("fresh0", "taken", NetworkLocation.ForNamespace(b)));
        Assert.Equal("LinkExists", peerClash.ErrorId);
        Assert.Contains("link taken already exists in netns:" + b, peerClash.Message);
        Assert.False(c.LinkExists("fresh0"));

        var unknownNs = Assert.Throws<ContainerException>(() => NetworkLocation.ForNamespace(_lab.Prefix + "nope"));
        Assert.Equal("NetNamespaceNotFound", unknownNs.ErrorId);

        c.CreateVeth("m0", "m1");
        var noPrefix = Assert.Throws<ContainerException>(() => c.AddAddress("m0", "10.0.0.1"));
        Assert.Equal("AddressWithoutPrefix", noPrefix.ErrorId);
        Assert.Contains("10.0.0.1/24", noPrefix.Message);
        Assert.Equal("InvalidAddress", Assert.Throws<ContainerException>(() => c.AddAddress("m0", "10.0.0.300/24")).ErrorId);

        var noBridge = Assert.Throws<ContainerException>(() => c.SetLink("m0", new LinkChanges { Master = "nobr0", Up = true }));
        Assert.Equal("BridgeNotFound", noBridge.ErrorId);
        Assert.False(c.GetLink("m0").IsUp); // nothing of the request was applied

        Assert.Equal("LinkNotFound", Assert.Throws<ContainerException>(() => c.DeleteLink("ghost0")).ErrorId);
        Assert.Equal("ParentLinkNotFound", Assert.Throws<ContainerException>(() => c.CreateMacvlan("mv0", "ghost0")).ErrorId);
        Assert.Equal("InvalidMacAddress", Assert.Throws<ContainerException>(() => c.SetLink("m0", new LinkChanges { MacAddress = "01:00:5e:00:00:01" })).ErrorId);

        c.DeleteLink("m0");
        c.DeleteLink("dup0");
        Assert.Equal(before, c.GetLinks().Select(l => l.Name).ToList());
    }

    [Fact]
    public void Macvlan_AllModes_OnAVethInsideANamespace()
    {
        var a = _lab.NewNamespace("m");
        using var c = In(a);
        c.CreateVeth("up0", "up1");
        foreach (var mode in new[] { MacvlanMode.Private, MacvlanMode.Vepa, MacvlanMode.Bridge })
        {
            var name = "mv" + mode.ToString().ToLowerInvariant()[..3];
            c.CreateMacvlan(name, "up0", mode);
            var link = c.GetLink(name);
            Assert.Equal("macvlan", link.Kind);
            Assert.Equal("up0", link.Parent);
        }
        // passthru takes the parent over: only one per parent, so on the other end.
        c.CreateMacvlan("mvpt", "up1", MacvlanMode.Passthru);
        Assert.Equal("macvlan", c.GetLink("mvpt").Kind);
    }

    [Fact]
    public void BatchDelete_SendsEverythingBeforeReadingAcks()
    {
        var a = _lab.NewNamespace("d");
        using var c = In(a);
        for (var i = 0; i < 20; i++) c.CreateVeth($"b{i}", $"p{i}");
        c.CreateVeth("keep0", "keep1");
        c.CreateBridge("keepbr");
        var missing = c.DeleteLinks(Enumerable.Range(0, 20).Select(i => $"b{i}").Append("never0"));
        Assert.Equal(new[] { "never0" }, missing);
        // Only the named links (and their veth peers) went: the group delete touches nothing else.
        Assert.Equal(new[] { "keep0", "keep1", "keepbr", "lo" }, c.GetLinks().Select(l => l.Name).Order());
        Assert.Empty(c.DeleteLinks(new[] { "keep0", "keepbr" }));
        Assert.Equal(new[] { "lo" }, c.GetLinks().Select(l => l.Name));
    }
}
