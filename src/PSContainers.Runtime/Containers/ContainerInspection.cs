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
/// Reading containers as they are (Get-Container, Wait-Container, what checkpoints ask): the status
/// is derived from the recorded pids, the kernel and the supervisor's exit and run records, never
/// from memory. Reading has no side effects (a command that changes the container makes them permanent, see <see cref="ContainerManager.RecoverLocked"/>).
/// </summary>
internal sealed class ContainerInspection : ContainerOperation
{
    public ContainerInspection(ContainerManager manager) : base(manager) { }

    public ContainerInfo Get(string name)
    {
        ContainerNames.Validate(name);
        if (!Store.Exists(name)) throw NotFound(name);
        return Describe(name);
    }

    public IEnumerable<ContainerInfo> List()
    {
        foreach (var name in Store.ListNames())
        {
            ContainerInfo info;
            try { info = Describe(name); }
            catch (ContainerException) when (!Store.Exists(name)) { continue; } // removed meanwhile
            catch (ContainerException ex) { info = BrokenInfo(name, ex.Message); }
            yield return info;
        }
    }

    /// <summary>The container object; an operation that already loaded config and state passes them in.</summary>
    internal ContainerInfo Describe(string name, ContainerConfig? config = null, PersistedState? state = null)
    {
        string? problem = null;
        if (config is null)
        {
            // A config that cannot be read (bad YAML, over the limits, unreadable) leaves the container
            // listable, as Broken with the reason; one that vanished means it was removed meanwhile.
            // Read-only here: the parse is shared with the next listing (ConfigCache).
            try { config = ConfigCache.Load(Store.ConfigPath(name)); }
            catch (ContainerException ex) when (ex.ErrorId == "ConfigNotFound" || !Store.Exists(name)) { throw NotFound(name); }
            catch (ContainerException ex) { problem = ex.Message; }
            catch (FileNotFoundException) { throw NotFound(name); }
            catch (DirectoryNotFoundException) { throw NotFound(name); }
        }
        if (state is null)
        {
            try { state = LoadState(name); }
            catch (ContainerException ex) when (ex.ErrorId == "CorruptState") { return BrokenInfo(name, ex.Message); }
        }
        var live = Observe(name, state);
        var running = live.Status is ContainerStatus.Running or ContainerStatus.Frozen && state.InitPid is not null;
        // Ended on its own (the supervisor's record, not yet folded in by a stop), or as the last stop recorded.
        var (stopReason, exitCode, exitSignal) = live.Exit is { } ended ? Classify(ended)
            : live.Status is ContainerStatus.Stopped or ContainerStatus.Saved ? (state.StopReason, state.ExitCode, state.ExitSignal) : (null, null, null);
        // The supervisor's run record counts the restarts of the run (also one that ended and is not yet folded in by a stop).
        var run = state.SupervisorPid is not null ? RunRecord.Read(Store.RunRecordPath(name)) : null;
        if (run is not null && !run.IsRecordedIn(state)) run = null;
        var restarts = run?.Restarts ?? state.Restarts ?? 0;
        // Since init's last (re)start: a restart by policy writes the run record anew.
        var upSince = run is { Restarts: > 0 } ? run.Time : state.StartedAt;
        var lastExit = running ? LastExitOfRestart(run?.LastExit) : LastExitText(stopReason, exitCode, exitSignal);
        var (ipv4, ipv6) = running && config is not null && !NetworkPlan.SharesHostNetwork(config)
            ? NetworkPlan.Addresses(state.InitPid!.Value) : (Array.Empty<string>(), Array.Empty<string>());
        return new ContainerInfo
        {
            IPv4 = ipv4,
            IPv6 = ipv6,
            Name = name,
            State = problem is not null && live.Status is ContainerStatus.Stopped or ContainerStatus.Saved ? ContainerStatus.Broken : live.Status,
            Problem = problem,
            Pid = live.Status is ContainerStatus.Running or ContainerStatus.Frozen ? state.InitPid : null,
            SupervisorPid = live.SupervisorAlive ? state.SupervisorPid : null,
            Path = Store.ContainerDirectory(name),
            Template = config?.Template,
            Image = config?.Oci is { } oci ? ContainerInfo.ImageReference(oci) : null,
            Hostname = config?.Hostname ?? name,
            Mode = config is null ? null : ContainerModes.Of(config),
            HostIdRange = ContainerModes.HostIdRange(config?.IdMap),
            Created = state.Created,
            StartedAt = state.StartedAt,
            StoppedAt = live.Exit?.Time ?? state.StoppedAt,
            StopReason = stopReason,
            Uptime = running && upSince is { } since ? DateTimeOffset.Now - since : null,
            Restarts = restarts,
            LastExit = lastExit,
            ExitCode = exitCode,
            ExitSignal = exitSignal is { } sig ? Signals.Name(sig) : null,
            MemoryLimit = config?.Limits.Memory,
            RootfsPath = RootfsOf(name, config),
            ConfigPath = Store.ConfigPath(name),
            ConsoleLogPath = Store.ConsoleLogPath(name),
            CgroupPath = live.Status is ContainerStatus.Running or ContainerStatus.Frozen ? state.CgroupPath : null,
            StorePath = Store.Root,
            Command = config is null ? Array.Empty<string>() : InitCommand(config).ToArray(),
            SeccompProfile = config?.Security.SeccompProfile,
            DroppedCapabilities = config is null ? Array.Empty<string>() : Security.Capabilities.NamesOf(Security.Capabilities.DropMask(config.Security.CapabilitiesDrop, config.Security.CapabilitiesKeep, Containers.SecurityPlan.IsSystemContainer(config))),
            Autostart = config?.Autostart.Enabled ?? false,
            AutostartOrder = config?.Autostart.Order ?? 0,
            AutostartDelay = config?.Autostart.Delay ?? 0,
            Groups = config?.Autostart.Groups.ToArray() ?? Array.Empty<string>(),
        };
    }

