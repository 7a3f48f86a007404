using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace PSContainers.Runtime.Network;

/// <summary>
/// Links, addresses and routes of one network namespace, over one rtnetlink socket opened in it
/// (ip link / ip addr / ip route without a process per operation). Every kernel error becomes a
/// ContainerException that names the link and says what to do.
/// </summary>
public sealed class NetworkClient : IDisposable
{
    public NetworkLocation Location { get; }
    public NetlinkSocket Socket { get; }

    public NetworkClient(NetworkLocation location)
    {
        Location = location;
        Socket = NetlinkSocket.OpenIn(location.Path);
    }

    public static NetworkClient Host() => new(NetworkLocation.Host);

    public void Dispose() => Socket.Dispose();

    private string Where => Location.Path is null ? "on the host" : $"in {Location.Label}";

    // ---- validation -----------------------------------------------------------------------------

    public const int MaxNameBytes = 15;

    public static void ValidateLinkName(string name, string what = "interface")
    {
        if (string.IsNullOrEmpty(name) || Encoding.UTF8.GetByteCount(name) > MaxNameBytes || name is "." or ".." ||
            name.Any(c => c == '/' || c == ':' || char.IsWhiteSpace(c) || c == '\0'))
            throw new ContainerException("InvalidLinkName", ContainerErrorKind.InvalidArgument,
                $"'{name}' is not a valid {what} name: the kernel allows 1-{MaxNameBytes} bytes without '/', ':' or spaces" +
                (Encoding.UTF8.GetByteCount(name ?? "") > MaxNameBytes ? $" ('{name}' has {Encoding.UTF8.GetByteCount(name!)} bytes)." : "."), name);
    }

    public static byte[] ParseMac(string mac)
    {
        var parts = mac.Split(':', '-');
        if (parts.Length != 6 || parts.Any(p => p.Length != 2 || !byte.TryParse(p, System.Globalization.NumberStyles.HexNumber, null, out _)))
            throw new ContainerException("InvalidMacAddress", ContainerErrorKind.InvalidArgument,
                $"'{mac}' is not a MAC address: write six hex bytes like 00:16:3e:12:34:56.", mac);
        var bytes = parts.Select(p => byte.Parse(p, System.Globalization.NumberStyles.HexNumber)).ToArray();
        if ((bytes[0] & 1) != 0)
            throw new ContainerException("InvalidMacAddress", ContainerErrorKind.InvalidArgument,
                $"'{mac}' is a multicast address (lowest bit of the first byte set); an interface needs a unicast MAC like 00:16:3e:12:34:56.", mac);
        return bytes;
    }

    /// <summary>Parses "address/prefix"; the prefix is required (as ip addr add warns about).</summary>
    public static (IPAddress Address, int Prefix) ParseCidr(string cidr, bool requirePrefix = true)
    {
        var slash = cidr.IndexOf('/');
        if (slash < 0 && requirePrefix)
            throw new ContainerException("AddressWithoutPrefix", ContainerErrorKind.InvalidArgument,
                $"'{cidr}' has no prefix length: write it as address/prefix, e.g. {cidr}/24 (IPv4) or {cidr}/64 (IPv6).", cidr);
        var text = slash < 0 ? cidr : cidr[..slash];
        if (!IPAddress.TryParse(text, out var address) || text.Count(c => c == '.') is not (0 or 3))
            throw new ContainerException("InvalidAddress", ContainerErrorKind.InvalidArgument, $"'{cidr}' is not an IPv4 or IPv6 address.", cidr);
        var max = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        var prefix = max;
        if (slash >= 0 && (!int.TryParse(cidr[(slash + 1)..], out prefix) || prefix < 0 || prefix > max))
            throw new ContainerException("InvalidAddress", ContainerErrorKind.InvalidArgument, $"'{cidr}' has an invalid prefix length: use 0-{max}.", cidr);
        return (address, prefix);
    }

    private static byte Family(IPAddress a) => a.AddressFamily == AddressFamily.InterNetwork ? Rtnl.AF_INET : Rtnl.AF_INET6;

    // ---- errors ---------------------------------------------------------------------------------

    private ContainerException Map(NetlinkError e, string action, string name, string? kind = null)
    {
        var kernel = e.KernelMessage is null ? "" : $" (kernel: {e.KernelMessage})";
        return e.Errno switch
        {
            17 => new ContainerException("LinkExists", ContainerErrorKind.ResourceExists,
                $"Cannot {action}: link {name} already exists {Where}. Choose another name, or remove it with Remove-NetworkLink.", name, e),
            19 => new ContainerException("LinkNotFound", ContainerErrorKind.ObjectNotFound,
                $"Cannot {action}: no link named {name} exists {Where}{kernel}. Get-NetworkLink lists the links.", name, e),
            95 when kind is not null => new ContainerException("LinkKindNotSupported", ContainerErrorKind.NotInstalled,
                $"Cannot {action}: the kernel has no {KernelFeature(kind)} support{kernel}. Load or build the module ({KernelConfig(kind)}).", name, e),
            1 => new ContainerException("NetworkPermissionDenied", ContainerErrorKind.PermissionDenied,
                $"Cannot {action}: operation not permitted (run as root; CAP_NET_ADMIN is needed){kernel}.", name, e),
            _ => new ContainerException("NetlinkError", ContainerErrorKind.InvalidOperation,
                $"Cannot {action} {Where}: {NetlinkNative.Message(e.Errno)}{kernel}.", name, e),
        };
    }

