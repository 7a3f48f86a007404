using System.Diagnostics;
using System.Globalization;
using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Network;
using PSContainers.Runtime.State;
using PSContainers.Runtime.Launcher;
using PSContainers.Runtime.NetworkHooks;

namespace PSContainers.Runtime.Checkpoint;

/// <summary>
/// Checkpoint/restore of running containers with CRIU (lxc-checkpoint). A checkpoint directory holds
/// CRIU's images, a copy of config.yaml and checkpoint.json (the manifest: which container, CRIU
/// and kernel, the external mounts, the console, the veths). Restore brings the processes back into
/// the container named there (or a copy of it) under a supervisor, exactly like a started one.
/// </summary>
public sealed class CheckpointManager
{
    private const string DumpLog = "dump.log", RestoreLog = "restore.log", PreDumpDirectory = "pre";
    /// <summary>
    /// CRIU's log verbosity by default: 2 (errors and warnings), what a failure is explained with;
    /// -CriuLogLevel 4 asks for CRIU's full debug log.
    /// </summary>
    public const int DefaultLogLevel = 2;
    /// <summary>
    /// The most CRIU may write to its log in one request: a restore that loops (damaged images make
    /// CRIU's restorer retry forever, logging each try) is stopped there instead of filling the disk.
    /// </summary>
    public const long MaxLogBytes = 16L << 20;
    /// <summary>How long one CRIU request may take by default (-Timeout).</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(10);

    public IContainerLifecycle Manager { get; }
    private ContainerStore Store => Manager.Store;
    /// <summary>The criu executable; null: $PSCONTAINERS_CRIU, else PATH (see <see cref="CriuService"/>).</summary>
    public string? CriuPath { get; set; }

    public CheckpointManager(IContainerLifecycle manager) => Manager = manager;

    /// <summary>Where Save-Container puts a container's checkpoint: inside its own directory.</summary>
    public string SavedCheckpointDirectory(string name) => Path.Combine(Store.ContainerDirectory(name), "checkpoint");

    /// <summary>The CRIU in use, version and CHECK verified (throws a NotInstalled error naming what is missing).</summary>
    public CriuInstallation Criu() => CriuService.Require(CriuPath);

    /// <summary>CRIU reads and recreates kernel state (ptrace, every namespace, mounts): root only.</summary>
    private static void RequireRoot(string verb, string name)
    {
        if (!Host.HostContext.Current.IsRoot)
            throw new ContainerException("RootRequired", ContainerErrorKind.PermissionDenied,
                $"Only root can {verb} container '{name}' with CRIU: it reads and recreates the processes' kernel state (ptrace, namespaces, mounts), " +
                "which a non-root user cannot. Run pwsh as root, or stop the container and start it again instead.", name);
    }

    // ---- checkpoint ---------------------------------------------------------------------------

