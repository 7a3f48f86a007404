using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Native;
using PSContainers.Runtime.State;
using PSContainers.Runtime.UserNamespaces;
using PSContainers.Runtime.Launcher;

namespace PSContainers.Runtime.Containers;

/// <summary>
/// Start-Container, and the one launch path of a container's run that a CRIU restore shares: init's
/// plan (namespaces, rootfs, mounts, security), the container's cgroup, the supervisor's records,
/// the start hooks, and the run recorded, or undone when it cannot be.
/// </summary>
internal sealed class ContainerStart : ContainerOperation
{
    public ContainerStart(ContainerManager manager) : base(manager) { }

    public ContainerInfo Start(string name)
    {
        ContainerNames.Validate(name);
        using var _ = Store.Lock(name);
        var (config, state) = StartLocked(name);
        return Describe(name, config, state);
    }

    internal (ContainerConfig, PersistedState) StartLocked(string name)
    {
        var (config, state, live) = Current(name);
        if (live.Status is ContainerStatus.Running or ContainerStatus.Frozen)
            throw new ContainerException("ContainerAlreadyRunning", ContainerErrorKind.InvalidOperation,
                $"Container '{name}' is already {live.Status.ToString().ToLowerInvariant()} (init pid {state.InitPid}). Stop it first, or use Restart-Container.", name);
        RequireAccess("start", name, config);
        if (live.Status == ContainerStatus.Saved) return ResumeSavedLocked(name, config, state);
        var rootfs = RootfsOf(name, config);
        if (!Directory.Exists(rootfs))
            throw new ContainerException("RootfsNotFound", ContainerErrorKind.ObjectNotFound,
                $"The root filesystem of container '{name}' is missing: {rootfs}.", name);

        // LXC's pre-start: on the host, before anything of the run exists.
        foreach (var hook in Hooks) hook.BeforeLaunch(name, config);
        var hooked = new List<IContainerHook>();
        Launch(name, config, state, new LaunchRequest<StartSpec>
        {
            Spec = new StartSpec(),
            Prepare = (spec, cgroupPath) =>
            {
                PlanStart(spec, name, config, rootfs, cgroupPath);
                foreach (var hook in Hooks) hook.Preparing(name, config, spec);
            },
            Run = spec =>
            {
                HelperResult result;
                try
                {
                    result = PscHelper.Start(spec, Hooks.Count == 0 && (config.IdMap is null || Host.IsRoot) ? null : (supervisorPid, initPid) =>
                    {
                        // The maps first: everything else acts in namespaces that belong to them.
                        if (config.IdMap is { } map) UserNamespace.WriteMaps(initPid, map);
                        var context = new ContainerStartContext(name, config, supervisorPid, initPid);
                        foreach (var hook in Hooks)
                        {
                            // Added first: a hook that fails half-way gets its (idempotent) Stopped too.
                            hooked.Add(hook);
                            hook.Starting(context);
                        }
                    });
                    if (result.ExitCode != 0 || result.Output.Length == 0) RunStoppedHooks(hooked, name, config);
                }
                catch
                {
                    RunStoppedHooks(hooked, name, config);
                    throw;
                }
                return result;
            },
            Failed = result => Hooks.Select(h => h.StartFailed(name, string.Join(" ", result.Error).Trim())).FirstOrDefault(e => e is not null)
                ?? (result.Error.Any(l => l.Contains("write run record", StringComparison.Ordinal))
                ? new ContainerException("StartFailed", ContainerErrorKind.DeviceError,
                    $"Container '{name}' was not started: its supervisor could not record it ({string.Join(" ", result.Error).Trim()}), so init was never let go. Free space in {Store.Root} and start it again.", name)
                : new ContainerException("StartFailed", ContainerErrorKind.InvalidOperation,
                    $"Container '{name}' failed to start: {string.Join(" ", result.Error).Trim()}. " +
                    $"Check the init command ({string.Join(' ', InitCommand(config))}) exists in {rootfs}; the console log is {Store.ConsoleLogPath(name)}.", name)),
        });
        return (config, state);
    }

