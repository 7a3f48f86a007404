using System.Globalization;
using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Host;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Native;
using PSContainers.Runtime.State;
using PSContainers.Runtime.Templates;
using PSContainers.Runtime.UserNamespaces;
using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.Launcher;
using PSContainers.Runtime.Events;

namespace PSContainers.Runtime.Containers;

/// <summary>
/// The container lifecycle: create, start, stop, freeze, exec, remove. Every mutation holds the
/// container's lock; every multi-step operation completes or rolls back; the status is derived
/// from the kernel (pids, cgroups) and the supervisor's exit record, never from memory.
/// </summary>
public sealed class ContainerManager : IContainerLifecycle
{
    public ContainerStore Store { get; }
    /// <summary>
    /// Set-up done while a new init waits in its namespaces (see <see cref="IContainerHook"/>).
    /// Registered by whoever composes the runtime (Composition/ContainerRuntime.cs), never here.
    /// </summary>
    public List<IContainerHook> Hooks { get; } = new();

    /// <summary>
    /// What the lifecycle asks of checkpoints (resuming a saved container, judging an interrupted
    /// dump); registered by whoever composes the runtime: the checkpoint code lives above the lifecycle.
    /// </summary>
    public ICheckpointSupport? Checkpoints { get; set; }
    private readonly Lazy<CgroupManager> _cgroups;
    public CgroupManager Cgroups => _cgroups.Value;

    /// <summary>
    /// Whom the manager acts for: root or not, and for non-root its delegated cgroup2 subtree (read
    /// once per manager, so a delegation granted meanwhile counts for the next command).
    /// </summary>
    public HostContext Host { get; }

    /// <summary>
    /// The subordinate-id files a new unprivileged container takes its default id map from, and where
    /// root's range is allocated when it has none (/etc/subuid and /etc/subgid; tests use copies).
    /// </summary>
    public IdMapping.SubordinateIdDatabase SubordinateIds { get; set; }

    /// <summary>Things worth telling the user that are not errors (a container started without a cgroup).</summary>
    public event Action<string>? Warning;

    /// <summary>What an operation is doing, step by step (the cmdlets' -Verbose).</summary>
    public event Action<string>? Verbose;

    /// <summary>The events' handlers, for the parts of the lifecycle (null without a subscriber).</summary>
    internal Action<string>? WarningHandler => Warning;
    internal Action<string>? VerboseHandler => Verbose;

    // The parts of the lifecycle, one concern each; this class holds what they share and delegates.
    internal ContainerInspection Inspection { get; }
    internal ContainerFreezing Freezing { get; }
    internal ContainerRecovery Recovery { get; }
    internal ContainerCreation Creation { get; }
    internal ContainerStart Starting { get; }
    internal ContainerStop Stopping { get; }
    internal ContainerRemoval Removal { get; }

    public ContainerManager(ContainerStore store, CgroupManager? cgroups = null, HostContext? host = null)
    {
        Store = store;
        Events = new EventJournal(store.Root);
        Host = host ?? HostContext.Detect();
        SubordinateIds = new(Host.SubordinateIds);
        Inspection = new ContainerInspection(this);
        Freezing = new ContainerFreezing(this);
        Recovery = new ContainerRecovery(this);
        Creation = new ContainerCreation(this);
        Starting = new ContainerStart(this);
        Stopping = new ContainerStop(this);
        Removal = new ContainerRemoval(this);
        _cgroups = cgroups is not null ? new Lazy<CgroupManager>(cgroups)
            : Host.IsRoot ? new Lazy<CgroupManager>(CgroupManager.ForHost)
            // A non-root caller manages only its delegated cgroup2 subtree, never v1 hierarchies.
            : new Lazy<CgroupManager>(() => Host.Delegation is { } d ? new CgroupManager(null, new CgroupV2Driver(d.UnifiedMount)) : CgroupManager.ForHost());
    }

    /// <summary>
    /// Where a container's (outer) cgroup lives: &lt;parent&gt;/&lt;name&gt; in every hierarchy for root;
    /// for other users under their delegated cgroup2 subtree, or nowhere (null) when they have none.
    /// Its processes live in the inner cgroup below it (<see cref="CgroupManager.InnerOf"/>). The one
    /// place that derives it: start, restore and remove all ask here.
    /// </summary>
    internal string? CgroupPathFor(string name)
    {
        if (Host.IsRoot) return $"{Store.CgroupParent}/{name}";
        return Host.Delegation is { } d ? $"{d.RelativePath}/{Store.CgroupParent}/{name}".TrimStart('/') : null;
    }

