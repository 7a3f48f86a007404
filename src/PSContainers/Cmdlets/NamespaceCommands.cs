using System.Management.Automation;
using PSContainers.Runtime.Namespaces;

namespace PSContainers.Cmdlets;

/// <summary>ls -l /proc/PID/ns: each namespace of a process, and whether it differs from pid 1's; -Cgroup: /proc/PID/cgroup.</summary>
[Cmdlet(VerbsCommon.Get, "ProcessNamespace")]
[OutputType(typeof(ProcessNamespace), typeof(ProcessCgroup))]
public sealed class GetProcessNamespaceCommand : CgroupCmdlet
{
    /// <summary>Process ids (default: this process). A container's Pid property binds too.</summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("Pid")]
    [ValidateRange(1, int.MaxValue)]
    public int[]? Id { get; set; }

    /// <summary>Only these namespace types (mnt, pid, net, uts, ipc, user, cgroup, time).</summary>
    [Parameter]
    [SupportsWildcards]
    public string[]? Type { get; set; }

    /// <summary>The process to compare with (default 1, the host's init).</summary>
    [Parameter]
    [ValidateRange(1, int.MaxValue)]
    public int ReferenceId { get; set; } = 1;

    /// <summary>Output the process's cgroup membership instead of its namespaces.</summary>
    [Parameter]
    public SwitchParameter Cgroup { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var pid in Id ?? new[] { Environment.ProcessId })
            Try(() =>
            {
                if (Cgroup)
                {
                    WriteObject(ProcessNamespaces.ReadCgroups(pid), enumerateCollection: true);
                    return;
                }
                var patterns = Type?.Select(t => new WildcardPattern(t, WildcardOptions.IgnoreCase)).ToArray();
                foreach (var ns in ProcessNamespaces.Read(pid, ReferenceId))
                    if (patterns is null || patterns.Any(p => p.IsMatch(ns.Type))) WriteObject(ns);
            });
    }
}