    private static string KernelFeature(string kind) => kind switch { "vlan" => "8021q", _ => kind };
    private static string KernelConfig(string kind) => kind switch
    {
        "vlan" => "CONFIG_VLAN_8021Q, module 8021q",
        "ipvlan" => "CONFIG_IPVLAN, module ipvlan",
        "macvlan" => "CONFIG_MACVLAN, module macvlan",
        "veth" => "CONFIG_VETH, module veth",
        "bridge" => "CONFIG_BRIDGE, module bridge",
        "dummy" => "CONFIG_DUMMY, module dummy",
        _ => $"the kernel module for '{kind}'",
    };

    private void Do(NetlinkMessage m, string action, string name, string? kind = null)
    {
        try { Socket.Request(m); }
        catch (NetlinkError e) { throw Map(e, action, name, kind); }
    }

    // ---- links ----------------------------------------------------------------------------------

    public List<NetworkLink> GetLinks(string? name = null)
    {
        if (name is not null) return new List<NetworkLink> { GetLink(name) };
        var raw = Socket.Dump(new NetlinkMessage(Rtnl.RTM_GETLINK, Rtnl.F_REQUEST | Rtnl.F_DUMP).IfInfo())
            .Where(r => r.Type == Rtnl.RTM_NEWLINK).Select(RawLink.From).ToList();
        var names = raw.ToDictionary(l => l.Index, l => l.Attrs.Str(Rtnl.IFLA_IFNAME) ?? "");
        var addresses = GetAddresses().GroupBy(a => a.Index).ToDictionary(g => g.Key, g => g.Select(a => a.Cidr).ToArray());
        return raw.Select(l => ToLink(l, i => names.GetValueOrDefault(i), addresses.GetValueOrDefault(l.Index))).ToList();
    }

    private sealed record RawLink(int Index, uint Flags, NetlinkAttributes Attrs)
    {
        public static RawLink From(NetlinkReply r) =>
            new(BinaryPrimitives.ReadInt32LittleEndian(r.Payload.Span[4..]), BinaryPrimitives.ReadUInt32LittleEndian(r.Payload.Span[8..]), r.Attributes(16));
    }

    private NetworkLink ToLink(RawLink l, Func<int, string?> nameOf, string[]? addresses)
    {
        var attrs = l.Attrs;
        var info = attrs.Nested(Rtnl.IFLA_LINKINFO);
        var mac = attrs.Get(Rtnl.IFLA_ADDRESS) is { Length: 6 } m ? string.Join(":", m.ToArray().Select(b => b.ToString("x2"))) : null;
        string? parent = null;
        if (attrs.U32(Rtnl.IFLA_LINK) is { } li && li != 0 && li != l.Index)
            parent = !attrs.Has(Rtnl.IFLA_LINK_NETNSID) && nameOf((int)li) is { } pn ? pn : $"if{li}";
        return new NetworkLink
        {
            Index = l.Index,
            Name = attrs.Str(Rtnl.IFLA_IFNAME) ?? "",
            Kind = info?.Str(Rtnl.IFLA_INFO_KIND),
            State = OperState(attrs.U8(Rtnl.IFLA_OPERSTATE) ?? 0),
            IsUp = (l.Flags & Rtnl.IFF_UP) != 0,
            Flags = FlagNames(l.Flags),
            MacAddress = mac,
            Mtu = (int)(attrs.U32(Rtnl.IFLA_MTU) ?? 0),
            Master = attrs.U32(Rtnl.IFLA_MASTER) is { } mi ? nameOf((int)mi) : null,
            Parent = parent,
            Namespace = Location.Label,
            Addresses = addresses ?? Array.Empty<string>(),
            Alias = attrs.Str(Rtnl.IFLA_IFALIAS) is { Length: > 0 } alias ? alias : null,
        };
    }

    /// <summary>One link by name: a single RTM_GETLINK (no dump), plus the lookups its master and parent need.</summary>
    /// <param name="withAddresses">false skips the address dump (a link just created has none).</param>
    public NetworkLink GetLink(string name, bool withAddresses = true)
    {
        var raw = QueryLink(Rtnl.IFLA_IFNAME, name) ?? throw new ContainerException("LinkNotFound", ContainerErrorKind.ObjectNotFound,
            $"No link named {name} exists {Where}. Get-NetworkLink lists the links.", name);
        string? NameOf(int index) => index == raw.Index ? name : QueryLink(0, null, index)?.Attrs.Str(Rtnl.IFLA_IFNAME);
        var addresses = withAddresses ? GetAddresses(raw.Index, name).Select(a => a.Cidr).ToArray() : Array.Empty<string>();
        return ToLink(raw, NameOf, addresses);
    }

    private RawLink? QueryLink(ushort attr, string? name, int index = 0)
    {
        var m = new NetlinkMessage(Rtnl.RTM_GETLINK, Rtnl.F_REQUEST).IfInfo(index);
        if (name is not null) { ValidateLinkName(name); m.Str(attr, name); }
        try { return Socket.Dump(m).Where(r => r.Type == Rtnl.RTM_NEWLINK).Select(RawLink.From).FirstOrDefault(); }
        catch (NetlinkError e) when (e.Errno == 19) { return null; }
    }

