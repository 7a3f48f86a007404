using System.Management.Automation;
using PSContainers.Infrastructure;
using PSContainers.Runtime;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Network;
using PSContainers.Runtime.NetworkHooks;

namespace PSContainers.Cmdlets;

/// <summary>A link/address/route cmdlet: acts on the host, in a named namespace (-Namespace) or in a running container (-Container).</summary>
public abstract class NetworkCmdlet : ContainerCmdlet
{
    /// <summary>A named network namespace (ip -n NAME).</summary>
    [Parameter]
    [ArgumentCompleter(typeof(NetNamespaceNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string? Namespace { get; set; }

    /// <summary>A running container whose network namespace is used.</summary>
    [Parameter]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string? Container { get; set; }

    protected NetworkLocation ResolveLocation(string? ns, string? container, string nsParameter = "Namespace", string containerParameter = "Container")
    {
        if (ns is not null && container is not null)
            throw new ContainerException("AmbiguousLocation", ContainerErrorKind.InvalidArgument,
                $"Give either -{nsParameter} or -{containerParameter}, not both.");
        if (ns is not null) return NetworkLocation.ForNamespace(ns);
        if (container is not null) return NetworkLocation.ForContainer(container, Manager.Get(container).Pid);
        return NetworkLocation.Host;
    }

    protected NetworkLocation Location => ResolveLocation(Namespace, Container);

    /// <summary>Opens a client where the cmdlet acts; failures become error records.</summary>
    protected void WithClient(Action<NetworkClient> action) => Try(() =>
    {
        using var client = new NetworkClient(Location);
        action(client);
    });

    protected string Target(string what) => Namespace is not null ? $"{what} (netns {Namespace})" : Container is not null ? $"{what} (container {Container})" : what;
}

/// <summary>A listing cmdlet (addresses, routes, neighbours) that can keep one address family.</summary>
public abstract class NetworkListCmdlet : NetworkCmdlet
{
    [Parameter]
    [ValidateSet("IPv4", "IPv6")]
    public string? Family { get; set; }

    protected void WriteFamily<T>(IEnumerable<T> items, Func<T, string> family) =>
        WriteObject(items.Where(i => Family is null || family(i).Equals(Family, StringComparison.OrdinalIgnoreCase)), enumerateCollection: true);
}

// ---- namespaces -----------------------------------------------------------------------------------

/// <summary>ip netns add: creates named network namespaces under /run/netns.</summary>
[Cmdlet(VerbsCommon.New, "NetNamespace", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(NetNamespaceInfo))]
public sealed class NewNetNamespaceCommand : ContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string[] Name { get; set; } = Array.Empty<string>();

    protected override void ProcessRecord()
    {
        foreach (var name in Name)
            if (ShouldProcess(name, "Create network namespace")) Try(() => WriteObject(NetNamespaces.Create(name)));
    }
}

/// <summary>ip netns list / ip netns pids / ip netns identify.</summary>
[Cmdlet(VerbsCommon.Get, "NetNamespace", DefaultParameterSetName = "Name")]
[OutputType(typeof(NetNamespaceInfo))]
public sealed class GetNetNamespaceCommand : ContainerCmdlet
{
    [Parameter(Position = 0, ParameterSetName = "Name", ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(NetNamespaceNameCompleter))]
    [SupportsWildcards]
    public string[]? Name { get; set; }

    /// <summary>The named namespace this process is in (ip netns identify).</summary>
    [Parameter(Mandatory = true, ParameterSetName = "Pid")]
    [Alias("Id")]
    public int ProcessId { get; set; }

    protected override void ProcessRecord()
    {
        if (ParameterSetName == "Pid")
        {
            Try(() =>
            {
                var name = NetNamespaces.Identify(ProcessId);
                if (name is not null) WriteObject(NetNamespaces.Get(name));
            });
            return;
        }
        if (Name is null)
        {
            Try(() => { foreach (var ns in NetNamespaces.List()) WriteObject(ns); });
            return;
        }
        foreach (var n in Name)
        {
            if (WildcardPattern.ContainsWildcardCharacters(n))
            {
                var pattern = new WildcardPattern(n, WildcardOptions.IgnoreCase);
                Try(() => { foreach (var ns in NetNamespaces.List().Where(x => pattern.IsMatch(x.Name))) WriteObject(ns); });
            }
            else Try(() => WriteObject(NetNamespaces.Get(n)));
        }
    }
}

/// <summary>ip netns delete.</summary>
[Cmdlet(VerbsCommon.Remove, "NetNamespace", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(void))]
public sealed class RemoveNetNamespaceCommand : ContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(NetNamespaceNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string[] Name { get; set; } = Array.Empty<string>();

    protected override void ProcessRecord()
    {
        foreach (var name in Name)
            if (ShouldProcess(name, "Remove network namespace")) Try(() => NetNamespaces.Remove(name));
    }
}

/// <summary>ip netns exec: runs a program in a named network namespace.</summary>
[Cmdlet(VerbsLifecycle.Invoke, "NetNamespaceCommand", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(ContainerCommandResult))]
public sealed class InvokeNetNamespaceCommandCommand : ContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(NetNamespaceNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string Name { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string[] Command { get; set; } = Array.Empty<string>();

    private readonly CancellationTokenSource _cancel = new();

    protected override void ProcessRecord()
    {
        if (ShouldProcess(Name, $"Run '{string.Join(' ', Command)}'"))
            Try(() =>
            {
                var result = NetNamespaces.Exec(Name, Command, _cancel.Token);
                WriteObject(new ContainerCommandResult { Name = Name, Command = Command.ToArray(), ExitCode = result.ExitCode, Output = result.Output, Error = result.Error });
            });
    }

    protected override void StopProcessing() => _cancel.Cancel();
}

// ---- links ----------------------------------------------------------------------------------------

/// <summary>ip link add NAME type veth peer name PEER: a veth pair, the peer created directly in its namespace.</summary>
[Cmdlet(VerbsCommon.New, "VethPair", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(NetworkLink))]
public sealed class NewVethPairCommand : NetworkCmdlet
{
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Name { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string PeerName { get; set; } = "";

    [Parameter]
    [ArgumentCompleter(typeof(NetNamespaceNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string? PeerNamespace { get; set; }

    [Parameter]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string? PeerContainer { get; set; }

    [Parameter]
    [ValidateRange(68, 65535)]
    public int? Mtu { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? MacAddress { get; set; }

    protected override void ProcessRecord()
    {
        if (!ShouldProcess(Target(Name), $"Create veth pair {Name}/{PeerName}")) return;
        WithClient(client =>
        {
            NetworkLocation? peer = PeerNamespace is null && PeerContainer is null ? null
                : ResolveLocation(PeerNamespace, PeerContainer, "PeerNamespace", "PeerContainer");
            client.CreateVeth(Name, PeerName, peer, Mtu, MacAddress);
            WriteObject(client.GetLink(Name, withAddresses: false));
        });
    }
}

/// <summary>ip link add NAME type bridge.</summary>
[Cmdlet(VerbsCommon.New, "NetworkBridge", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(NetworkLink))]
public sealed class NewNetworkBridgeCommand : NetworkCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true)]
    [ValidateNotNullOrEmpty]
    public string[] Name { get; set; } = Array.Empty<string>();

    [Parameter]
    [ValidateRange(68, 65535)]
    public int? Mtu { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var name in Name)
            if (ShouldProcess(Target(name), "Create bridge"))
                WithClient(client => { client.CreateBridge(name, Mtu); WriteObject(client.GetLink(name, withAddresses: false)); });
    }
}

/// <summary>A link stacked on a parent interface (macvlan, vlan, ipvlan): NAME on PARENT.</summary>
public abstract class NewChildLinkCmdlet : NetworkCmdlet
{
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Name { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1)]
    [ArgumentCompleter(typeof(NetworkLinkNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string Parent { get; set; } = "";

    /// <summary>What ShouldProcess shows, e.g. "Create VLAN 5 link on eth0".</summary>
    protected abstract string Action { get; }
    protected abstract void Create(NetworkClient client);

    protected override void ProcessRecord()
    {
        if (ShouldProcess(Target(Name), Action))
            WithClient(client => { Create(client); WriteObject(client.GetLink(Name, withAddresses: false)); });
    }
}

/// <summary>ip link add link PARENT name NAME type macvlan mode MODE.</summary>
[Cmdlet(VerbsCommon.New, "MacvlanLink", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(NetworkLink))]
public sealed class NewMacvlanLinkCommand : NewChildLinkCmdlet
{
    [Parameter]
    public MacvlanMode Mode { get; set; } = MacvlanMode.Bridge;

    protected override string Action => $"Create macvlan link on {Parent}";
    protected override void Create(NetworkClient client) => client.CreateMacvlan(Name, Parent, Mode);
}

/// <summary>ip link add link PARENT name NAME type vlan id ID.</summary>
[Cmdlet(VerbsCommon.New, "VlanLink", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(NetworkLink))]
public sealed class NewVlanLinkCommand : NewChildLinkCmdlet
{
    [Parameter(Mandatory = true)]
    [ValidateRange(0, 4094)]
    public int Id { get; set; }

    protected override string Action => $"Create VLAN {Id} link on {Parent}";
    protected override void Create(NetworkClient client) => client.CreateVlan(Name, Parent, Id);
}

/// <summary>ip link add link PARENT name NAME type ipvlan mode MODE.</summary>
[Cmdlet(VerbsCommon.New, "IpvlanLink", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(NetworkLink))]
public sealed class NewIpvlanLinkCommand : NewChildLinkCmdlet
{
    [Parameter]
    public IpvlanMode Mode { get; set; } = IpvlanMode.L2;

    protected override string Action => $"Create ipvlan link on {Parent}";
    protected override void Create(NetworkClient client) => client.CreateIpvlan(Name, Parent, Mode);
}

/// <summary>ip link show.</summary>
[Cmdlet(VerbsCommon.Get, "NetworkLink")]
[OutputType(typeof(NetworkLink))]
public sealed class GetNetworkLinkCommand : NetworkCmdlet
{
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(NetworkLinkNameCompleter))]
    [SupportsWildcards]
    public string[]? Name { get; set; }

    protected override void ProcessRecord() => WithClient(client =>
    {
        var links = client.GetLinks();
        if (Name is null) { WriteObject(links, enumerateCollection: true); return; }
        foreach (var n in Name)
        {
            if (WildcardPattern.ContainsWildcardCharacters(n))
            {
                var pattern = new WildcardPattern(n, WildcardOptions.IgnoreCase);
                WriteObject(links.Where(l => pattern.IsMatch(l.Name)), enumerateCollection: true);
            }
            else if (links.FirstOrDefault(l => l.Name == n) is { } link) WriteObject(link);
            else WriteError(ToErrorRecord(new ContainerException("LinkNotFound", ContainerErrorKind.ObjectNotFound,
                $"No link named {n} exists in {client.Location.Label}. Get-NetworkLink lists the links.", n)));
        }
    });
}

/// <summary>ip link set: up/down, rename, bridge port, namespace move, MTU, MAC, hairpin.</summary>
[Cmdlet(VerbsCommon.Set, "NetworkLink", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(NetworkLink))]
public sealed class SetNetworkLinkCommand : NetworkCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(NetworkLinkNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string[] Name { get; set; } = Array.Empty<string>();

    [Parameter] public SwitchParameter Up { get; set; }
    [Parameter] public SwitchParameter Down { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? NewName { get; set; }

    [Parameter]
    [ArgumentCompleter(typeof(NetworkLinkNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string? Master { get; set; }

    [Parameter] public SwitchParameter NoMaster { get; set; }

    /// <summary>Move the link into this named network namespace (ip link set NAME netns NS).</summary>
    [Parameter]
    [ArgumentCompleter(typeof(NetNamespaceNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string? DestinationNamespace { get; set; }

    /// <summary>Move the link into this running container.</summary>
    [Parameter]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string? DestinationContainer { get; set; }

    /// <summary>Move the link back to the host's network namespace.</summary>
    [Parameter] public SwitchParameter DestinationHost { get; set; }

    [Parameter]
    [ValidateRange(68, 65535)]
    public int? Mtu { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? MacAddress { get; set; }

    /// <summary>Hairpin mode of a bridge port (frames may go back out the port they came in).</summary>
    [Parameter] public bool? Hairpin { get; set; }

    [Parameter] public SwitchParameter PassThru { get; set; }

    protected override void BeginProcessing()
    {
        if (Up && Down) ThrowTerminatingError(ToErrorRecord(new ContainerException("ConflictingParameters", ContainerErrorKind.InvalidArgument, "Give -Up or -Down, not both.")));
        if (Master is not null && NoMaster) ThrowTerminatingError(ToErrorRecord(new ContainerException("ConflictingParameters", ContainerErrorKind.InvalidArgument, "Give -Master or -NoMaster, not both.")));
        if (new[] { DestinationNamespace is not null, DestinationContainer is not null, DestinationHost.IsPresent }.Count(b => b) > 1)
            ThrowTerminatingError(ToErrorRecord(new ContainerException("ConflictingParameters", ContainerErrorKind.InvalidArgument, "Give one of -DestinationNamespace, -DestinationContainer, -DestinationHost.")));
    }

    protected override void ProcessRecord()
    {
        foreach (var name in Name)
        {
            if (!ShouldProcess(Target(name), "Change link")) continue;
            WithClient(client =>
            {
                var changes = new LinkChanges
                {
                    Up = Up ? true : Down ? false : null,
                    NewName = NewName,
                    Master = NoMaster ? "" : Master,
                    Mtu = Mtu,
                    MacAddress = MacAddress,
                    Hairpin = Hairpin,
                    MoveTo = DestinationHost ? NetworkLocation.Host
                        : DestinationNamespace is not null || DestinationContainer is not null
                            ? ResolveLocation(DestinationNamespace, DestinationContainer, "DestinationNamespace", "DestinationContainer") : null,
                };
                client.SetLink(name, changes);
                if (!PassThru) return;
                if (changes.MoveTo is null) WriteObject(client.GetLink(NewName ?? name));
                else
                {
                    using var there = new NetworkClient(changes.MoveTo);
                    WriteObject(there.GetLink(NewName ?? name));
                }
            });
        }
    }
}

/// <summary>ip link delete.</summary>
[Cmdlet(VerbsCommon.Remove, "NetworkLink", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(void))]
public sealed class RemoveNetworkLinkCommand : NetworkCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(NetworkLinkNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string[] Name { get; set; } = Array.Empty<string>();

    private readonly List<string> _names = new();

    // Collected and deleted together at the end: the kernel then pays one RCU grace period for all.
    protected override void ProcessRecord()
    {
        foreach (var name in Name)
            if (ShouldProcess(Target(name), "Remove link")) _names.Add(name);
    }

    protected override void EndProcessing()
    {
        if (_names.Count == 0) return;
        WithClient(client =>
        {
            foreach (var missing in client.DeleteLinks(_names))
                WriteError(ToErrorRecord(new ContainerException("LinkNotFound", ContainerErrorKind.ObjectNotFound,
                    $"No link named {missing} exists in {client.Location.Label}. Get-NetworkLink lists the links.", missing)));
        });
        // The store's default bridge takes its NAT table with it.
        if (Namespace is null && Container is null)
            Try(() =>
            {
                var bridge = DefaultBridge.For(Manager.Store);
                if (_names.Contains(bridge.Settings.Name)) bridge.RemoveNatTable();
            });
    }
}

// ---- addresses ------------------------------------------------------------------------------------

/// <summary>ip addr add ADDRESS/PREFIX dev NAME.</summary>
[Cmdlet(VerbsCommon.Add, "NetworkAddress", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(NetworkAddress))]
public sealed class AddNetworkAddressCommand : NetworkCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(NetworkLinkNameCompleter))]
    public string Name { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string[] Address { get; set; } = Array.Empty<string>();

    [Parameter] public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var address in Address)
            if (ShouldProcess(Target(Name), $"Add address {address}"))
                WithClient(client =>
                {
                    client.AddAddress(Name, address);
                    if (PassThru)
                    {
                        var (ip, prefix) = NetworkClient.ParseCidr(address);
                        WriteObject(client.GetAddresses(Name).First(a => a.Address == ip.ToString() && a.PrefixLength == prefix));
                    }
                });
    }
}

/// <summary>ip addr show.</summary>
[Cmdlet(VerbsCommon.Get, "NetworkAddress")]
[OutputType(typeof(NetworkAddress))]
public sealed class GetNetworkAddressCommand : NetworkListCmdlet
{
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(NetworkLinkNameCompleter))]
    public string? Name { get; set; }

    protected override void ProcessRecord() => WithClient(client => WriteFamily(client.GetAddresses(Name), a => a.Family));
}

/// <summary>ip addr del ADDRESS/PREFIX dev NAME.</summary>
[Cmdlet(VerbsCommon.Remove, "NetworkAddress", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(void))]
public sealed class RemoveNetworkAddressCommand : NetworkCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(NetworkLinkNameCompleter))]
    public string Name { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
    [Alias("Cidr")]
    [ValidateNotNullOrEmpty]
    public string[] Address { get; set; } = Array.Empty<string>();

    protected override void ProcessRecord()
    {
        foreach (var address in Address)
            if (ShouldProcess(Target(Name), $"Remove address {address}")) WithClient(client => client.RemoveAddress(Name, address));
    }
}

// ---- routes ---------------------------------------------------------------------------------------

/// <summary>ip route add.</summary>
[Cmdlet(VerbsCommon.Add, "NetworkRoute", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(NetworkRoute))]
public sealed class AddNetworkRouteCommand : NetworkCmdlet
{
    /// <summary>network/prefix, or "default".</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Destination { get; set; } = "";

    [Parameter(Position = 1)]
    [ValidateNotNullOrEmpty]
    public string? Gateway { get; set; }

    [Parameter]
    [ArgumentCompleter(typeof(NetworkLinkNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string? Device { get; set; }

    [Parameter]
    [ValidateRange(0, int.MaxValue)]
    public int? Metric { get; set; }

    [Parameter] public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        if (ShouldProcess(Target(Destination), "Add route"))
            WithClient(client =>
            {
                client.AddRoute(Destination, Gateway, Device, Metric);
                if (PassThru) WriteObject(client.GetRoutes().Where(r => SameDestination(r.Destination, Destination)), enumerateCollection: true);
            });
    }

    internal static bool SameDestination(string a, string b)
    {
        if (a == b) return true;
        if (a == "default" || b == "default") return false;
        var (x, xp) = NetworkClient.ParseCidr(a);
        var (y, yp) = NetworkClient.ParseCidr(b);
        return xp == yp && NetworkClient.Network(x, xp).Equals(NetworkClient.Network(y, yp));
    }
}

/// <summary>ip route show (the main table).</summary>
[Cmdlet(VerbsCommon.Get, "NetworkRoute")]
[OutputType(typeof(NetworkRoute))]
public sealed class GetNetworkRouteCommand : NetworkListCmdlet
{
    protected override void ProcessRecord() => WithClient(client => WriteFamily(client.GetRoutes(), r => r.Family));
}

/// <summary>ip route del.</summary>
[Cmdlet(VerbsCommon.Remove, "NetworkRoute", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(void))]
public sealed class RemoveNetworkRouteCommand : NetworkCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string Destination { get; set; } = "";

    [Parameter(Position = 1, ValueFromPipelineByPropertyName = true)]
    public string? Gateway { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(NetworkLinkNameCompleter))]
    public string? Device { get; set; }

    protected override void ProcessRecord()
    {
        if (ShouldProcess(Target(Destination), "Remove route")) WithClient(client => client.RemoveRoute(Destination, Gateway, Device));
    }
}

// ---- neighbours -----------------------------------------------------------------------------------

/// <summary>ip neigh show: the ARP/NDP cache.</summary>
[Cmdlet(VerbsCommon.Get, "NetworkNeighbor")]
[OutputType(typeof(NetworkNeighbor))]
public sealed class GetNetworkNeighborCommand : NetworkListCmdlet
{
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(NetworkLinkNameCompleter))]
    public string? Name { get; set; }

    protected override void ProcessRecord() => WithClient(client => WriteFamily(client.GetNeighbors(Name), n => n.Family));
}

// ---- non-root users' veths ------------------------------------------------------------------------

/// <summary>
/// Installs psc-usernic (lxc-user-nic) privileged: a root-owned copy with the file capability
/// cap_net_admin+ep, or setuid root with -Setuid. Root runs it once; non-root users' containers
/// then get veths on the bridges /etc/pscontainers/usernet grants them.
/// </summary>
[Cmdlet(VerbsLifecycle.Install, "ContainerUserNic", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(FileInfo))]
public sealed class InstallContainerUserNicCommand : PSCmdlet
{
    /// <summary>Where to install it (default /usr/local/libexec/pscontainers/psc-usernic, where the runtime looks; elsewhere set $env:PSC_USERNIC for the users).</summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = UserNic.DefaultPath;

    /// <summary>Setuid root instead of the file capability (for filesystems without extended attributes).</summary>
    [Parameter]
    public SwitchParameter Setuid { get; set; }

    /// <summary>Writes the installed file.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        var destination = GetUnresolvedProviderPathFromPSPath(Path);
        var how = Setuid ? "setuid root" : "with the file capability cap_net_admin+ep";
        if (!ShouldProcess(destination, $"Install psc-usernic {how}")) return;
        CmdletErrors.Try(this, () =>
        {
            UserNic.Install(UserNic.ShippedPath, destination, Setuid);
            if (PassThru) WriteObject(new FileInfo(destination));
        }, ioErrorId: "UserNicInstallFailed");
    }
}