    public ContainerManager(string? storePath = null) : this(new ContainerStore(storePath)) { }

    /// <summary>The store's event journal: every lifecycle change below is recorded there, where it happens.</summary>
    public EventJournal Events { get; }

    /// <summary>Records an event; a journal that cannot be written is a warning, never the operation's failure.</summary>
    public void Emit(string name, ContainerEventKind kind, params (string Key, string Value)[] details)
    {
        if (Events.Append(name, kind, details.Select(d => KeyValuePair.Create(d.Key, d.Value))) is { } problem)
            Warning?.Invoke($"The {kind} event of container '{name}' was not recorded: {problem}");
    }

    /// <summary>
    /// Brings the store to its permissions (see <see cref="ContainerStore.Secure"/>): a store made by
    /// an older version, or chmod'ed since, is fixed on its first use, with a warning that says what
    /// changed. Cheap (one stat per directory of the store); the cmdlets call it on every use.
    /// </summary>
    public void EnsureStoreSecure()
    {
        var changes = Store.Secure();
        // A store without containers yet (a directory just made for it) had nothing to expose: fixed quietly.
        if (changes.Count > 0 && changes.Any(c => c.StartsWith("container directory", StringComparison.Ordinal) || c.StartsWith('.')))
            Warning?.Invoke($"The store {Store.Root} let other host users reach into containers' files (a setuid program or a device node in a rootfs would work for them); " +
                $"its permissions were tightened: {string.Join(", ", changes)}.");
    }

    // ---- queries ------------------------------------------------------------------------------

    public IEnumerable<string> Names() => Store.ListNames();

    public bool Exists(string name) => ContainerNames.IsValid(name, out _) && Store.Exists(name);

    public ContainerInfo Get(string name) => Inspection.Get(name);

    public IEnumerable<ContainerInfo> List() => Inspection.List();

