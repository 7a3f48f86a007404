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
    void Starting(ContainerStartContext context);
    void Stopped(string name, ContainerConfig config);

    /// <summary>
    /// The container is being removed (under its lock, its directory still in place): what the hook
    /// keeps for it outside a run goes. A failure here does not stop the removal; it is reported as a warning.
    /// </summary>
    void Removed(string name);
}
