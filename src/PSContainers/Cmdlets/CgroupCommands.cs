using System.Management.Automation;
using PSContainers.Infrastructure;
using PSContainers.Runtime;
using PSContainers.Runtime.Cgroups;

namespace PSContainers.Cmdlets;

/// <summary>Base of the plain cgroup cmdlets: -Path in the host's hierarchies, errors as records.</summary>
public abstract class CgroupCmdlet : PSCmdlet
{
    protected static CgroupManager Cgroups => CgroupManager.ForHost();

    protected bool Try(Action action) => CmdletErrors.Try(this, action, ioErrorId: "CgroupIOError");

    /// <summary>A -Path value as a cgroup that exists in the host's hierarchies.</summary>
    protected static string ExistingPath(string raw)
    {
        var path = CgroupManager.NormalizePath(raw);
        if (!Cgroups.Exists(path))
            throw new ContainerException("CgroupNotFound", ContainerErrorKind.ObjectNotFound,
                $"The cgroup '{path}' does not exist. Get-Cgroup lists the cgroups.", path);
        return path;
    }

    /// <summary>For each existing cgroup of <paramref name="paths"/> that ShouldProcess approves.</summary>
    protected void ForEachCgroup(IEnumerable<string> paths, string action, Action<string> step)
    {
        foreach (var raw in paths)
            Try(() =>
            {
                var path = ExistingPath(raw);
                if (ShouldProcess(path, action)) step(path);
            });
    }

    protected CgroupInfo Info(string path) => Cgroups.List(path, recurse: false).Single();
}

/// <summary>cgcreate: a cgroup in every hierarchy; on v2 the given controllers are enabled down to it.</summary>
[Cmdlet(VerbsCommon.New, "Cgroup", SupportsShouldProcess = true)]
[OutputType(typeof(CgroupInfo))]
public sealed class NewCgroupCommand : CgroupCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = Array.Empty<string>();

    [Parameter]
    [ValidateSet("memory", "cpu", "cpuset", "pids", "io", "hugetlb", "devices", "net_cls", "net_prio")]
    public string[] Controller { get; set; } = Array.Empty<string>();

    protected override void ProcessRecord()
    {
        foreach (var raw in Path)
            Try(() =>
            {
                var path = CgroupManager.NormalizePath(raw);
                if (Cgroups.Exists(path))
                    throw new ContainerException("CgroupExists", ContainerErrorKind.ResourceExists, $"The cgroup '{path}' already exists.", path);
                if (!ShouldProcess(path, "Create cgroup")) return;
                Cgroups.Create(path, Controller);
                WriteObject(Info(path));
            });
    }
}

/// <summary>lscgroup: cgroups of every hierarchy, merged by path, with their processes.</summary>
[Cmdlet(VerbsCommon.Get, "Cgroup")]
[OutputType(typeof(CgroupInfo))]
public sealed class GetCgroupCommand : CgroupCmdlet
{
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(CgroupPathCompleter))]
    [SupportsWildcards]
    public string[]? Path { get; set; }

    /// <summary>Also the cgroups below each -Path.</summary>
    [Parameter]
    public SwitchParameter Recurse { get; set; }

    protected override void ProcessRecord()
    {
        if (Path is null)
        {
            Try(() => WriteObject(Cgroups.List(), enumerateCollection: true));
            return;
        }
        foreach (var raw in Path)
            Try(() =>
            {
                if (WildcardPattern.ContainsWildcardCharacters(raw))
                {
                    var pattern = new WildcardPattern("/" + raw.TrimStart('/'), WildcardOptions.IgnoreCase);
                    WriteObject(Cgroups.List().Where(c => pattern.IsMatch(c.Path)), enumerateCollection: true);
                    return;
                }
                WriteObject(Cgroups.List(ExistingPath(raw), Recurse), enumerateCollection: true);
            });
    }
}

