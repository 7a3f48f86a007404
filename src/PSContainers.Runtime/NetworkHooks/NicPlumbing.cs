using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Network;
using PSContainers.Runtime.State;
using static PSContainers.Runtime.Network.NetlinkNative;

namespace PSContainers.Runtime.NetworkHooks;

/// <summary>
/// One NIC as it was made in a running container: what undoing it needs, whatever config.yaml says
/// by then (a NIC hot-plugged without -Persist is in no config, one removed live is still in it).
/// </summary>
public sealed class PlumbedNic
{
    /// <summary>The NIC's settings as given (config.yaml's network entry, or the hot-plug's).</summary>
    public NicConfig Nic { get; set; } = new();
    /// <summary>Its position in the container's network list: what generated names, MACs and leases derive from.</summary>
    public int Index { get; set; }
    /// <summary>Its name inside the container.</summary>
    public string Name { get; set; } = "";
    /// <summary>veth: the host end (in <see cref="NicConfig.LinkNamespace"/> or the host).</summary>
    public string? HostEnd { get; set; }
    /// <summary>veth: the bridge the host end joined (the default bridge resolved to its real name).</summary>
    public string? Bridge { get; set; }
    /// <summary>Made by psc-usernic for a non-root caller.</summary>
    public bool User { get; set; }
    /// <summary>The MAC it got (the template's 'x' digits filled), if one was set.</summary>
    public string? MacAddress { get; set; }
    /// <summary>The addresses it got (a lease on the default bridge included).</summary>
    public List<string> Addresses { get; set; } = new();
    public string? IPv4Gateway { get; set; }
}