    /// <summary>How init last ended, in words: "exit code 3", "signal SIGSEGV", "OOM kill", "stopped"...; null if it never ended.</summary>
    private static string? LastExitText(ContainerStopReason? reason, int? code, int? signal) => reason switch
    {
        ContainerStopReason.Requested => "stopped",
        ContainerStopReason.Killed => "killed",
        ContainerStopReason.Exited or ContainerStopReason.Failed => $"exit code {code}",
        ContainerStopReason.PoweredOff => "powered off",
        ContainerStopReason.OomKilled => "OOM kill",
        ContainerStopReason.Crashed => signal is { } sig ? $"signal {Signals.Name(sig)}" : "crashed",
        ContainerStopReason.Checkpointed => "checkpointed",
        _ => null,
    };

    /// <summary>The end of the init before a restart by policy, as the supervisor's run record has it (exited:N, signaled:N, oom:N).</summary>
    private static string? LastExitOfRestart(string? recorded)
    {
        if (recorded is null || recorded.Split(':') is not [var how, var num] || !int.TryParse(num, out var n)) return null;
        return how switch { "exited" => $"exit code {n}", "signaled" => $"signal {Signals.Name(n)}", "oom" => "OOM kill", _ => null };
    }

    /// <summary>A container whose records cannot be read: what is known (its name and paths) and why.</summary>
    private ContainerInfo BrokenInfo(string name, string problem)
    {
        DateTimeOffset created = default;
        try { created = Directory.GetCreationTime(Store.ContainerDirectory(name)); } catch (IOException) { }
        return new ContainerInfo
        {
            Name = name,
            State = ContainerStatus.Broken,
            Problem = problem,
            Hostname = name,
            Created = created,
            Path = Store.ContainerDirectory(name),
            RootfsPath = Store.RootfsPath(name),
            ConfigPath = Store.ConfigPath(name),
            ConsoleLogPath = Store.ConsoleLogPath(name),
            StorePath = Store.Root,
        };
    }

