using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Host;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.State;
using PSContainers.Runtime.Templates;
using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.Launcher;
using PSContainers.Runtime.Events;

namespace PSContainers.Runtime.Containers;

/// <summary>
/// The container lifecycle: create, start, stop, freeze, exec, remove. Every mutation holds the
/// container's lock; every multi-step operation completes or rolls back; the status is derived
/// from the kernel (pids, cgroups) and the supervisor's exit record, never from memory.
/// This class is the facade: it holds what the parts share (store, host, cgroups, hooks, journal)
/// and delegates each operation to its part (ContainerInspection, ContainerRecovery,
/// ContainerCreation, ContainerStart, ContainerStop, ContainerRemoval, ContainerFreezing,
/// ContainerExec; see <see cref="ContainerOperation"/>).
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
    internal ContainerExec Execution { get; }

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
        Execution = new ContainerExec(this);
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

    // ---- exec ---------------------------------------------------------------------------------

    public ContainerCommandResult Exec(string name, IReadOnlyList<string> command, NamespaceKind namespaces = NamespaceKind.None,
        string? workingDirectory = null, IDictionary<string, string>? environment = null, CancellationToken cancellationToken = default, ExecOptions? options = null) =>
        Execution.Exec(name, command, namespaces, workingDirectory, environment, cancellationToken, options);

    /// <summary>Starts an interactive program in the container (Enter-Container), on a pty of its own devpts.</summary>
    public Processes.RunningProgram StartInteractive(string name, IReadOnlyList<string> command, NamespaceKind namespaces = NamespaceKind.None, string? workingDirectory = null,
        IDictionary<string, string>? environment = null, ExecOptions? options = null) =>
        Execution.StartInteractive(name, command, namespaces, workingDirectory, environment, options);

    // ---- console ------------------------------------------------------------------------------

    /// <summary>The console log's lines, rendered harmless unless <paramref name="raw"/>; the last <paramref name="tail"/> only if given.</summary>
    public string[] ReadConsoleLog(string name, int? tail = null, bool raw = false) => Inspection.ReadConsoleLog(name, tail, raw);

    /// <summary>A reader of the console log that follows it as it grows (Get-ContainerConsoleLog -Wait).</summary>
    public ConsoleLogReader OpenConsoleLog(string name, bool raw = false) => Inspection.OpenConsoleLog(name, raw);

    // ---- helpers ------------------------------------------------------------------------------

    /// <summary>The container's root filesystem: the config's, else the store's.</summary>
    public string RootfsOf(string name, ContainerConfig? config) => config?.Rootfs ?? Store.RootfsPath(name);
}
