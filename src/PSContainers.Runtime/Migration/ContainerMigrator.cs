using System.Diagnostics;
using PSContainers.Runtime.Checkpoint;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.State;
using PSContainers.Runtime.Storage;

namespace PSContainers.Runtime.Migration;

public enum MigrationMode
{
    /// <summary>Stop, archive, transfer, import, start: the processes restart from scratch.</summary>
    Cold,
    /// <summary>Checkpoint with CRIU, transfer rootfs and images, restore: the processes go on where they were.</summary>
    Warm,
}

/// <summary>How Move-Container moves a container.</summary>
public sealed class MoveOptions
{
    /// <summary>The name at the destination (default: the same name).</summary>
    public string? NewName { get; set; }
    public MigrationMode Mode { get; set; } = MigrationMode.Cold;
    /// <summary>Warm: checkpoint and restore established TCP connections (CRIU --tcp-established).</summary>
    public bool TcpEstablished { get; set; }
    /// <summary>Keep the (stopped) source in its store instead of removing it after the move.</summary>
    public bool Keep { get; set; }
    /// <summary>Remove the source even when snapshot clones use its rootfs (as Remove-Container -Force).</summary>
    public bool Force { get; set; }
    /// <summary>Cold: how long the graceful stop may take before the container is killed (default: its config's stop timeout).</summary>
    public TimeSpan? StopTimeout { get; set; }
    public SshOptions Ssh { get; set; } = new();
    /// <summary>Let the destination keep the settings that widen the container's access to the host
    /// (see <see cref="UntrustedConfigPolicy"/>); without it, a container that has any is not moved.</summary>
    public bool KeepHostAccess { get; set; }
}

/// <summary>A step of a migration, for progress display; <see cref="PercentComplete"/> is for the whole move.</summary>
public readonly record struct MigrationProgress(string Phase, string Status, int PercentComplete);

/// <summary>What Move-Container did.</summary>
public sealed class MigrationResult
{
    public string Name { get; init; } = "";
    /// <summary>The container's name at the destination.</summary>
    public string DestinationName { get; init; } = "";
    /// <summary>The source store.</summary>
    public string Source { get; init; } = "";
    /// <summary>The destination store: a path, or ssh://[user@]host[:port]/path.</summary>
    public string Destination { get; init; } = "";
    public MigrationMode Mode { get; init; }
    /// <summary>The container's state at the destination after the move.</summary>
    public ContainerStatus State { get; init; }
    /// <summary>How long a running container was not running (from stop or checkpoint to running again); zero for a stopped one.</summary>
    public TimeSpan Downtime { get; init; }
    /// <summary>The bytes of archive and images that were moved to the destination.</summary>
    public long BytesTransferred { get; init; }
    public TimeSpan Duration { get; init; }
    /// <summary>False with -Keep, or when removing the source failed (see <see cref="Warnings"/>).</summary>
    public bool SourceRemoved { get; init; }
    public IReadOnlyList<string> Warnings { get; init; } = Array.Empty<string>();
}

