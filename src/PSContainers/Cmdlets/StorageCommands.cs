using System.Collections.Concurrent;
using System.Management.Automation;
using PSContainers.Infrastructure;
using PSContainers.Runtime;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Storage;
using PSContainers.Runtime.Filesystem;

namespace PSContainers.Cmdlets;

/// <summary>Tab completion of snapshot names of the container named by -Name (all containers when none is).</summary>
public sealed class SnapshotNameCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        System.Management.Automation.Language.CommandAst commandAst, System.Collections.IDictionary fakeBoundParameters)
    {
        var store = fakeBoundParameters.Contains("StorePath") ? fakeBoundParameters["StorePath"]?.ToString() : null;
        var container = fakeBoundParameters.Contains("Name") ? fakeBoundParameters["Name"] switch { string n => n, string[] a when a.Length == 1 => a[0], _ => null } : null;
        var pattern = new WildcardPattern(wordToComplete.Trim('\'', '"') + "*", WildcardOptions.IgnoreCase);
        List<ContainerSnapshot> snapshots;
        try
        {
            var manager = PSContainers.Runtime.Composition.ContainerRuntime.Open(store);
            var storage = new StorageManager(manager);
            snapshots = (container is null ? manager.Names() : new[] { container }).SelectMany(storage.GetSnapshots).ToList();
        }
        catch (Exception) { yield break; } // completion must never throw at the prompt
        foreach (var name in snapshots.Select(s => s.Name).Distinct().Where(pattern.IsMatch))
            yield return new CompletionResult(name, name, CompletionResultType.ParameterValue, name);
    }
}

/// <summary>lxc-copy: a full copy of a stopped container, or (-Snapshot) a copy-on-write clone; -Ephemeral starts it and destroys it when it stops.</summary>
[Cmdlet(VerbsCommon.Copy, "Container", SupportsShouldProcess = true)]
[OutputType(typeof(ContainerInfo))]
public sealed class CopyContainerCommand : ContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string Name { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string NewName { get; set; } = "";

    /// <summary>Copy-on-write clone: overlay over the source (dir, overlay sources) or a btrfs snapshot.</summary>
    [Parameter]
    public SwitchParameter Snapshot { get; set; }

    /// <summary>Start the clone now and destroy it when it stops.</summary>
    [Parameter]
    public SwitchParameter Ephemeral { get; set; }

    private readonly CancellationTokenSource _cancel = new();

    protected override void ProcessRecord()
    {
        if (!ShouldProcess(Name, $"Copy container to '{NewName}'{(Snapshot ? " (snapshot clone)" : "")}")) return;
        Try(() => WriteObject(new StorageManager(Manager).Copy(Name, NewName, new CopyOptions { Snapshot = Snapshot, Ephemeral = Ephemeral, Warning = WriteWarning }, _cancel.Token)));
    }

    protected override void StopProcessing() => _cancel.Cancel();
}

/// <summary>lxc-snapshot: saves the stopped container's root filesystem and config as snapN.</summary>
[Cmdlet(VerbsCommon.New, "ContainerSnapshot", SupportsShouldProcess = true)]
[OutputType(typeof(ContainerSnapshot))]
public sealed class NewContainerSnapshotCommand : NameCmdlet
{
    [Parameter]
    public string? Comment { get; set; }

    protected override void ProcessRecord() =>
        ForEachContainer("Snapshot container", name => WriteObject(new StorageManager(Manager).NewSnapshot(name, Comment)));
}

/// <summary>lxc-snapshot -L: the snapshots of containers.</summary>
[Cmdlet(VerbsCommon.Get, "ContainerSnapshot")]
[OutputType(typeof(ContainerSnapshot))]
public sealed class GetContainerSnapshotCommand : ContainerCmdlet
{
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Name { get; set; } = { "*" };

    [Parameter(Position = 1)]
    [ArgumentCompleter(typeof(SnapshotNameCompleter))]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string SnapshotName { get; set; } = "*";

    protected override void ProcessRecord()
    {
        var pattern = new WildcardPattern(SnapshotName, WildcardOptions.IgnoreCase);
        foreach (var name in ResolveNames(Name))
            Try(() =>
            {
                var found = new StorageManager(Manager).GetSnapshots(name).Where(s => pattern.IsMatch(s.Name)).ToList();
                if (found.Count == 0 && !WildcardPattern.ContainsWildcardCharacters(SnapshotName))
                    throw new ContainerException("SnapshotNotFound", ContainerErrorKind.ObjectNotFound,
                        $"Container '{name}' has no snapshot named '{SnapshotName}'.", SnapshotName);
                foreach (var s in found) WriteObject(s);
            });
    }
}