    public bool LinkExists(string name) => GetLinkIndex(name, throwIfMissing: false) > 0;

    /// <summary>The index of a link by name (RTM_GETLINK with IFLA_IFNAME).</summary>
    public int GetLinkIndex(string name, bool throwIfMissing = true)
    {
        ValidateLinkName(name);
        try
        {
            var r = Socket.Dump(new NetlinkMessage(Rtnl.RTM_GETLINK, Rtnl.F_REQUEST).IfInfo().Str(Rtnl.IFLA_IFNAME, name));
            return BinaryPrimitives.ReadInt32LittleEndian(r[0].Payload.Span[4..]);
        }
        catch (NetlinkError e) when (e.Errno == 19)
        {
            if (!throwIfMissing) return 0;
            throw new ContainerException("LinkNotFound", ContainerErrorKind.ObjectNotFound,
                $"No link named {name} exists {Where}. Get-NetworkLink lists the links.", name, e);
        }
    }

    private static string OperState(byte s) => s switch
    {
        1 => "NOTPRESENT", 2 => "DOWN", 3 => "LOWERLAYERDOWN", 4 => "TESTING", 5 => "DORMANT", 6 => "UP", _ => "UNKNOWN",
    };

    private static string[] FlagNames(uint f)
    {
        var list = new List<string>();
        void Add(uint bit, string n) { if ((f & bit) != 0) list.Add(n); }
        Add(8, "LOOPBACK"); Add(2, "BROADCAST"); Add(0x10, "POINTOPOINT"); Add(0x1000, "MULTICAST"); Add(0x100, "PROMISC");
        Add(0x800, "SLAVE"); Add(0x400, "MASTER"); Add(1, "UP"); Add(0x10000, "LOWER_UP");
        return list.ToArray();
    }

    /// <summary>The RTM_NEWLINK request that creates a veth pair (built separately so tests can check its bytes).</summary>
    public static NetlinkMessage VethRequest(string name, string peerName, int? peerNsFd, int? mtu, byte[]? mac, byte[]? peerMac = null)
    {
        var m = new NetlinkMessage(Rtnl.RTM_NEWLINK, Rtnl.F_REQUEST | Rtnl.F_ACK | Rtnl.F_EXCL | Rtnl.F_CREATE).IfInfo()
            .Str(Rtnl.IFLA_IFNAME, name);
        if (mtu is { } t) m.U32(Rtnl.IFLA_MTU, (uint)t);
        if (mac is not null) m.Attr(Rtnl.IFLA_ADDRESS, mac);
        m.Begin(Rtnl.IFLA_LINKINFO).StrNoNul(Rtnl.IFLA_INFO_KIND, "veth").Begin(Rtnl.IFLA_INFO_DATA).Begin(Rtnl.VETH_INFO_PEER)
            .IfInfo().Str(Rtnl.IFLA_IFNAME, peerName);
        if (mtu is { } pt) m.U32(Rtnl.IFLA_MTU, (uint)pt);
        if (peerMac is not null) m.Attr(Rtnl.IFLA_ADDRESS, peerMac);
        if (peerNsFd is { } fd) m.U32(Rtnl.IFLA_NET_NS_FD, (uint)fd);
        return m.End().End().End();
    }

    /// <summary>
    /// ip link add NAME type veth peer name PEER [netns ...]: both ends in one request, the peer created
    /// directly in its namespace (moving it afterwards costs the kernel a namespace switch).
    /// </summary>
    public void CreateVeth(string name, string peerName, NetworkLocation? peerLocation = null, int? mtu = null, string? macAddress = null, string? peerMacAddress = null)
    {
        ValidateLinkName(name);
        ValidateLinkName(peerName, "peer interface");
        if (peerLocation is null && name == peerName)
            throw new ContainerException("LinkExists", ContainerErrorKind.InvalidArgument, $"A veth pair needs two different names in one namespace ('{name}' twice).", name);
        ValidateMtu(mtu);
        var mac = macAddress is null ? null : ParseMac(macAddress);
        var peerMac = peerMacAddress is null ? null : ParseMac(peerMacAddress);
        using var ns = NamespaceFd(peerLocation);
        var action = $"create veth pair {name}/{peerName}";
        try { Socket.Request(VethRequest(name, peerName, ns?.Fd, mtu, mac, peerMac)); }
        catch (NetlinkError e) when (e.Errno == 17)
        {
            // Which end exists? The peer's namespace says when ours does not.
            var clash = LinkExists(name) ? name : peerName;
            var where = clash == name ? Where : peerLocation is null ? Where : $"in {peerLocation.Label}";
            throw new ContainerException("LinkExists", ContainerErrorKind.ResourceExists,
                $"Cannot {action}: link {clash} already exists {where}. Choose another name, or remove it with Remove-NetworkLink.", clash, e);
        }
        catch (NetlinkError e) { throw Map(e, action, name, "veth"); }
    }

    private static void ValidateMtu(int? mtu)
    {
        if (mtu is { } m && (m < 68 || m > 65535))
            throw new ContainerException("InvalidMtu", ContainerErrorKind.InvalidArgument, $"MTU {m} is out of range: use 68-65535 (1500 is Ethernet's).", m);
    }