    /// <summary>Waits until the container is in <paramref name="desired"/> state (Wait-Container).</summary>
    public ContainerInfo Wait(string name, ContainerStatus desired, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        Inspection.Wait(name, desired, timeout, cancellationToken);

    // ---- create -------------------------------------------------------------------------------

    public ContainerInfo Create(string name, CreateOptions options, IProgress<TemplateProgress>? progress = null, CancellationToken cancellationToken = default) =>
        Creation.Create(name, options, progress, cancellationToken);

    /// <summary>The store's isolated id blocks (idMapIsolated), cut from the caller's subordinate ranges.</summary>
    public IdRanges.IsolatedIdRanges IsolatedIdRanges => new(Store, SubordinateIds);

    // ---- start --------------------------------------------------------------------------------

    public ContainerInfo Start(string name) => Starting.Start(name);

    /// <summary>
    /// What psc-helper start makes init from; also the plan a restored container's supervisor
    /// relaunches init from when its restart policy says so (see <see cref="ContainerStart"/>).
    /// </summary>
    public void PlanStart(StartSpec spec, string name, ContainerConfig config, string rootfs, string? cgroupPath) =>
        Starting.PlanStart(spec, name, config, rootfs, cgroupPath);

    /// <summary>The one launch path of a container's run, shared by Start-Container and a CRIU restore (see <see cref="ContainerStart"/>).</summary>
    public void Launch<TSpec>(string name, ContainerConfig config, PersistedState state, LaunchRequest<TSpec> request)
        where TSpec : HelperSpec, ISupervisedSpec => Starting.Launch(name, config, state, request);

    // ---- what checkpoints record (IContainerLifecycle) ------------------------------------------

    public ContainerRun Inspect(string name) => Inspection.Inspect(name);

    public void RecordCheckpointPending(string name, PersistedState state, string? directory, bool save) =>
        Stopping.RecordCheckpointPending(name, state, directory, save);

    /// <summary>After a dump that ended the processes: the stop finished as Stop-Container does, recorded as a checkpoint.</summary>
    public void RecordCheckpointStop(string name, ContainerConfig config, PersistedState state, string? savedCheckpoint) =>
        Stopping.RecordCheckpointStop(name, config, state, savedCheckpoint);

    // ---- stop ---------------------------------------------------------------------------------

    public ContainerInfo Stop(string name, TimeSpan? timeout = null, bool kill = false) => Stopping.Stop(name, timeout, kill);

    public ContainerInfo Restart(string name, TimeSpan? timeout = null, bool kill = false) => Stopping.Restart(name, timeout, kill);

    // ---- remove -------------------------------------------------------------------------------

    public void Remove(string name, bool force = false) => Removal.Remove(name, force);

    // ---- freeze -------------------------------------------------------------------------------

    public ContainerInfo Freeze(string name, TimeSpan? timeout = null) => Freezing.Freeze(name, timeout);

    public ContainerInfo Thaw(string name) => Freezing.Thaw(name);

    /// <summary>
    /// Called under the container's lock by every command that changes it: finishes what an
    /// interrupted run of a command left (see <see cref="ContainerRecovery"/>).
    /// </summary>
    public void RecoverLocked(string name) => Recovery.RecoverLocked(name);

    /// <summary>Removes .tmp entries whose process is gone (a killed pwsh); see <see cref="ContainerRecovery"/>.</summary>
    public void CleanStaleTemp() => Recovery.CleanStaleTemp();

    /// <summary>Export-Container -Force: freezes a running container, marked so that a killed export's freeze is undone.</summary>
    public bool FreezeForExport(string name) => Freezing.FreezeForExport(name);

    public void ThawAfterExport(string name) => Freezing.ThawAfterExport(name);

    /// <summary>Under the lock, for an operation on a running container (freeze, thaw, exec): its state and status, or why it cannot be done.</summary>
    internal (PersistedState State, ContainerStatus Status) Running(string name, string verb, bool needsCgroup = false)
    {
        if (!Store.Exists(name)) throw NotFound(name);
        RecoverLocked(name);
        var state = LoadState(name);
        var live = Observe(name, state);
        if (live.Status == ContainerStatus.Stopped || !live.InitAlive)
            throw new ContainerException("ContainerNotRunning", ContainerErrorKind.InvalidOperation,
                $"Cannot {verb} container '{name}': it is not running.", name);
        ContainerConfig? config = null;
        try { config = ConfigLoader.Load(Store.ConfigPath(name)); }
        catch (ContainerException) when (Host.IsRoot) { /* root may act on a container whose config broke */ }
        RequireAccess(verb, name, config);
        if (needsCgroup && state.CgroupPath is null)
            throw new ContainerException("ContainerHasNoCgroup", ContainerErrorKind.InvalidOperation,
                $"Cannot {verb} container '{name}': it runs without a cgroup of its own (it was started without a delegated cgroup).", name);
        return (state, live.Status);
    }

    // ---- exec ---------------------------------------------------------------------------------

    /// <summary>Builds the spec that runs a program inside a running container (lxc-attach).</summary>
    private ExecSpec AttachSpec(string name, IReadOnlyList<string> command, NamespaceKind namespaces, string? workingDirectory, IDictionary<string, string>? environment, ExecOptions? options = null)
    {
        if (command.Count == 0 || string.IsNullOrEmpty(command[0]))
            throw new ContainerException("NoCommand", ContainerErrorKind.InvalidArgument, "Give the program to run, e.g. -Command hostname or -Command ls,-l,/.", name);
        var (state, status) = Running(name, "run a command in");
        if (status == ContainerStatus.Frozen)
            throw new ContainerException("ContainerFrozen", ContainerErrorKind.InvalidOperation,
                $"Container '{name}' is frozen; a command would hang. Resume it first with Resume-Container.", name);
        var config = ConfigLoader.Load(Store.ConfigPath(name));
        var spec = new ExecSpec
        {
            TargetPid = state.InitPid,
            Namespaces = namespaces == NamespaceKind.None ? NamespaceKind.ContainerDefault : namespaces,
            WorkingDirectory = workingDirectory ?? config.Init.WorkingDirectory,
        };
        // Its user namespace first: the other namespaces belong to it, and so do the command's ids.
        if (config.IdMap is not null) spec.Namespaces |= NamespaceKind.User;
        // A user-namespaced container in the host's network namespace (type none): that namespace
        // belongs to the host's user namespace, which a command joined to the container's cannot
        // enter (EPERM). It keeps the caller's, which for a caller on the host is that very one.
        if (config.IdMap is not null && NetworkPlan.SharesHostNetwork(config)) spec.Namespaces &= ~NamespaceKind.Network;
        spec.Command.AddRange(command);
        var identity = ExecIdentities.Resolve(name, state.InitPid!.Value, options?.User, options?.Group);
        spec.Environment.AddRange(Environment(config, environment, options?.ClearEnvironment ?? false, identity.Home));
        (spec.UserId, spec.GroupId) = (identity.Uid, identity.Gid);
        spec.SupplementaryGroups.AddRange(identity.SupplementaryGroups.Select(g => g.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        if (options?.Timeout is { } timeout) spec.TimeoutMilliseconds = Math.Max(1, (long)timeout.TotalMilliseconds);
        spec.Terminal = options?.Terminal ?? false;
        Containers.SecurityPlan.Apply(spec, config, attach: true);
        if (state.CgroupPath is not null && Cgroups.Exists(state.CgroupPath))
        {
            // The inner cgroup, where init is (the outer one for a container started before that layout).
            var join = Cgroups.JoinPathOf(state.CgroupPath);
            spec.CgroupProcsFiles.AddRange(Cgroups.ProcsFiles(join));
            spec.CgroupV2Directory = Cgroups.V2?.Directories(join)[0];
        }
        return spec;
    }

    public ContainerCommandResult Exec(string name, IReadOnlyList<string> command, NamespaceKind namespaces = NamespaceKind.None,
        string? workingDirectory = null, IDictionary<string, string>? environment = null, CancellationToken cancellationToken = default, ExecOptions? options = null)
    {
        ContainerNames.Validate(name);
        ExecSpec spec;
        // The lock covers only the checks: a long-running command must not block Stop-Container.
        ulong? initStart;
        using (Store.Lock(name))
        {
            spec = AttachSpec(name, command, namespaces, workingDirectory, environment, options);
            initStart = spec.TargetPid is { } target ? Sys.ProcessStartTime(target) : null;
        }
        var result = PscHelper.Run(spec, options?.Input, cancellationToken);
        // The relay killed the command at its timeout (124, and its own message last on stderr).
        if (spec.TimeoutMilliseconds is { } ms && result.ExitCode == 124 && result.Error.LastOrDefault()?.StartsWith("psc-helper: timed out", StringComparison.Ordinal) == true)
            throw new ContainerException("CommandTimeout", ContainerErrorKind.OperationTimeout,
                $"'{string.Join(' ', command)}' in container '{name}' ran longer than {TimeSpan.FromMilliseconds(ms).TotalSeconds:0.###} s and was killed (with its process group). Raise -Timeout, or check what it waits for.", name);
        if (result.ExitCode == 125 && result.Error.Any(l => l.StartsWith("psc-helper:", StringComparison.Ordinal)))
        {
            // The container stopped (or was removed) between the check and the attach: say that,
            // not the helper's "open /proc/N/ns/mnt".
            if (StoppedDuringAttach(spec.TargetPid, initStart))
                throw Store.Exists(name) ? new ContainerException("ContainerNotRunning", ContainerErrorKind.InvalidOperation,
                    $"Cannot run a command in container '{name}': it stopped while the command was being started.", name) : NotFound(name);
            throw new ContainerException("AttachFailed", ContainerErrorKind.InvalidOperation,
                $"Could not enter container '{name}': {string.Join(" ", result.Error).Replace("psc-helper: ", "")}", name);
        }
        // "ls -l /" as one string is a program of that name, which no container has: say how arguments are passed.
        if (result.ExitCode == 127 && command.Count == 1 && command[0].Trim().Contains(' ') && spec.TargetPid is { } pid && !ProgramExists(pid, command[0]))
        {
            var words = command[0].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            throw new ContainerException("CommandNotFound", ContainerErrorKind.ObjectNotFound,
                $"Container '{name}' has no program named '{command[0]}'. -Command takes the program and each argument as separate strings " +
                $"(no shell is involved): -Command {string.Join(",", words.Select(QuoteForPowerShell))}. For a shell command line, run a shell: -Command sh,-c,{QuoteForPowerShell(command[0])}.", name);
        }
        return new ContainerCommandResult
        {
            Name = name,
            Command = command.ToArray(),
            ExitCode = result.ExitCode,
            Output = result.Output,
            Error = result.Error,
        };
    }

    /// <summary>
    /// Whether a failed attach met a container on its way down. An init killed by a stop releases its
    /// namespaces before it becomes a zombie, and its pid namespace refuses new processes while it
    /// exits: for a moment the attach fails while the process still looks alive. So a dying init
    /// (namespaces already gone) counts as stopped, and otherwise the answer waits, briefly and only on
    /// this error path, for the exit to show.
    /// </summary>
    private static bool StoppedDuringAttach(int? pid, ulong? initStart)
    {
        for (var i = 0; i < 20; i++)
        {
            if (!Sys.IsAlive(pid, initStart)) return true;
            try { if (new FileInfo($"/proc/{pid}/ns/mnt").LinkTarget is null) return true; }
            catch (IOException) { return true; }
            catch (UnauthorizedAccessException) { } // cannot look: the liveness check alone decides
            Thread.Sleep(50);
        }
        return false;
    }

    /// <summary>Whether the container (through its init's root) has <paramref name="program"/>: a path, or a name on its PATH.</summary>
    private static bool ProgramExists(int initPid, string program)
    {
        var root = $"/proc/{initPid}/root";
        try
        {
            // Present as a file or as a link (an absolute link inside the container would resolve against the host's root here).
            static bool Present(string p) => File.Exists(p) || new FileInfo(p).LinkTarget is not null;
            if (program.Contains('/')) return Present(root + "/" + program.TrimStart('/'));
            return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".Split(':').Any(d => Present($"{root}{d}/{program}"));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return true; } // cannot tell: no hint
    }

    private static string QuoteForPowerShell(string word) =>
        word.Length > 0 && word.All(c => char.IsLetterOrDigit(c) || c is '-' or '/' or '.' or '_' or '=' or ':') ? word : "'" + word.Replace("'", "''") + "'";

    /// <summary>
    /// Starts an interactive program in the container (Enter-Container): on a new pty of the container's
    /// own devpts, in a session of its own; the helper relays between it and the caller's terminal,
    /// which never enters the container (no TIOCSTI into the caller's shell, no foreground group taken).
    /// </summary>
    public Processes.RunningProgram StartInteractive(string name, IReadOnlyList<string> command, NamespaceKind namespaces = NamespaceKind.None, string? workingDirectory = null,
        IDictionary<string, string>? environment = null, ExecOptions? options = null)
    {
        ContainerNames.Validate(name);
        ExecSpec spec;
        using (Store.Lock(name)) spec = AttachSpec(name, command, namespaces, workingDirectory, environment, options);
        spec.Terminal = true;
        spec.Environment.Add("TERM=" + (System.Environment.GetEnvironmentVariable("TERM") ?? "xterm"));
        return PscHelper.StartInteractive(spec, Store.TempDirectory);
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

    // ---- helpers ------------------------------------------------------------------------------

    // The other parts', for the operations still here.
    private PersistedState LoadState(string name) => Inspection.LoadState(name);
    private ContainerInspection.Observation Observe(string name, PersistedState state) => Inspection.Observe(name, state);

    /// <summary>Undoes host-side set-up in reverse order; one hook failing does not skip the others.</summary>
    internal static void RunStoppedHooks(IReadOnlyList<IContainerHook> hooks, string name, ContainerConfig config)
    {
        List<Exception>? errors = null;
        for (var i = hooks.Count - 1; i >= 0; i--)
        {
            try { hooks[i].Stopped(name, config); }
            catch (Exception ex) { (errors ??= new()).Add(ex); }
        }
        if (errors is { Count: 1 }) throw errors[0];
        if (errors is not null) throw new AggregateException(errors);
    }

    public string RootfsOf(string name, ContainerConfig? config) => config?.Rootfs ?? Store.RootfsPath(name);

    internal static IEnumerable<string> InitCommand(ContainerConfig config) =>
        config.Init.Command.Count > 0 ? config.Init.Command : new List<string> { "/sbin/init" };

    internal static IEnumerable<string> Environment(ContainerConfig config, IDictionary<string, string>? extra = null, bool clear = false, string? home = null)
    {
        // Like LXC: a sane PATH, and container=... so init systems know where they run. Cleared
        // (lxc-attach --clear-env): the given variables and a PATH to find the program by.
        var env = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        };
        if (!clear)
        {
            env["container"] = "pscontainers";
            env["HOME"] = home ?? "/root";
            foreach (var (k, v) in config.Init.Environment) env[k] = v;
        }
        if (extra is not null) foreach (var (k, v) in extra) env[k] = v;
        return env.Select(kv => $"{kv.Key}={kv.Value}");
    }

    /// <summary>Root may act on every container; other users on user-namespaced ones (their own: the store is theirs).</summary>
    internal void RequireAccess(string verb, string name, ContainerConfig? config)
    {
        if (!Host.IsRoot && config?.IdMap is null)
            throw new ContainerException("RootRequired", ContainerErrorKind.PermissionDenied,
                $"Container '{name}' is privileged (its config.yaml has no idMap), so only root can {verb} it: it would need CAP_SYS_ADMIN on the host. " +
                "Run pwsh as root, or create the container as this user (New-Container gives it a user namespace on your subordinate ids).", name);
    }

    internal static ContainerException NotFound(string name) =>
        new("ContainerNotFound", ContainerErrorKind.ObjectNotFound, $"No container named '{name}' exists. Get-Container lists the containers of this store.", name);
}
