using PSContainers.Runtime.Config;

namespace PSContainers.Runtime.Containers;

/// <summary>What a hook knows about a starting container.</summary>
public sealed record ContainerStartContext(string Name, ContainerConfig Config, int SupervisorPid, int InitPid);

/// <summary>
/// Host-side set-up that needs the container's namespaces but must be done before its init runs
/// (network interfaces, like LXC's lxc.net.*), and its undoing. Hooks run in order while init waits;
/// <see cref="Stopped"/> runs in reverse order after a stop, and after a failed start for every hook
/// whose <see cref="Starting"/> was called (also the one that failed, to undo what it did half-way),
/// so <see cref="Stopped"/> must be idempotent.
/// </summary>
public interface IContainerHook
{
    /// <summary>
    /// Before anything of the run exists (no cgroup, no namespaces, no supervisor): LXC's pre-start.
    /// A throw aborts the start, and there is nothing to undo.
    /// </summary>
    void BeforeLaunch(string name, ContainerConfig config) { }

    /// <summary>Adds to a start's spec what psc-helper carries out for the hook (in init, or in the supervisor once init has ended).</summary>
    void Preparing(string name, ContainerConfig config, Namespaces.StartSpec spec) { }

    /// <summary>
    /// Adds to a CRIU restore's spec what its supervisor carries out for the hook once the restored
    /// init has ended (nothing of init is made anew: what a start does inside it has no place here).
    /// A restore calls <see cref="BeforeLaunch"/> first, as a start does.
    /// </summary>
    void Restoring(string name, ContainerConfig config, Namespaces.RestoreSpec spec) { }

    /// <summary>The error of a start whose helper failed because of this hook (from its message), or null: not the hook's.</summary>
    ContainerException? StartFailed(string name, string helperError) => null;

    void Starting(ContainerStartContext context);
    void Stopped(string name, ContainerConfig config);

    /// <summary>
    /// The container is being removed (under its lock, its directory still in place): what the hook
    /// keeps for it outside a run goes. A failure here does not stop the removal; it is reported as a warning.
    /// </summary>
    void Removed(string name);
}
