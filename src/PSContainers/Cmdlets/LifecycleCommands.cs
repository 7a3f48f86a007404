using System.Management.Automation;
using PSContainers.Runtime.Containers;

namespace PSContainers.Cmdlets;

/// <summary>lxc-start -d: starts the container's init in new namespaces under its own supervisor.</summary>
[Cmdlet(VerbsLifecycle.Start, "Container", SupportsShouldProcess = true)]
[OutputType(typeof(ContainerInfo))]
public sealed class StartContainerCommand : ThrottledCmdlet
{
    protected override void ProcessRecord() => ForEachContainer("Start container", (manager, name) => manager.Start(name));
}

/// <summary>Stop-Container and Restart-Container: how a running container is ended.</summary>
public abstract class StopCmdlet : ThrottledCmdlet
{
    /// <summary>Seconds to wait for a clean shutdown before killing (default: the config's stop.timeout).</summary>
    [Parameter]
    [ValidateRange(0, 86400)]
    public int? Timeout { get; set; }

    /// <summary>Kill every process of the container right away (lxc-stop -k).</summary>
    [Parameter]
    public SwitchParameter Kill { get; set; }

    protected TimeSpan? Grace => Timeout is { } t ? TimeSpan.FromSeconds(t) : null;
}

/// <summary>lxc-stop: the stop signal, then after -Timeout seconds SIGKILL to everything; -Kill at once.</summary>
[Cmdlet(VerbsLifecycle.Stop, "Container", SupportsShouldProcess = true)]
[OutputType(typeof(ContainerInfo))]
public sealed class StopContainerCommand : StopCmdlet
{
    protected override void ProcessRecord() =>
        ForEachContainer(Kill ? "Kill container" : "Stop container", (manager, name) =>
        {
            var info = manager.Stop(name, Grace, Kill);
            // An ephemeral container goes once it stopped (lxc-stop of an lxc-copy -e container).
            new PSContainers.Runtime.Storage.StorageManager(manager).ReapEphemeral(name);
            return info;
        });
}

/// <summary>lxc-stop -r: stop (if running) and start again.</summary>
[Cmdlet(VerbsLifecycle.Restart, "Container", SupportsShouldProcess = true)]
[OutputType(typeof(ContainerInfo))]
public sealed class RestartContainerCommand : StopCmdlet
{
    protected override void ProcessRecord() =>
        ForEachContainer("Restart container", (manager, name) => manager.Restart(name, Grace, Kill));
}

/// <summary>lxc-destroy: removes the container, its rootfs and cgroups; -Force stops it first.</summary>
[Cmdlet(VerbsCommon.Remove, "Container", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(void))]
public sealed class RemoveContainerCommand : NameCmdlet
{
    /// <summary>Kill a running or frozen container and remove it.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void ProcessRecord() => ForEachContainer("Remove container", name =>
    {
        var clones = Force ? PSContainers.Runtime.Backends.StorageBackends.DependentClones(Manager.Store, name) : Array.Empty<string>();
        Manager.Remove(name, Force);
        if (clones.Count > 0) WriteWarning($"Removed '{name}', the base of the snapshot clones {string.Join(", ", clones)}: they no longer start.");
    });
}

/// <summary>lxc-freeze: freezes every process of the container through its cgroup.</summary>
[Cmdlet(VerbsLifecycle.Suspend, "Container", SupportsShouldProcess = true)]
[OutputType(typeof(ContainerInfo))]
public sealed class SuspendContainerCommand : PassThruCmdlet
{
    /// <summary>Seconds to wait for the freeze to complete before thawing again and failing.</summary>
    [Parameter]
    [ValidateRange(1, 3600)]
    public int Timeout { get; set; } = 10;

    protected override void ProcessRecord() => ForEachContainer("Freeze container", name => Emit(Manager.Freeze(name, TimeSpan.FromSeconds(Timeout))));
}

/// <summary>lxc-unfreeze.</summary>
[Cmdlet(VerbsLifecycle.Resume, "Container", SupportsShouldProcess = true)]
[OutputType(typeof(ContainerInfo))]
public sealed class ResumeContainerCommand : PassThruCmdlet
{
    protected override void ProcessRecord() => ForEachContainer("Thaw container", name => Emit(Manager.Thaw(name)));
}
