using System.Management.Automation;
using PSContainers.Infrastructure;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Storage;

namespace PSContainers.Cmdlets;

/// <summary>
/// Renames a stopped container (lxc-copy -R, lxc-rename): its directory, snapshots, clones that
/// use it as their base, its bridge address lease and /etc/hostname follow; all or nothing.
/// </summary>
[Cmdlet(VerbsCommon.Rename, "Container", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(ContainerInfo))]
public sealed class RenameContainerCommand : ContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string Name { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string NewName { get; set; } = "";

    /// <summary>Write the renamed container.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        if (!ShouldProcess(Name, $"Rename container to '{NewName}'")) return;
        Try(() =>
        {
            var info = new ContainerRenamer(Manager).Rename(Name, NewName);
            if (PassThru) WriteObject(info);
        });
    }
}
