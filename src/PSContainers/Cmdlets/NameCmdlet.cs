using System.Management.Automation;
using PSContainers.Infrastructure;
using PSContainers.Runtime.Containers;

namespace PSContainers.Cmdlets;

/// <summary>A cmdlet acting on containers named by -Name (wildcards allowed) or piped container objects.</summary>
public abstract class NameCmdlet : ContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Name { get; set; } = Array.Empty<string>();

    /// <summary>Runs <paramref name="action"/> for each resolved name that ShouldProcess approves.</summary>
    protected void ForEachContainer(string operation, Action<string> action)
    {
        foreach (var name in ResolveNames(Name))
            if (ShouldProcess(name, operation)) Try(() => action(name));
    }
}

/// <summary>A state-changing cmdlet with -PassThru (like Hyper-V's Start-VM).</summary>
public abstract class PassThruCmdlet : NameCmdlet
{
    /// <summary>Write the container object after the operation.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected void Emit(ContainerInfo info)
    {
        if (PassThru) WriteObject(info);
    }
}
