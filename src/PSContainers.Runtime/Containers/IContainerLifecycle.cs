using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.IdMapping;
using PSContainers.Runtime.Launcher;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.State;

namespace PSContainers.Runtime.Containers;

/// <summary>A container's recorded run and its live status, as the kernel shows it now.</summary>
public sealed record ContainerRun(PersistedState State, ContainerStatus Status);

/// <summary>
/// What the operations built on the lifecycle (checkpoint, storage, migration, limits) use of it:
/// the one way they reach a container's runs. <see cref="ContainerManager"/> implements it.
/// </summary>
public interface IContainerLifecycle
{
    ContainerStore Store { get; }
    /// <summary>Whom the lifecycle acts for: root or not, ids, delegation.</summary>
    Host.HostContext Host { get; }
    CgroupManager Cgroups { get; }
    /// <summary>Where a new unprivileged container's default id map comes from.</summary>
    SubordinateIdDatabase SubordinateIds { get; }

    /// <summary>The store's event journal; <see cref="Emit"/> records one (Rename-Container, checkpoints and limits use it).</summary>
    Events.EventJournal Events { get; }
    void Emit(string name, ContainerEventKind kind, params (string Key, string Value)[] details);

    /// <summary>The hooks of a run (network, LXC's hooks): a restore gives them its part as a start does.</summary>
    List<IContainerHook> Hooks { get; }

    bool Exists(string name);
    /// <summary>Reads the container as it is now; no side effects.</summary>
    ContainerInfo Get(string name);
    ContainerInfo Start(string name);
    ContainerInfo Stop(string name, TimeSpan? timeout = null, bool kill = false);
    void Remove(string name, bool force = false);
    void EnsureStoreSecure();

    /// <summary>Under the container's lock, first: finishes what an interrupted command left (see ContainerManager.RecoverLocked).</summary>
    void RecoverLocked(string name);
    /// <summary>Removes temporaries of killed commands from the store.</summary>
    void CleanStaleTemp();
    /// <summary>The run as recorded and its live status (under the lock, after <see cref="RecoverLocked"/>).</summary>
    ContainerRun Inspect(string name);
    /// <summary>The container's root filesystem: the config's, else the store's.</summary>
    string RootfsOf(string name, ContainerConfig? config);

    /// <summary>Export-Container -Force: freezes a running container, so that a killed export's freeze is undone.</summary>
    bool FreezeForExport(string name);
    void ThawAfterExport(string name);

    /// <summary>Init's start plan (see ContainerManager.PlanStart); a restore hands it to the supervisor for restarts by policy.</summary>
    void PlanStart(StartSpec spec, string name, ContainerConfig config, string rootfs, string? cgroupPath);
    /// <summary>The one launch path (start and restore): see ContainerManager.Launch.</summary>
    void Launch<TSpec>(string name, ContainerConfig config, PersistedState state, LaunchRequest<TSpec> request) where TSpec : HelperSpec, ISupervisedSpec;

    /// <summary>Before a dump that ends the processes: the state names the checkpoint, so a killed dump is not taken for a crash.</summary>
    void RecordCheckpointPending(string name, PersistedState state, string? directory, bool save);
    /// <summary>
    /// After a dump that ended the processes: the run ends as Stop-Container ends it, recorded as a
    /// checkpoint (with <paramref name="savedCheckpoint"/> the container is Saved).
    /// </summary>
    void RecordCheckpointStop(string name, ContainerConfig config, PersistedState state, string? savedCheckpoint);
}

/// <summary>How one launch runs psc-helper: the start of init, or CRIU's restore.</summary>
public sealed class LaunchRequest<TSpec> where TSpec : HelperSpec, ISupervisedSpec
{
    /// <summary>The helper command's spec (a start or a restore); the launch sets its console, records and cgroups.</summary>
    public required TSpec Spec { get; init; }
    /// <summary>Adds this launch's part to the spec (console, records and cgroups are set); the cgroup path is null without a cgroup.</summary>
    public required Action<TSpec, string?> Prepare { get; init; }
    /// <summary>Runs psc-helper; on success its first output line is a <see cref="HelperProtocol.Started"/>.</summary>
    public required Func<TSpec, HelperResult> Run { get; init; }
    /// <summary>The error of a launch whose helper failed.</summary>
    public required Func<HelperResult, ContainerException> Failed { get; init; }
    /// <summary>
    /// After a failure: whether <see cref="Run"/> got as far as the host side of the container's
    /// network (CRIU recreates veth host ends itself), so the hooks' Stopped must undo it. A start
    /// runs its hooks inside <see cref="Run"/> and undoes them there.
    /// </summary>
    public Func<bool>? HostSideTouched { get; init; }
}

/// <summary>What the lifecycle asks of checkpoints; the composition root registers it (Checkpoint/ lives above the lifecycle).</summary>
public interface ICheckpointSupport
{
    /// <summary>Start-Container of a saved container: restores its checkpoint (under the lock) and discards the images.</summary>
    void ResumeSaved(IContainerLifecycle lifecycle, string name, ContainerConfig config, PersistedState state);
    /// <summary>A dump that was interrupted (a killed pwsh) but whose images CRIU completed: the processes are gone, the checkpoint is theirs.</summary>
    bool DumpFinishedButUnrecorded(string directory);
}
