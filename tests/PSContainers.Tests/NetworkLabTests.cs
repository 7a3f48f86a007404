using PSContainers.Runtime;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Network;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// The seed 001 lab through the cmdlets: four namespaces; the first holds a bridge (10.0.0.1/24)
/// and one veth end per other namespace, whose peers are created directly in those namespaces as
/// eth0 (10.0.0.2-4/24). Every namespace pings every other, with busybox ping run by
/// Invoke-NetNamespaceCommand.
/// </summary>
[Collection("Containers")]
public sealed class NetworkLabTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly NetLab _lab = new();

    public void Dispose()
    {
        _lab.Dispose();
        _store.Dispose();
    }

    [Fact]
    public void FourNamespaces_OnABridge_AllPingEachOther()
    {
        using var s = _store.OpenSession();
        var names = new[] { _lab.Ns("a"), _lab.Ns("b"), _lab.Ns("c"), _lab.Ns("d") };
        var created = s.Run("$args | New-NetNamespace", names.Cast<object>().ToArray());
        Assert.Equal(names, created.Select(o => ((NetNamespaceInfo)o.BaseObject).Name));
        var hub = names[0];
        var br = (NetworkLink)s.Run("New-NetworkBridge -Name br0 -Namespace $args[0]", hub).Single().BaseObject;
        Assert.Equal("bridge", br.Kind);
        Assert.Equal("netns:" + hub, br.Namespace);
        s.Run("Add-NetworkAddress -Namespace $args[0] -Name br0 -Address 10.0.0.1/24; Set-NetworkLink -Namespace $args[0] -Name br0 -Up", hub);
        for (var i = 1; i < 4; i++)
        {
            var link = (NetworkLink)s.Run("New-VethPair -Namespace $args[0] -Name $args[1] -PeerName eth0 -PeerNamespace $args[2] -Mtu 1400",
                hub, $"v{i}", names[i]).Single().BaseObject;
            Assert.Equal("veth", link.Kind);
            Assert.Equal(1400, link.Mtu);
            s.Run("Set-NetworkLink -Namespace $args[0] -Name $args[1] -Master br0 -Up", hub, $"v{i}");
            s.Run("Add-NetworkAddress -Namespace $args[0] -Name eth0 -Address $args[1]; Set-NetworkLink -Namespace $args[0] -Name eth0 -Up", names[i], $"10.0.0.{i + 1}/24");
        }
        // The hub's links: the bridge and its three ports, all attached.
        var links = s.Run("Get-NetworkLink -Namespace $args[0]", hub).Select(o => (NetworkLink)o.BaseObject).ToList();
        Assert.Equal(new[] { "br0", "br0", "br0" }, links.Where(l => l.Name.StartsWith('v')).Select(l => l.Master));
        Assert.True(links.Single(l => l.Name == "lo").IsUp); // New-NetNamespace brings loopback up
        var eth0 = (NetworkLink)s.Run("Get-NetworkLink -Namespace $args[0] -Name eth0", names[2]).Single().BaseObject;
        Assert.Equal(new[] { "10.0.0.3/24" }, eth0.Addresses.Where(a => a.Contains('.')));
        Assert.Equal(1400, eth0.Mtu);
        Assert.StartsWith("if", eth0.Parent); // its peer lives in another namespace

        for (var from = 0; from < 4; from++)
            for (var to = 0; to < 4; to++)
            {
                if (from == to) continue;
                var r = (ContainerCommandResult)s.Run("Invoke-NetNamespaceCommand -Name $args[0] -Command busybox,ping,-c1,-W3,$args[1]",
                    names[from], $"10.0.0.{to + 1}").Single().BaseObject;
                Assert.True(r.ExitCode == 0, $"{names[from]} -> 10.0.0.{to + 1}: {string.Join("\n", r.Output.Concat(r.Error))}");
                Assert.Contains(r.Output, l => l.Contains("1 packets received"));
            }

        // After the pings, each namespace has resolved the others' MAC addresses (ip neigh).
        var neighbors = s.Run("Get-NetworkNeighbor -Namespace $args[0] -Name eth0 -Family IPv4", names[1]).Select(o => (NetworkNeighbor)o.BaseObject).ToList();
        Assert.Equal(new[] { "10.0.0.1", "10.0.0.3", "10.0.0.4" }, neighbors.Select(n => n.Address).Order());
        Assert.All(neighbors, n => Assert.Matches("^([0-9a-f]{2}:){5}[0-9a-f]{2}$", n.MacAddress!));
        Assert.All(neighbors, n => Assert.Contains(n.State, new[] { "REACHABLE", "STALE", "DELAY", "PROBE" }));

        // Get-NetNamespace reports the pids inside (none here) and identifies a process's namespace.
        var info = (NetNamespaceInfo)s.Run("Get-NetNamespace -Name $args[0]", hub).Single().BaseObject;
        Assert.Empty(info.Pids);
        Assert.Contains(s.Run("Get-NetNamespace"), o => ((NetNamespaceInfo)o.BaseObject).Name == names[3]);
        s.Run("$args | Remove-NetNamespace", names.Cast<object>().ToArray());
        Assert.All(names, n => Assert.False(File.Exists("/run/netns/" + n)));
    }

    [Fact]
    public void InvokeNetNamespaceCommand_SeesEtcNetnsFiles_AndTheNamespacePids()
    {
        using var s = _store.OpenSession();
        var ns = _lab.NewNamespace("e");
        var etc = Path.Combine(NetNamespaces.EtcDirectory, ns);
        Directory.CreateDirectory(etc);
        try
        {
            File.WriteAllText(Path.Combine(etc, "hosts"), "10.9.9.9 only-in-" + ns + "\n");
            var r = (ContainerCommandResult)s.Run("Invoke-NetNamespaceCommand $args[0] -Command cat,/etc/hosts", ns).Single().BaseObject;
            Assert.Equal(0, r.ExitCode);
            Assert.Equal(new[] { "10.9.9.9 only-in-" + ns }, r.Output);
            // /sys shows this namespace's devices: only lo.
            var sys = (ContainerCommandResult)s.Run("Invoke-NetNamespaceCommand $args[0] -Command ls,/sys/class/net", ns).Single().BaseObject;
            Assert.Equal(new[] { "lo" }, sys.Output);
            // A process inside is listed, and its namespace identified.
            using var sleeper = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo(Runtime.Launcher.PscHelper.Path, "netns-exec")
            { RedirectStandardInput = true })!;
            var spec = new Runtime.Namespaces.NetNsExecSpec { NetNsPath = NetNamespaces.PathOf(ns) };
            spec.Command.AddRange(new[] { "sleep", "30" });
            spec.Environment.Add("PATH=/usr/bin:/bin");
            sleeper.StandardInput.BaseStream.Write(spec.SerializeFramed());
            sleeper.StandardInput.Flush();
            try
            {
                for (var i = 0; i < 200 && NetNamespaces.InodeOfPid(sleeper.Id) != NetNamespaces.Inode(NetNamespaces.PathOf(ns)); i++) Thread.Sleep(10);
                var info = (NetNamespaceInfo)s.Run("Get-NetNamespace $args[0]", ns).Single().BaseObject;
                Assert.Contains(sleeper.Id, info.Pids);
                var byPid = (NetNamespaceInfo)s.Run("Get-NetNamespace -ProcessId $args[0]", sleeper.Id).Single().BaseObject;
                Assert.Equal(ns, byPid.Name);
            }
            finally { sleeper.Kill(); sleeper.WaitForExit(); }
            Assert.Empty(s.Run("Get-NetNamespace -ProcessId $PID"));
        }
        finally { Directory.Delete(etc, recursive: true); }
    }
}
