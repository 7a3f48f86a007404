using System.Collections;
using System.Management.Automation;
using PSContainers.Infrastructure;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Devices;

namespace PSContainers.Cmdlets;

/// <summary>
/// Gives a container a network interface (lxc-device add with an interface): made and configured in
/// the running container as its start would (address, gateway, MTU, MAC, name); -Persist appends it to
/// config.yaml's network list (required for a stopped container). The parameters are that list's keys.
/// </summary>
[Cmdlet(VerbsCommon.Add, "ContainerNetworkInterface", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(ContainerNetworkInterface))]
public sealed class AddContainerNetworkInterfaceCommand : ContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    [Alias("Container")]
    [ValidateNotNullOrEmpty]
    public string Name { get; set; } = "";

    [Parameter(Position = 1)]
    [ValidateSet("veth", "macvlan", "vlan", "ipvlan", "phys", "none", "empty", "pasta")]
    [ValidateNotNullOrEmpty]
    public string Type { get; set; } = "veth";

    [Parameter] [ValidateNotNullOrEmpty] public string? InterfaceName { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] public string? Link { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] public string? LinkNamespace { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] public string? HostName { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] public string? HwAddress { get; set; }
    [Parameter] public int? Mtu { get; set; }
    [Parameter] public SwitchParameter Down { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] public string[]? IPv4 { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] public string[]? IPv6 { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] public string? IPv4Gateway { get; set; }
    [Parameter] [ValidateNotNullOrEmpty] public string? IPv6Gateway { get; set; }
    [Parameter] [ValidateSet("private", "vepa", "bridge", "passthru")] public string? MacvlanMode { get; set; }
    [Parameter] public int? VlanId { get; set; }
    [Parameter] [ValidateSet("l2", "l3", "l3s")] public string? IpvlanMode { get; set; }

    [Parameter]
    public SwitchParameter Persist { get; set; }

    /// <summary>The NIC as config.yaml's network list spells it, read with that list's rules.</summary>
    private NicConfig Nic()
    {
        var keys = new Dictionary<string, object?> { ["type"] = Type };
        void Opt(string key, object? value) { if (value is not null) keys[key] = value; }
        Opt("name", InterfaceName);
        Opt("link", Link);
        Opt("linkNamespace", LinkNamespace);
        Opt("hostName", HostName);
        Opt("hwAddress", HwAddress);
        Opt("mtu", Mtu);
        if (Down) keys["up"] = false;
        Opt("ipv4", IPv4);
        Opt("ipv6", IPv6);
        Opt("ipv4Gateway", IPv4Gateway);
        Opt("ipv6Gateway", IPv6Gateway);
        Opt("macvlanMode", MacvlanMode);
        Opt("vlanId", VlanId);
        Opt("ipvlanMode", IpvlanMode);
        return ConfigLoader.ParseNetwork(new[] { keys })[0];
    }

    protected override void ProcessRecord()
    {
        var what = $"Add a {Type} interface{(InterfaceName is null ? "" : $" '{InterfaceName}'")}{(Link is null ? "" : $" on {Link}")}{(Persist ? " (and record it in config.yaml)" : "")}";
        if (!ShouldProcess(Name, what)) return;
        Try(() => WriteObject(new ContainerNetworkInterfaces(Manager).Add(Name, Nic(), Persist)));
    }
}

/// <summary>
/// Takes a network interface out of a container (lxc-device del with an interface): a veth's pair and
/// macvlan/vlan/ipvlan links deleted, a phys interface moved back to the host under its own name;
/// -Persist also removes it from config.yaml (required for a stopped container).
/// </summary>
[Cmdlet(VerbsCommon.Remove, "ContainerNetworkInterface", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(ContainerNetworkInterface))]
public sealed class RemoveContainerNetworkInterfaceCommand : ContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    [Alias("Container")]
    [ValidateNotNullOrEmpty]
    public string Name { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string InterfaceName { get; set; } = "";

    [Parameter]
    public SwitchParameter Persist { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        if (!ShouldProcess(Name, $"Remove interface '{InterfaceName}'{(Persist ? " (and from config.yaml)" : "")}")) return;
        Try(() =>
        {
            var removed = new ContainerNetworkInterfaces(Manager).Remove(Name, InterfaceName, Persist);
            if (PassThru) WriteObject(removed);
        });
    }
}
