using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Native;
using PSContainers.Runtime.State;
using PSContainers.Runtime.UserNamespaces;
using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.Launcher;
using PSContainers.Runtime.Events;

namespace PSContainers.Runtime.Containers;

/// <summary>
/// Stop-Container and Restart-Container: the stop signal, the grace period, the kill, and how the
/// run ended recorded (requested, killed, or init's own end); and the end of a run a checkpoint dump
/// makes, recorded as a checkpoint rather than a crash.
/// </summary>
internal sealed class ContainerStop : ContainerOperation
{
    public ContainerStop(ContainerManager manager) : base(manager) { }

    private (ContainerConfig, PersistedState) StartLocked(string name) => Manager.Starting.StartLocked(name);

    /// <summary>Before a stop or a dump ends init: the marker its supervisor checks (see psc-helper restart.c).</summary>
    private void MarkStopRequested(string name)
    {
        try { File.WriteAllText(Store.StopMarkerPath(name), ""); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        { Warning?.Invoke($"Container '{name}': the stop marker could not be written ({ex.Message}); its supervisor may report the stop as a death, or restart it."); }
    }

    public void RecordCheckpointPending(string name, PersistedState state, string? directory, bool save)
    {
        state.PendingCheckpoint = directory;
        state.SavedCheckpoint = save ? directory : null;
        state.Save(Store.StatePath(name));
        // The dump ends init: asked for, so its supervisor neither reports it as died nor restarts it.
        // A dump that failed (the container runs on) takes it back.
        if (directory is not null) MarkStopRequested(name);
        else File.Delete(Store.StopMarkerPath(name));
    }

    /// <summary>
    /// After a dump without LeaveRunning CRIU has killed the processes: finish the stop the way
    /// Stop-Container does, but record a checkpoint, not a crash (no exit code, and the supervisor's
    /// "signaled 9" record is discarded).
    /// </summary>
    public void RecordCheckpointStop(string name, ContainerConfig config, PersistedState state, string? savedCheckpoint)
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
        state.EndRun(DateTimeOffset.Now);
        state.ExitCode = null;
        state.ExitSignal = null;
        state.StopReason = ContainerStopReason.Checkpointed;
        state.SavedCheckpoint = savedCheckpoint;
        state.PendingCheckpoint = null;
        state.Save(Store.StatePath(name));
    }

    public ContainerInfo Stop(string name, TimeSpan? timeout = null, bool kill = false)
    {
        ContainerNames.Validate(name);
        using var _ = Store.Lock(name);
        var (config, state) = StopLocked(name, timeout, kill);
        return Describe(name, config, state);
    }

