using System.Security.Cryptography;
using System.Text;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.IdMapping;
using PSContainers.Runtime.Network;
using static PSContainers.Runtime.Network.NetlinkNative;

using PSContainers.Runtime.State;

namespace PSContainers.Runtime.NetworkHooks;

/// <summary>
/// Container NICs (LXC's lxc.net.*): made while the new init waits in its fresh network namespace,
/// before it runs; undone after it stopped. veth peers, macvlan/vlan/ipvlan links are created
/// directly inside the container's namespace; a phys interface is moved in (renamed) and back out on
/// stop, for which the namespace is pinned under the container's directory while it runs.
/// </summary>
public sealed class NetworkHook : IContainerHook
{
    private readonly ContainerStore _store;
    private readonly HashSet<string> _abandoned = new();

    public NetworkHook(ContainerStore store) => _store = store;

    /// <summary>The generated host-side veth name: stable per store, container and NIC (so a stop in another process finds it).</summary>
    public string HostEndName(string container, int index) => "vp" + Hash(container, index)[..8] + index;

    /// <summary>The host end of a veth NIC (LXC_NET_PEER of its net hooks), or null for the other kinds.</summary>
    public string? PeerName(string container, int index, NicConfig nic) =>
        nic.Type != "veth" ? null
        : !Host.HostContext.Current.IsRoot ? UserHostEndName(container, index)
        : nic.HostName ?? HostEndName(container, index);

