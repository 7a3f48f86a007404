using System.Management.Automation;
using PSContainers.Infrastructure;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.State;
using PSContainers.Runtime.Storage;

namespace PSContainers.Cmdlets;

/// <summary>lxc-ls / lxc-info: containers of the store, with their live state.</summary>
[Cmdlet(VerbsCommon.Get, "Container")]
[OutputType(typeof(ContainerInfo))]
public sealed class GetContainerCommand : ContainerCmdlet
{
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Name { get; set; } = { "*" };

    /// <summary>Only containers in one of these states.</summary>
    [Parameter]
    public ContainerStatus[]? State { get; set; }

    protected override void ProcessRecord()
    {
        // Ephemeral containers that ended go first, as lxc-start's monitor would have removed them:
        // a step of this command, not of reading a container (ContainerManager.Get has no side effects).
        var patterns = Name.Select(n => new WildcardPattern(n, WildcardOptions.IgnoreCase)).ToArray();
        var storage = new StorageManager(Manager);
        foreach (var name in Manager.Names().Where(n => patterns.Any(p => p.IsMatch(n))).ToList()) storage.ReapEphemeral(name);
        foreach (var name in ResolveNames(Name))
            Try(() =>
            {
                var info = Manager.Get(name);
                if (State is not null && !State.Contains(info.State)) return;
                // Listed all the same, so that one damaged container never hides the others; the table
                // shows only "Broken", so say why once here (Format-List shows it as Problem).
                if (info.Problem is not null) WriteWarning($"Container '{name}' is {(info.State == ContainerStatus.Broken ? "broken" : "running, but its records are damaged")}: {info.Problem}");
                WriteObject(info);
            });
    }
}
