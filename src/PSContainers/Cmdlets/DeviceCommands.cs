using System.Management.Automation;
using PSContainers.Infrastructure;
using PSContainers.Runtime.Devices;

namespace PSContainers.Cmdlets;

/// <summary>
/// Gives a host device node to a container (lxc-device add): bound into its /dev and allowed in its
/// device cgroup while it runs; -Persist records it in config.yaml for every start.
/// </summary>
[Cmdlet(VerbsCommon.Add, "ContainerDevice", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(ContainerDevice))]
public sealed class AddContainerDeviceCommand : ContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    [Alias("Container")]
    [ValidateNotNullOrEmpty]
    public string Name { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Destination { get; set; }

    [Parameter]
    public SwitchParameter Persist { get; set; }

    protected override void ProcessRecord()
    {
        var dest = Destination ?? Path;
        if (!ShouldProcess(Name, $"Add device '{Path}' as '{dest}'{(Persist ? " (and record it in config.yaml)" : "")}")) return;
        Try(() => WriteObject(new ContainerDevices(Manager).Add(Name, Path, Destination, Persist)));
    }
}

/// <summary>
/// Takes a device node out of a container (lxc-device del): unmounted from its /dev and denied in
/// its device cgroup while it runs; -Persist also removes it from config.yaml.
/// </summary>
[Cmdlet(VerbsCommon.Remove, "ContainerDevice", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(ContainerDevice))]
public sealed class RemoveContainerDeviceCommand : ContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    [Alias("Container")]
    [ValidateNotNullOrEmpty]
    public string Name { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string? Destination { get; set; }

    [Parameter]
    public SwitchParameter Persist { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        var dest = Destination ?? Path;
        if (!ShouldProcess(Name, $"Remove device '{Path}' at '{dest}'{(Persist ? " (and from config.yaml)" : "")}")) return;
        Try(() =>
        {
            var removed = new ContainerDevices(Manager).Remove(Name, Path, Destination, Persist);
            if (PassThru) WriteObject(removed);
        });
    }
}
