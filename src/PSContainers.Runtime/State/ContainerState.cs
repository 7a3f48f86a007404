using System.Text.Json;
using System.Text.Json.Serialization;
using PSContainers.Runtime.Filesystem;

namespace PSContainers.Runtime.State;

/// <summary>The state of a container as users see it (lxc-info's State).</summary>
public enum ContainerStatus
{
    Stopped,
    Running,
    Frozen,
    /// <summary>Recorded as running, but its supervisor is gone without recording an exit (killed host-side).</summary>
    Aborting,
    /// <summary>Checkpointed into its own directory and stopped (Save-Container); Start-Container restores it.</summary>
    Saved,
    /// <summary>
    /// Its config.yaml or state.json cannot be read (hand-edited, damaged, hostile): listed with the
    /// reason in <c>Problem</c>, so one bad container never hides the others. A running container
    /// whose config went bad is still reported as Running (with the Problem).
    /// </summary>
    Broken,
}

/// <summary>
/// Why a container's init last ended: asked for (Stop-Container), or on its own, and how. Recorded in
/// state.json by a stop or a checkpoint; derived from the supervisor's exit record when init ended by
/// itself.
/// </summary>
public enum ContainerStopReason
{
    /// <summary>Stop-Container (or Restart-Container) asked it to stop, and it did within the timeout: a clean stop, no exit code to worry about.</summary>
    Requested,
    /// <summary>Stop-Container -Kill, a stop that ran out of time and was escalated to SIGKILL, or a stop.signal of SIGKILL.</summary>
    Killed,
    /// <summary>Init exited on its own with exit code 0.</summary>
    Exited,
    /// <summary>Init exited on its own with a non-zero exit code.</summary>
    Failed,
    /// <summary>The container shut itself down (poweroff, halt or reboot inside it: reboot(2), which the kernel reports as SIGINT/SIGHUP).</summary>
    PoweredOff,
    /// <summary>Init was killed by a signal nobody here asked for (SIGSEGV, the OOM killer's SIGKILL, a kill from the host).</summary>
    Crashed,
    /// <summary>Checkpoint-Container or Save-Container ended its processes after dumping them.</summary>
    Checkpointed,
    /// <summary>The kernel's OOM killer killed init (the container's memory limit), as its supervisor saw in the memory cgroup's OOM kill count.</summary>
    OomKilled,
}

/// <summary>
/// What the runtime persists in &lt;store&gt;/&lt;name&gt;/state.json. The live status is never trusted from
/// here alone: it is derived from these pids (checked against their start times, so a recycled pid
/// is never mistaken for ours), the supervisor's exit record, and the freezer.
/// </summary>
public sealed class PersistedState
{
    public DateTimeOffset Created { get; set; }
    public DateTimeOffset? StartedAt { get; set; }
    public DateTimeOffset? StoppedAt { get; set; }
    public int? SupervisorPid { get; set; }
    public ulong? SupervisorStartTime { get; set; }
    public int? InitPid { get; set; }
    public ulong? InitStartTime { get; set; }
    public int? ExitCode { get; set; }
    /// <summary>Signal that ended init, if it was killed by one.</summary>
    public int? ExitSignal { get; set; }
    /// <summary>Why init last ended (null while running, or if it never ran).</summary>
    [JsonConverter(typeof(JsonStringEnumConverter<ContainerStopReason>))]
    public ContainerStopReason? StopReason { get; set; }
    /// <summary>Cgroup path (relative to each hierarchy's root) of the running container.</summary>
    public string? CgroupPath { get; set; }
    /// <summary>Save-Container: the checkpoint Start-Container restores (null when not saved).</summary>
    public string? SavedCheckpoint { get; set; }
    /// <summary>
    /// A Checkpoint-Container (without -LeaveRunning) or Save-Container is dumping into this directory.
    /// Set before CRIU starts, cleared when the stop is recorded: if the pwsh doing it is killed and
    /// CRIU finishes anyway, the status says checkpointed (or saved), not killed.
    /// </summary>
    public string? PendingCheckpoint { get; set; }
    /// <summary>Restarts by the restart policy in the last run (the running one's are in the supervisor's run record).</summary>
    public int? Restarts { get; set; }

    private static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>
    /// An init now runs under its supervisor (started, restored by CRIU, or adopted from the
    /// supervisor's run record): the run's pids and cgroup, and nothing left of the last end.
    /// The one place a run is recorded.
    /// </summary>
    public void BeginRun(int supervisorPid, ulong? supervisorStartTime, int initPid, ulong? initStartTime, DateTimeOffset startedAt, string? cgroupPath)
    {
        SupervisorPid = supervisorPid;
        SupervisorStartTime = supervisorStartTime;
        InitPid = initPid;
        InitStartTime = initStartTime;
        StartedAt = startedAt;
        StoppedAt = null;
        ExitCode = null;
        ExitSignal = null;
        StopReason = null;
        CgroupPath = cgroupPath;
        SavedCheckpoint = null;
        PendingCheckpoint = null;
        Restarts = null;
    }

    /// <summary>The run is over (a stop, a checkpoint, a recovered crash): no pids, no cgroup. The one place a run is reset; the caller records how it ended.</summary>
    public void EndRun(DateTimeOffset stoppedAt)
    {
        SupervisorPid = null;
        SupervisorStartTime = null;
        InitPid = null;
        InitStartTime = null;
        CgroupPath = null;
        StoppedAt = stoppedAt;
    }

    public static PersistedState Load(string path) =>
        JsonSerializer.Deserialize<PersistedState>(BoundedFile.ReadAllText(path), Options)
        ?? throw new InvalidDataException($"{path} is empty");

    /// <summary>
    /// Not fsync'ed: atomic against a killed process is what matters. After a power loss every pid
    /// here is dead anyway and the status derived from them is Stopped, whatever was last written.
    /// </summary>
    public void Save(string path) => AtomicFile.WriteAllText(path, JsonSerializer.Serialize(this, Options), durable: false);
}
