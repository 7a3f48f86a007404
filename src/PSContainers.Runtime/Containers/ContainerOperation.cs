using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Events;
using PSContainers.Runtime.Host;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.State;

namespace PSContainers.Runtime.Containers;

/// <summary>
/// One part of the lifecycle (inspection, recovery, creation, start, stop, removal, freezing,
/// exec). The parts share only what <see cref="ContainerManager"/> holds (store, host, cgroups,
/// hooks, journal) and reach each other through it; these members say so once, so that each
/// part's code reads as it does everywhere in the lifecycle.
/// </summary>
internal abstract class ContainerOperation
{
    protected ContainerOperation(ContainerManager manager) => Manager = manager;

    /// <summary>The facade: the shared state, and the way to the other parts.</summary>
    protected ContainerManager Manager { get; }

    // ---- shared state (ContainerManager) -------------------------------------------------------

    protected ContainerStore Store => Manager.Store;
    protected HostContext Host => Manager.Host;
    protected CgroupManager Cgroups => Manager.Cgroups;
    protected List<IContainerHook> Hooks => Manager.Hooks;
    protected ICheckpointSupport? Checkpoints => Manager.Checkpoints;
    protected EventJournal Events => Manager.Events;
    protected IdMapping.SubordinateIdDatabase SubordinateIds => Manager.SubordinateIds;
    protected IdRanges.IsolatedIdRanges IsolatedIdRanges => Manager.IsolatedIdRanges;
    /// <summary>The manager's Warning and Verbose events (null without a subscriber).</summary>
    protected Action<string>? Warning => Manager.WarningHandler;
    protected Action<string>? Verbose => Manager.VerboseHandler;

    protected void Emit(string name, ContainerEventKind kind, params (string Key, string Value)[] details) => Manager.Emit(name, kind, details);
    protected string? CgroupPathFor(string name) => Manager.CgroupPathFor(name);
    protected void EnsureStoreSecure() => Manager.EnsureStoreSecure();
    protected string RootfsOf(string name, ContainerConfig? config) => Manager.RootfsOf(name, config);

    // ---- the helpers every part uses ------------------------------------------------------------

    /// <summary>Under the lock, for an operation on a running container (freeze, thaw, exec): its state and status, or why it cannot be done.</summary>
    protected (PersistedState State, ContainerStatus Status) Running(string name, string verb, bool needsCgroup = false)
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

    /// <summary>
    /// Under the lock, what a start or a stop begins with: an interrupted run finished, then the
    /// container's config (checked against this host), its recorded state and what actually runs.
    /// </summary>
    protected (ContainerConfig Config, PersistedState State, ContainerInspection.Observation Live) Current(string name)
    {
        if (!Store.Exists(name)) throw NotFound(name);
        RecoverLocked(name);
        var config = ConfigLoader.Load(Store.ConfigPath(name));
        ContainerModes.CheckExisting(config, name);
        var state = LoadState(name);
        return (config, state, Observe(name, state));
    }

    /// <summary>Undoes host-side set-up in reverse order; one hook failing does not skip the others.</summary>
    protected static void RunStoppedHooks(IReadOnlyList<IContainerHook> hooks, string name, ContainerConfig config)
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

    protected static IEnumerable<string> InitCommand(ContainerConfig config) =>
        config.Init.Command.Count > 0 ? config.Init.Command : new List<string> { "/sbin/init" };

    protected static IEnumerable<string> Environment(ContainerConfig config, IDictionary<string, string>? extra = null, bool clear = false, string? home = null)
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
    protected void RequireAccess(string verb, string name, ContainerConfig? config)
    {
        if (!Host.IsRoot && config?.IdMap is null)
            throw new ContainerException("RootRequired", ContainerErrorKind.PermissionDenied,
                $"Container '{name}' is privileged (its config.yaml has no idMap), so only root can {verb} it: it would need CAP_SYS_ADMIN on the host. " +
                "Run pwsh as root, or create the container as this user (New-Container gives it a user namespace on your subordinate ids).", name);
    }

    protected static ContainerException NotFound(string name) =>
        new("ContainerNotFound", ContainerErrorKind.ObjectNotFound, $"No container named '{name}' exists. Get-Container lists the containers of this store.", name);


    protected static void DeleteTree(string path) => ContainerRemoval.DeleteTree(path);
    protected void DeleteContainerTree(string path, ContainerConfig? config) => Manager.Removal.DeleteContainerTree(path, config);

    // ---- the other parts -----------------------------------------------------------------------

    protected void RecoverLocked(string name) => Manager.RecoverLocked(name);
    protected ContainerInfo Describe(string name, ContainerConfig? config = null, PersistedState? state = null) => Manager.Inspection.Describe(name, config, state);
    protected PersistedState LoadState(string name) => Manager.Inspection.LoadState(name);
    protected PersistedState LoadRecordedState(string name) => Manager.Inspection.LoadRecordedState(name);
    protected void Adopt(string name, PersistedState state, RunRecord run) => Manager.Inspection.Adopt(name, state, run);
    protected ContainerInspection.Observation Observe(string name, PersistedState state) => Manager.Inspection.Observe(name, state);
    protected bool SafeIsFrozen(string cgroupPath) => Manager.Inspection.SafeIsFrozen(cgroupPath);
    protected ContainerInspection.ExitRecord? ReadExitRecord(string name) => Manager.Inspection.ReadExitRecord(name);
    protected static (ContainerStopReason?, int?, int?) Classify(ContainerInspection.ExitRecord exit) => ContainerInspection.Classify(exit);
}