/// <summary>A cmdlet acting on one snapshot: -Name and -SnapshotName, or snapshot objects from the pipeline.</summary>
public abstract class SnapshotCmdlet : ContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = "Name")]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string Name { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1, ParameterSetName = "Name")]
    [ArgumentCompleter(typeof(SnapshotNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string SnapshotName { get; set; } = "";

    /// <summary>A snapshot from Get-ContainerSnapshot.</summary>
    [Parameter(Mandatory = true, ValueFromPipeline = true, ParameterSetName = "InputObject")]
    public ContainerSnapshot? InputObject { get; set; }

    protected (string Container, string Snapshot) Target =>
        InputObject is { } s ? (s.ContainerName, s.Name) : (Name, SnapshotName);
}

/// <summary>lxc-snapshot -r: puts a snapshot back into the stopped container, or makes a new container from it (-NewName).</summary>
[Cmdlet(VerbsData.Restore, "ContainerSnapshot", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = "Name")]
[OutputType(typeof(ContainerInfo))]
public sealed class RestoreContainerSnapshotCommand : SnapshotCmdlet
{
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? NewName { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        var (container, snapshot) = Target;
        var what = NewName is null ? $"Restore snapshot '{snapshot}' (the current root filesystem is replaced)" : $"Make container '{NewName}' from snapshot '{snapshot}'";
        if (!ShouldProcess(container, what)) return;
        Try(() =>
        {
            var info = new StorageManager(Manager).RestoreSnapshot(container, snapshot, NewName);
            if (PassThru || NewName is not null) WriteObject(info);
        });
    }
}

/// <summary>lxc-snapshot -d.</summary>
[Cmdlet(VerbsCommon.Remove, "ContainerSnapshot", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = "Name")]
[OutputType(typeof(void))]
public sealed class RemoveContainerSnapshotCommand : SnapshotCmdlet
{
    protected override void ProcessRecord()
    {
        var (container, snapshot) = Target;
        if (ShouldProcess($"{container}/{snapshot}", "Remove container snapshot"))
            Try(() => new StorageManager(Manager).RemoveSnapshot(container, snapshot));
    }
}

/// <summary>docker diff: files added, changed and deleted relative to a snapshot (or an overlay's lower layer).</summary>
[Cmdlet(VerbsCommon.Get, "ContainerDiff")]
[OutputType(typeof(ContainerChange))]
public sealed class GetContainerDiffCommand : NameCmdlet
{
    /// <summary>Compare with this snapshot (default: the newest; overlay containers without one: the lower layer).</summary>
    [Parameter]
    [ArgumentCompleter(typeof(SnapshotNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string? SnapshotName { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var name in ResolveNames(Name))
            Try(() => { foreach (var c in new StorageManager(Manager).Diff(name, SnapshotName)) WriteObject(c); });
    }
}

/// <summary>Runs an archive operation with its progress (entries, bytes, current path) shown.</summary>
internal static class ArchiveRunner
{
    public static T Run<T>(PSCmdlet cmdlet, string activity, Func<IProgress<ArchiveProgress>, CancellationToken, T> work, CancellationToken ct) =>
        ProgressRelay.Run<ArchiveProgress, T>(cmdlet, activity, Describe, progress => work(progress, ct));

    public static (string Status, int Percent) Describe(ArchiveProgress p) =>
        ($"{p.Entries} entries, {p.Bytes / (1024 * 1024)} MiB: {p.CurrentPath}", p.TotalBytes is > 0 ? (int)Math.Clamp(p.Bytes * 100 / p.TotalBytes.Value, 0, 100) : -1);
}

/// <summary>Seed 004 migration: the container's config and rootfs as one tar archive (.tar, .tar.gz, .tar.zst).</summary>
[Cmdlet(VerbsData.Export, "Container", SupportsShouldProcess = true)]
[OutputType(typeof(ContainerArchiveInfo))]
public sealed class ExportContainerCommand : ContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string Name { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    /// <summary>Export a running container by freezing it for the duration.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    /// <summary>Export in the background: a PowerShell job (Receive-Job returns what -PassThru would).</summary>
    [Parameter]
    public SwitchParameter AsJob { get; set; }

    private readonly CancellationTokenSource _cancel = new();

    protected override void ProcessRecord()
    {
        var path = GetUnresolvedProviderPathFromPSPath(Path);
        if (!ShouldProcess(Name, $"Export container to {path}")) return;
        var name = Name;
        var force = Force.IsPresent;
        var passThru = PassThru.IsPresent;
        if (AsJob)
        {
            StartJob(name, (job, manager) =>
            {
                var info = Export(manager, name, path, force, job.ProgressOf<ArchiveProgress>($"Exporting {name}", ArchiveRunner.Describe), job.Token);
                if (passThru) job.Output.Add(PSObject.AsPSObject(info));
            });
            return;
        }
        Try(() =>
        {
            var info = ArchiveRunner.Run(this, $"Exporting {name}", (p, ct) => Export(Manager, name, path, force, p, ct), _cancel.Token);
            if (passThru) WriteObject(info);
        });
    }

    private static ContainerArchiveInfo Export(PSContainers.Runtime.Containers.ContainerManager manager, string name, string path, bool force,
        IProgress<ArchiveProgress> progress, CancellationToken ct)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        ContainerArchive.Export(manager, name, path, force, progress, ct);
        return new ContainerArchiveInfo
        {
            Container = name,
            Path = System.IO.Path.GetFullPath(path),
            Size = new FileInfo(path).Length,
            Compression = TarCompression.ForPath(path),
            Duration = clock.Elapsed,
            Time = DateTimeOffset.Now,
            StorePath = manager.Store.Root,
        };
    }

    protected override void StopProcessing() => _cancel.Cancel();
}

/// <summary>
/// Recreates a container from an Export-Container archive or an LXC container archive; hostile
/// archives are refused, the archive's config is untrusted (settings that widen host access are
/// removed unless -KeepHostAccess), and an archive that would not fit is refused before writing.
/// </summary>
[Cmdlet(VerbsData.Import, "Container", SupportsShouldProcess = true)]
[OutputType(typeof(ContainerInfo))]
public sealed class ImportContainerCommand : ContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("FullName")]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    /// <summary>The new container's name; default: the name the archive suggests (Export-Container records it; an LXC archive's directory; else the file name).</summary>
    [Parameter(Position = 1)]
    [ValidateNotNullOrEmpty]
    public string? Name { get; set; }

    /// <summary>The default, said explicitly: import into a user namespace on the caller's subordinate ids, shifting the archive's owners.</summary>
    [Parameter]
    public SwitchParameter Unprivileged { get; set; }

    /// <summary>Root: import as a privileged container with the archive's owners (an archive's own privileged: true is never honoured without it).</summary>
    [Parameter]
    public SwitchParameter Privileged { get; set; }

    /// <summary>Keep the archive's settings that widen the container's access to the host (bind mounts, dropped protections, host NICs); asks first unless -Force.</summary>
    [Parameter]
    public SwitchParameter KeepHostAccess { get; set; }

    /// <summary>With -KeepHostAccess: do not ask.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>Refuse an archive whose files add up to more than this (bytes, or 2GB, '2G'); the store's free space always bounds it.</summary>
    [Parameter]
    [SizeTransformation]
    [ValidateRange(1L, long.MaxValue)]
    public long? MaximumSize { get; set; }

    /// <summary>Import in the background: a PowerShell job (Receive-Job returns the container and the import's warnings).</summary>
    [Parameter]
    public SwitchParameter AsJob { get; set; }

    private readonly CancellationTokenSource _cancel = new();

    protected override void ProcessRecord()
    {
        var path = GetUnresolvedProviderPathFromPSPath(Path);
        var manager = Manager;
        Try(() =>
        {
            // First pass (headers only): the name, the size and the config are known before anything is written.
            var survey = ArchiveRunner.Run(this, $"Reading {System.IO.Path.GetFileName(path)}", (p, ct) => ContainerArchive.Survey(path, ct, p), _cancel.Token);
            var name = Name ?? survey.SuggestedName
                ?? throw new ContainerException("ContainerNameRequired", ContainerErrorKind.InvalidArgument,
                    $"The archive '{path}' suggests no valid container name (no Export-Container mark, no LXC directory, and its file name is not one). Give one with -Name.", path);
            if (!ShouldProcess(name, $"Import container from {path}")) return;
            if (KeepHostAccess && survey.HostAccess.Count > 0 && !Force &&
                !ShouldContinue(
                    $"The archive's config.yaml gives container '{name}' access to the host:\n" +
                    string.Join("\n", survey.HostAccess.Select(h => $"  {h.Key} ({h.Value}): {h.Reason}")) +
                    "\nKeep these settings? Only do so for an archive from a source you trust.",
                    "Import with host access"))
                return;
            var options = new ImportOptions { Name = name, Unprivileged = Unprivileged, Privileged = Privileged, KeepHostAccess = KeepHostAccess, MaximumSize = MaximumSize };
            if (AsJob)
            {
                StartJob(name, (job, jobManager) =>
                {
                    var imported = ContainerArchive.Import(jobManager, path, options, survey, job.ProgressOf<ArchiveProgress>($"Importing {name}", ArchiveRunner.Describe), job.Token);
                    foreach (var w in imported.Warnings) job.WriteWarning(w);
                    job.Output.Add(PSObject.AsPSObject(imported.Container));
                });
                return;
            }
            var result = ArchiveRunner.Run(this, $"Importing {name}", (p, ct) => ContainerArchive.Import(manager, path, options, survey, p, ct), _cancel.Token);
            foreach (var w in result.Warnings) WriteWarning(w);
            WriteObject(result.Container);
        });
    }

    protected override void StopProcessing() => _cancel.Cancel();
}
