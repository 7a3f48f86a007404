using System.Management.Automation;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.State;

namespace PSContainers.Cmdlets;

/// <summary>lxc-wait: blocks until the container reaches a state, or fails after -Timeout seconds.</summary>
[Cmdlet(VerbsLifecycle.Wait, "Container")]
[OutputType(typeof(ContainerInfo))]
public sealed class WaitContainerCommand : NameCmdlet
{
    [Parameter(Mandatory = true, Position = 1)]
    [ValidateSet("Running", "Stopped", "Frozen")]
    public ContainerStatus State { get; set; }

    /// <summary>Seconds to wait; -1 waits forever.</summary>
    [Parameter]
    [ValidateRange(-1, int.MaxValue)]
    public int Timeout { get; set; } = 30;

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    private readonly CancellationTokenSource _cancel = new();

    protected override void ProcessRecord()
    {
        var timeout = Timeout < 0 ? TimeSpan.FromDays(3650) : TimeSpan.FromSeconds(Timeout);
        foreach (var name in ResolveNames(Name))
            Try(() =>
            {
                ContainerInfo info;
                try { info = Manager.Wait(name, State, timeout, _cancel.Token); }
                catch (OperationCanceledException) { throw new PipelineStoppedException(); }
                if (PassThru) WriteObject(info);
            });
    }

    protected override void StopProcessing() => _cancel.Cancel();
}