/// <summary>
/// Move-Container: takes a container to another store, on this host or over SSH on another one.
/// Whatever fails before the destination is verified is rolled back: the destination copy is
/// removed and the source is started (cold) or restored from its checkpoint (warm) again. The
/// source is removed only after the destination runs (or, for a stopped container, exists). The
/// source's lock is held for the whole move: another session's Start-Container or Remove-Container
/// waits for it to end (or gives up with ContainerBusy).
/// </summary>
public static class ContainerMigrator
{
    public static MigrationResult Move(IContainerLifecycle source, string name, MigrationDestination destination, MoveOptions options,
        IProgress<MigrationProgress>? progress = null, CancellationToken ct = default)
    {
        ContainerNames.Validate(name);
        var newName = options.NewName ?? name;
        ContainerNames.Validate(newName);
        // Held from the first check to the source's removal, so no other session starts, changes or
        // removes the source half-way; the steps below take it again re-entrantly (see ContainerLock).
        using var sourceLock = source.Store.Lock(name);
        var info = source.Get(name);
        var config = ConfigLoader.Load(source.Store.ConfigPath(name));
        if (config.Storage.Ephemeral)
            throw new ContainerException("ContainerEphemeral", ContainerErrorKind.InvalidOperation,
                $"Container '{name}' is ephemeral: stopping it for the move would destroy it. Copy it to a normal container first (Copy-Container).", name);
        if (!destination.IsRemote && destination.StorePath == Path.TrimEndingDirectorySeparator(Path.GetFullPath(source.Store.Root)))
            throw new ContainerException("SameStore", ContainerErrorKind.InvalidArgument,
                $"Container '{name}' is already in {source.Store.Root}. Give another store as -Destination (Copy-Container makes a copy in the same store).", name);
        if (info.State is ContainerStatus.Saved)
            throw new ContainerException("ContainerSaved", ContainerErrorKind.InvalidOperation,
                $"Container '{name}' is saved (checkpointed by Save-Container). Start-Container resumes it; then move it, with -Warm to keep its processes' state.", name);
        if (!options.Keep) Backends.StorageBackends.CheckNoDependentClones(source.Store, name, options.Force);
        // The destination imports with the untrusted-config policy: what it would remove is said
        // now, before anything is stopped, rather than found missing after the move.
        var hostAccess = UntrustedConfigPolicy.Find(config).Where(h => h.Key is not ("storage.lower" or "storage.origin")).ToList();
        if (hostAccess.Count > 0 && !options.KeepHostAccess)
            throw new ContainerException("HostAccessNotKept", ContainerErrorKind.InvalidOperation,
                $"Container '{name}' has settings that widen its access to the host, which the destination removes from what it receives: " +
                string.Join("; ", hostAccess.Select(h => $"{h.Key} ({h.Value})")) + ". Move it with -KeepHostAccess to keep them.", name);
        var wasRunning = info.State is ContainerStatus.Running or ContainerStatus.Frozen;
        var warm = options.Mode == MigrationMode.Warm;
        if (warm && !wasRunning)
            throw new ContainerException("ContainerNotRunning", ContainerErrorKind.InvalidOperation,
                $"Container '{name}' is {info.State.ToString().ToLowerInvariant()}: a warm move carries running processes. Move it without -Warm.", name);
        if (warm) new CheckpointManager(source).Criu(); // a missing or failing CRIU stops here, before anything changed

        var clock = Stopwatch.StartNew();
        void Report(string phase, string status, int percent) => progress?.Report(new MigrationProgress(phase, status, percent));

        Report("Connect", destination.ToString(), 0);
        using var target = OpenTarget(source, destination, options, ct);
        Report("Prepare", $"Checking that '{newName}' can be made at the destination", 3);
        target.Prepare(newName, warm, ct);

        var stopped = false;
        string? images = null;
        var downtime = Stopwatch.StartNew();
        long bytes = 0;
        ContainerStatus state;
        try
        {
            if (warm)
            {
                Report("Checkpoint", $"Checkpointing '{name}'", 5);
                stopped = true; // CRIU ends the processes once they are dumped
                downtime.Restart();
                var dir = Path.Combine(target.LocalStaging, "checkpoint");
                new CheckpointManager(source).Checkpoint(name, dir, new CheckpointOptions { TcpEstablished = options.TcpEstablished },
                    new InlineProgress<string>(s => Report("Checkpoint", s, 5)));
                images = dir;
            }
            else if (wasRunning)
            {
                Report("Stop", $"Stopping '{name}'", 5);
                stopped = true;
                downtime.Restart();
                source.Stop(name, options.StopTimeout);
            }
            var archive = Path.Combine(target.LocalStaging, "container.tar.zst");
            Report("Export", "Archiving config and root filesystem", 10);
            ContainerArchive.Export(source, name, archive, force: false,
                new InlineProgress<ArchiveProgress>(p => Report("Export", $"{p.Entries} entries, {p.Bytes / (1024 * 1024)} MiB", 10 + Fraction(p.Bytes, p.TotalBytes, 40))), ct);
            if (images is not null) Retarget(images, newName);
            var size = new FileInfo(archive).Length + (images is null ? 0 : MigrationTarget.SizeOf(images));
            Report("Transfer", $"{size / (1024 * 1024)} MiB to {destination}", 50);
            void Sent(long sent) => Report("Transfer", $"{(bytes + sent) / (1024 * 1024)} of {size / (1024 * 1024)} MiB", 50 + Fraction(bytes + sent, size, 30));
            bytes += target.Send(archive, Sent, ct);
            if (images is not null) bytes += target.Send(images, Sent, ct);
            Report(warm ? "Restore" : wasRunning ? "Start" : "Import",
                $"Importing '{newName}'{(warm ? " and restoring its processes" : wasRunning ? " and starting it" : "")}", 80);
            state = target.Receive(new ReceiveRequest(newName, archive, images, wasRunning, config.IdMap is null, options.KeepHostAccess), ct);
            var expected = wasRunning ? ContainerStatus.Running : ContainerStatus.Stopped;
            if (state != expected)
                throw new ContainerException("MigrationVerifyFailed", ContainerErrorKind.InvalidOperation,
                    $"Container '{newName}' is {state.ToString().ToLowerInvariant()} at {destination} after the move, not {expected.ToString().ToLowerInvariant()}.", name);
        }
        catch (Exception ex)
        {
            Report("Rollback", $"Undoing the move of '{name}'", 100);
            var problems = Rollback(target, newName, source, name, stopped, images ?? Path.Combine(target.LocalStaging, "checkpoint"));
            if (problems.Count == 0) throw;
            var original = ex as ContainerException;
            throw new ContainerException(original?.ErrorId ?? "MigrationFailed", original?.Kind ?? ContainerErrorKind.InvalidOperation,
                $"{ex.Message} The rollback was incomplete: {string.Join(" ", problems)}", name, ex);
        }
        var downtimeTaken = wasRunning ? downtime.Elapsed : TimeSpan.Zero;

        var warnings = new List<string>(target.ReceiveWarnings);
        var removed = false;
        if (!options.Keep)
        {
            Report("Cleanup", $"Removing '{name}' from {source.Store.Root}", 95);
            try
            {
                source.Remove(name, options.Force);
                removed = true;
            }
            catch (Exception ex) when (ex is ContainerException or IOException or UnauthorizedAccessException)
            {
                warnings.Add($"The move succeeded, but the stopped source '{name}' could not be removed from {source.Store.Root}: {ex.Message}");
            }
        }
        return new MigrationResult
        {
            Name = name,
            DestinationName = newName,
            Source = source.Store.Root,
            Destination = destination.ToString(),
            Mode = options.Mode,
            State = state,
            Downtime = downtimeTaken,
            BytesTransferred = bytes,
            Duration = clock.Elapsed,
            SourceRemoved = removed,
            Warnings = warnings,
        };
    }