    /// <summary>
    /// What psc-helper start makes init from (namespaces, rootfs, command, mounts, security, restart
    /// policy), after <see cref="Launch{TSpec}"/> filled the supervisor's part. Also the plan a restored
    /// container's supervisor relaunches init from when its restart policy says so (Checkpoint/).
    /// </summary>
    public void PlanStart(StartSpec spec, string name, ContainerConfig config, string rootfs, string? cgroupPath)
    {
        spec.Namespaces = NetworkPlan.SharesHostNetwork(config) ? NamespaceKind.ContainerDefault & ~NamespaceKind.Network : NamespaceKind.ContainerDefault;
        spec.Rootfs = rootfs;
        spec.Hostname = config.Hostname ?? name;
        spec.WorkingDirectory = config.Init.WorkingDirectory;
        // init.user / init.group (an image's User): init drops to them last, with the user's groups from the container's own /etc/group.
        (spec.UserId, spec.GroupId) = ((uint?)config.Init.User, (uint?)config.Init.Group);
        if (config.Init.User is not null || config.Init.Group is not null)
        {
            using var view = Backends.StorageBackends.View(Store, name, config);
            using var root = Filesystem.InRoot.Open(view.Path, $"container '{name}'");
            spec.SupplementaryGroups.AddRange(ExecIdentities.ForInit(root, name, config).Select(g => g.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }
        if (config.Restart.Policy != RestartPolicy.No)
        {
            spec.RestartPolicy = config.Restart.Policy == RestartPolicy.Always ? "always" : "on-failure";
            spec.RestartMaxRetries = config.Restart.MaxRetries;
            spec.RestartBackoffMilliseconds = (long)config.Restart.Backoff.TotalMilliseconds;
        }
        spec.Command.AddRange(InitCommand(config));
        spec.Environment.AddRange(Environment(config));
        if (cgroupPath is not null)
        {
            // Init is born in the inner cgroup, the root of its cgroup namespace; the
            // supervisor removes both (inner first) when init is gone.
            var inner = CgroupManager.InnerOf(cgroupPath);
            spec.CgroupProcsFiles.AddRange(Cgroups.ProcsFiles(inner));
            spec.CgroupV2Directory = Cgroups.V2?.Directories(inner)[0];
        }
        if (config.IdMap is { } idMap)
        {
            UserNamespace.Prepare(spec, idMap);
            // Only root can reach into the container's network namespace from outside.
            spec.LoopbackUp = !Host.IsRoot;
            if (!Host.IsRoot) spec.LinksUp.AddRange(NetworkPlan.UserNicNames(config));
        }
        MountPlan.AddDefaults(spec, config);
        SystemContainerPlan.Apply(spec, config, Cgroups, cgroupPath);
        SecurityPlan.Apply(spec, config, attach: false);
        KernelSettingsPlan.Apply(spec, config, name);
        var storage = Backends.StorageBackends.Get(config.Storage.Backend);
        if (config.IdMap is not null && config.Storage.IsIdmapped && config.Rootfs is null)
            storage.IdmappedRoot(spec, Store.ContainerDirectory(name), config.Storage);
        else
            spec.RootMounts.AddRange(storage.RootMounts(Store.ContainerDirectory(name), config.Storage));
    }

    /// <summary>
    /// The one launch path of a container's run, shared by Start-Container and a CRIU restore: the
    /// cgroup (derived here only), the records of the last run cleared, the spec's console, records
    /// and cgroups, psc-helper run by the caller's <see cref="LaunchRequest{TSpec}.Run"/>, and the run
    /// recorded; a launch that fails leaves no cgroup behind, and one that cannot be recorded is undone.
    /// </summary>
    public void Launch<TSpec>(string name, ContainerConfig config, PersistedState state, LaunchRequest<TSpec> request)
        where TSpec : HelperSpec, ISupervisedSpec
    {
        var cgroupPath = CgroupPathFor(name);
        if (cgroupPath is null) NoCgroup(name, config);
        else PrepareCgroup(name, cgroupPath, config);
        try
        {
            File.Delete(Store.ExitRecordPath(name));
            File.Delete(Store.RunRecordPath(name));
            File.Delete(Store.StopMarkerPath(name));
            var spec = request.Spec;
            // The supervisor's part of the events (init's end, OOM kills, restarts), in this container's name.
            Events.EnsureDirectory();
            spec.ContainerName = name;
            spec.EventJournalDirectory = Events.Directory;
            spec.EventJournalMaxBytes = Events.MaxBytes;
            spec.StopMarker = Store.StopMarkerPath(name);
            // Init's own cgroup: v1 counts a kill only where the victim lives (and notifies the subtree of the OOM group).
            if (cgroupPath is not null) spec.OomWatchDirectory = Cgroups.MemoryDirectory(CgroupManager.InnerOf(cgroupPath));
            spec.ConsoleLog = Store.ConsoleLogPath(name);
            spec.ConsoleLogMaxBytes = config.Console.LogMaxBytes;
            // Only root may give a pty away; a non-root caller's console stays its own.
            if (config.IdMap is { } consoleMap && Host.IsRoot) { spec.ConsoleUid = consoleMap.RootUid; spec.ConsoleGid = consoleMap.RootGid; }
            spec.ConsoleSocket = Store.ConsoleSocketPath(name);
            spec.ExitRecord = Store.ExitRecordPath(name);
            spec.RunRecord = Store.RunRecordPath(name);
            if (cgroupPath is not null)
                spec.CgroupDirectories.AddRange(Cgroups.Directories(cgroupPath).Concat(Cgroups.Directories(CgroupManager.InnerOf(cgroupPath))));
            request.Prepare(spec, cgroupPath);
            var result = request.Run(spec);
            if (result.ExitCode != 0 || result.Output.Length == 0) throw request.Failed(result);
            var started = HelperProtocol.Started.Parse(result.Output[0]);
            int supervisor = started.Supervisor, init = started.Init;
            try
            {
                state.BeginRun(supervisor, Sys.ProcessStartTime(supervisor), init, Sys.ProcessStartTime(init), DateTimeOffset.Now, cgroupPath);
                state.Save(Store.StatePath(name));
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Unrecorded, it would run unseen by the next command until that found the
                // supervisor's record: a launch that cannot be recorded (a full disk) is undone.
                UndoUnrecordedStart(name, config, supervisor, init, cgroupPath);
                throw new ContainerException("StartFailed", ContainerErrorKind.DeviceError,
                    $"Container '{name}' was started but its state could not be written ({ex.Message}); the start was undone. Free space in {Store.Root} and start it again.", name, ex);
            }
        }
        catch
        {
            // Whatever the launch left in the cgroup (a task the supervisor could not reap) goes with it.
            if (cgroupPath is not null && Cgroups.Exists(cgroupPath))
            {
                if (Cgroups.AllPids(cgroupPath).Count > 0) Cgroups.KillAll(cgroupPath);
                Cgroups.RemoveContainer(cgroupPath);
            }
            if (request.HostSideTouched?.Invoke() == true)
                try { RunStoppedHooks(Hooks, name, config); } catch (ContainerException) { /* the launch's error matters more */ }
            throw;
        }
    }

    /// <summary>Start-Container of a saved container: restores its checkpoint (and discards it).</summary>
    private (ContainerConfig, PersistedState) ResumeSavedLocked(string name, ContainerConfig config, PersistedState state)
    {
        var checkpoints = Checkpoints ?? throw new ContainerException("CheckpointSupportMissing", ContainerErrorKind.InvalidOperation,
            $"Container '{name}' is saved (its checkpoint is {state.SavedCheckpoint}); starting it restores that checkpoint, but this ContainerManager was composed without checkpoint support. " +
            "Open the store with ContainerRuntime.Open (the cmdlets do).", name);
        checkpoints.ResumeSaved(Manager, name, config, state);
        return (config, LoadState(name));
    }

    /// <summary>Kills a just-started init and its supervisor, and undoes their set-up (the caller removes the cgroup).</summary>
    private void UndoUnrecordedStart(string name, ContainerConfig config, int supervisor, int init, string? cgroupPath)
    {
        var supervisorStart = Sys.ProcessStartTime(supervisor);
        var initStart = Sys.ProcessStartTime(init);
        if (cgroupPath is not null && Cgroups.Exists(cgroupPath)) Cgroups.KillAll(cgroupPath);
        if (initStart is { } i) { Sys.Kill(init, 9); Sys.WaitForExit(init, i, TimeSpan.FromSeconds(10)); }
        if (supervisorStart is { } s) Sys.WaitForExit(supervisor, s, TimeSpan.FromSeconds(10));
        try { RunStoppedHooks(Hooks, name, config); }
        finally
        {
            File.Delete(Store.RunRecordPath(name));
            File.Delete(Store.ExitRecordPath(name));
        }
    }

    /// <summary>
    /// A non-root caller without a delegated cgroup: the container runs without a cgroup of its own
    /// (a warning), unless it asks for limits, which could not be enforced (an error).
    /// </summary>
    private void NoCgroup(string name, ContainerConfig config)
    {
        var why = Host.DelegationProblem;
        if (!config.Limits.IsEmpty)
            throw new ContainerException("CgroupNotDelegated", ContainerErrorKind.PermissionDenied,
                $"Container '{name}' has limits, but {why}. Start it from a delegated cgroup, or remove the limits from its config.yaml.", name);
        Warning?.Invoke($"Container '{name}' starts without a cgroup of its own: {why}. It cannot be frozen, and its processes are not counted or limited apart from yours.");
    }

    /// <summary>
    /// Creates the container's cgroups in every hierarchy: the outer one with the config's limits and
    /// device rules, the inner one its processes live in (see CgroupManagerContainer.cs).
    /// </summary>
    private void PrepareCgroup(string name, string cgroupPath, ContainerConfig config)
    {
        if (Cgroups.Exists(cgroupPath))
        {
            // Left over from a run whose supervisor was killed: reuse only if it is empty.
            if (Cgroups.AllPids(cgroupPath) is { Count: > 0 } left)
                throw new ContainerException("CgroupBusy", ContainerErrorKind.ResourceBusy,
                    $"The cgroup of container '{name}' ({cgroupPath}) still holds processes {string.Join(", ", left)} from an earlier run. " +
                    "Stop them with Stop-Container -Kill, then start again.", name);
            Cgroups.RemoveContainer(cgroupPath);
        }
        Cgroups.CreateContainer(cgroupPath, Containers.SecurityPlan.EffectiveLimits(config));
    }

}
