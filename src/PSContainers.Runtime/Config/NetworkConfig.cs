namespace PSContainers.Runtime.Config;

/// <summary>One network interface of a container (LXC's lxc.net.N.*), an entry of config.yaml's <c>network:</c> list.</summary>
public sealed class NicConfig
{
    /// <summary>none (share the host's network), empty (loopback only), veth, macvlan, vlan, phys, ipvlan, pasta (user-mode networking).</summary>
    public string Type { get; set; } = "veth";
    /// <summary>The interface name inside the container (default eth0, eth1, ... by position).</summary>
    public string? Name { get; set; }
    /// <summary>veth: the bridge the host end joins ("default" = the store's managed bridge); macvlan/vlan/ipvlan: the parent; phys: the interface moved in.</summary>
    public string? Link { get; set; }
    /// <summary>A named network namespace where <see cref="Link"/> lives (and the veth host end); null = the host.</summary>
    public string? LinkNamespace { get; set; }
    /// <summary>veth: the host end's name (lxc.net.N.veth.pair); generated when null.</summary>
    public string? HostName { get; set; }
    /// <summary>MAC inside; 'x' digits are filled (stably per container), e.g. 00:16:3e:xx:xx:xx.</summary>
    public string? HwAddress { get; set; }
    public int? Mtu { get; set; }
    /// <summary>Bring the interface up (lxc.net.N.flags = up).</summary>
    public bool Up { get; set; } = true;
    /// <summary>IPv4 addresses with prefix; on the managed bridge, empty means one is leased automatically.</summary>
    public List<string> IPv4 { get; set; } = new();
    public List<string> IPv6 { get; set; } = new();
    public string? IPv4Gateway { get; set; }
    public string? IPv6Gateway { get; set; }
    /// <summary>macvlan: private, vepa, bridge, passthru.</summary>
    public string? MacvlanMode { get; set; }
    /// <summary>vlan: the VLAN id.</summary>
    public int? VlanId { get; set; }
    /// <summary>ipvlan: l2, l3, l3s.</summary>
    public string? IpvlanMode { get; set; }
    /// <summary>pasta: TCP ports of the host's addresses forwarded into the container ("PORT" or "HOST:CONTAINER"; pasta -t).</summary>
    public List<string> Ports { get; set; } = new();
    /// <summary>pasta: TCP ports of the container's loopback forwarded to the host's loopback ("PORT" or "CONTAINER:HOST"; pasta -T).</summary>
    public List<string> HostPorts { get; set; } = new();
}
