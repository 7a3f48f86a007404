using System.Collections.Concurrent;
using System.Globalization;
using System.Management.Automation;
using PSContainers.Infrastructure;
using PSContainers.Runtime;
using PSContainers.Runtime.Files;

namespace PSContainers.Cmdlets;

/// <summary>
/// Copies files and directory trees into or out of a container, running or stopped (incus file
/// push/pull, podman cp; shaped like Copy-Item -ToSession/-FromSession). Paths inside the
/// container are resolved in its root and never follow a link out of it.
/// </summary>
[Cmdlet(VerbsCommon.Copy, "ContainerItem", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = ToSet)]
[OutputType(typeof(ContainerFileItem), ParameterSetName = new[] { ToSet })]
[OutputType(typeof(FileSystemInfo), ParameterSetName = new[] { FromSet })]
public sealed class CopyContainerItemCommand : ContainerCmdlet
{
    private const string ToSet = "ToContainer";
    private const string FromSet = "FromContainer";

    /// <summary>What to copy: host paths (wildcards allowed) with -ToContainer, absolute paths inside the container with -FromContainer.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("FullName")]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = Array.Empty<string>();

    /// <summary>Where to: an absolute path inside the container (-ToContainer) or a host path (-FromContainer). An existing directory receives the items by their own names.</summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string Destination { get; set; } = "";

    [Parameter(Mandatory = true, ParameterSetName = ToSet)]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string ToContainer { get; set; } = "";

    [Parameter(Mandatory = true, ParameterSetName = FromSet)]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string FromContainer { get; set; } = "";

    [Parameter]
    public SwitchParameter Recurse { get; set; }

    [Parameter]
    public SwitchParameter Force { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    [Parameter(ParameterSetName = ToSet)]
    public uint? Owner { get; set; }

    [Parameter(ParameterSetName = ToSet)]
    public uint? Group { get; set; }

    [Parameter(ParameterSetName = ToSet)]
    [ValidatePattern("^0?[0-7]{3,4}$")]
    public string? Mode { get; set; }

    private readonly List<string> _paths = new();
    private readonly CancellationTokenSource _cancel = new();

    protected override void ProcessRecord()
    {
        if (ParameterSetName == FromSet) { _paths.AddRange(Path); return; }
        foreach (var p in Path)
        {
            try { _paths.AddRange(GetResolvedProviderPathFromPSPath(p, out _)); }
            catch (ItemNotFoundException ex) { WriteError(new ErrorRecord(ex, "ItemNotFound", ErrorCategory.ObjectNotFound, p)); }
        }
    }

    protected override void EndProcessing()
    {
        if (_paths.Count == 0) return;
        var to = ParameterSetName == ToSet;
        var container = to ? ToContainer : FromContainer;
        var destination = to ? Destination : GetUnresolvedProviderPathFromPSPath(Destination);
        var what = _paths.Count == 1 ? _paths[0] : $"{_paths.Count} items";
        var target = to ? $"{what} -> {container}:{destination}" : $"{container}:{what} -> {destination}";
        if (!ShouldProcess(target, "Copy")) return;
        var options = new FileCopyOptions
        {
            Recurse = Recurse,
            Force = Force,
            Owner = Owner,
            Group = Group,
            Mode = Mode is null ? null : (UnixFileMode)Convert.ToUInt32(Mode, 8),
        };
        var warnings = new ConcurrentQueue<string>();
        var activity = to ? $"Copying into container '{container}'" : $"Copying from container '{container}'";
        Try(() =>
        {
            var files = new ContainerFiles(Manager);
            var items = ProgressRelay.Run<FileCopyProgress, IReadOnlyList<ContainerFileItem>>(this, activity,
                p => ($"{p.FilesDone}/{p.FilesTotal} files, {Sizes.Format(p.BytesDone)} of {Sizes.Format(p.BytesTotal)}: {p.Current}",
                      p.FilesTotal == 0 ? 100 : (int)Math.Min(100, p.FilesDone * 100 / p.FilesTotal)),
                progress => to
                    ? files.CopyIn(container, _paths, destination, options, progress, warnings.Enqueue, _cancel.Token)
                    : files.CopyOut(container, _paths, destination, options, progress, warnings.Enqueue, _cancel.Token));
            while (warnings.TryDequeue(out var w)) WriteWarning(w);
            if (!PassThru) return;
            foreach (var item in items)
            {
                if (to) WriteObject(item);
                else WriteObject(item.Type == "Directory" ? new DirectoryInfo(item.FullName) : new FileInfo(item.FullName));
            }
        });
        while (warnings.TryDequeue(out var w)) WriteWarning(w);
    }

    protected override void StopProcessing() => _cancel.Cancel();
}