    internal (ContainerConfig, PersistedState) StopLocked(string name, TimeSpan? timeout, bool kill)
    {
        var (config, state, live) = Current(name);
        if (live.Status is ContainerStatus.Stopped or ContainerStatus.Saved)
            throw new ContainerException("ContainerNotRunning", ContainerErrorKind.InvalidOperation,
                $"Container '{name}' is not running{(live.Status == ContainerStatus.Saved ? " (it is saved: Start-Container resumes it)" : "")}.", name);
        RequireAccess("stop", name, config);
        // Before any signal: the supervisor then knows init's end was asked for (no died event, no restart).
        MarkStopRequested(name);
        if (!live.InitAlive && live.SupervisorAlive && config.Restart.Policy != RestartPolicy.No)
        {
            // Between restarts (init down, its supervisor waiting out the backoff): SIGTERM ends the
            // waiting; a restart that raced with the marker is killed with the cgroup below.
            Sys.Kill(state.SupervisorPid!.Value, 15);
        }
        var cgroup = state.CgroupPath;
        // A frozen container cannot act on a signal: thaw it so it can shut down (or die).
        if (live.Status == ContainerStatus.Frozen && cgroup is not null) Cgroups.Thaw(cgroup);

        var stopped = false;
        // Init already gone by itself (the supervisor is finishing up): report how it ended, not a stop.
        var endedAlready = !live.InitAlive;
        if (!kill && live.InitAlive)
        {
            var signal = Signals.Parse(config.Stop.Signal ?? "SIGTERM");
            var grace = timeout ?? TimeSpan.FromSeconds(config.Stop.Timeout);
            var deadline = DateTime.UtcNow + grace;
            // pid 1 of a namespace drops every signal it neither catches nor blocks: a stop right
            // after a start could reach init before it set that up and be lost. Wait for the handler
            // for up to half the grace period (a fixed wait is too short on a loaded host, and the
            // other half is left for init to shut down once it has the signal).
            if (signal is not 9 and not 19)
                SpinWait.SpinUntil(() => Sys.AcceptsSignal(state.InitPid!.Value, signal), grace / 2);
            Verbose?.Invoke($"Stopping container '{name}': {Signals.Name(signal)} to init (pid {state.InitPid}), then SIGKILL to every process after {grace.TotalSeconds:0.#} s.");
            Sys.Kill(state.InitPid!.Value, signal);
            var left = deadline - DateTime.UtcNow;
            stopped = WaitStopped(state, left > TimeSpan.Zero ? left : TimeSpan.Zero, SupervisorHookTime(config));
            if (!stopped)
            {
                // The user asked for a clean stop and gets a kill: say so, with what to change.
                var message = $"Container '{name}' did not stop within {grace.TotalSeconds:0.#} s of {Signals.Name(signal)}: killing every process with SIGKILL. " +
                    "Give it longer with -Timeout (or stop.timeout in config.yaml), or check that stop.signal is the one its init shuts down on.";
                Verbose?.Invoke(message);
                Warning?.Invoke(message);
            }
        }
        else if (kill && live.InitAlive) Verbose?.Invoke($"Killing container '{name}': SIGKILL to every process (init pid {state.InitPid}).");
        var killedInit = false;
        if (!stopped)
        {
            // Killing init ends the pid namespace (the kernel kills the rest); the cgroup catches
            // anything that joined it from outside the namespace.
            killedInit = Sys.IsAlive(state.InitPid, state.InitStartTime);
            if (cgroup is not null && Cgroups.Exists(cgroup)) Cgroups.KillAll(cgroup);
            if (Sys.IsAlive(state.InitPid, state.InitStartTime)) Sys.Kill(state.InitPid!.Value, 9);
            if (!WaitStopped(state, TimeSpan.FromSeconds(10), SupervisorHookTime(config)))
                throw new ContainerException("StopTimeout", ContainerErrorKind.OperationTimeout,
                    $"Container '{name}' did not stop within 10 s of SIGKILL (init pid {state.InitPid}). A process may be stuck in the kernel (D state).", name);
        }
        if (cgroup is not null && !Cgroups.RemoveContainer(cgroup))
            throw new ContainerException("CgroupBusy", ContainerErrorKind.ResourceBusy,
                $"Container '{name}' stopped, but its cgroup {cgroup} could not be removed (processes still exiting?). Run Stop-Container -Kill again.", name);
        // A hook's failure (a stop hook the supervisor ran) is reported once the stop is recorded.
        Exception? hookFailure = null;
        try { RunStoppedHooks(Hooks, name, config); }
        catch (Exception ex) when (ex is ContainerException or AggregateException) { hookFailure = ex; }
        var exit = ReadExitRecord(name);
        var restarts = RunRecord.Read(Store.RunRecordPath(name)) is { } run && run.IsRecordedIn(state) ? run.Restarts : 0;
        state.EndRun(exit?.Time ?? DateTimeOffset.Now);
        state.Restarts = restarts;
        if (endedAlready && exit is not null)
            (state.StopReason, state.ExitCode, state.ExitSignal) = Classify(exit);
        else if (stopped && exit is not null && exit.Signal != 9)
        {
            // A clean stop that was asked for: whatever signal init's end reports (the stop signal,
            // or the SIGINT of busybox's power-off) is no failure. An exit code init chose is kept.
            state.StopReason = ContainerStopReason.Requested;
            state.ExitCode = exit.Signal is null ? exit.Code : null;
            state.ExitSignal = null;
        }
        else if (exit is null && !killedInit)
        {
            // Without the supervisor's record (it was killed) the exit status is unknown unless we
            // killed init ourselves: never made up. A stop that was asked for and happened is Requested.
            state.StopReason = stopped ? ContainerStopReason.Requested : null;
            state.ExitCode = null;
            state.ExitSignal = null;
        }
        else
        {
            // -Kill, the timeout ran out, or stop.signal is SIGKILL itself: a kill, with its code.
            state.StopReason = ContainerStopReason.Killed;
            state.ExitCode = exit?.Code ?? 128 + 9;
            state.ExitSignal = exit is null ? 9 : exit.Signal;
        }
        state.Save(Store.StatePath(name));
        File.Delete(Store.RunRecordPath(name));
        File.Delete(Store.StopMarkerPath(name));
        if (!endedAlready)
            Emit(name, ContainerEventKind.Stopped, ("reason", state.StopReason == ContainerStopReason.Killed ? "killed" : "requested"));
        if (hookFailure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(hookFailure);
        return (config, state);
    }

    /// <summary>
    /// Waits for init and its supervisor to be gone (the supervisor records the exit last); the
    /// supervisor gets <paramref name="finishing"/> more for the hooks it runs once init has ended.
    /// </summary>
    private static bool WaitStopped(PersistedState state, TimeSpan timeout, TimeSpan finishing = default)
    {
        var deadline = DateTime.UtcNow + timeout;
        if (finishing > TimeSpan.Zero && state.InitPid is { } i && state.InitStartTime is { } iStart && Sys.IsAlive(i, iStart)
            && !Sys.WaitForExit(i, iStart, timeout))
            return false;
        if (state.SupervisorPid is { } sup && state.SupervisorStartTime is { } supStart && Sys.IsAlive(sup, supStart))
        {
            var left = deadline - DateTime.UtcNow;
            return Sys.WaitForExit(sup, supStart, (left > TimeSpan.Zero ? left : TimeSpan.Zero) + finishing);
        }
        if (state.InitPid is { } init && state.InitStartTime is { } initStart && Sys.IsAlive(init, initStart))
            return Sys.WaitForExit(init, initStart, deadline - DateTime.UtcNow);
        return true;
    }

    /// <summary>The most the supervisor's stop, net-down and post-stop hooks can take (each is killed at its timeout).</summary>
    private static TimeSpan SupervisorHookTime(ContainerConfig config)
    {
        var hooks = config.Hooks;
        var total = TimeSpan.Zero;
        foreach (var h in hooks.Stop.Concat(hooks.PostStop)) total += hooks.TimeoutOf(h);
        foreach (var h in hooks.NetDown) total += hooks.TimeoutOf(h) * Math.Max(1, config.Network.Count);
        return total == TimeSpan.Zero ? total : total + TimeSpan.FromSeconds(2);
    }

    public ContainerInfo Restart(string name, TimeSpan? timeout = null, bool kill = false)
    {
        ContainerNames.Validate(name);
        using var _ = Store.Lock(name);
        var status = Observe(name, LoadState(name)).Status;
        if (status != ContainerStatus.Stopped) StopLocked(name, timeout, kill);
        var (config, state) = StartLocked(name);
        return Describe(name, config, state);
    }

}
