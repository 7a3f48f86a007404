using System.Text.Json;
using System.Text.Json.Serialization;
using PSContainers.Runtime.State;
using PSContainers.Runtime.Filesystem;

namespace PSContainers.Runtime.Checkpoint;

/// <summary>How to checkpoint (Checkpoint-Container).</summary>
public sealed class CheckpointOptions
{
    /// <summary>Keep the container running after the dump (default: CRIU stops it, the checkpoint replaces it).</summary>
    public bool LeaveRunning { get; set; }
    /// <summary>Dump established TCP connections (restored with TCP repair; the peer keeps its connection).</summary>
    public bool TcpEstablished { get; set; }
    /// <summary>
    /// Copy memory once while the container runs (CRIU pre-dump), then dump only what changed since:
    /// a shorter freeze. Needs soft-dirty memory tracking in the kernel (checked first).
    /// </summary>
    public bool PreDump { get; set; }
    /// <summary>CRIU's log level (0-4; dump.log): 2, errors and warnings, by default; 4 is CRIU's full debug log.</summary>
    public int CriuLogLevel { get; set; } = CheckpointManager.DefaultLogLevel;
    /// <summary>How long CRIU may take; past it the dump is abandoned (CRIU resumes the processes).</summary>
    public TimeSpan Timeout { get; set; } = CheckpointManager.DefaultTimeout;
}

/// <summary>How to restore (Restore-Container).</summary>
public sealed class RestoreOptions
{
    /// <summary>Delete the checkpoint directory once the container runs again (Start-Container of a saved container does).</summary>
    public bool DeleteImages { get; set; }
    /// <summary>CRIU's log level (0-4; restore.log): 2, errors and warnings, by default; 4 is CRIU's full debug log.</summary>
    public int CriuLogLevel { get; set; } = CheckpointManager.DefaultLogLevel;
    /// <summary>
    /// How long CRIU may take; past it the restore is abandoned: criu and every process it restored
    /// are killed, the cgroup and CRIU's mounts removed, and the error returned.
    /// </summary>
    public TimeSpan Timeout { get; set; } = CheckpointManager.DefaultTimeout;
}

/// <summary>A checkpoint on disk: what Checkpoint-Container emits and Get-ContainerCheckpoint reads.</summary>
public sealed class CheckpointInfo
{
    public string Container { get; init; } = "";
    public string Path { get; init; } = "";
    /// <summary>Bytes of images (memory pages, files, sockets...) in <see cref="Path"/>.</summary>
    public long Size { get; init; }
    public int ProcessCount { get; init; }
    public DateTimeOffset Time { get; init; }
    /// <summary>How long the dump took (the container was frozen for most of it).</summary>
    public TimeSpan Duration { get; init; }
    public string CriuVersion { get; init; } = "";
    public string Kernel { get; init; } = "";
    public bool LeftRunning { get; init; }
    public bool TcpEstablished { get; init; }
    public string StorePath { get; init; } = "";
    /// <summary>
    /// The Checkpoint-Container that wrote it was interrupted (a killed pwsh) after CRIU had finished
    /// the images: restorable, but Time and Duration are those of the start of the dump.
    /// </summary>
    public bool Interrupted { get; init; }

    public override string ToString() => Path;
}

/// <summary>An external mount of the checkpoint: CRIU stores only its key; restore maps the key to a host path.</summary>
public sealed class CheckpointMount
{
    public string Key { get; set; } = "";
    public string Target { get; set; } = "";
    public string Source { get; set; } = "";
}

/// <summary>checkpoint.json, written next to CRIU's images and a copy of config.yaml.</summary>
public sealed class CheckpointManifest
{
    public const string FileName = "checkpoint.json";
    public const string ConfigFileName = "config.yaml";
    public const int CurrentFormat = 1;

