using System.Management.Automation;
using PSContainers.Infrastructure;
using PSContainers.Runtime;
using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.State;
using PSContainers.Runtime.Stats;

namespace PSContainers.Cmdlets;

/// <summary>
/// Measure-VM for containers, and podman stats / lxc-top: memory, CPU (time and percent of one CPU),
/// pids, network bytes per interface, block I/O and OOM kills, once or as a stream (-Wait, -Count)
/// every -Interval seconds until Ctrl+C. All running containers when no name is given; with a
/// wildcard, containers started while it streams join the stream.
/// </summary>
[Cmdlet(VerbsDiagnostic.Measure, "Container", DefaultParameterSetName = NameSet)]
[OutputType(typeof(CgroupUsage))]
public sealed class MeasureContainerCommand : ContainerCmdlet
{
    private const string NameSet = "Name", PathSet = "Path";

    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = NameSet)]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Name { get; set; } = { "*" };

    [Parameter(Mandatory = true, ParameterSetName = PathSet)]
    [ArgumentCompleter(typeof(CgroupPathCompleter))]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = Array.Empty<string>();

    [Parameter(ParameterSetName = NameSet)] public SwitchParameter Wait { get; set; }

    [Parameter(ParameterSetName = NameSet), ValidateRange(0.05, 86400)] public double Interval { get; set; } = 1;

    [Parameter(ParameterSetName = NameSet), ValidateRange(1, int.MaxValue)] public int Count { get; set; }

    private readonly List<string> _patterns = new();
    private readonly List<string> _names = new();
    private readonly ManualResetEventSlim _stop = new();

    protected override void ProcessRecord()
    {
        if (ParameterSetName == PathSet)
        {
            foreach (var raw in Path) Try(() => WriteObject(CgroupManager.ForHost().Measure(CgroupManager.NormalizePath(raw))));
            return;
        }
        // Sampled together at the end: one pass over all of them is what makes CPU percentages of
        // the same interval, and a piped list is measured as one set, like a named one.
        _patterns.AddRange(Name);
        foreach (var name in ResolveNames(Name)) if (!_names.Contains(name, StringComparer.Ordinal)) _names.Add(name);
    }

    protected override void EndProcessing()
    {
        if (ParameterSetName == PathSet) return;
        var streaming = Wait || Count > 0;
        var skipped = new HashSet<string>(StringComparer.Ordinal);
        var failed = new HashSet<string>(StringComparer.Ordinal);
        using var sampler = new ContainerStatsSampler(Manager);
        var names = _names;
        for (var round = 1; ; round++)
        {
            var usage = sampler.Sample(names,
                (name, status) =>
                {
                    if (skipped.Add(name))
                        WriteVerbose($"Skipping container '{name}': it is {status.ToString().ToLowerInvariant()}, so it has no cgroup to read.");
                },
                (name, ex) => { if (failed.Add(name)) WriteError(ToErrorRecord(ex)); });
            foreach (var u in usage)
            {
                skipped.Remove(u.Name!);
                WriteObject(u);
            }
            if (!streaming || (Count > 0 && round >= Count) || _stop.Wait(TimeSpan.FromSeconds(Interval))) break;
            // Wildcards are matched again each round: a container created or started meanwhile joins
            // in; a named one that was removed was reported once and is left out.
            names = _patterns.Any(WildcardPattern.ContainsWildcardCharacters)
                ? ResolveNames(_patterns, literalMustExist: false).Where(n => !failed.Contains(n) || Manager.Exists(n)).Distinct(StringComparer.Ordinal).ToList()
                : names.Where(n => !failed.Contains(n)).ToList();
        }
    }

    protected override void StopProcessing() => _stop.Set();
}