/// <summary>cgclassify: moves processes into a cgroup (in every hierarchy).</summary>
[Cmdlet(VerbsCommon.Add, "CgroupProcess", SupportsShouldProcess = true)]
[OutputType(typeof(CgroupInfo))]
public sealed class AddCgroupProcessCommand : CgroupCmdlet
{
    [Parameter(Mandatory = true, Position = 0)]
    [ArgumentCompleter(typeof(CgroupPathCompleter))]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    /// <summary>Process ids; Get-Process output binds by its Id property.</summary>
    [Parameter(Mandatory = true, Position = 1, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateRange(1, int.MaxValue)]
    public int[] Id { get; set; } = Array.Empty<int>();

    [Parameter] public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var pid in Id)
            Try(() =>
            {
                var path = CgroupManager.NormalizePath(Path);
                if (!ShouldProcess($"process {pid}", $"Move to cgroup {path}")) return;
                Cgroups.AddProcess(path, pid);
                if (PassThru) WriteObject(Info(path));
            });
    }
}

/// <summary>cgdelete: removes a cgroup (and the ones below it) from every hierarchy.</summary>
[Cmdlet(VerbsCommon.Remove, "Cgroup", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(void))]
public sealed class RemoveCgroupCommand : CgroupCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(CgroupPathCompleter))]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = Array.Empty<string>();

    /// <summary>Kill the processes in it first (otherwise a cgroup with processes is an error).</summary>
    [Parameter] public SwitchParameter Force { get; set; }

    protected override void ProcessRecord()
    {
        ForEachCgroup(Path, Force ? "Kill processes and remove cgroup" : "Remove cgroup", path =>
        {
            // Deepest first: a cgroup with children cannot be removed.
            foreach (var c in Cgroups.List(path).OrderByDescending(c => c.Path.Length))
            {
                var rel = c.Path.TrimStart('/');
                var pids = Cgroups.Pids(rel);
                if (pids.Count > 0 && !Force)
                    throw new ContainerException("CgroupBusy", ContainerErrorKind.ResourceBusy,
                        $"The cgroup '{rel}' still holds processes {string.Join(", ", pids)}. Move them out with Add-CgroupProcess, or use -Force to kill them.", rel);
                if (pids.Count > 0) Cgroups.KillAll(rel);
                foreach (var d in Cgroups.Drivers) d.Remove(rel);
                if (Cgroups.Exists(rel))
                    throw new ContainerException("CgroupBusy", ContainerErrorKind.ResourceBusy, $"The cgroup '{rel}' could not be removed (processes still exiting?); try again.", rel);
            }
        });
    }
}

/// <summary>Freezes every process of any cgroup (cgroup.freeze on v2, the freezer controller on v1).</summary>
[Cmdlet(VerbsLifecycle.Suspend, "Cgroup", SupportsShouldProcess = true)]
[OutputType(typeof(CgroupInfo))]
public sealed class SuspendCgroupCommand : CgroupCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(CgroupPathCompleter))]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = Array.Empty<string>();

    [Parameter, ValidateRange(1, 3600)] public int Timeout { get; set; } = 10;
    [Parameter] public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        ForEachCgroup(Path, "Freeze cgroup", path =>
        {
            Cgroups.Freeze(path, TimeSpan.FromSeconds(Timeout));
            if (PassThru) WriteObject(Info(path));
        });
    }
}

/// <summary>Thaws a frozen cgroup.</summary>
[Cmdlet(VerbsLifecycle.Resume, "Cgroup", SupportsShouldProcess = true)]
[OutputType(typeof(CgroupInfo))]
public sealed class ResumeCgroupCommand : CgroupCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(CgroupPathCompleter))]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = Array.Empty<string>();

    [Parameter] public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        ForEachCgroup(Path, "Thaw cgroup", path =>
        {
            Cgroups.Thaw(path);
            if (PassThru) WriteObject(Info(path));
        });
    }
}