    public int Format { get; set; } = CurrentFormat;
    /// <summary>
    /// False from just before CRIU starts until the dump is recorded: the directory describes itself
    /// while the processes are being dumped, so a killed Checkpoint-Container leaves a checkpoint that
    /// <see cref="Load"/> can judge (restorable once CRIU's images are complete, see <see cref="ImagesFinished"/>).
    /// </summary>
    public bool Complete { get; set; } = true;
    public string Container { get; set; } = "";
    public string StorePath { get; set; } = "";
    public DateTimeOffset Time { get; set; }
    public double DurationMs { get; set; }
    public string CriuVersion { get; set; } = "";
    public string Kernel { get; set; } = "";
    public int InitPid { get; set; }
    public int ProcessCount { get; set; }
    public bool LeftRunning { get; set; }
    public bool TcpEstablished { get; set; }
    public bool PreDumped { get; set; }
    public string CgroupPath { get; set; } = "";
    /// <summary>CRIU's id of the console pty ("tty[rdev:dev]"), mapped onto a fresh console at restore.</summary>
    public string? ConsoleTty { get; set; }
    public List<CheckpointMount> Mounts { get; set; } = new();
    /// <summary>v1 hierarchies the container is not in a cgroup of its own (e.g. name=systemd): controller → path, kept as is.</summary>
    public Dictionary<string, string> ForeignCgroups { get; set; } = new();
    /// <summary>Interface names inside the container whose peers (veth host ends) live outside it.</summary>
    public List<string> Veths { get; set; } = new();
    /// <summary>
    /// The veths the running container had (its NIC ledger, so a NIC plugged live without -Persist is
    /// here and one removed live is not), which the restore makes again: bridge, link namespace, index.
    /// Null in checkpoints made before it was recorded: those restore config.yaml's veths named in <see cref="Veths"/>.
    /// </summary>
    public List<NetworkHooks.PlumbedNic>? Nics { get; set; }

    private static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public void Save(string directory) => AtomicFile.WriteAllText(System.IO.Path.Combine(directory, FileName), JsonSerializer.Serialize(this, Options));

    public static CheckpointManifest Load(string directory)
    {
        var path = System.IO.Path.Combine(directory, FileName);
        if (!File.Exists(path))
            throw new ContainerException("CheckpointNotFound", ContainerErrorKind.ObjectNotFound,
                $"'{directory}' holds no checkpoint ({FileName} is missing). Give the directory Checkpoint-Container wrote.", directory);
        CheckpointManifest? manifest;
        try { manifest = JsonSerializer.Deserialize<CheckpointManifest>(BoundedFile.ReadAllText(path), Options); }
        catch (Exception ex) when (ex is JsonException or InvalidDataException)
        {
            throw new ContainerException("InvalidCheckpoint", ContainerErrorKind.InvalidData, $"{path} is not a valid checkpoint manifest: {ex.Message}", path, ex);
        }
        if (manifest is null || manifest.Format != CurrentFormat || !ContainerNames.IsValid(manifest.Container, out _))
            throw new ContainerException("InvalidCheckpoint", ContainerErrorKind.InvalidData,
                $"{path} is not a checkpoint this version can restore (format {manifest?.Format}, container '{manifest?.Container}').", path);
        if (!manifest.Complete && !ImagesFinished(directory))
            throw new ContainerException("CheckpointIncomplete", ContainerErrorKind.InvalidData,
                $"The checkpoint in '{directory}' of container '{manifest.Container}' was interrupted before CRIU finished its images, so it cannot be restored. " +
                $"CRIU leaves the processes running when a dump does not finish: see Get-Container '{manifest.Container}'. Remove the directory and checkpoint again.", directory);
        return manifest;
    }

    /// <summary>
    /// CRIU writes its stats-dump image last, only after a successful dump (cr_dump_finish): with it
    /// the images are complete even if the Checkpoint-Container that asked for them was killed.
    /// </summary>
    public static bool ImagesFinished(string directory) => File.Exists(System.IO.Path.Combine(directory, "stats-dump"));

    /// <summary>A dump that was interrupted (a killed pwsh) but whose images CRIU completed: the processes are gone, the checkpoint is theirs.</summary>
    public static bool FinishedButUnrecorded(string directory)
    {
        try { return ImagesFinished(directory) && Load(directory) is { Complete: false }; }
        catch (Exception ex) when (ex is ContainerException or IOException or UnauthorizedAccessException) { return false; }
    }

    public CheckpointInfo ToInfo(string directory) => new()
    {
        Container = Container,
        Path = directory,
        Size = Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length),
        ProcessCount = ProcessCount,
        Time = Time,
        Duration = TimeSpan.FromMilliseconds(DurationMs),
        CriuVersion = CriuVersion,
        Kernel = Kernel,
        LeftRunning = LeftRunning,
        TcpEstablished = TcpEstablished,
        StorePath = StorePath,
        Interrupted = !Complete,
    };
}
