using System.Diagnostics;
using PSContainers.Runtime.Network;
using PSContainers.Tests.Infrastructure;
using Xunit;

namespace PSContainers.Tests;

/// <summary>
/// Get-Container reads each running container's addresses from the host's namespace (RTM_GETADDR with
/// IFA_TARGET_NETNSID) instead of entering it: what it reads must be exactly what is inside, never
/// the host's own addresses.
/// </summary>
public sealed class PeerAddressesTests
{
    [Fact]
    public void Read_FromTheHost_IsWhatTheNamespaceHas_AndNothingOfTheHosts()
    {
        using var lab = new NetLab();
        var ns = lab.NewNamespace("pa");
        using (var c = new NetworkClient(NetworkLocation.ForNamespace(ns)))
        {
            c.CreateBridge("br0");
            c.SetLink("br0", new LinkChanges { Up = true });
            c.AddAddress("br0", "192.168.231.7/24");
            c.AddAddress("br0", "fd00:231::7/64");
        }
        // A process in the namespace, as a container's init is.
        using var sleeper = Process.Start(new ProcessStartInfo("ip", $"netns exec {ns} sleep 60") { UseShellExecute = false })!;
        try
        {
            var deadline = DateTime.UtcNow.AddSeconds(10);
            int pid;
            while ((pid = ChildSleep(sleeper.Id)) == 0 && DateTime.UtcNow < deadline) Thread.Sleep(50);
            Assert.NotEqual(0, pid);

            using var peers = PeerAddresses.TryOpen();
            Assert.NotNull(peers);
            var read = peers!.Read(pid);
            Assert.NotNull(read);
            Assert.Equal(new[] { "192.168.231.7" }, read!.Value.IPv4);
            Assert.Contains("fd00:231::7", read.Value.IPv6);

            // The same as entering the namespace; no host address among them.
            using var inside = new NetworkClient(NetworkLocation.ForPid(pid));
            var expected = inside.GetAddresses().Where(a => a.Scope == "global").Select(a => a.Address).OrderBy(a => a).ToArray();
            Assert.Equal(expected, read.Value.IPv4.Concat(read.Value.IPv6).OrderBy(a => a).ToArray());
            using var host = NetworkClient.Host();
            var hostAddresses = host.GetAddresses().Where(a => a.Scope == "global").Select(a => a.Address).ToHashSet();
            Assert.DoesNotContain(read.Value.IPv4.Concat(read.Value.IPv6), hostAddresses.Contains);

            // A second read uses the id the namespace got.
            Assert.Equal(read.Value.IPv4, peers.Read(pid)!.Value.IPv4);
        }
        finally
        {
            try { sleeper.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            sleeper.WaitForExit();
        }
    }

    /// <summary>ip netns exec execs sleep in place (same pid) once it has entered the namespace.</summary>
    private static int ChildSleep(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/comm").Trim() == "sleep" ? pid : 0; }
        catch (IOException) { return 0; }
    }
}