    /// <summary>
    /// The state as recorded, and a run its supervisor recorded that state.json does not (the pwsh
    /// that started it was killed before it wrote it): while that supervisor or its init lives, what
    /// runs is the truth. Reading has no side effects; commands that change the container make it
    /// permanent, or undo an interrupted start, under the lock (<see cref="ContainerManager.RecoverLocked"/>).
    /// </summary>
    internal PersistedState LoadState(string name)
    {
        var state = LoadRecordedState(name);
        var run = RunRecord.Read(Store.RunRecordPath(name));
        if (run is { Released: true } && !run.IsRecordedIn(state)
            && (Sys.IsAlive(run.SupervisorPid, run.SupervisorStartTime) || Sys.IsAlive(run.InitPid, run.InitStartTime)))
            Adopt(name, state, run);
        else if (run is { Released: true } && run.IsRecordedIn(state) && run.InitPid != state.InitPid)
        {
            // The supervisor started init again by its restart policy: the run goes on with the new init.
            state.InitPid = run.InitPid;
            state.InitStartTime = run.InitStartTime;
        }
        return state;
    }

    /// <summary>Fills in the pids of a run recorded only by its supervisor (in memory; <see cref="ContainerManager.RecoverLocked"/> saves it).</summary>
    internal void Adopt(string name, PersistedState state, RunRecord run)
    {
        state.BeginRun(run.SupervisorPid, run.SupervisorStartTime, run.InitPid, run.InitStartTime, run.Time, CgroupPathFor(name));
    }

    internal PersistedState LoadRecordedState(string name)
    {
        try { return PersistedState.Load(Store.StatePath(name)); }
        catch (FileNotFoundException) { return new PersistedState { Created = Directory.GetCreationTime(Store.ContainerDirectory(name)) }; }
        catch (DirectoryNotFoundException) { throw NotFound(name); }
        catch (Exception ex) when (ex is System.Text.Json.JsonException or InvalidDataException)
        {
            // Only a hand edit can do this (writes are atomic). Say where, and how to recover.
            throw new ContainerException("CorruptState", ContainerErrorKind.InvalidData,
                $"The state file {Store.StatePath(name)} of container '{name}' is not valid ({ex.Message}). " +
                "If the container is not running, delete that file to reset its state.", name, ex);
        }
    }

    internal sealed record ExitRecord(int Code, int? Signal, DateTimeOffset Time, bool OomKilled = false);

    /// <summary>
    /// How an init that ended on its own is reported. The init of a pid namespace receives only the
    /// signals it has a handler for (pid_namespaces(7)), so SIGINT or SIGHUP as its end is the
    /// kernel's report of reboot(2) inside it (power-off/halt, restart): a clean shutdown, no code.
    /// </summary>
    internal static (ContainerStopReason?, int?, int?) Classify(ExitRecord exit) => exit.Signal switch
    {
        null => (exit.Code == 0 ? ContainerStopReason.Exited : ContainerStopReason.Failed, exit.Code, null),
        9 when exit.OomKilled => (ContainerStopReason.OomKilled, exit.Code, exit.Signal),
        2 or 1 => (ContainerStopReason.PoweredOff, null, null),
        _ => (ContainerStopReason.Crashed, exit.Code, exit.Signal),
    };

    internal sealed record Observation(ContainerStatus Status, bool SupervisorAlive, bool InitAlive, ExitRecord? Exit);

