using System.Collections;
using System.Management.Automation;
using PSContainers.Infrastructure;
using PSContainers.Runtime;
using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Containers;

namespace PSContainers.Cmdlets;

/// <summary>lxc-cgroup / cgset: sets resource limits of running containers (or any cgroup), live, optionally persisted.</summary>
[Cmdlet(VerbsCommon.Set, "CgroupLimit", SupportsShouldProcess = true, DefaultParameterSetName = NameSet)]
[OutputType(typeof(CgroupLimitReport))]
public sealed class SetCgroupLimitCommand : ContainerCmdlet
{
    private const string NameSet = "Name", PathSet = "Path";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = NameSet)]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Name { get; set; } = Array.Empty<string>();

    [Parameter(Mandatory = true, ParameterSetName = PathSet)]
    [ArgumentCompleter(typeof(CgroupPathCompleter))]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = Array.Empty<string>();

    [Parameter, SizeOrMaxTransformation] public long? MemoryMax { get; set; }
    [Parameter, SizeOrMaxTransformation] public long? MemoryHigh { get; set; }
    [Parameter, SizeOrMaxTransformation] public long? MemorySwapMax { get; set; }
    [Parameter, SizeOrMaxTransformation] public long? MemoryLow { get; set; }
    [Parameter, ValidateRange(1, 10000)] public int? CpuWeight { get; set; }
    [Parameter] public double? CpuMax { get; set; }
    [Parameter, CountOrMaxTransformation] public long? CpuQuota { get; set; }
    [Parameter, ValidateRange(1000, 1000000)] public long? CpuPeriod { get; set; }
    [Parameter] public string? CpusetCpus { get; set; }
    [Parameter] public string? CpusetMems { get; set; }
    [Parameter, CountOrMaxTransformation] public long? PidsMax { get; set; }
    [Parameter, ValidateRange(1, 10000)] public int? IoWeight { get; set; }
    [Parameter] public string[]? IoDeviceLimit { get; set; }
    [Parameter] public Hashtable? HugetlbMax { get; set; }
    [Parameter] public string[]? DeviceDeny { get; set; }
    [Parameter] public string[]? DeviceAllow { get; set; }
    [Parameter] public uint? NetClassId { get; set; }
    [Parameter] public Hashtable? NetPrio { get; set; }

    [Parameter(ParameterSetName = NameSet)] public SwitchParameter Persist { get; set; }
    [Parameter] public SwitchParameter PassThru { get; set; }

    private CgroupLimits? _limits;

    protected override void BeginProcessing()
    {
        try { _limits = BuildLimits(); }
        catch (ContainerException ex) { ThrowTerminatingError(ToErrorRecord(ex)); }
        catch (Exception ex) when (ex is ArgumentTransformationMetadataException or PSInvalidCastException)
        {
            ThrowTerminatingError(CmdletErrors.Record(ex, "InvalidCgroupLimit", ErrorCategory.InvalidArgument, null));
        }
        if (_limits!.IsEmpty)
            ThrowTerminatingError(ToErrorRecord(new ContainerException("NoLimitGiven", ContainerErrorKind.InvalidArgument,
                "Give at least one limit, e.g. -MemoryMax 512MB, -CpuMax 1.5, -PidsMax 200 or -DeviceAllow 'c 1:3 rwm'.", null)));
    }

    private CgroupLimits BuildLimits()
    {
        if (CpuMax is not null && CpuQuota is not null)
            throw new ContainerException("InvalidCgroupLimit", ContainerErrorKind.InvalidArgument, "Give either -CpuMax (CPUs) or -CpuQuota (microseconds), not both.", null);
        var l = new CgroupLimits
        {
            MemoryMax = MemoryMax, MemoryHigh = MemoryHigh, MemorySwapMax = MemorySwapMax, MemoryLow = MemoryLow,
            CpuWeight = CpuWeight, CpuQuota = CpuQuota, CpuPeriod = CpuPeriod, CpusetCpus = CpusetCpus, CpusetMems = CpusetMems,
            PidsMax = PidsMax, IoWeight = IoWeight, NetClassId = NetClassId,
        };
        if (CpuMax is { } cpus) l.CpuQuota = CgroupLimits.CpusToQuota(cpus, CpuPeriod ?? CgroupLimits.DefaultCpuPeriod);
        foreach (var io in IoDeviceLimit ?? Array.Empty<string>()) l.IoDeviceLimits.Add(Runtime.Cgroups.IoDeviceLimit.Parse(io));
        foreach (DictionaryEntry kv in HugetlbMax ?? new Hashtable())
        {
            var v = new SizeOrMaxTransformationAttribute().Transform(null!, kv.Value);
            l.HugetlbMax[HugePageSizes.Parse(kv.Key.ToString()!)] = v is long n ? n
                : throw new ContainerException("InvalidCgroupLimit", ContainerErrorKind.InvalidArgument, $"-HugetlbMax {kv.Key} needs a size or 'max'.", null);
        }
        // Denies first, then allows: "-DeviceDeny a -DeviceAllow 'c 1:3 rwm'" = only /dev/null.
        foreach (var d in DeviceDeny ?? Array.Empty<string>()) l.Devices.Add(DeviceRule.Parse(d, allow: false));
        foreach (var a in DeviceAllow ?? Array.Empty<string>()) l.Devices.Add(DeviceRule.Parse(a, allow: true));
        foreach (DictionaryEntry kv in NetPrio ?? new Hashtable())
            l.NetPrioIfPrioMap[kv.Key.ToString()!] = LanguagePrimitives.ConvertTo<uint>(kv.Value);
        l.Validate();
        return l;
    }

    private static string Describe(IReadOnlyList<CgroupWrite> plan) => string.Join("; ", plan.Select(w => w.ToString()));

    protected override void ProcessRecord()
    {
        var limits = _limits!;
        if (ParameterSetName == PathSet)
        {
            var cgroups = CgroupManager.ForHost();
            foreach (var raw in Path)
                Try(() =>
                {
                    var path = CgroupManager.NormalizePath(raw);
                    var plan = cgroups.Exists(path) ? cgroups.PlanLimits(path, limits) : Array.Empty<CgroupWrite>();
                    if (!ShouldProcess(path, $"Set cgroup limits: {Describe(plan)}")) return;
                    cgroups.ApplyLimits(path, limits);
                    if (PassThru) WriteObject(cgroups.ReadLimits(path));
                });
            return;
        }
        foreach (var name in ResolveNames(Name))
            Try(() =>
            {
                var plan = new ContainerLimits(Manager).PlanLimits(name, limits);
                var action = (plan.Count > 0 ? $"Set cgroup limits: {Describe(plan)}" : "Set cgroup limits") + (Persist ? " and save them in config.yaml" : "");
                if (!ShouldProcess(name, action)) return;
                new ContainerLimits(Manager).SetLimits(name, limits, Persist);
                if (PassThru)
                {
                    if (Manager.Get(name).CgroupPath is not null) WriteObject(new ContainerLimits(Manager).GetLimits(name));
                    else
                    {
                        var saved = Runtime.Config.ConfigLoader.Load(Manager.Store.ConfigPath(name)).Limits;
                        var report = new CgroupLimitReport { Name = name, CgroupPath = "" };
                        report.MergeFrom(saved);
                        WriteObject(report);
                    }
                }
            });
    }
}