    public CheckpointInfo Checkpoint(string name, string directory, CheckpointOptions options, IProgress<string>? progress = null)
    {
        ContainerNames.Validate(name);
        RequireRoot("checkpoint", name);
        directory = Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory));
        using var _ = Store.Lock(name);
        return CheckpointLocked(name, directory, options, savedCheckpoint: null, progress);
    }

    /// <summary>Save-Container (Hyper-V's Save-VM): checkpoint into the container's directory and stop; Start-Container restores.</summary>
    public ContainerInfo Save(string name, CheckpointOptions? options = null, IProgress<string>? progress = null)
    {
        ContainerNames.Validate(name);
        RequireRoot("save", name);
        using var _ = Store.Lock(name);
        var directory = SavedCheckpointDirectory(name);
        if (Directory.Exists(directory) && Manager.Inspect(name).Status != ContainerStatus.Saved)
            Filesystem.FsNative.DeleteTree(directory); // left by a save that failed half-way
        var saveOptions = new CheckpointOptions { TcpEstablished = options?.TcpEstablished ?? false, PreDump = options?.PreDump ?? false };
        CheckpointLocked(name, directory, saveOptions, savedCheckpoint: directory, progress);
        return Manager.Get(name);
    }

    private CheckpointInfo CheckpointLocked(string name, string directory, CheckpointOptions options, string? savedCheckpoint, IProgress<string>? progress)
    {
        if (!Store.Exists(name)) throw NotFound(name);
        var config = ConfigLoader.Load(Store.ConfigPath(name));
        var (state, status) = Manager.Inspect(name);
        if (status != ContainerStatus.Running || state.InitPid is not { } init || state.CgroupPath is null)
            throw new ContainerException("ContainerNotRunning", ContainerErrorKind.InvalidOperation,
                status == ContainerStatus.Frozen
                    ? $"Container '{name}' is frozen; resume it with Resume-Container before checkpointing (CRIU freezes it itself)."
                    : $"Cannot checkpoint container '{name}': it is {status.ToString().ToLowerInvariant()}, not running.", name);
        // What the container has now (its NIC ledger), not what config.yaml says: a NIC plugged live
        // without -Persist is checkpointed and restored, one removed live is not.
        var veths = RunningNics(name, config);
        foreach (var type in veths.Select(p => p.Nic.Type).Concat(config.Network.Where(n => n.Type == "pasta").Select(n => n.Type)).Where(t => t != "veth"))
            throw new ContainerException("CheckpointUnsupported", ContainerErrorKind.NotImplemented,
                $"Container '{name}' has a '{type}' network interface; checkpoints support veth, empty and none interfaces only. " +
                "Remove it from the running container first (Remove-ContainerNetworkInterface), or stop the container instead.", name);

        progress?.Report("Checking CRIU");
        var criu = Criu();
        if (options.PreDump && !criu.MemoryTracking)
            throw new ContainerException("PreDumpUnsupported", ContainerErrorKind.NotImplemented,
                $"CRIU pre-dump needs soft-dirty memory tracking, which this kernel ({Kernel()}) lacks (CONFIG_MEM_SOFT_DIRTY; 'criu check --feature mem_dirty_track' fails). Checkpoint without -PreDump.", name);

        PrepareDirectory(directory, name);
        var manifest = new CheckpointManifest
        {
            Container = name,
            StorePath = Store.Root,
            CriuVersion = criu.Version.ToString(),
            Kernel = Kernel(),
            InitPid = init,
            LeftRunning = options.LeaveRunning,
            TcpEstablished = options.TcpEstablished,
            PreDumped = options.PreDump,
            CgroupPath = state.CgroupPath,
            ConsoleTty = TtyId($"/proc/{init}/root/dev/console"),
            Mounts = ExternalMounts(config),
            Veths = veths.Select(p => p.Name).ToList(),
            Nics = veths,
            ProcessCount = Manager.Cgroups.AllPids(state.CgroupPath).Count,
            ForeignCgroups = ForeignCgroups(init, Manager.Cgroups.JoinPathOf(state.CgroupPath)),
        };
        var clock = Stopwatch.StartNew();
        // Self-describing before CRIU touches the processes: a killed pwsh leaves a checkpoint that is
        // restorable once CRIU has finished its images (it goes on without us), or else a container
        // that still runs; the state names the checkpoint so it is not taken for a crash.
        manifest.Time = DateTimeOffset.Now;
        manifest.Complete = false;
        try
        {
            File.Copy(Store.ConfigPath(name), Path.Combine(directory, CheckpointManifest.ConfigFileName), overwrite: true);
            manifest.Save(directory);
            if (!options.LeaveRunning) Manager.RecordCheckpointPending(name, state, directory, save: savedCheckpoint is not null);
            var opts = DumpOptions(directory, init, options, manifest);
            if (options.PreDump)
            {
                progress?.Report("Pre-dumping memory while the container runs");
                var pre = Path.Combine(directory, PreDumpDirectory);
                ContainerStore.CreatePrivateDirectory(pre);
                var preOpts = DumpOptions(pre, init, options, manifest);
                preOpts.TrackMem = true;
                preOpts.LeaveRunning = true;
                Call(criu, criu_req_type.PreDump, preOpts, Path.Combine(pre, DumpLog), options.Timeout, errorId: "CheckpointFailed", what: $"CRIU could not pre-dump container '{name}'", name);
                opts.TrackMem = true;
                opts.ParentImg = Path.Combine("..", PreDumpDirectory);
            }
            progress?.Report($"Dumping {manifest.ProcessCount} process(es) of '{name}' with CRIU {criu.Version}");
            Call(criu, criu_req_type.Dump, opts, Path.Combine(directory, DumpLog), options.Timeout, errorId: "CheckpointFailed", what: $"CRIU could not checkpoint container '{name}'", name);
        }
        catch when (!options.LeaveRunning && CheckpointManifest.ImagesFinished(directory) && !Native.Sys.IsAlive(state.InitPid, state.InitStartTime))
        {
            // CRIU finished and ended the processes after all (the error came late: a timeout at the
            // end): the images are the container now. Kept, as a killed pwsh would have left them
            // (restorable, Interrupted), with the state naming them; the error is still reported.
            throw;
        }
        catch
        {
            // The container runs on (CRIU resumes it on failure); keep only the log to read.
            if (!options.LeaveRunning && state.PendingCheckpoint is not null)
                try { Manager.RecordCheckpointPending(name, state, null, save: false); }
                catch (IOException) { /* a full disk: the marker is harmless while the images are incomplete */ }
            CriuService.UnmountLeftovers(directory); // a killed criu's cgroup yard: never delete into it
            foreach (var entry in Directory.EnumerateFileSystemEntries(directory).Where(e => Path.GetFileName(e) != DumpLog))
                if (Directory.Exists(entry)) Filesystem.FsNative.DeleteTree(entry); else File.Delete(entry);
            throw;
        }
        manifest.Time = DateTimeOffset.Now;
        manifest.DurationMs = clock.Elapsed.TotalMilliseconds;
        manifest.Complete = true;
        manifest.Save(directory);
        if (!options.LeaveRunning)
        {
            progress?.Report($"Recording '{name}' as {(savedCheckpoint is null ? "stopped" : "saved")}");
            Manager.RecordCheckpointStop(name, config, state, savedCheckpoint);
        }
        Manager.Emit(name, ContainerEventKind.Checkpointed, ("directory", directory), ("leaveRunning", options.LeaveRunning ? "true" : "false"));
        return manifest.ToInfo(directory);
    }

    private criu_opts DumpOptions(string directory, int init, CheckpointOptions options, CheckpointManifest manifest)
    {
        var opts = BaseOptions(directory, DumpLog, options.TcpEstablished, options.CriuLogLevel);
        opts.Pid = init;
        opts.LeaveRunning = options.LeaveRunning;
        opts.External.AddRange(manifest.Mounts.Select(m => $"mnt[{m.Target}]:{m.Key}"));
        if (manifest.ConsoleTty is not null) opts.External.Add(manifest.ConsoleTty);
        return opts;
    }

    private static criu_opts BaseOptions(string directory, string log, bool tcpEstablished, int logLevel) => new()
    {
        ImagesDirFd = -1,
        ImagesDir = directory,
        LogFile = log,
        LogLevel = logLevel,
        TcpEstablished = tcpEstablished,
        // This host has no iptables; nftables locks the network while the processes are frozen.
        NetworkLock = criu_network_lock_method.Nftables,
        // Our cgroups exist before restore (with the config's limits): CRIU only puts the tasks in.
        ManageCgroups = true,
        ManageCgroupsMode = criu_cg_mode.Soft,
        FileLocks = true,
    };

    private static void PrepareDirectory(string directory, string name)
    {
        if (File.Exists(directory))
            throw new ContainerException("CheckpointPathInvalid", ContainerErrorKind.InvalidArgument, $"'{directory}' is a file; give a directory for the checkpoint.", directory);
        if (Directory.Exists(directory) && Directory.EnumerateFileSystemEntries(directory).Any())
            throw new ContainerException("CheckpointExists", ContainerErrorKind.ResourceExists,
                $"'{directory}' is not empty. Checkpoint container '{name}' into a new or empty directory.", directory);
        // The images hold the container's memory (its keys, its passwords): the directory is its
        // owner's only, whether made here or given empty.
        var parent = Path.GetDirectoryName(Path.GetFullPath(directory));
        if (parent is not null) Directory.CreateDirectory(parent);
        ContainerStore.CreatePrivateDirectory(directory);
        File.SetUnixFileMode(directory, ContainerStore.PrivateMode);
    }

    /// <summary>
    /// Mounts whose source lies outside the container (the device nodes, the console, config.yaml's
    /// bind mounts) are external to CRIU: it records a key, and restore says which host path each key is.
    /// </summary>
    private static List<CheckpointMount> ExternalMounts(ContainerConfig config)
    {
        var plan = new StartSpec();
        MountPlan.AddDefaults(plan, config);
        var mounts = new List<CheckpointMount>();
        foreach (var m in plan.Mounts.Where(m => m.Flags.HasFlag(MountFlags.Bind) && !m.Flags.HasFlag(MountFlags.SourceInRoot)))
            mounts.Add(new CheckpointMount
            {
                Key = m.Flags.HasFlag(MountFlags.Console) ? "console" : $"ext{mounts.Count}",
                Target = m.Target,
                Source = m.Source,
            });
        return mounts;
    }

    /// <summary>/proc/PID/cgroup lines of v1 hierarchies where init is not in the container's cgroup.</summary>
    private static Dictionary<string, string> ForeignCgroups(int init, string cgroupPath)
    {
        var foreign = new Dictionary<string, string>();
        foreach (var line in File.ReadAllLines($"/proc/{init}/cgroup"))
        {
            var parts = line.Split(':', 3);
            if (parts.Length == 3 && parts[1].Length > 0 && parts[2] != "/" + cgroupPath)
                foreign[parts[1].Split(',')[0]] = parts[2];
        }
        return foreign;
    }

    /// <summary>The running container's NICs: its ledger, or (a run from before the ledger) its config's.</summary>
    private List<PlumbedNic> RunningNics(string name, ContainerConfig config)
    {
        var nics = new NicPlumbing(Store);
        return NetworkPlan.SharesHostNetwork(config) ? new() : nics.Load(name) ?? nics.FromConfig(name, config);
    }

    /// <summary>CRIU's name for a terminal: "tty[rdev:dev]" in hex, from stat(2).</summary>
    private static unsafe string? TtyId(string path)
    {
        Tmds.Linux.stat st;
        var bytes = Filesystem.FsNative.Z(path);
        fixed (byte* p = bytes)
            if (Tmds.Linux.LibC.stat(p, &st) != 0) return null;
        return $"tty[{((ulong)st.st_rdev).ToString("x", CultureInfo.InvariantCulture)}:{((ulong)st.st_dev).ToString("x", CultureInfo.InvariantCulture)}]";
    }

    private static string Kernel() => File.ReadAllText("/proc/sys/kernel/osrelease").Trim();

    private static void Call(CriuInstallation criu, criu_req_type type, criu_opts opts, string logPath, TimeSpan timeout, string errorId, string what, string target)
    {
        CriuService.CallOnce(criu.Path, new criu_req { Type = type, Opts = opts }, logPath, timeout, errorId, what, target);
    }

    // ---- restore ------------------------------------------------------------------------------

    /// <summary>The checkpoint in <paramref name="directory"/> (Get-ContainerCheckpoint).</summary>
    public CheckpointInfo GetCheckpoint(string directory)
    {
        directory = Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory));
        return CheckpointManifest.Load(directory).ToInfo(directory);
    }

    /// <summary>
    /// Restores the checkpoint into the container named in its manifest, which must exist in this
    /// store and be stopped, its rootfs as it was at checkpoint time. With <paramref name="newName"/>,
    /// that container is first copied (rootfs and config) to a new one, removed again if the restore fails.
    /// </summary>
    public ContainerInfo Restore(string directory, string? newName, RestoreOptions options, IProgress<string>? progress = null)
    {
        directory = Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory));
        var manifest = CheckpointManifest.Load(directory);
        var source = manifest.Container;
        var target = string.IsNullOrEmpty(newName) ? source : newName;
        ContainerNames.Validate(target);
        RequireRoot("restore", target);
        Criu(); // before any copy: a missing CRIU fails first
        var copied = false;
        if (target != source)
        {
            if (!Store.Exists(source))
                throw new ContainerException("ContainerNotFound", ContainerErrorKind.ObjectNotFound,
                    $"The checkpoint in '{directory}' is of container '{source}', which this store ({Store.Root}) does not have; restoring as '{target}' copies its root filesystem. Import '{source}' first.", source);
            if (Store.Exists(target))
                throw new ContainerException("ContainerExists", ContainerErrorKind.ResourceExists,
                    $"A container named '{target}' already exists in {Store.Root}. Restore under another name, or without -Name into '{source}'.", target);
            progress?.Report($"Copying the root filesystem of '{source}' to '{target}'");
            new Storage.StorageManager(Manager).Copy(source, target, new Storage.CopyOptions());
            copied = true;
        }
        try
        {
            using var _ = Store.Lock(target);
            if (!Store.Exists(target))
                throw new ContainerException("ContainerNotFound", ContainerErrorKind.ObjectNotFound,
                    $"The checkpoint in '{directory}' is of container '{source}', which this store ({Store.Root}) does not have. Create or import it (its root filesystem as at checkpoint time), or restore with -Name into a copy.", source);
            var config = ConfigLoader.Load(Store.ConfigPath(target));
            var state = Manager.Inspect(target).State;
            RestoreLocked(target, directory, config, state, options.DeleteImages, progress, options);
            return Manager.Get(target);
        }
        catch
        {
            if (copied) Manager.Remove(target, force: true);
            throw;
        }
    }

    /// <summary>The restore itself, under the container's lock (also Start-Container of a saved container).</summary>
    internal void RestoreLocked(string name, string directory, ContainerConfig config, PersistedState state, bool deleteImages, IProgress<string>? progress, RestoreOptions? options = null)
    {
        options ??= new RestoreOptions();
        var manifest = CheckpointManifest.Load(directory);
        var status = Manager.Inspect(name).Status;
        if (status is not (ContainerStatus.Stopped or ContainerStatus.Saved))
            throw new ContainerException("ContainerAlreadyRunning", ContainerErrorKind.InvalidOperation,
                $"Cannot restore into container '{name}': it is {status.ToString().ToLowerInvariant()} (init pid {state.InitPid}). " +
                "A checkpoint restores into a stopped container; stop it first, or restore under a new name with -Name.", name);
        if (status == ContainerStatus.Saved && state.SavedCheckpoint != directory)
            throw new ContainerException("ContainerSaved", ContainerErrorKind.InvalidOperation,
                $"Container '{name}' is saved (its own checkpoint is {state.SavedCheckpoint}); Start-Container resumes it. Restoring another checkpoint over it would lose that state.", name);
        // CRIU reads part of the images (and reaches the rootfs) as the container's own root: a
        // user-namespaced container's directories let its root group pass, and no one else.
        if (config.IdMap is { } map)
        {
            ContainerStore.ShareWithContainerRoot(Store.ContainerDirectory(name), map);
            ContainerStore.ShareWithContainerRoot(directory, map);
        }
        progress?.Report("Checking CRIU");
        var criu = Criu();
        var rootfs = Manager.RootfsOf(name, config);
        if (!Directory.Exists(rootfs))
            throw new ContainerException("RootfsNotFound", ContainerErrorKind.ObjectNotFound, $"The root filesystem of container '{name}' is missing: {rootfs}.", name);

        // criu runs in a mount namespace of its own (psc-helper), so its cgroup yard dies with it;
        // a yard an older build's killed restore left in the host's namespace is undone here.
        CriuService.UnmountLeftovers(directory);
        var rootMounts = Backends.StorageBackends.Get(config.Storage.Backend).RootMounts(Store.ContainerDirectory(name), config.Storage);
        var logPath = Path.Combine(directory, RestoreLog);
        var networkTouched = false;
        string? cgroup = null, restartPlan = null;
        // As LXC's restore (criu.c do_restore, through lxc_init): pre-start on the host before anything
        // of the run exists; mount and start are not run (CRIU recreates the mounts and processes, and
        // nothing is exec'd), nor net up (CRIU's veths, like LXC's restore); stop, net-down and post-stop
        // run at the restored run's end (Restoring, below).
        foreach (var hook in Manager.Hooks) hook.BeforeLaunch(name, config);
        progress?.Report("Creating the cgroup");
        try
        {
            Manager.Launch(name, config, state, new LaunchRequest<RestoreSpec>
            {
                Spec = new RestoreSpec { ImagesDirectory = directory },
                Prepare = (spec, cgroupPath) =>
                {
                    cgroup = cgroupPath ?? throw new ContainerException("CgroupNotDelegated", ContainerErrorKind.PermissionDenied,
                        $"Container '{name}' cannot be restored without a cgroup of its own: CRIU puts the restored tasks into it.", name);
                    spec.Command.AddRange(new[] { criu.Path, "swrk", "3" });
                    spec.Environment.Add("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
                    foreach (var hook in Manager.Hooks) hook.Restoring(name, config, spec);
                    if (config.Restart.Policy != RestartPolicy.No) restartPlan = spec.RestartSpecFile = WriteRestartPlan(name, config, rootfs, cgroupPath, spec);
                },
                Run = spec => RunCriuRestore(spec, name, directory, rootfs, cgroup!, rootMounts, manifest, config, criu, options, logPath, progress, () => networkTouched = true),
                Failed = result => new ContainerException("RestoreFailed", ContainerErrorKind.InvalidOperation,
                    $"Container '{name}' could not be restored: {string.Join(" ", result.Error).Trim()}. CRIU's log: {logPath}.", name),
                HostSideTouched = () => networkTouched,
            });
        }
        catch
        {
            CriuService.UnmountLeftovers(directory);
            CriuService.CapLog(logPath);
            throw;
        }
        finally
        {
            // psc-helper deletes it as it reads it; a restore that failed before is left with it.
            if (restartPlan is not null) File.Delete(restartPlan);
        }
        Manager.Emit(name, ContainerEventKind.Restored, ("directory", directory));
        if (deleteImages) Filesystem.FsNative.DeleteTree(directory);
    }

    /// <summary>
    /// A restored container follows its restart policy like a started one: its supervisor gets the
    /// container's start plan (the one Start-Container uses, with the same records, journal and
    /// cgroups as the restore) and makes init again from it, in the user and network namespaces CRIU
    /// restored. The plan holds the environment: a private file psc-helper deletes as it reads it.
    /// </summary>
    private string WriteRestartPlan(string name, ContainerConfig config, string rootfs, string cgroupPath, RestoreSpec restore)
    {
        var plan = new StartSpec
        {
            ConsoleLog = restore.ConsoleLog, ConsoleLogMaxBytes = restore.ConsoleLogMaxBytes, ExitRecord = restore.ExitRecord, RunRecord = restore.RunRecord,
            ContainerName = restore.ContainerName, EventJournalDirectory = restore.EventJournalDirectory, EventJournalMaxBytes = restore.EventJournalMaxBytes,
            StopMarker = restore.StopMarker, OomWatchDirectory = restore.OomWatchDirectory,
        };
        plan.CgroupDirectories.AddRange(restore.CgroupDirectories);
        Manager.PlanStart(plan, name, config, rootfs, cgroupPath);
        // A start's plan, hooks included: a restart makes init anew (mount, start), and the plan is
        // what the supervisor watches, so it carries the end-of-run hooks too.
        foreach (var hook in Manager.Hooks) hook.Preparing(name, config, plan);
        ContainerStore.CreatePrivateDirectory(Store.TempDirectory);
        // NAME.PID.GUID: a killed caller's leftover is found by CleanStaleTemp.
        var file = Path.Combine(Store.TempDirectory, $"restart-spec-{name}.{Environment.ProcessId}.{Guid.NewGuid():N}");
        using (var fs = new FileStream(file, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite }))
            fs.Write(plan.Serialize());
        return file;
    }

    /// <summary>
    /// The restore's psc-helper run: the supervisor starts criu swrk, CRIU restores the tasks as the
    /// supervisor's children, the host ends of the network are connected, and the restored init is let go.
    /// </summary>
    private HelperResult RunCriuRestore(RestoreSpec spec, string name, string directory, string rootfs, string cgroupPath, IEnumerable<MountEntry> rootMounts,
        CheckpointManifest manifest, ContainerConfig config, CriuInstallation criu, RestoreOptions options, string logPath, IProgress<string>? progress, Action networkTouched)
    {
        var mounted = new List<string>();
        // A killed restore's root, left mounted here: an idmapped mount cannot go on top of it.
        Filesystem.FsNative.UnmountBelow(rootfs);
        try
        {
            // An overlay rootfs exists only inside the container's mount namespace: CRIU needs it
            // at --root while it rebuilds that namespace; the restored namespace keeps its own.
            // An idmapped rootfs (storage.ids) likewise, idmapped: CRIU's bind of it keeps the idmap.
            if (config.IdMap is { } map && config.Storage.IsIdmapped && config.Rootfs is null)
            {
                var layers = new StartSpec();
                Backends.StorageBackends.Get(config.Storage.Backend).IdmappedRoot(layers, Store.ContainerDirectory(name), config.Storage);
                UserNamespaces.RootfsIds.MountIdmapped(rootfs, map, layers.OverlayLowers, layers.OverlayDirectory);
                mounted.Add(rootfs);
            }
            else
                foreach (var m in rootMounts)
                {
                    MountOnHost(m, rootfs);
                    mounted.Add(rootfs);
                }
            using var channel = CriuChannel.Create();
            spec.CriuSocketFd = channel.PeerFd;
            progress?.Report($"Restoring {manifest.ProcessCount} process(es) into '{name}'");
            lock (CriuChannel.SpawnLock)
            {
                channel.ExposePeer();
                return PscHelper.Restore(spec, paused =>
                {
                    channel.ClosePeer();
                    var criuPid = paused.Criu;
                    var criuStart = Native.Sys.ProcessStartTime(criuPid);
                    networkTouched();
                    var veths = PrecreateVeths(name, RestoredVeths(name, config, manifest));
                    var opts = RestoreOptionsFor(directory, rootfs, cgroupPath, manifest, config, name, paused.ConsolePty, options.CriuLogLevel, veths);
                    var what = $"CRIU could not restore container '{name}' from '{directory}'";
                    var resp = channel.Call(new criu_req { Type = criu_req_type.Restore, Opts = opts },
                        CriuService.WatchingLog(() => Native.Sys.ProcessStartTime(criuPid) is { } t && t == criuStart, logPath, errorId: "RestoreFailed", what: what, target: name),
                        options.Timeout, errorId: "RestoreFailed", what: what, target: name, logPath: logPath);
                    if (resp.Restore is null) throw CriuService.Failure(errorId: "RestoreFailed", what: what, resp, logPath, name);
                    channel.Dispose(); // criu exits once its socket closes
                    progress?.Report("Connecting the host ends of the network");
                    ConnectHostEnds(name);
                    return new HelperProtocol.GoRestored(resp.Restore.Pid);
                });
            }
        }
        finally
        {
            foreach (var path in mounted) Filesystem.FsNative.Unmount(path);
        }
    }

    private criu_opts RestoreOptionsFor(string directory, string rootfs, string cgroupPath, CheckpointManifest manifest, ContainerConfig config, string name, string? consolePty, int logLevel,
        IReadOnlyDictionary<string, string> precreatedVeths)
    {
        var opts = BaseOptions(directory, RestoreLog, manifest.TcpEstablished, logLevel);
        opts.Root = rootfs;
        // The restored init becomes the supervisor's child (CLONE_PARENT), not criu's.
        opts.RstSibling = true;
        // Tasks go into this container's inner cgroup (the root of its cgroup namespace), whatever
        // the checkpointed container was called and whichever layout it was dumped from.
        opts.CgRoot.Add(new cgroup_root { Path = "/" + CgroupManager.InnerOf(cgroupPath) });
        foreach (var (controller, path) in manifest.ForeignCgroups) opts.CgRoot.Add(new cgroup_root { Ctrl = controller, Path = path });
        var userMounts = config.Mounts.ToDictionary(m => m.Target, m => m.Source);
        foreach (var m in manifest.Mounts)
        {
            var hostPath = m.Key == "console" ? consolePty : userMounts.GetValueOrDefault(m.Target, m.Source);
            if (m.Key == "console" && consolePty is null) continue;
            opts.External.Add($"mnt[{m.Key}]:{hostPath}");
        }
        if (manifest.ConsoleTty is not null && consolePty is not null)
            opts.InheritFd.Add(new inherit_fd { Key = manifest.ConsoleTty, Fd = 4 });
        // Each veth's container end is moved in, not created: see PrecreateVeths.
        foreach (var (inner, peer) in precreatedVeths) opts.External.Add($"netdev[{inner}]:{peer}");
        return opts;
    }

    /// <summary>
    /// The checkpointed veths as the restored container <paramref name="name"/> has them: the ones
    /// its manifest recorded (an older checkpoint: config.yaml's veths it named), each with the host
    /// end this store gives it under this name (a restore under a new name, or into another store by
    /// Move-Container, must not take the original's) and its bridge resolved here.
    /// </summary>
    private List<PlumbedNic> RestoredVeths(string name, ContainerConfig config, CheckpointManifest manifest)
    {
        var nics = new NicPlumbing(Store);
        var recorded = manifest.Nics ?? nics.FromConfig(name, config).Where(p => p.Nic.Type == "veth" && manifest.Veths.Contains(p.Name)).ToList();
        return recorded.Where(p => p.Nic.Type == "veth").Select(p => new PlumbedNic
        {
            Nic = p.Nic, Index = p.Index, Name = p.Name, MacAddress = p.MacAddress, Addresses = p.Addresses, IPv4Gateway = p.IPv4Gateway,
            HostEnd = p.Nic.HostName ?? nics.HostEndName(name, p.Index),
            Bridge = p.Nic.Link == DefaultBridge.ConfigName ? DefaultBridge.For(Store).Settings.Name : p.Nic.Link,
        }).ToList();
    }

    /// <summary>
    /// The veth pairs of the checkpointed NICs, made before CRIU runs: the host end in the namespace
    /// of its bridge, the container end under a temporary name in the host's namespace, which CRIU
    /// moves into the restored network namespace and renames, with the checkpoint's ifindex, MAC,
    /// MTU and addresses (external netdev[NAME]:TEMP; it does this through its usernsd, which runs
    /// with the host's rights, or directly for a privileged container). Letting CRIU create the pair
    /// failed for a user-namespaced container: the criu in use (4.2.1, Debian) sends the RTM_NEWLINK
    /// through usernsd, whose socket is in the host's network namespace, with the checkpoint's
    /// ifindex; the kernel looks that ifindex up there, finds a host device, and refuses to change it
    /// as a veth (veth has no changelink: EOPNOTSUPP, -95). Moving an existing device names it by its
    /// host ifindex, so nothing is looked up in the wrong namespace; one way for both modes.
    /// The pairs made are the restored run's NIC ledger, written here: a failed restore's stopped
    /// hooks, and later the restored container's stop, delete exactly them.
    /// Container name -> temporary name.
    /// </summary>
    private Dictionary<string, string> PrecreateVeths(string name, List<PlumbedNic> veths)
    {
        var nics = new NicPlumbing(Store);
        var made = new Dictionary<string, string>();
        var ledger = new List<PlumbedNic>();
        try
        {
            foreach (var p in veths)
            {
                var temporary = "psc-r" + Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(5)).ToLowerInvariant();
                var location = p.Nic.LinkNamespace is null ? NetworkLocation.Host : NetworkLocation.ForNamespace(p.Nic.LinkNamespace);
                if (p.Nic.Link == DefaultBridge.ConfigName) DefaultBridge.For(Store).Ensure();
                using var outside = new NetworkClient(location);
                // Before CRIU runs: a restore that could not connect a NIC does not restore at all.
                if (p.Bridge is not null && !outside.LinkExists(p.Bridge))
                    throw new ContainerException("BridgeNotFound", ContainerErrorKind.ObjectNotFound,
                        $"Container '{name}': bridge {p.Bridge} of its interface {p.Name} does not exist in {outside.Location.Label}. Create it with New-NetworkBridge, then restore again.", p.Bridge);
                outside.CreateVeth(p.HostEnd!, temporary, NetworkLocation.Host, p.Nic.Mtu);
                ledger.Add(p);
                made[p.Name] = temporary;
            }
        }
        finally
        {
            nics.Save(name, ledger);
        }
        return made;
    }

    /// <summary>The host ends PrecreateVeths made (the ledger), their peers now restored inside: onto their bridge, up.</summary>
    private void ConnectHostEnds(string name)
    {
        foreach (var p in new NicPlumbing(Store).Load(name) ?? new())
        {
            var location = p.Nic.LinkNamespace is null ? NetworkLocation.Host : NetworkLocation.ForNamespace(p.Nic.LinkNamespace);
            using var outside = new NetworkClient(location);
            outside.SetLink(p.HostEnd!, new LinkChanges { Master = p.Bridge, Up = true });
        }
    }

    private static void MountOnHost(MountEntry m, string rootfs) =>
        Filesystem.FsNative.Mount(m.Source, rootfs, m.FsType, (ulong)m.Flags & 0xFFFFFFFF, m.Data);

    private static ContainerException NotFound(string name) =>
        new("ContainerNotFound", ContainerErrorKind.ObjectNotFound, $"No container named '{name}' exists. Get-Container lists the containers of this store.", name);
}