    /// <summary>Derives the live status from the persisted pids, the kernel and the exit record.</summary>
    internal Observation Observe(string name, PersistedState state)
    {
        if (state.SupervisorPid is null) return new Observation(state.SavedCheckpoint is null ? ContainerStatus.Stopped : ContainerStatus.Saved, false, false, null);
        var exit = ReadExitRecord(name);
        var supervisorAlive = Sys.IsAlive(state.SupervisorPid, state.SupervisorStartTime);
        var initAlive = Sys.IsAlive(state.InitPid, state.InitStartTime);
        // A checkpoint whose pwsh was killed while CRIU dumped: CRIU ended the processes (the
        // supervisor saw a SIGKILL), but that is a checkpoint, not a crash.
        if (!initAlive && state.PendingCheckpoint is { } pending && (Checkpoints?.DumpFinishedButUnrecorded(pending) ?? false))
            return new Observation(state.SavedCheckpoint == pending ? ContainerStatus.Saved : ContainerStatus.Stopped, supervisorAlive, false, null);
        if (exit is not null && !initAlive) return new Observation(ContainerStatus.Stopped, supervisorAlive, false, exit);
        if (!initAlive) return new Observation(supervisorAlive ? ContainerStatus.Running : ContainerStatus.Stopped, supervisorAlive, false, exit);
        var frozen = state.CgroupPath is not null && SafeIsFrozen(state.CgroupPath);
        return new Observation(frozen ? ContainerStatus.Frozen : ContainerStatus.Running, supervisorAlive, true, exit);
    }

    internal bool SafeIsFrozen(string cgroupPath)
    {
        try { return Cgroups.IsFrozen(cgroupPath); }
        catch (ContainerException) { return false; }
    }

    /// <summary>The supervisor's record of how init ended: "exited CODE TIME" or "signaled SIG TIME".</summary>
    internal ExitRecord? ReadExitRecord(string name)
    {
        string text;
        try { text = File.ReadAllText(Store.ExitRecordPath(name)).Trim(); }
        catch (FileNotFoundException) { return null; }
        catch (DirectoryNotFoundException) { return null; }
        var parts = text.Split(' ');
        if (parts.Length < 3 || !int.TryParse(parts[1], out var value) || !long.TryParse(parts[2], out var time)) return null;
        var when = DateTimeOffset.FromUnixTimeSeconds(time);
        return parts[0] == "signaled" ? new ExitRecord(128 + value, value, when, parts.Length > 3 && parts[3] == "oom") : new ExitRecord(value, null, when);
    }

    public ContainerRun Inspect(string name)
    {
        var state = LoadState(name);
        return new ContainerRun(state, Observe(name, state).Status);
    }

    public ContainerInfo Wait(string name, ContainerStatus desired, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ContainerNames.Validate(name);
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (!Store.Exists(name)) throw NotFound(name);
            var state = LoadState(name);
            var live = Observe(name, state);
            if (live.Status == desired) return Describe(name);
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
                throw new ContainerException("WaitTimeout", ContainerErrorKind.OperationTimeout,
                    $"Container '{name}' did not reach state {desired} within {timeout.TotalSeconds:0.#} s (it is {live.Status}).", name);
            cancellationToken.ThrowIfCancellationRequested();
            // Waiting for a stop: sleep on the supervisor's pidfd instead of polling.
            if (desired == ContainerStatus.Stopped && live.SupervisorAlive)
                Sys.WaitForExit(state.SupervisorPid!.Value, state.SupervisorStartTime!.Value, left < TimeSpan.FromMilliseconds(200) ? left : TimeSpan.FromMilliseconds(200));
            else
                Thread.Sleep(10);
        }
    }

    // ---- console ------------------------------------------------------------------------------

    /// <summary>
    /// The console log's lines, control characters rendered harmless (see <see cref="ConsoleText"/>)
    /// unless <paramref name="raw"/>; the last <paramref name="tail"/> only if given.
    /// </summary>
    public string[] ReadConsoleLog(string name, int? tail = null, bool raw = false)
    {
        using var reader = OpenConsoleLog(name, raw);
        var lines = reader.ReadLines(final: true);
        return tail is { } n && n < lines.Count ? lines.GetRange(lines.Count - n, n).ToArray() : lines.ToArray();
    }

    /// <summary>A reader of the console log that follows it as it grows (Get-ContainerConsoleLog -Wait).</summary>
    public ConsoleLogReader OpenConsoleLog(string name, bool raw = false)
    {
        ContainerNames.Validate(name);
        if (!Store.Exists(name)) throw NotFound(name);
        return new ConsoleLogReader(Store.ConsoleLogPath(name), raw);
    }

}