/// <summary>
/// Makes and unmakes one container NIC (LXC's lxc.net.*): the one way both a start (NetworkHook)
/// and a hot-plug (Add-/Remove-ContainerNetworkInterface, a manifest's live network change) do it.
/// veth peers, macvlan/vlan/ipvlan links are created directly inside the container's namespace; a
/// phys interface is moved in (renamed) and back out, for which the namespace is pinned under the
/// container's directory while it runs (so a stop can still reach it once init is gone). Each
/// <see cref="Attach"/> undoes what it made when a later step fails. What a running container has is
/// recorded in its directory (<see cref="LedgerFile"/>), which the stop reads to undo exactly that.
/// </summary>
public sealed class NicPlumbing(ContainerStore store)
{
    /// <summary>The running container's NICs (JSON list of <see cref="PlumbedNic"/>), in its directory.</summary>
    public const string LedgerFile = "nics.json";

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true };

    public ContainerStore Store => store;

    // ---- names ------------------------------------------------------------------------------------

    /// <summary>The generated host-side veth name: stable per store, container and NIC (so a stop in another process finds it).</summary>
    public string HostEndName(string container, int index) => "vp" + Hash(container, index)[..8] + index;

    private string Hash(string container, int index) =>
        Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes($"{store.Root}\0{container}\0{index}"))).ToLowerInvariant();

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

    public string PinPath(string name) => Path.Combine(store.ContainerDirectory(name), "netns");

    private static NetworkLocation LinkLocation(NicConfig nic) =>
        nic.LinkNamespace is null ? NetworkLocation.Host : NetworkLocation.ForNamespace(nic.LinkNamespace);

    /// <summary>
    /// Why this caller cannot plug <paramref name="nic"/> into a running container; null when it can.
    /// 'none' (the host's namespace), 'empty' (loopback only) and 'pasta' (a user-mode network
    /// process started with init) are decided when the container starts.
    /// </summary>
    public static string? HotplugProblem(NicConfig nic)
    {
        if (nic.Type is "none" or "empty" or "pasta")
            return $"a '{nic.Type}' network is decided when the container starts (" +
                   (nic.Type == "pasta" ? "pasta is started with init" : nic.Type == "none" ? "it keeps the host's network namespace" : "it means no interfaces besides loopback") + ")";
        if (!Host.HostContext.Current.IsRoot && !NetworkPlan.IsUserNic(nic))
            return $"a non-root user can only add a veth on a host bridge root granted in {UsernetQuota.DefaultPath} (type veth, link BRIDGE)";
        return null;
    }

    // ---- making -----------------------------------------------------------------------------------

    /// <summary>
    /// Makes <paramref name="nic"/> as <paramref name="name"/> in the network namespace of
    /// <paramref name="initPid"/> and configures it there (MAC, MTU, addresses, up, default routes),
    /// as root; as a non-root user, a veth on a granted bridge through psc-usernic, brought up (see
    /// <see cref="AttachAsUser"/>). <paramref name="initStartTime"/> is the running init's recorded
    /// start time for a hot-plug, null at a start (while init waits; always given, so that no hot-plug
    /// forgets it and leaves a link down). A failure undoes everything this call made.
    /// </summary>
    public PlumbedNic Attach(string container, int initPid, NicConfig nic, int index, string name, ulong? initStartTime)
    {
        if (!Host.HostContext.Current.IsRoot) return AttachAsUser(container, initPid, initStartTime, nic, index, name);
        var target = NetworkLocation.ForPid(initPid, "container:" + container);
        using var inside = new NetworkClient(target);
        if (inside.LinkExists(name))
            throw new ContainerException("NicNameInUse", ContainerErrorKind.ResourceExists,
                $"Container '{container}' already has an interface named '{name}'. Give the new one another name (name: in config.yaml, -InterfaceName), or remove that one first (Remove-ContainerNetworkInterface).", name);
        var mac = nic.HwAddress is null ? null : FillMac(nic.HwAddress, container, index);
        var ipv4 = nic.IPv4.ToList();
        var gateway4 = nic.IPv4Gateway;
        var impliedGateway = false;
        var plumbed = new PlumbedNic { Nic = nic, Index = index, Name = name, MacAddress = mac };
        Action? undo = null;
        var pinned = false;
        try
        {
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
                                    $"Container '{container}': the default bridge lives on the host; remove linkNamespace from network[{index}].", container);
                            var bridge = DefaultBridge.For(store);
                            bridge.Ensure();
                            master = bridge.Settings.Name;
                            if (ipv4.Count == 0) ipv4.Add(bridge.Lease(container, index, store));
                            if (gateway4 is null) (gateway4, impliedGateway) = (bridge.GatewayAddress, true);
                        }
                        var hostName = nic.HostName ?? HostEndName(container, index);
                        if (master is not null && !outside.LinkExists(master))
                            throw new ContainerException("BridgeNotFound", ContainerErrorKind.ObjectNotFound,
                                $"Container '{container}': bridge {master} of network[{index}] does not exist in {outside.Location.Label}. Create it with New-NetworkBridge.", master);
                        outside.CreateVeth(hostName, name, target, nic.Mtu, peerMacAddress: mac);
                        // Deleting one end deletes the pair.
                        var where = outside.Location;
                        undo = () => { using var c = new NetworkClient(where); c.DeleteLinks(new[] { hostName }); };
                        plumbed.HostEnd = hostName;
                        plumbed.Bridge = master;
                        outside.SetLink(hostName, new LinkChanges { Master = master, Up = true });
                        break;
                    case "macvlan":
                        outside.CreateMacvlan(name, nic.Link!, Enum.Parse<MacvlanMode>(nic.MacvlanMode ?? "bridge", true), target);
                        undo = () => inside.DeleteLink(name);
                        break;
                    case "vlan":
                        outside.CreateVlan(name, nic.Link!, nic.VlanId!.Value, target);
                        undo = () => inside.DeleteLink(name);
                        break;
                    case "ipvlan":
                        outside.CreateIpvlan(name, nic.Link!, Enum.Parse<IpvlanMode>(nic.IpvlanMode ?? "l2", true), target);
                        undo = () => inside.DeleteLink(name);
                        break;
                    case "phys":
                        if (!File.Exists(PinPath(container))) { Pin(initPid, PinPath(container)); pinned = true; }
                        outside.SetLink(nic.Link!, new LinkChanges { Up = false, NewName = name == nic.Link ? null : name, MoveTo = target });
                        undo = () => MovePhysBack(inside, nic, name);
                        break;
                    default:
                        throw new ContainerException("NicNotHotpluggable", ContainerErrorKind.InvalidOperation,
                            $"Container '{container}': {HotplugProblem(nic) ?? $"a '{nic.Type}' interface cannot be made here"}.", container);
                }
            }
            if (nic.Type != "veth" && (mac is not null || nic.Mtu is not null))
                inside.SetLink(name, new LinkChanges { MacAddress = mac, Mtu = nic.Mtu });
            foreach (var address in ipv4.Concat(nic.IPv6)) inside.AddAddress(name, address);
            if (nic.Up) inside.SetLink(name, new LinkChanges { Up = true });
            // The default bridge's gateway is implied, not asked for: a second NIC on it (or one
            // plugged beside a NIC that already routes) leaves the container's default route as it is.
            if (impliedGateway && inside.GetRoutes().Any(r => r is { Family: "IPv4", Destination: "default" })) gateway4 = null;
            if (gateway4 is not null) inside.AddRoute("default", gateway4, name);
            if (nic.IPv6Gateway is not null) inside.AddRoute("default", nic.IPv6Gateway, name);
            if (nic.Type == "veth" && nic.Link == DefaultBridge.ConfigName) DefaultBridge.For(store).UpdateHosts(store);
            plumbed.Addresses = ipv4.Concat(nic.IPv6).ToList();
            plumbed.IPv4Gateway = gateway4;
            return plumbed;
        }
        catch
        {
            try { undo?.Invoke(); } catch (ContainerException) { /* the first error is what matters */ }
            if (pinned) Unpin(PinPath(container));
            throw;
        }
    }

    /// <summary>
    /// A non-root caller has no rights in the host's network: its veths on a bridge are made by
    /// psc-usernic within root's quota; every other kind is refused. The link comes up as root's
    /// does: at a start init brings it up itself (spec link-up); into a running container
    /// (<paramref name="initStartTime"/> given) psc-helper nic-up does, entering the container's user
    /// and network namespaces with the caller's own rights (the caller owns them), and a failure
    /// there takes the veth out again. Addresses are the container's business (its init, ip,
    /// udhcpc), as at a start, so address keys are refused, not ignored.
    /// </summary>
    private PlumbedNic AttachAsUser(string container, int initPid, ulong? initStartTime, NicConfig nic, int index, string name)
    {
        if (!NetworkPlan.IsUserNic(nic))
            throw new ContainerException("NetworkNeedsRoot", ContainerErrorKind.PermissionDenied,
                $"Container '{container}': network[{index}] is a {nic.Type} interface{(nic.Type == "veth" ? " not on a named host bridge" : "")}, which only root can create. " +
                $"As a non-root user use user-mode networking (network: [{{ type: pasta }}]) or a veth on a bridge root granted you in {UsernetQuota.DefaultPath} (network: [{{ type: veth, link: BRIDGE }}]).", container);
        if (nic.IPv4.Count > 0 || nic.IPv6.Count > 0 || nic.IPv4Gateway is not null || nic.IPv6Gateway is not null || nic.HwAddress is not null || nic.Mtu is not null || nic.HostName is not null)
            throw new ContainerException("InvalidNetworkConfig", ContainerErrorKind.InvalidArgument,
                $"Container '{container}': network[{index}] of a non-root user cannot have ipv4, ipv6, gateways, hwaddr, mtu or hostName set from outside the container; " +
                "remove them and configure the interface inside it (its init scripts, ip, udhcpc).", container);
        var host = UserHostEndName(container, index);
        UserNic.Create(initPid, nic.Link!, name, host, container);
        if (initStartTime is { } started && nic.Up)
        {
            try { BringUpInside(container, initPid, started, name); }
            catch
            {
                try { UserNic.Delete(host, container); } catch (ContainerException) { /* the first error is what matters */ }
                throw;
            }
        }
        return new PlumbedNic { Nic = nic, Index = index, Name = name, HostEnd = host, Bridge = nic.Link, User = true };
    }

    /// <summary>psc-helper nic-up: <paramref name="name"/> up inside the running init's namespaces (checked to be that init by its start time).</summary>
    private static void BringUpInside(string container, int initPid, ulong initStartTime, string name)
    {
        var spec = new NicUpSpec { TargetPid = initPid, TargetStartTime = initStartTime };
        spec.LinksUp.Add(name);
        var result = Launcher.PscHelper.Run(spec);
        if (result.ExitCode != 0)
            throw new ContainerException("NicUpFailed", ContainerErrorKind.DeviceError,
                $"Container '{container}': its new interface {name} could not be brought up inside: " +
                string.Join(" ", result.Error).Replace("psc-helper: ", "", StringComparison.Ordinal).Trim() +
                ". It was taken out again (nothing is left plugged); check that the container still runs and try again.", container);
    }

    // ---- unmaking ---------------------------------------------------------------------------------

    /// <summary>
    /// Undoes <paramref name="nics"/>: phys interfaces moved back out (renamed back) and macvlan/vlan/ipvlan
    /// links deleted through <paramref name="inside"/> (the running init's namespace, or the pin after
    /// it is gone; null when neither exists: the kernel took those links with the namespace), veth
    /// host ends deleted (one batch per namespace; that deletes the pair). Errors of one NIC do not
    /// keep the others; the first is thrown at the end.
    /// </summary>
    public void DetachAll(string container, IReadOnlyList<PlumbedNic> nics, NetworkLocation? inside)
    {
        ContainerException? first = null;
        void Try(Action a) { try { a(); } catch (ContainerException ex) { first ??= ex; } }
        foreach (var p in nics.Where(p => p.User))
            Try(() => UserNic.Delete(p.HostEnd!, container));
        var inner = nics.Where(p => !p.User && p.Nic.Type is "phys" or "macvlan" or "vlan" or "ipvlan").ToList();
        if (inside is not null && inner.Count > 0)
        {
            Try(() =>
            {
                using var client = new NetworkClient(inside);
                foreach (var p in inner.Where(p => client.LinkExists(p.Name)))
                    Try(() => { if (p.Nic.Type == "phys") MovePhysBack(client, p.Nic, p.Name); else client.DeleteLink(p.Name); });
            });
        }
        foreach (var group in nics.Where(p => !p.User && p.HostEnd is not null).GroupBy(p => p.Nic.LinkNamespace))
        {
            if (group.Key is not null && !NetNamespaces.Exists(group.Key)) continue;
            Try(() =>
            {
                using var client = new NetworkClient(group.Key is null ? NetworkLocation.Host : NetworkLocation.ForNamespace(group.Key));
                client.DeleteLinks(group.Select(p => p.HostEnd!));
            });
        }
        if (first is not null) throw first;
    }

    private static void MovePhysBack(NetworkClient inside, NicConfig nic, string name) =>
        inside.SetLink(name, new LinkChanges { Up = false, NewName = name == nic.Link ? null : nic.Link, MoveTo = LinkLocation(nic) });

    /// <summary>
    /// What a container started before the ledger existed has (its config.yaml's NICs with their
    /// generated names): the stop's fallback when there is no ledger.
    /// </summary>
    public List<PlumbedNic> FromConfig(string container, ContainerConfig config)
    {
        if (NetworkPlan.SharesHostNetwork(config)) return new();
        var root = Host.HostContext.Current.IsRoot;
        return NetworkPlan.Interfaces(config)
            .Where(x => root || NetworkPlan.IsUserNic(x.Nic))
            .Select(x => new PlumbedNic
            {
                Nic = x.Nic, Index = x.Index, Name = x.Name, User = !root,
                HostEnd = x.Nic.Type != "veth" ? null : !root ? UserHostEndName(container, x.Index) : x.Nic.HostName ?? HostEndName(container, x.Index),
            }).ToList();
    }

    /// <summary>
    /// Gives back the default-bridge leases of NICs unplugged from a running container (a hot-unplug,
    /// a manifest's live change), so their addresses are free at once rather than when the container
    /// is removed; a lease whose address one of the <paramref name="remaining"/> NICs still has is kept.
    /// The other containers' /etc/hosts stop naming a freed address.
    /// </summary>
    public void ReleaseLeases(string container, IEnumerable<PlumbedNic> unplugged, IEnumerable<PlumbedNic> remaining)
    {
        var leased = unplugged.Where(p => p.Nic.Type == "veth" && p.Nic.Link == DefaultBridge.ConfigName && p.Nic.IPv4.Count == 0).ToList();
        if (leased.Count == 0) return;
        var inUse = remaining.SelectMany(p => p.Addresses).Select(a => a.Split('/')[0]).ToHashSet();
        var bridge = DefaultBridge.For(store);
        var released = false;
        foreach (var p in leased) released |= bridge.Release(container, p.Index, inUse);
        if (released) bridge.UpdateHosts(store);
    }

    // ---- the ledger -------------------------------------------------------------------------------

    private string LedgerPath(string container) => Path.Combine(store.ContainerDirectory(container), LedgerFile);

    /// <summary>The running container's NICs as recorded; null when nothing was recorded (no run, or one from before the ledger).</summary>
    public List<PlumbedNic>? Load(string container)
    {
        var path = LedgerPath(container);
        if (!File.Exists(path)) return null;
        try { return JsonSerializer.Deserialize<List<PlumbedNic>>(BoundedFile.ReadAllText(path), JsonOptions) ?? new(); }
        catch (JsonException ex)
        {
            throw new ContainerException("NicLedgerCorrupt", ContainerErrorKind.InvalidData,
                $"The record of container '{container}''s interfaces ({path}) cannot be read: {ex.Message}. Stop the container; the stop falls back to its config.yaml.", container, ex);
        }
    }

    /// <summary>Records the running container's NICs (atomically; callers hold the container's lock or start it).</summary>
    public void Save(string container, IReadOnlyList<PlumbedNic> nics) =>
        AtomicFile.WriteAllText(LedgerPath(container), JsonSerializer.Serialize(nics, JsonOptions));

    public void Forget(string container) => File.Delete(LedgerPath(container));

    // ---- the pin ----------------------------------------------------------------------------------

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