    private string Hash(string container, int index) =>
        Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes($"{_store.Root}\0{container}\0{index}"))).ToLowerInvariant();

    /// <summary>Fills the 'x' digits of a MAC template from a hash of the container and NIC (stable across restarts).</summary>
    public string FillMac(string template, string container, int index)
    {
        var hash = Hash(container, index);
        var k = 0;
        return new string(template.Select(c => c == 'x' ? hash[k++] : c).ToArray());
    }

    /// <summary>
    /// A non-root user's host end: "vu", the user's uid as 8 hex digits, then 5 hex digits from the
    /// container and NIC (psc-usernic accepts no other host names, so no user can take one another's start needs).
    /// </summary>
    public string UserHostEndName(string container, int index)
    {
        var ix = index.ToString("x", System.Globalization.CultureInfo.InvariantCulture);
        return UserNic.HostPrefix + (Host.HostContext.Current.Uid).ToString("x8", System.Globalization.CultureInfo.InvariantCulture) + Hash(container, index)[..Math.Max(0, 5 - ix.Length)] + ix;
    }

    /// <summary>
    /// A non-root caller has no rights in the host's network: its veths on a bridge are made by
    /// psc-usernic within root's quota; every other kind is refused. Nothing is configured inside
    /// from here (the caller cannot enter the namespace): init brings the links up, addresses are
    /// the container's business (its init, ip, udhcpc), so address keys are refused, not ignored.
    /// </summary>
    private void StartingAsUser(ContainerStartContext context)
    {
        var made = new List<string>();
        try
        {
            foreach (var (nic, index, name) in NetworkPlan.Interfaces(context.Config))
            {
                if (!NetworkPlan.IsUserNic(nic))
                    throw new ContainerException("NetworkNeedsRoot", ContainerErrorKind.PermissionDenied,
                        $"Container '{context.Name}': network[{index}] is a {nic.Type} interface{(nic.Type == "veth" ? " not on a named host bridge" : "")}, which only root can create. " +
                        $"As a non-root user use user-mode networking (network: [{{ type: pasta }}]) or a veth on a bridge root granted you in {UsernetQuota.DefaultPath} (network: [{{ type: veth, link: BRIDGE }}]).", context.Name);
                if (nic.IPv4.Count > 0 || nic.IPv6.Count > 0 || nic.IPv4Gateway is not null || nic.IPv6Gateway is not null || nic.HwAddress is not null || nic.Mtu is not null || nic.HostName is not null)
                    throw new ContainerException("InvalidNetworkConfig", ContainerErrorKind.InvalidArgument,
                        $"Container '{context.Name}': network[{index}] of a non-root user cannot have ipv4, ipv6, gateways, hwaddr, mtu or hostName set from outside the container; " +
                        "remove them and configure the interface inside it (its init scripts, ip, udhcpc).", context.Name);
                var host = UserHostEndName(context.Name, index);
                UserNic.Create(context.InitPid, nic.Link!, name, host, context.Name);
                made.Add(host);
            }
        }
        catch
        {
            lock (_abandoned) _abandoned.Add(context.Name);
            foreach (var host in made)
                try { UserNic.Delete(host, context.Name); } catch (ContainerException) { }
            throw;
        }
    }

    private string PinPath(string name) => Path.Combine(_store.ContainerDirectory(name), "netns");

    private static NetworkLocation LinkLocation(NicConfig nic) =>
        nic.LinkNamespace is null ? NetworkLocation.Host : NetworkLocation.ForNamespace(nic.LinkNamespace);

    public void Starting(ContainerStartContext context)
    {
        var config = context.Config;
        if (NetworkPlan.SharesHostNetwork(config)) return;
        if (!Host.HostContext.Current.IsRoot)
        {
            StartingAsUser(context);
            return;
        }
        var target = NetworkLocation.ForPid(context.InitPid, "container:" + context.Name);
        var hostEnds = new List<(NetworkLocation Where, string Link)>();
        var movedIn = new List<(NicConfig Nic, string Name)>();
        using var inside = new NetworkClient(target);
        try
        {
            inside.SetLink("lo", new LinkChanges { Up = true });
            if (config.Network.Any(n => n.Type == "phys")) Pin(context.InitPid, PinPath(context.Name));
            DefaultBridge? bridge = null;
            foreach (var (nic, index, name) in NetworkPlan.Interfaces(config))
            {
                var mac = nic.HwAddress is null ? null : FillMac(nic.HwAddress, context.Name, index);
                var ipv4 = nic.IPv4.ToList();
                var gateway4 = nic.IPv4Gateway;
                using (var outside = new NetworkClient(LinkLocation(nic)))
                {
                    switch (nic.Type)
                    {
                        case "veth":
                            var master = nic.Link;
                            if (master == DefaultBridge.ConfigName)
                            {
                                if (nic.LinkNamespace is not null)
                                    throw new ContainerException("InvalidNetworkConfig", ContainerErrorKind.InvalidArgument,
                                        $"Container '{context.Name}': the default bridge lives on the host; remove linkNamespace from network[{index}].", context.Name);
                                bridge ??= DefaultBridge.For(_store);
                                bridge.Ensure();
                                master = bridge.Settings.Name;
                                if (ipv4.Count == 0) ipv4.Add(bridge.Lease(context.Name, index, _store));
                                gateway4 ??= bridge.GatewayAddress;
                            }
                            var hostName = nic.HostName ?? HostEndName(context.Name, index);
                            if (master is not null && !outside.LinkExists(master))
                                throw new ContainerException("BridgeNotFound", ContainerErrorKind.ObjectNotFound,
                                    $"Container '{context.Name}': bridge {master} of network[{index}] does not exist in {outside.Location.Label}. Create it with New-NetworkBridge.", master);
                            outside.CreateVeth(hostName, name, target, nic.Mtu, peerMacAddress: mac);
                            hostEnds.Add((outside.Location, hostName));
                            outside.SetLink(hostName, new LinkChanges { Master = master, Up = true });
                            break;
                        case "macvlan":
                            outside.CreateMacvlan(name, nic.Link!, Enum.Parse<MacvlanMode>(nic.MacvlanMode ?? "bridge", true), target);
                            break;
                        case "vlan":
                            outside.CreateVlan(name, nic.Link!, nic.VlanId!.Value, target);
                            break;
                        case "ipvlan":
                            outside.CreateIpvlan(name, nic.Link!, Enum.Parse<IpvlanMode>(nic.IpvlanMode ?? "l2", true), target);
                            break;
                        case "phys":
                            outside.SetLink(nic.Link!, new LinkChanges { Up = false, NewName = name == nic.Link ? null : name, MoveTo = target });
                            movedIn.Add((nic, name));
                            break;
                    }
                }
                if (nic.Type != "veth" && (mac is not null || nic.Mtu is not null))
                    inside.SetLink(name, new LinkChanges { MacAddress = mac, Mtu = nic.Mtu });
                foreach (var address in ipv4.Concat(nic.IPv6)) inside.AddAddress(name, address);
                if (nic.Up) inside.SetLink(name, new LinkChanges { Up = true });
                if (gateway4 is not null) inside.AddRoute("default", gateway4, name);
                if (nic.IPv6Gateway is not null) inside.AddRoute("default", nic.IPv6Gateway, name);
            }
            bridge?.UpdateHosts(_store);
        }
        catch
        {
            // Undo exactly what this call made; the Stopped that follows must not touch links that
            // were not ours (a host-side name that already existed, for example).
            lock (_abandoned) _abandoned.Add(context.Name);
            foreach (var (nic, name) in movedIn)
                try { inside.SetLink(name, new LinkChanges { Up = false, NewName = name == nic.Link ? null : nic.Link, MoveTo = LinkLocation(nic) }); } catch (ContainerException) { }
            foreach (var group in hostEnds.GroupBy(h => h.Where))
                try { using var c = new NetworkClient(group.Key); c.DeleteLinks(group.Select(g => g.Link)); } catch (ContainerException) { }
            Unpin(PinPath(context.Name));
            throw;
        }
    }

    public void Stopped(string name, ContainerConfig config)
    {
        lock (_abandoned) if (_abandoned.Remove(name)) return;
        if (NetworkPlan.SharesHostNetwork(config)) return;
        if (!Host.HostContext.Current.IsRoot)
        {
            // The kernel deletes the pair with the container's namespace, but only once its cleanup
            // ran (asynchronously): deleting the host end now frees the quota when the stop returns.
            foreach (var (nic, index, _) in NetworkPlan.Interfaces(config).Where(x => NetworkPlan.IsUserNic(x.Nic)))
                try { UserNic.Delete(UserHostEndName(name, index), name); } catch (ContainerException) { }
            return;
        }
        var pin = PinPath(name);
        if (File.Exists(pin))
        {
            try
            {
                using var inside = new NetworkClient(NetworkLocation.ForPath(pin, "container:" + name));
                foreach (var (nic, _, inner) in NetworkPlan.Interfaces(config).Where(x => x.Nic.Type == "phys"))
                    if (inside.LinkExists(inner))
                        inside.SetLink(inner, new LinkChanges { Up = false, NewName = inner == nic.Link ? null : nic.Link, MoveTo = LinkLocation(nic) });
            }
            finally { Unpin(pin); }
        }
        // Host ends of veth pairs: one batch per namespace (all requests sent before any ack is read).
        foreach (var group in NetworkPlan.Interfaces(config).Where(x => x.Nic.Type == "veth").GroupBy(x => x.Nic.LinkNamespace))
        {
            if (group.Key is not null && !NetNamespaces.Exists(group.Key)) continue;
            using var client = new NetworkClient(group.Key is null ? NetworkLocation.Host : NetworkLocation.ForNamespace(group.Key));
            client.DeleteLinks(group.Select(x => x.Nic.HostName ?? HostEndName(name, x.Index)));
        }
    }

    /// <summary>
    /// A removed container's addresses on the default bridge are free at once (else held until the
    /// next allocation reclaims them).
    /// </summary>
    public void Removed(string name) => DefaultBridge.For(_store).Release(name);

    /// <summary>Keeps a container's network namespace alive after its init is gone (a bind mount of its nsfs file).</summary>
    internal static void Pin(int pid, string path)
    {
        Unpin(path);
        File.WriteAllBytes(path, Array.Empty<byte>());
        if (mount($"/proc/{pid}/ns/net", path, "none", MS_BIND, null) < 0)
        {
            var e = Errno;
            File.Delete(path);
            throw new ContainerException("NetNamespaceFailed", ContainerErrorKind.DeviceError, $"Cannot pin the container's network namespace on {path}: {Message(e)}.", path);
        }
    }

    internal static void Unpin(string path)
    {
        if (!File.Exists(path)) return;
        umount2(path, MNT_DETACH);
        File.Delete(path);
    }
}