    public void CreateBridge(string name, int? mtu = null)
    {
        ValidateLinkName(name, "bridge");
        ValidateMtu(mtu);
        var m = new NetlinkMessage(Rtnl.RTM_NEWLINK, Rtnl.F_REQUEST | Rtnl.F_ACK | Rtnl.F_EXCL | Rtnl.F_CREATE).IfInfo().Str(Rtnl.IFLA_IFNAME, name);
        if (mtu is { } t) m.U32(Rtnl.IFLA_MTU, (uint)t);
        m.Begin(Rtnl.IFLA_LINKINFO).StrNoNul(Rtnl.IFLA_INFO_KIND, "bridge").End();
        Do(m, $"create bridge {name}", name, "bridge");
    }

    /// <summary>The request iproute2 sends for "ip link add link PARENT name NAME type KIND ..." (same attribute order).</summary>
    /// <summary>With <paramref name="nsFd"/>, the new link is created directly in that namespace (ip link add ... netns NS).</summary>
    public static NetlinkMessage LowerLinkRequest(int parentIndex, string name, string kind, Action<NetlinkMessage> data, int? nsFd = null)
    {
        var m = new NetlinkMessage(Rtnl.RTM_NEWLINK, Rtnl.F_REQUEST | Rtnl.F_ACK | Rtnl.F_EXCL | Rtnl.F_CREATE).IfInfo()
            .U32(Rtnl.IFLA_LINK, (uint)parentIndex).Str(Rtnl.IFLA_IFNAME, name)
            .Begin(Rtnl.IFLA_LINKINFO).StrNoNul(Rtnl.IFLA_INFO_KIND, kind).Begin(Rtnl.IFLA_INFO_DATA);
        data(m);
        m.End().End();
        if (nsFd is { } fd) m.U32(Rtnl.IFLA_NET_NS_FD, (uint)fd);
        return m;
    }

    public static NetlinkMessage VlanRequest(int parentIndex, string name, int id, int? nsFd = null) =>
        LowerLinkRequest(parentIndex, name, "vlan", m => m.U16(Rtnl.IFLA_VLAN_ID, (ushort)id), nsFd);

    public static NetlinkMessage IpvlanRequest(int parentIndex, string name, IpvlanMode mode, int? nsFd = null) =>
        LowerLinkRequest(parentIndex, name, "ipvlan", m => m.U16(Rtnl.IFLA_IPVLAN_MODE, (ushort)mode).U16(Rtnl.IFLA_IPVLAN_FLAGS, 0), nsFd);

    public static NetlinkMessage MacvlanRequest(int parentIndex, string name, MacvlanMode mode, int? nsFd = null) =>
        LowerLinkRequest(parentIndex, name, "macvlan", m => m.U32(Rtnl.IFLA_MACVLAN_MODE, (uint)mode), nsFd);

    private void CreateLower(string name, string parent, string kind, NetworkLocation? into, Func<int, int?, NetlinkMessage> request)
    {
        ValidateLinkName(name);
        var parentIndex = ParentIndex(parent, name, kind);
        using var ns = NamespaceFd(into);
        try { Socket.Request(request(parentIndex, ns?.Fd)); }
        catch (NetlinkError e) when (e.Errno == 17 && into is not null)
        {
            throw new ContainerException("LinkExists", ContainerErrorKind.ResourceExists,
                $"Cannot create {kind} link {name} on {parent}: link {name} already exists in {into.Label}.", name, e);
        }
        catch (NetlinkError e) { throw Map(e, $"create {kind} link {name} on {parent}", name, kind); }
    }

    private int ParentIndex(string parent, string name, string kind)
    {
        ValidateLinkName(parent, "parent interface");
        var index = GetLinkIndex(parent, throwIfMissing: false);
        if (index == 0)
            throw new ContainerException("ParentLinkNotFound", ContainerErrorKind.ObjectNotFound,
                $"Cannot create {kind} link {name}: its parent link {parent} does not exist {Where}. Get-NetworkLink lists the links.", parent);
        return index;
    }

    /// <summary>ip link add link PARENT name NAME [netns ...] type macvlan mode MODE (<paramref name="into"/>: created directly there).</summary>
    public void CreateMacvlan(string name, string parent, MacvlanMode mode = MacvlanMode.Bridge, NetworkLocation? into = null) =>
        CreateLower(name, parent, "macvlan", into, (i, fd) => MacvlanRequest(i, name, mode, fd));

    public void CreateVlan(string name, string parent, int id, NetworkLocation? into = null)
    {
        if (id < 0 || id > 4094)
            throw new ContainerException("InvalidVlanId", ContainerErrorKind.InvalidArgument, $"VLAN id {id} is out of range: use 0-4094.", id);
        CreateLower(name, parent, "vlan", into, (i, fd) => VlanRequest(i, name, id, fd));
    }

    public void CreateIpvlan(string name, string parent, IpvlanMode mode = IpvlanMode.L2, NetworkLocation? into = null) =>
        CreateLower(name, parent, "ipvlan", into, (i, fd) => IpvlanRequest(i, name, mode, fd));