    static MigrationTarget OpenTarget(IContainerLifecycle source, MigrationDestination destination, MoveOptions options, CancellationToken ct)
    {
        if (!destination.IsRemote) return new LocalTarget(Composition.ContainerRuntime.Open(destination.StorePath));
        var ssh = SshConnection.Open(destination.Ssh!, options.Ssh, ct);
        try { return new SshTarget(ssh, destination, options.Ssh, source.Store.Root); }
        catch
        {
            ssh.Dispose();
            throw;
        }
    }

    /// <summary>Makes a checkpoint restore into <paramref name="name"/> (Restore takes the container from the manifest).</summary>
    static void Retarget(string images, string name)
    {
        var manifest = CheckpointManifest.Load(images);
        if (manifest.Container == name) return;
        manifest.Container = name;
        manifest.Save(images);
    }

    /// <summary>
    /// Removes the destination copy and brings a source that was running back: from its checkpoint
    /// (warm; its processes go on), else by starting it. What could not be undone, as sentences.
    /// </summary>
    static List<string> Rollback(MigrationTarget target, string newName, IContainerLifecycle source, string name, bool wasStopped, string images)
    {
        var problems = new List<string>();
        try { target.RemoveImported(newName); }
        catch (Exception ex) when (ex is ContainerException or IOException or UnauthorizedAccessException)
        {
            problems.Add($"The destination copy '{newName}' could not be removed ({ex.Message}); remove it by hand.");
        }
        if (!wasStopped) return problems;
        try
        {
            // A checkpoint that failed half-way may have left the container running.
            if (source.Get(name).State is ContainerStatus.Running or ContainerStatus.Frozen) return problems;
            if (File.Exists(Path.Combine(images, CheckpointManifest.FileName)))
            {
                try
                {
                    Retarget(images, name);
                    new CheckpointManager(source).Restore(images, null, new RestoreOptions());
                    return problems;
                }
                catch (ContainerException ex)
                {
                    problems.Add($"The source '{name}' could not be restored from its checkpoint ({ex.Message}); it was started afresh.");
                }
            }
            source.Start(name);
        }
        catch (Exception ex) when (ex is ContainerException or IOException or UnauthorizedAccessException)
        {
            problems.Add($"The source '{name}' could not be started again ({ex.Message}); it is stopped, with its files intact.");
        }
        return problems;
    }

    static int Fraction(long done, long? total, int span) =>
        total is > 0 ? (int)Math.Clamp(done * span / total.Value, 0, span) : 0;

    /// <summary>An IProgress that calls back on the reporting thread (Progress&lt;T&gt; would post to the thread pool, out of order).</summary>
    sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
