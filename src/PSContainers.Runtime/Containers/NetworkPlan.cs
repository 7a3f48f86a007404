using PSContainers.Runtime.Config;
using PSContainers.Runtime.Network;

namespace PSContainers.Runtime.Containers;

/// <summary>
/// What a container's network config means for its launch and its description: whether it keeps
/// the host's network namespace, which interfaces it has under which names, which of them a non-root
/// user's init brings up, and the addresses it has. The hooks in NetworkHooks/ do the set-up.
/// </summary>
public static class NetworkPlan
{
    [ThreadStatic] private static PeerAddresses? _peers;
    [ThreadStatic] private static bool _peersTried;

    /// <summary>The config name of the store's default bridge (network: [{ type: veth, link: default }]).</summary>
    public const string DefaultBridgeLink = "default";

    /// <summary>A 'none' interface: the container keeps the host's network namespace.</summary>
    public static bool SharesHostNetwork(ContainerConfig config) => config.Network.Any(n => n.Type == "none");

    /// <summary>The interfaces the hooks create, with their config index and in-container name (ethN in order).</summary>
    public static IEnumerable<(NicConfig Nic, int Index, string Name)> Interfaces(ContainerConfig config)
    {
        var eth = 0;
        for (var i = 0; i < config.Network.Count; i++)
        {
            var nic = config.Network[i];
            if (nic.Type is "none" or "empty") continue;
            // pasta's interface is PastaHook's: it only takes its ethN place here.
            if (nic.Type == "pasta") { eth++; continue; }
            yield return (nic, i, nic.Name ?? $"eth{eth}");
            eth++;
        }
    }

    /// <summary>Is this a NIC a non-root user can have: a veth on a host bridge (psc-usernic, within root's quota)?</summary>
    public static bool IsUserNic(NicConfig nic) =>
        nic.Type == "veth" && nic.Link is not null && nic.Link != DefaultBridgeLink && nic.LinkNamespace is null;

    /// <summary>The in-container names of a non-root user's veths that init brings up itself (psc-usernic leaves them down).</summary>
    public static IEnumerable<string> UserNicNames(ContainerConfig config) =>
        SharesHostNetwork(config) ? [] : Interfaces(config).Where(x => IsUserNic(x.Nic) && x.Nic.Up).Select(x => x.Name);

    /// <summary>The addresses of a running container (its ContainerInfo.IPv4/IPv6), loopback and link-local left out.</summary>
    public static (string[] IPv4, string[] IPv6) Addresses(int pid)
    {
        // Read from here where the kernel and the caller's rights allow: a listing of many
        // containers then enters none of their namespaces (one reader per thread, kept open).
        if (!_peersTried) { _peersTried = true; _peers = PeerAddresses.TryOpen(); }
        if (_peers?.Read(pid) is { } read) return read;
        try
        {
            using var client = new NetworkClient(NetworkLocation.ForPid(pid));
            var all = client.GetAddresses().Where(a => a.Scope == "global").ToList();
            return (all.Where(a => a.Family == "IPv4").Select(a => a.Address).ToArray(), all.Where(a => a.Family == "IPv6").Select(a => a.Address).ToArray());
        }
        catch (ContainerException) { return (Array.Empty<string>(), Array.Empty<string>()); }
    }
}