    /// <summary>ip link set: up/down, rename, master/nomaster, move to another namespace, MTU, MAC, hairpin.</summary>
    public void SetLink(string name, LinkChanges c)
    {
        var index = GetLinkIndex(name);
        if (c.NewName is not null) ValidateLinkName(c.NewName);
        ValidateMtu(c.Mtu);
        if (c.Hairpin is { } hairpin)
        {
            var h = new NetlinkMessage(Rtnl.RTM_NEWLINK, Rtnl.F_REQUEST | Rtnl.F_ACK).IfInfo(index)
                .Begin(Rtnl.IFLA_LINKINFO).StrNoNul(Rtnl.IFLA_INFO_SLAVE_KIND, "bridge").Begin(Rtnl.IFLA_INFO_SLAVE_DATA)
                .U8(Rtnl.IFLA_BRPORT_MODE, hairpin ? (byte)1 : (byte)0).End().End();
            try { Socket.Request(h); }
            catch (NetlinkError e) when (e.Errno is 95 or 22)
            {
                throw new ContainerException("NotABridgePort", ContainerErrorKind.InvalidOperation,
                    $"Cannot set hairpin on {name}: it is not a port of a bridge (set -Master first){(e.KernelMessage is null ? "" : $" (kernel: {e.KernelMessage})")}.", name, e);
            }
            catch (NetlinkError e) { throw Map(e, $"set hairpin on {name}", name); }
        }
        var m = new NetlinkMessage(Rtnl.RTM_NEWLINK, Rtnl.F_REQUEST | Rtnl.F_ACK)
            .IfInfo(index, c.Up == true ? Rtnl.IFF_UP : 0, c.Up is null ? 0 : Rtnl.IFF_UP);
        if (c.NewName is not null) m.Str(Rtnl.IFLA_IFNAME, c.NewName);
        if (c.Mtu is { } mtu) m.U32(Rtnl.IFLA_MTU, (uint)mtu);
        if (c.MacAddress is not null) m.Attr(Rtnl.IFLA_ADDRESS, ParseMac(c.MacAddress));
        if (c.Alias is not null) m.StrNoNul(Rtnl.IFLA_IFALIAS, c.Alias);
        if (c.Master is not null)
        {
            var masterIndex = 0;
            if (c.Master.Length > 0)
            {
                ValidateLinkName(c.Master, "bridge");
                masterIndex = GetLinkIndex(c.Master, throwIfMissing: false);
                if (masterIndex == 0)
                    throw new ContainerException("BridgeNotFound", ContainerErrorKind.ObjectNotFound,
                        $"Cannot attach {name} to bridge {c.Master}: no link named {c.Master} exists {Where}. Create it with New-NetworkBridge.", c.Master);
            }
            m.U32(Rtnl.IFLA_MASTER, (uint)masterIndex);
        }
        using var ns = NamespaceFd(c.MoveTo);
        if (ns is not null) m.U32(Rtnl.IFLA_NET_NS_FD, (uint)ns.Fd);
        try { Socket.Request(m); }
        catch (NetlinkError e) when (e.Errno == 17 && c.NewName is not null)
        {
            throw new ContainerException("LinkExists", ContainerErrorKind.ResourceExists,
                $"Cannot rename {name} to {c.NewName}: link {c.NewName} already exists {(c.MoveTo is null ? Where : "in " + c.MoveTo.Label)}.", c.NewName, e);
        }
        catch (NetlinkError e) when (e.Errno == 16 && c.NewName is not null)
        {
            throw new ContainerException("LinkBusy", ContainerErrorKind.ResourceBusy,
                $"Cannot rename {name} while it is up: bring it down first (-Down), or rename and move it in one call.", name, e);
        }
        catch (NetlinkError e) { throw Map(e, $"change link {name}", name); }
    }

    public void DeleteLink(string name)
    {
        var index = GetLinkIndex(name);
        Do(DeleteRequest(index), $"delete link {name}", name);
    }

    public static NetlinkMessage DeleteRequest(int index) => new NetlinkMessage(Rtnl.RTM_DELLINK, Rtnl.F_REQUEST | Rtnl.F_ACK).IfInfo(index);

