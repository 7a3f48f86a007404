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
/// Finishing what interrupted commands (a killed pwsh) left: a start recorded or undone, an
/// export's freeze undone (under the container's lock, first thing in every command that changes
/// it), and the store's temporaries, half-deleted containers and stale lock files cleaned.
/// </summary>
internal sealed class ContainerRecovery : ContainerOperation
{
    public ContainerRecovery(ContainerManager manager) : base(manager) { }

    private void RecoverExportFreeze(string name) => Manager.Freezing.RecoverExportFreeze(name);

    /// <summary>
    /// Called under the container's lock by every command that changes it: finishes what an
    /// interrupted run of a command left. A start whose pwsh was killed after init was released is
    /// recorded (it runs); one killed before (init never released), or a run that ended unrecorded,
    /// is undone: its processes, cgroups and network set-up go, and its exit is recorded. A container
    /// an interrupted Export-Container -Force froze is thawed.
    /// </summary>
    public void RecoverLocked(string name)
    {
        if (!Directory.Exists(Store.ContainerDirectory(name))) return;
        RecoverExportFreeze(name);
        var recordPath = Store.RunRecordPath(name);
        if (RunRecord.Read(recordPath) is not { } run) return;
        PersistedState state;
        try { state = LoadRecordedState(name); }
        catch (ContainerException) { return; } // a broken state file: its own error, from the command
        // A recorded run is finished here only when its supervisor died before recording init's end
        // (killed) and init is gone too: nothing else ends it (its end-of-run hooks: Hooks/LxcHooks).
        if (run.IsRecordedIn(state) && (!run.Released || Sys.IsAlive(run.SupervisorPid, run.SupervisorStartTime)
            || Sys.IsAlive(run.InitPid, run.InitStartTime) || ReadExitRecord(name) is not null)) return;
        var supervisorAlive = Sys.IsAlive(run.SupervisorPid, run.SupervisorStartTime);
        var initAlive = Sys.IsAlive(run.InitPid, run.InitStartTime);
        if (run.Released && initAlive)
        {
            Adopt(name, state, run);
            state.Save(Store.StatePath(name));
            Warning?.Invoke($"Container '{name}' was started by a command that was interrupted before it recorded the start (init pid {run.InitPid}); it is running and is now recorded as such.");
            return;
        }
        // Never released: its caller is gone (we hold the lock) and nobody will answer the paused
        // supervisor. Released but init is gone: the supervisor only finishes its records.
        if (initAlive) Sys.Kill(run.InitPid, 9);
        if (!run.Released && supervisorAlive) Sys.Kill(run.SupervisorPid, 9);
        if (supervisorAlive) Sys.WaitForExit(run.SupervisorPid, run.SupervisorStartTime, TimeSpan.FromSeconds(10));
        if (initAlive) Sys.WaitForExit(run.InitPid, run.InitStartTime, TimeSpan.FromSeconds(10));
        if (CgroupPathFor(name) is { } cgroup && Cgroups.Exists(cgroup))
        {
            if (Cgroups.Pids(cgroup).Count > 0) Cgroups.KillAll(cgroup);
            Cgroups.Remove(cgroup);
        }
        ContainerConfig? config = null;
        try { config = ConfigLoader.Load(Store.ConfigPath(name)); }
        catch (ContainerException) { /* a broken config: nothing of its network can be found */ }
        // A hook of the run failing is the run's news, not this command's failure: a warning.
        try { if (config is not null) RunStoppedHooks(Hooks, name, config); }
        catch (Exception ex) when (ex is ContainerException { ErrorId: "HookFailed" or "HookTimedOut" } || ex is AggregateException a && a.InnerExceptions.All(e => e is ContainerException { ErrorId: "HookFailed" or "HookTimedOut" }))
        { Warning?.Invoke(ex is AggregateException all ? string.Join(" ", all.InnerExceptions.Select(e => e.Message)) : ex.Message); }
        if (run.Released)
        {
            var exit = ReadExitRecord(name);
            state.StartedAt = run.Time;
            state.EndRun(exit?.Time ?? DateTimeOffset.Now);
            state.ExitCode = exit?.Code;
            state.ExitSignal = exit?.Signal;
            state.Save(Store.StatePath(name));
        }
        File.Delete(recordPath);
    }

    /// <summary>
    /// Removes .tmp entries (NAME.PID.GUID: containers being created, copied or imported, and
    /// read-only overlay views, which are unmounted first) whose process is gone: a killed pwsh.
    /// An entry whose process lives is never touched.
    /// </summary>
    public void CleanStaleTemp()
    {
        if (!Directory.Exists(Store.TempDirectory)) return;
        foreach (var entry in Directory.EnumerateFileSystemEntries(Store.TempDirectory))
        {
            var parts = System.IO.Path.GetFileName(entry).Split('.');
            if (parts.Length >= 3 && int.TryParse(parts[^2], out var pid) && pid > 0 && Sys.ProcessStartTime(pid) is null)
            {
                // A non-root caller cannot delete what a half-made container's mapped ids own; it stays.
                try { DeleteTree(entry); }
                catch (Exception ex) when (!Host.IsRoot && ex is ContainerException or IOException or UnauthorizedAccessException) { }
            }
        }
    }

    /// <summary>
    /// Deletes .trash entries (NAME.GUID) a killed Remove-Container left half-deleted. A removal
    /// holds its container's lock until its entry is gone, so an entry whose name's lock is free is
    /// abandoned.
    /// </summary>
    internal void CleanTrash()
    {
        if (!Directory.Exists(Store.TrashDirectory)) return;
        foreach (var entry in Directory.EnumerateDirectories(Store.TrashDirectory))
        {
            var file = System.IO.Path.GetFileName(entry);
            var dot = file.LastIndexOf('.');
            if (dot <= 0 || !ContainerNames.IsValid(file[..dot], out _)) continue;
            using var held = Store.TryLock(file[..dot]);
            if (held is null) continue;
            ContainerConfig? config = null;
            try { config = ConfigLoader.Load(System.IO.Path.Combine(entry, "config.yaml")); }
            catch (Exception ex) when (ex is ContainerException or IOException) { }
            try { DeleteContainerTree(entry, config); }
            catch (Exception ex) when (ex is ContainerException or IOException or UnauthorizedAccessException) { }
            if (!Directory.Exists(Store.ContainerDirectory(file[..dot]))) held.DeleteOnRelease();
        }
    }

    /// <summary>Deletes the lock files of containers that do not exist (taken first, so nobody is using them).</summary>
    internal void CleanStaleLocks()
    {
        if (!Directory.Exists(Store.LockDirectory)) return;
        foreach (var path in Directory.EnumerateFiles(Store.LockDirectory, "*.lock"))
        {
            var name = System.IO.Path.GetFileName(path)[..^".lock".Length];
            if (!ContainerNames.IsValid(name, out _) || Directory.Exists(Store.ContainerDirectory(name))) continue;
            using var held = Store.TryLock(name);
            if (held is not null && !Directory.Exists(Store.ContainerDirectory(name))) held.DeleteOnRelease();
        }
    }

}