/// <summary>
/// Reads something from the cgroups of running containers (-Name) or of any cgroup (-Path). A
/// container that is not running has no cgroup to read: it is skipped, said in -Verbose, however it
/// was named (a name, a wildcard, or piped from Get-Container), so that a bare call and
/// "Get-Container | ..." behave the same. A name that does not exist is still an error.
/// </summary>
public abstract class CgroupReadCmdlet : ContainerCmdlet
{
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = "Name")]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Name { get; set; } = { "*" };

    [Parameter(Mandatory = true, ParameterSetName = "Path")]
    [ArgumentCompleter(typeof(CgroupPathCompleter))]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = Array.Empty<string>();

    protected abstract object ReadPath(string cgroupPath);
    protected abstract object ReadContainer(string name);

    protected override void ProcessRecord()
    {
        if (ParameterSetName == "Path")
        {
            foreach (var raw in Path) Try(() => WriteObject(ReadPath(CgroupManager.NormalizePath(raw))));
            return;
        }
        foreach (var name in ResolveNames(Name))
            Try(() =>
            {
                var info = Manager.Get(name);
                if (info.CgroupPath is null)
                {
                    WriteVerbose($"Skipping container '{name}': it is {info.State.ToString().ToLowerInvariant()}, so it has no cgroup to read.");
                    return;
                }
                WriteObject(ReadContainer(name));
            });
    }
}

/// <summary>The limits in force for containers (or cgroups), read back from the kernel.</summary>
[Cmdlet(VerbsCommon.Get, "CgroupLimit", DefaultParameterSetName = "Name")]
[OutputType(typeof(CgroupLimitReport))]
public sealed class GetCgroupLimitCommand : CgroupReadCmdlet
{
    protected override object ReadPath(string cgroupPath) => CgroupManager.ForHost().ReadLimits(cgroupPath);
    protected override object ReadContainer(string name) => new ContainerLimits(Manager).GetLimits(name);
}