    /// <summary>
    /// Deletes many links at the cost of about one: each is first put in a fresh random link group
    /// (one batch of requests, all sent before any ack is read), then the group is deleted with one
    /// RTM_DELLINK, which the kernel unregisters together — a single RCU grace period (~20 ms)
    /// instead of one per link. Returns the names that did not exist.
    /// </summary>
    public List<string> DeleteLinks(IEnumerable<string> names)
    {
        var list = names.Distinct().ToList();
        foreach (var n in list) ValidateLinkName(n);
        var missing = new List<string>();
        if (list.Count == 0) return missing;
        if (list.Count == 1)
        {
            try { Socket.Request(new NetlinkMessage(Rtnl.RTM_DELLINK, Rtnl.F_REQUEST | Rtnl.F_ACK).IfInfo().Str(Rtnl.IFLA_IFNAME, list[0])); }
            catch (NetlinkError e) when (e.Errno == 19) { missing.Add(list[0]); }
            catch (NetlinkError e) { throw Map(e, $"delete link {list[0]}", list[0]); }
            return missing;
        }
        // Never 0 (the default group of every link; the kernel refuses to delete it anyway).
        var group = (uint)Random.Shared.Next(0x10000000, int.MaxValue);
        var errors = Socket.Batch(list.Select(n => new NetlinkMessage(Rtnl.RTM_NEWLINK, Rtnl.F_REQUEST | Rtnl.F_ACK).IfInfo()
            .Str(Rtnl.IFLA_IFNAME, n).U32(Rtnl.IFLA_GROUP, group)).ToList());
        for (var i = 0; i < errors.Length; i++)
        {
            if (errors[i] is null) continue;
            if (errors[i]!.Errno == 19) missing.Add(list[i]);
            else throw Map(errors[i]!, $"delete link {list[i]}", list[i]);
        }
        if (missing.Count == list.Count) return missing;
        try { Socket.Request(new NetlinkMessage(Rtnl.RTM_DELLINK, Rtnl.F_REQUEST | Rtnl.F_ACK).IfInfo().U32(Rtnl.IFLA_GROUP, group)); }
        catch (NetlinkError e) when (e.Errno == 19) { /* deleted meanwhile (a veth peer of an earlier entry) */ }
        catch (NetlinkError e) when (e.Errno == 95)
        {
            // A device without rtnl link ops (a physical NIC) cannot be deleted by group: one by one, then.
            foreach (var n in list.Except(missing))
                try { Socket.Request(new NetlinkMessage(Rtnl.RTM_DELLINK, Rtnl.F_REQUEST | Rtnl.F_ACK).IfInfo().Str(Rtnl.IFLA_IFNAME, n)); }
                catch (NetlinkError e1) when (e1.Errno == 19) { }
                catch (NetlinkError e1) { throw Map(e1, $"delete link {n}", n); }
        }
        catch (NetlinkError e) { throw Map(e, $"delete links {string.Join(", ", list.Except(missing))}", list[0]); }
        return missing;
    }

    private sealed class NsFd : IDisposable
    {
        public int Fd { get; }
        public NsFd(int fd) => Fd = fd;
        public void Dispose() => NetlinkNative.close(Fd);
    }

    /// <summary>An open fd for IFLA_NET_NS_FD; the host is this process's own namespace.</summary>
    private static NsFd? NamespaceFd(NetworkLocation? location)
    {
        if (location is null) return null;
        var path = location.Path ?? "/proc/self/ns/net";
        var fd = NetlinkNative.open(path, NetlinkNative.O_RDONLY | NetlinkNative.O_CLOEXEC, 0);
        if (fd < 0)
            throw new ContainerException("NetNamespaceNotFound", ContainerErrorKind.ObjectNotFound,
                $"Cannot open the network namespace of {location.Label} ({path}): {NetlinkNative.Message(NetlinkNative.Errno)}.", location.Label);
        return new NsFd(fd);
    }

    // ---- addresses ------------------------------------------------------------------------------

    public List<NetworkAddress> GetAddresses(string? name = null) => GetAddresses(name is null ? 0 : GetLinkIndex(name), name);

    private List<NetworkAddress> GetAddresses(int index, string? name)
    {
        var linkNames = name is null ? null : new Dictionary<int, string> { [index] = name };
        var list = new List<NetworkAddress>();
        foreach (var r in Socket.Dump(new NetlinkMessage(Rtnl.RTM_GETADDR, Rtnl.F_REQUEST | Rtnl.F_DUMP).IfAddr(Rtnl.AF_UNSPEC, 0, 0)))
        {
            if (r.Type != Rtnl.RTM_NEWADDR) continue;
            var p = r.Payload.Span;
            var family = p[0];
            var ifindex = BinaryPrimitives.ReadInt32LittleEndian(p[4..]);
            if (name is not null && ifindex != index) continue;
            var attrs = r.Attributes(8);
            var bytes = attrs.Get(Rtnl.IFA_LOCAL) ?? attrs.Get(Rtnl.IFA_ADDRESS);
            if (bytes is null) continue;
            list.Add(new NetworkAddress
            {
                Index = ifindex,
                Name = linkNames?.GetValueOrDefault(ifindex) ?? attrs.Str(Rtnl.IFA_LABEL) ?? "",
                Family = family == Rtnl.AF_INET ? "IPv4" : "IPv6",
                Address = new IPAddress(bytes.Value.Span).ToString(),
                PrefixLength = p[1],
                Scope = Scope(p[3]),
                Namespace = Location.Label,
            });
        }
        // IPv6 addresses have no label: name them from the link table.
        if (list.Any(a => a.Name.Length == 0))
        {
            var names = IndexNames();
            list = list.Select(a => a.Name.Length > 0 ? a : new NetworkAddress
            {
                Index = a.Index, Name = names.GetValueOrDefault(a.Index, $"if{a.Index}"), Family = a.Family, Address = a.Address,
                PrefixLength = a.PrefixLength, Scope = a.Scope, Namespace = a.Namespace,
            }).ToList();
        }
        return list;
    }

    private Dictionary<int, string> IndexNames() =>
        Socket.Dump(new NetlinkMessage(Rtnl.RTM_GETLINK, Rtnl.F_REQUEST | Rtnl.F_DUMP).IfInfo())
            .Where(r => r.Type == Rtnl.RTM_NEWLINK)
            .ToDictionary(r => BinaryPrimitives.ReadInt32LittleEndian(r.Payload.Span[4..]), r => r.Attributes(16).Str(Rtnl.IFLA_IFNAME) ?? "");

    private static string Scope(byte s) => s switch { 0 => "global", 200 => "site", 253 => "link", 254 => "host", 255 => "nowhere", _ => s.ToString() };

