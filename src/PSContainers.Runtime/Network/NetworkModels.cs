namespace PSContainers.Runtime.Network;

/// <summary>A network interface as Get-NetworkLink shows it (ip -br link).</summary>
public sealed class NetworkLink
{
    public int Index { get; init; }
    public string Name { get; init; } = "";
    /// <summary>veth, bridge, macvlan, vlan, ipvlan...; null for a plain device (loopback, physical).</summary>
    public string? Kind { get; init; }
    /// <summary>The kernel's operational state: UP, DOWN, UNKNOWN, LOWERLAYERDOWN...</summary>
    public string State { get; init; } = "";
    /// <summary>Administratively up (IFF_UP).</summary>
    public bool IsUp { get; init; }
    public string[] Flags { get; init; } = Array.Empty<string>();
    public string? MacAddress { get; init; }
    public int Mtu { get; init; }
    /// <summary>The bridge this link is a port of.</summary>
    public string? Master { get; init; }
    /// <summary>The lower link (macvlan/vlan parent, veth peer) as "name" or "if&lt;index&gt;" when it lives in another namespace.</summary>
    public string? Parent { get; init; }
    /// <summary>Where the link lives: "host", "netns:&lt;name&gt;", "container:&lt;name&gt;" or a namespace path.</summary>
    public string Namespace { get; init; } = "host";
    public string[] Addresses { get; init; } = Array.Empty<string>();
    /// <summary>The link's alias (ip link set ... alias), kernel-held; null when none is set.</summary>
    public string? Alias { get; init; }

    public override string ToString() => Name;
}

/// <summary>One address of a link (ip -br addr).</summary>
public sealed class NetworkAddress
{
    public string Name { get; init; } = "";
    public int Index { get; init; }
    /// <summary>IPv4 or IPv6.</summary>
    public string Family { get; init; } = "";
    public string Address { get; init; } = "";
    public int PrefixLength { get; init; }
    public string Scope { get; init; } = "";
    public string Namespace { get; init; } = "host";
    /// <summary>address/prefix, as given to Add-NetworkAddress.</summary>
    public string Cidr => $"{Address}/{PrefixLength}";
    public override string ToString() => Cidr;
}

/// <summary>One route of the main table (ip route).</summary>
public sealed class NetworkRoute
{
    public string Family { get; init; } = "";
    /// <summary>"default" or network/prefix.</summary>
    public string Destination { get; init; } = "";
    public string? Gateway { get; init; }
    public string? Device { get; init; }
    public int? Metric { get; init; }
    public string Protocol { get; init; } = "";
    public string Scope { get; init; } = "";
    public string? PreferredSource { get; init; }
    public string Namespace { get; init; } = "host";
    public override string ToString() => Destination;
}

/// <summary>A named network namespace (ip netns) and the processes in it (ip netns pids).</summary>
public sealed class NetNamespaceInfo
{
    public string Name { get; init; } = "";
    public string Path { get; init; } = "";
    /// <summary>The namespace's inode number, as in /proc/PID/ns/net -> net:[inode].</summary>
    public ulong Inode { get; init; }
    public int[] Pids { get; init; } = Array.Empty<int>();
    public override string ToString() => Name;
}

/// <summary>Macvlan modes (IFLA_MACVLAN_MODE values).</summary>
public enum MacvlanMode { Private = 1, Vepa = 2, Bridge = 4, Passthru = 8, Source = 16 }

/// <summary>Ipvlan modes (IFLA_IPVLAN_MODE values).</summary>
public enum IpvlanMode { L2 = 0, L3 = 1, L3S = 2 }

/// <summary>Changes Set-NetworkLink makes; null = unchanged.</summary>
public sealed class LinkChanges
{
    public bool? Up { get; set; }
    public string? NewName { get; set; }
    /// <summary>A bridge name; "" = no master.</summary>
    public string? Master { get; set; }
    /// <summary>Move the link to this location.</summary>
    public NetworkLocation? MoveTo { get; set; }
    public int? Mtu { get; set; }
    public string? MacAddress { get; set; }
    public bool? Hairpin { get; set; }
    /// <summary>The alias (IFLA_IFALIAS, at most 255 bytes); "" removes it.</summary>
    public string? Alias { get; set; }
}

/// <summary>One neighbour (ARP / NDP) cache entry (ip neigh).</summary>
public sealed class NetworkNeighbor
{
    public string Name { get; init; } = "";
    public string Family { get; init; } = "";
    public string Address { get; init; } = "";
    public string? MacAddress { get; init; }
    /// <summary>REACHABLE, STALE, DELAY, PROBE, FAILED, INCOMPLETE, NOARP, PERMANENT.</summary>
    public string State { get; init; } = "";
    public string Namespace { get; init; } = "host";
    public override string ToString() => Address;
}
