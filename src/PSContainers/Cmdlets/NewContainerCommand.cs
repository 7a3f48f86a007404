using System.Collections;
using System.Management.Automation;
using PSContainers.Infrastructure;
using PSContainers.Runtime;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Templates;

namespace PSContainers.Cmdlets;

/// <summary>lxc-create: makes a container from a template, an existing root directory, or a config file.</summary>
[Cmdlet(VerbsCommon.New, "Container", SupportsShouldProcess = true, DefaultParameterSetName = "Template")]
[OutputType(typeof(ContainerInfo))]
public sealed class NewContainerCommand : ContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string[] Name { get; set; } = Array.Empty<string>();

    [Parameter(ParameterSetName = "Template", Position = 1)]
    [ArgumentCompleter(typeof(TemplateNameCompleter))]
    public string? Template { get; set; }

    /// <summary>debootstrap: Debian release (bookworm by default).</summary>
    [Parameter(ParameterSetName = "Template")]
    public string? Release { get; set; }

    /// <summary>debootstrap: Debian mirror URL.</summary>
    [Parameter(ParameterSetName = "Template")]
    public string? Mirror { get; set; }

    /// <summary>oci: the image, an OCI image layout directory or an OCI / docker save archive.</summary>
    [Parameter(ParameterSetName = "Template")]
    [ValidateNotNullOrEmpty]
    public string? ImagePath { get; set; }

    /// <summary>oci: which image of the layout or archive (ref name or repo tag); the only one when absent.</summary>
    [Parameter(ParameterSetName = "Template")]
    [ValidateNotNullOrEmpty]
    public string? ImageTag { get; set; }
    /// <summary>debootstrap: the init system of the tree (none, or systemd for a system container).</summary>
    [Parameter(ParameterSetName = "Template")]
    [ValidateSet("none", "systemd")]
    public string? Init { get; set; }

    [Parameter(ParameterSetName = "Rootfs", Mandatory = true)]
    [ValidateNotNullOrEmpty]
    public string? RootfsPath { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? ConfigPath { get; set; }

    /// <summary>The init program and its arguments (pid 1 of the container).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string[]? Command { get; set; }

    [Parameter]
    public Hashtable? Environment { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Hostname { get; set; }

    [Parameter]
    [SizeTransformation]
    [ValidateRange(1L << 20, long.MaxValue)]
    public long? MemoryLimit { get; set; }

    /// <summary>Network interfaces, one hashtable each with the keys of config.yaml's network list, e.g. @{type='veth'; link='default'}.</summary>
    [Parameter]
    public Hashtable[]? Network { get; set; }
    /// <summary>Storage backend: dir, overlay or btrfs (default: btrfs on a btrfs store, else dir).</summary>
    [Parameter]
    [ValidateSet("dir", "overlay", "btrfs")]
    public string? Backend { get; set; }

    /// <summary>The default, said explicitly: the container runs in a user namespace on the caller's subordinate ids (LXC's unprivileged mode).</summary>
    [Parameter]
    public SwitchParameter Unprivileged { get; set; }

    /// <summary>Root: no user namespace (the container's root is the host's root); config.yaml's privileged: true asks the same.</summary>
    [Parameter]
    public SwitchParameter Privileged { get; set; }

    /// <summary>Create in the background: a PowerShell job per container (Receive-Job returns the container, with the template's progress).</summary>
    [Parameter]
    public SwitchParameter AsJob { get; set; }

    private readonly CancellationTokenSource _cancel = new();

    protected override void ProcessRecord()
    {
        foreach (var name in Name)
        {
            if (!ShouldProcess(name, "Create container")) continue;
            if (AsJob)
            {
                CreateOptions options;
                try { options = Options(); }
                catch (Exception ex) when (ex is ContainerException or ItemNotFoundException or System.Management.Automation.DriveNotFoundException or ProviderNotFoundException)
                {
                    WriteError(ex is ContainerException ce ? ToErrorRecord(ce) : CmdletErrors.Record(ex, "InvalidPath", ErrorCategory.InvalidArgument, name));
                    continue;
                }
                StartJob(name, (job, manager) =>
                {
                    var progress = job.ProgressOf<TemplateProgress>($"Creating {name}", p => (p.Status, p.PercentComplete));
                    job.Output.Add(PSObject.AsPSObject(manager.Create(name, options, progress, job.Token)));
                });
                continue;
            }
            Try(() => WriteObject(Create(name)));
        }
    }

    private CreateOptions Options()
    {
        if ((ImagePath ?? ImageTag) is not null && Template is { } t && !t.Equals("oci", StringComparison.OrdinalIgnoreCase))
            throw new ContainerException("ConflictingParameters", ContainerErrorKind.InvalidArgument,
                $"-ImagePath and -ImageTag belong to the oci template, not '{t}'. Drop -Template (or say -Template oci).", t);
        if (ImageTag is not null && ImagePath is null)
            throw new ContainerException("OciImagePathRequired", ContainerErrorKind.InvalidArgument,
                "-ImageTag picks an image of -ImagePath: give -ImagePath too.");
        return new CreateOptions
        {
            RootfsPath = RootfsPath is null ? null : GetUnresolvedProviderPathFromPSPath(RootfsPath),
            ConfigPath = ConfigPath is null ? null : GetUnresolvedProviderPathFromPSPath(ConfigPath),
            Command = Command,
            Hostname = Hostname,
            MemoryLimit = MemoryLimit,
            Network = Network is null ? null : PSContainers.Runtime.Config.ConfigLoader.ParseNetwork(Network.Select(h =>
                (IReadOnlyDictionary<string, object?>)h.Cast<DictionaryEntry>().ToDictionary(e => e.Key.ToString()!, e => e.Value is PSObject p ? p.BaseObject : e.Value))),
            Backend = Backend,
            Unprivileged = Unprivileged,
            Privileged = Privileged,
            Environment = Environment?.Cast<DictionaryEntry>().ToDictionary(e => e.Key.ToString()!, e => e.Value?.ToString() ?? ""),
            // -ImagePath alone means the oci template.
            Template = Template ?? (ImagePath is null ? null : "oci"),
            TemplateOptions = new TemplateOptions
            {
                Release = Release, Mirror = Mirror, ImageTag = ImageTag, Init = Init,
                ImagePath = ImagePath is null ? null : GetUnresolvedProviderPathFromPSPath(ImagePath),
            },
        };
    }

    private ContainerInfo Create(string name)
    {
        var options = Options();
        var manager = Manager; // on this thread: its store check may warn
        // Templates report progress from their own threads, and only the pipeline thread may
        // write: build on a worker and relay its progress here.
        var activityId = Math.Abs(name.GetHashCode() % 10000) + 1;
        return ProgressRelay.Run<TemplateProgress, ContainerInfo>(this,
            p => new ProgressRecord(activityId, $"{p.Activity} ({name})", string.IsNullOrEmpty(p.Status) ? "..." : p.Status) { PercentComplete = Math.Clamp(p.PercentComplete, -1, 100) },
            new ProgressRecord(activityId, $"Creating {name}", "Done") { RecordType = ProgressRecordType.Completed },
            progress => manager.Create(name, options, progress, _cancel.Token));
    }

    protected override void StopProcessing() => _cancel.Cancel();
}