    private static NetlinkMessage AddressRequest(ushort type, ushort flags, int index, IPAddress address, int prefix)
    {
        var bytes = address.GetAddressBytes();
        var m = new NetlinkMessage(type, flags).IfAddr(Family(address), (byte)prefix, index)
            .Attr(Rtnl.IFA_LOCAL, bytes).Attr(Rtnl.IFA_ADDRESS, bytes);
        if (address.AddressFamily == AddressFamily.InterNetwork && prefix < 31)
        {
            var v = BinaryPrimitives.ReadUInt32BigEndian(bytes) | (uint)((1L << (32 - prefix)) - 1);
            var brd = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(brd, v);
            m.Attr(Rtnl.IFA_BROADCAST, brd);
        }
        return m;
    }

    public void AddAddress(string name, string cidr)
    {
        var (address, prefix) = ParseCidr(cidr);
        var index = GetLinkIndex(name);
        try { Socket.Request(AddressRequest(Rtnl.RTM_NEWADDR, Rtnl.F_REQUEST | Rtnl.F_ACK | Rtnl.F_EXCL | Rtnl.F_CREATE, index, address, prefix)); }
        catch (NetlinkError e) when (e.Errno == 17)
        {
            throw new ContainerException("AddressExists", ContainerErrorKind.ResourceExists, $"Address {cidr} is already on {name} {Where}.", cidr, e);
        }
        catch (NetlinkError e) { throw Map(e, $"add address {cidr} to {name}", name); }
    }

    public void RemoveAddress(string name, string cidr)
    {
        var (address, prefix) = ParseCidr(cidr);
        var index = GetLinkIndex(name);
        try { Socket.Request(AddressRequest(Rtnl.RTM_DELADDR, Rtnl.F_REQUEST | Rtnl.F_ACK, index, address, prefix)); }
        catch (NetlinkError e) when (e.Errno == 99)
        {
            throw new ContainerException("AddressNotFound", ContainerErrorKind.ObjectNotFound, $"Address {cidr} is not on {name} {Where}. Get-NetworkAddress lists them.", cidr, e);
        }
        catch (NetlinkError e) { throw Map(e, $"remove address {cidr} from {name}", name); }
    }

    // ---- neighbours -----------------------------------------------------------------------------

    /// <summary>The neighbour (ARP/NDP) cache, like ip neigh show.</summary>
    public List<NetworkNeighbor> GetNeighbors(string? name = null)
    {
        var only = name is null ? 0 : GetLinkIndex(name);
        var names = IndexNames();
        var list = new List<NetworkNeighbor>();
        foreach (var r in Socket.Dump(new NetlinkMessage(Rtnl.RTM_GETNEIGH, Rtnl.F_REQUEST | Rtnl.F_DUMP).NdMsg(Rtnl.AF_UNSPEC)))
        {
            if (r.Type != Rtnl.RTM_NEWNEIGH) continue;
            var p = r.Payload.Span;
            var family = p[0];
            if (family is not (Rtnl.AF_INET or Rtnl.AF_INET6)) continue;
            var index = BinaryPrimitives.ReadInt32LittleEndian(p[4..]);
            if (only != 0 && index != only) continue;
            var state = BinaryPrimitives.ReadUInt16LittleEndian(p[8..]);
            var attrs = r.Attributes(12);
            if (attrs.Get(Rtnl.NDA_DST) is not { } dst) continue;
            list.Add(new NetworkNeighbor
            {
                Name = names.GetValueOrDefault(index, $"if{index}"),
                Family = family == Rtnl.AF_INET ? "IPv4" : "IPv6",
                Address = new IPAddress(dst.Span).ToString(),
                MacAddress = attrs.Get(Rtnl.NDA_LLADDR) is { Length: 6 } mac ? string.Join(":", mac.ToArray().Select(b => b.ToString("x2"))) : null,
                State = NeighborState(state),
                Namespace = Location.Label,
            });
        }
        return list;
    }

    private static string NeighborState(ushort s) => s switch
    {
        0x01 => "INCOMPLETE", 0x02 => "REACHABLE", 0x04 => "STALE", 0x08 => "DELAY", 0x10 => "PROBE",
        0x20 => "FAILED", 0x40 => "NOARP", 0x80 => "PERMANENT", 0 => "NONE", _ => $"0x{s:x}",
    };

    // ---- routes ---------------------------------------------------------------------------------

