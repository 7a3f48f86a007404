using PSContainers.Runtime.Checkpoint;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Native;
using PSContainers.Runtime.State;

namespace PSContainers.Runtime.Containers;

/// <summary>
/// The lifecycle steps checkpoint/restore shares with start and stop (Checkpoint/CheckpointManager
/// drives CRIU; the bookkeeping of a container's runs stays here, in one place).
/// </summary>
public sealed partial class ContainerManager
{
    internal PersistedState LoadStateOf(string name) => LoadState(name);

    internal ContainerStatus StatusOf(string name, PersistedState state) => Observe(name, state).Status;

    internal ContainerInfo DescribeOf(string name, ContainerConfig config, PersistedState state) => Describe(name, config, state);

    internal string RootfsPathOf(string name, ContainerConfig config) => RootfsOf(name, config);

    internal void CreateCgroupFor(string name, string cgroupPath, ContainerConfig config) => PrepareCgroup(name, cgroupPath, config);

    /// <summary>Undoes the host side of a container's network (veth host ends) after a failed restore.</summary>
    internal void UndoHooks(string name, ContainerConfig config) => RunStoppedHooks(Hooks, name, config);

    /// <summary>
    /// After a dump without LeaveRunning CRIU has killed the processes: finish the stop the way
    /// Stop-Container does, but record a checkpoint, not a crash (no exit code, and the supervisor's
    /// "signaled 9" record is discarded). With <paramref name="savedCheckpoint"/> the container is Saved.
    /// </summary>
    internal void RecordCheckpointStop(string name, ContainerConfig config, PersistedState state, string? savedCheckpoint)
    {
        if (!WaitStopped(state, TimeSpan.FromSeconds(10)))
            throw new ContainerException("StopTimeout", ContainerErrorKind.OperationTimeout,
                $"Container '{name}' was checkpointed, but its init (pid {state.InitPid}) did not go away within 10 s.", name);
        if (state.CgroupPath is { } cgroup && Cgroups.Exists(cgroup))
        {
            if (Cgroups.AllPids(cgroup).Count > 0) Cgroups.KillAll(cgroup);
            Cgroups.RemoveContainer(cgroup);
        }
        RunStoppedHooks(Hooks, name, config);
        File.Delete(Store.ExitRecordPath(name));
        File.Delete(Store.RunRecordPath(name));
        state.SupervisorPid = null;
        state.SupervisorStartTime = null;
        state.InitPid = null;
        state.InitStartTime = null;
        state.CgroupPath = null;
        state.StoppedAt = DateTimeOffset.Now;
        state.ExitCode = null;
        state.ExitSignal = null;
        state.StopReason = ContainerStopReason.Checkpointed;
        state.SavedCheckpoint = savedCheckpoint;
        state.PendingCheckpoint = null;
        state.Save(Store.StatePath(name));
    }

    /// <summary>Before a dump that ends the processes: the state names the checkpoint (see <see cref="PersistedState.PendingCheckpoint"/>).</summary>
    internal void RecordCheckpointPending(string name, PersistedState state, string directory, bool save)
    {
        state.PendingCheckpoint = directory;
        if (save) state.SavedCheckpoint = directory;
        state.Save(Store.StatePath(name));
    }

    /// <summary>The dump failed and CRIU let the processes run on: forget the pending checkpoint.</summary>
    internal void ClearCheckpointPending(string name, PersistedState state)
    {
        state.PendingCheckpoint = null;
        state.SavedCheckpoint = null;
        state.Save(Store.StatePath(name));
    }

    /// <summary>An init (started, or restored by CRIU) now runs under its supervisor: record it. A null
    /// cgroup path: it runs without a cgroup of its own (a caller without a delegated subtree).</summary>
    internal void RecordRunning(string name, PersistedState state, int supervisor, int init, string? cgroupPath)
    {
        state.SupervisorPid = supervisor;
        state.SupervisorStartTime = Sys.ProcessStartTime(supervisor);
        state.InitPid = init;
        state.InitStartTime = Sys.ProcessStartTime(init);
        state.StartedAt = DateTimeOffset.Now;
        state.StoppedAt = null;
        state.ExitCode = null;
        state.ExitSignal = null;
        state.StopReason = null;
        state.CgroupPath = cgroupPath;
        state.SavedCheckpoint = null;
        state.PendingCheckpoint = null;
        state.Save(Store.StatePath(name));
    }

    /// <summary>Start-Container of a saved container: restore its checkpoint (and discard it).</summary>
    private (ContainerConfig, PersistedState) RestoreSavedLocked(string name, ContainerConfig config, PersistedState state)
    {
        new CheckpointManager(this).RestoreLocked(name, state.SavedCheckpoint!, config, state, deleteImages: true, progress: null);
        return (config, LoadState(name));
    }
}
