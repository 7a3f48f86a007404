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

    // ---- the helpers every part uses (ContainerManager) ----------------------------------------

    protected static ContainerException NotFound(string name) => ContainerManager.NotFound(name);
    protected static IEnumerable<string> InitCommand(ContainerConfig config) => ContainerManager.InitCommand(config);
    protected static IEnumerable<string> Environment(ContainerConfig config, IDictionary<string, string>? extra = null, bool clear = false, string? home = null) =>
        ContainerManager.Environment(config, extra, clear, home);
    protected static void RunStoppedHooks(IReadOnlyList<IContainerHook> hooks, string name, ContainerConfig config) => ContainerManager.RunStoppedHooks(hooks, name, config);
    protected void RequireAccess(string verb, string name, ContainerConfig? config) => Manager.RequireAccess(verb, name, config);
    protected static void DeleteTree(string path) => ContainerRemoval.DeleteTree(path);
    protected void DeleteContainerTree(string path, ContainerConfig? config) => Manager.Removal.DeleteContainerTree(path, config);
    protected (PersistedState State, ContainerStatus Status) Running(string name, string verb, bool needsCgroup = false) => Manager.Running(name, verb, needsCgroup);

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