    public List<NetworkRoute> GetRoutes()
    {
        var names = IndexNames();
        var list = new List<NetworkRoute>();
        foreach (var r in Socket.Dump(new NetlinkMessage(Rtnl.RTM_GETROUTE, Rtnl.F_REQUEST | Rtnl.F_DUMP).RtMsg(Rtnl.AF_UNSPEC, 0, 0, 0, 0, 0)))
        {
            if (r.Type != Rtnl.RTM_NEWROUTE) continue;
            var p = r.Payload.Span;
            var attrs = r.Attributes(12);
            var table = attrs.U32(Rtnl.RTA_TABLE) ?? p[4];
            if (table != Rtnl.RT_TABLE_MAIN || p[7] != Rtnl.RTN_UNICAST) continue;
            var dst = attrs.Get(Rtnl.RTA_DST);
            list.Add(new NetworkRoute
            {
                Family = p[0] == Rtnl.AF_INET ? "IPv4" : "IPv6",
                Destination = dst is null ? "default" : $"{new IPAddress(dst.Value.Span)}/{p[1]}",
                Gateway = attrs.Get(Rtnl.RTA_GATEWAY) is { } gw ? new IPAddress(gw.Span).ToString() : null,
                Device = attrs.U32(Rtnl.RTA_OIF) is { } oif ? names.GetValueOrDefault((int)oif, $"if{oif}") : null,
                Metric = attrs.U32(Rtnl.RTA_PRIORITY) is { } metric ? (int)metric : null,
                Protocol = p[5] switch { 2 => "kernel", 3 => "boot", 4 => "static", 16 => "dhcp", var x => x.ToString() },
                Scope = Scope(p[6]),
                PreferredSource = attrs.Get(Rtnl.RTA_PREFSRC) is { } src ? new IPAddress(src.Span).ToString() : null,
                Namespace = Location.Label,
            });
        }
        return list;
    }

    private NetlinkMessage RouteRequest(ushort type, ushort flags, string destination, string? gateway, string? device, int? metric)
    {
        IPAddress? dst = null;
        var prefix = 0;
        if (destination != "default") (dst, prefix) = ParseCidr(destination);
        IPAddress? gw = gateway is null ? null : ParseCidr(gateway, requirePrefix: false).Address;
        if (dst is null && gw is null && device is null)
            throw new ContainerException("InvalidRoute", ContainerErrorKind.InvalidArgument, "A default route needs a -Gateway or a -Device.", destination);
        var family = dst is not null ? Family(dst) : gw is not null ? Family(gw) : Rtnl.AF_INET;
        if (gw is not null && Family(gw) != family)
            throw new ContainerException("InvalidRoute", ContainerErrorKind.InvalidArgument, $"Gateway {gateway} and destination {destination} are of different address families.", destination);
        var oif = device is null ? 0 : GetLinkIndex(device);
        // As iproute2: a deletion leaves protocol, type and scope as wildcards (scope "nowhere").
        var add = type == Rtnl.RTM_NEWROUTE;
        var m = new NetlinkMessage(type, flags).RtMsg(family, (byte)prefix, Rtnl.RT_TABLE_MAIN, add ? Rtnl.RTPROT_BOOT : (byte)0,
            !add ? (byte)255 : gw is null ? Rtnl.RT_SCOPE_LINK : Rtnl.RT_SCOPE_UNIVERSE, add ? Rtnl.RTN_UNICAST : (byte)0);
        if (dst is not null) m.Attr(Rtnl.RTA_DST, Network(dst, prefix).GetAddressBytes());
        if (gw is not null) m.Attr(Rtnl.RTA_GATEWAY, gw.GetAddressBytes());
        if (oif != 0) m.U32(Rtnl.RTA_OIF, (uint)oif);
        if (metric is { } mt) m.U32(Rtnl.RTA_PRIORITY, (uint)mt);
        return m;
    }

    /// <summary>The network part of an address (10.0.0.7/24 -> 10.0.0.0).</summary>
    public static IPAddress Network(IPAddress address, int prefix)
    {
        var b = address.GetAddressBytes();
        for (var i = 0; i < b.Length; i++)
        {
            var bits = Math.Clamp(prefix - i * 8, 0, 8);
            b[i] &= (byte)(0xFF << (8 - bits));
        }
        return new IPAddress(b);
    }

    public void AddRoute(string destination, string? gateway = null, string? device = null, int? metric = null)
    {
        var m = RouteRequest(Rtnl.RTM_NEWROUTE, Rtnl.F_REQUEST | Rtnl.F_ACK | Rtnl.F_EXCL | Rtnl.F_CREATE, destination, gateway, device, metric);
        try { Socket.Request(m); }
        catch (NetlinkError e) when (e.Errno == 17)
        {
            throw new ContainerException("RouteExists", ContainerErrorKind.ResourceExists, $"A route to {destination} already exists {Where}. Remove it first with Remove-NetworkRoute.", destination, e);
        }
        catch (NetlinkError e) when (e.Errno is 101 or 22 && gateway is not null)
        {
            throw new ContainerException("GatewayUnreachable", ContainerErrorKind.InvalidArgument,
                $"Cannot add route to {destination} via {gateway}: the gateway is not on a directly connected network {Where} (add an address in its subnet first){(e.KernelMessage is null ? "" : $" (kernel: {e.KernelMessage})")}.", destination, e);
        }
        catch (NetlinkError e) { throw Map(e, $"add route to {destination}", destination); }
    }

    public void RemoveRoute(string destination, string? gateway = null, string? device = null, int? metric = null)
    {
        var m = RouteRequest(Rtnl.RTM_DELROUTE, Rtnl.F_REQUEST | Rtnl.F_ACK, destination, gateway, device, metric);
        try { Socket.Request(m); }
        catch (NetlinkError e) when (e.Errno == 3)
        {
            throw new ContainerException("RouteNotFound", ContainerErrorKind.ObjectNotFound, $"No route to {destination} exists {Where}. Get-NetworkRoute lists the routes.", destination, e);
        }
        catch (NetlinkError e) { throw Map(e, $"remove route to {destination}", destination); }
    }
}
