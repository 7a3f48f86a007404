using System.Management.Automation;
using PSContainers.Infrastructure;
using PSContainers.Runtime.Checkpoint;
using PSContainers.Runtime.Containers;

namespace PSContainers.Cmdlets;

/// <summary>Runs a checkpoint step with CRIU's phases shown as Write-Progress.</summary>
internal static class CheckpointProgress
{
    public static T Run<T>(PSCmdlet cmdlet, string activity, Func<IProgress<string>, T> work) =>
        ProgressRelay.Run<string, T>(cmdlet, activity, status => (status, -1), work);
}

/// <summary>lxc-checkpoint -s: dumps a running container's processes with CRIU into a directory and stops it.</summary>
[Cmdlet(VerbsData.Checkpoint, "Container", SupportsShouldProcess = true)]
[OutputType(typeof(CheckpointInfo))]
public sealed class CheckpointContainerCommand : ContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string Name { get; set; } = "";

    /// <summary>A new or empty directory for CRIU's images, config.yaml and checkpoint.json.</summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    /// <summary>Keep the container running after the dump (lxc-checkpoint without -s).</summary>
    [Parameter]
    public SwitchParameter LeaveRunning { get; set; }

    /// <summary>Include established TCP connections (CRIU --tcp-established).</summary>
    [Parameter]
    public SwitchParameter TcpEstablished { get; set; }

    /// <summary>Copy memory first while the container runs (CRIU pre-dump); needs soft-dirty tracking in the kernel.</summary>
    [Parameter]
    public SwitchParameter PreDump { get; set; }

    /// <summary>Checkpoint in the background: a PowerShell job (Receive-Job returns the checkpoint object).</summary>
    [Parameter]
    public SwitchParameter AsJob { get; set; }

    /// <summary>Seconds CRIU may take (default 600).</summary>
    [Parameter]
    [ValidateRange(1, 86400)]
    public int Timeout { get; set; } = (int)CheckpointManager.DefaultTimeout.TotalSeconds;

    /// <summary>CRIU's log level in dump.log: 0 (messages only) to 4 (debug, CRIU's full log); default 2 (errors and warnings).</summary>
    [Parameter]
    [ValidateRange(0, 4)]
    public int CriuLogLevel { get; set; } = CheckpointManager.DefaultLogLevel;

    protected override void ProcessRecord()
    {
        var path = GetUnresolvedProviderPathFromPSPath(Path);
        if (!ShouldProcess(Name, $"Checkpoint container to {path}{(LeaveRunning ? "" : " and stop it")}")) return;
        var options = new CheckpointOptions { LeaveRunning = LeaveRunning, TcpEstablished = TcpEstablished, PreDump = PreDump, Timeout = TimeSpan.FromSeconds(Timeout), CriuLogLevel = CriuLogLevel };
        if (AsJob)
        {
            var name = Name;
            StartJob(name, (job, manager) => job.Output.Add(PSObject.AsPSObject(
                new CheckpointManager(manager).Checkpoint(name, path, options, job.ProgressOf<string>($"Checkpointing {name}", s => (s, -1))))));
            return;
        }
        Try(() => WriteObject(CheckpointProgress.Run(this, $"Checkpointing {Name}",
            p => new CheckpointManager(Manager).Checkpoint(Name, path, options, p))));
    }
}

/// <summary>lxc-checkpoint -r: restores a checkpoint into its (stopped) container, or into a copy with -Name.</summary>
[Cmdlet(VerbsData.Restore, "Container", SupportsShouldProcess = true)]
[OutputType(typeof(ContainerInfo))]
public sealed class RestoreContainerCommand : ContainerCmdlet
{
    /// <summary>The checkpoint directory (a CheckpointInfo pipes its Path).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("FullName")]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    /// <summary>Restore into a new container: a copy of the checkpointed one (its rootfs and config).</summary>
    [Parameter(Position = 1)]
    [ValidateNotNullOrEmpty]
    public string? Name { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    /// <summary>Restore in the background: a PowerShell job (Receive-Job returns what -PassThru would).</summary>
    [Parameter]
    public SwitchParameter AsJob { get; set; }

    /// <summary>
    /// Seconds CRIU may take (default 600). Past it the restore is abandoned: criu and every process
    /// it restored are killed, the cgroup and CRIU's mounts removed, and RestoreFailed/CriuTimeout returned.
    /// </summary>
    [Parameter]
    [ValidateRange(1, 86400)]
    public int Timeout { get; set; } = (int)CheckpointManager.DefaultTimeout.TotalSeconds;

    /// <summary>CRIU's log level in restore.log: 0 (messages only) to 4 (debug, CRIU's full log); default 2 (errors and warnings).</summary>
    [Parameter]
    [ValidateRange(0, 4)]
    public int CriuLogLevel { get; set; } = CheckpointManager.DefaultLogLevel;

    protected override void ProcessRecord()
    {
        var path = GetUnresolvedProviderPathFromPSPath(Path);
        if (!ShouldProcess(Name ?? path, $"Restore container from {path}")) return;
        var options = new RestoreOptions { Timeout = TimeSpan.FromSeconds(Timeout), CriuLogLevel = CriuLogLevel };
        if (AsJob)
        {
            var (name, passThru) = (Name, PassThru.IsPresent);
            StartJob(name ?? path, (job, manager) =>
            {
                var info = new CheckpointManager(manager).Restore(path, name, options, job.ProgressOf<string>($"Restoring {name ?? path}", s => (s, -1)));
                if (passThru) job.Output.Add(PSObject.AsPSObject(info));
            });
            return;
        }
        Try(() =>
        {
            var info = CheckpointProgress.Run(this, $"Restoring {Name ?? path}", p => new CheckpointManager(Manager).Restore(path, Name, options, p));
            if (PassThru) WriteObject(info);
        });
    }
}

/// <summary>Hyper-V's Save-VM: checkpoint into the container's own directory and stop; Start-Container resumes it.</summary>
[Cmdlet(VerbsData.Save, "Container", SupportsShouldProcess = true)]
[OutputType(typeof(ContainerInfo))]
public sealed class SaveContainerCommand : PassThruCmdlet
{
    /// <summary>Include established TCP connections (CRIU --tcp-established).</summary>
    [Parameter]
    public SwitchParameter TcpEstablished { get; set; }

    protected override void ProcessRecord() => ForEachContainer("Save container", name =>
        Emit(CheckpointProgress.Run(this, $"Saving {name}",
            p => new CheckpointManager(Manager).Save(name, new CheckpointOptions { TcpEstablished = TcpEstablished }, p))));
}

/// <summary>Reads checkpoint directories (their checkpoint.json): which container, when, how big, which CRIU and kernel.</summary>
[Cmdlet(VerbsCommon.Get, "ContainerCheckpoint", DefaultParameterSetName = "Path")]
[OutputType(typeof(CheckpointInfo))]
public sealed class GetContainerCheckpointCommand : ContainerCmdlet
{
    /// <summary>Checkpoint directories; wildcards (/srv/ckpt/*) match every checkpoint directory they name and skip the rest.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = "Path")]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = Array.Empty<string>();

    /// <summary>Checkpoint directories taken literally (no wildcards); Get-ChildItem's objects bind their FullName here.</summary>
    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = "LiteralPath")]
    [Alias("FullName", "PSPath", "LP")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = Array.Empty<string>();

    protected override void ProcessRecord()
    {
        var literal = ParameterSetName == "LiteralPath";
        foreach (var p in literal ? LiteralPath : Path)
        {
            if (!literal && WildcardPattern.ContainsWildcardCharacters(p))
            {
                // Like Get-Item: a pattern that matches nothing is no error; what it matches that is not a
                // checkpoint directory (a log file, an unrelated folder) is skipped, said in -Verbose.
                IEnumerable<string> matches;
                try { matches = GetResolvedProviderPathFromPSPath(p, out _); }
                catch (ItemNotFoundException) { continue; }
                foreach (var match in matches.OrderBy(m => m, StringComparer.Ordinal))
                {
                    if (!File.Exists(System.IO.Path.Combine(match, CheckpointManifest.FileName)))
                    {
                        WriteVerbose($"Skipping '{match}': it holds no checkpoint ({CheckpointManifest.FileName}).");
                        continue;
                    }
                    Try(() => WriteObject(new CheckpointManager(Manager).GetCheckpoint(match)));
                }
                continue;
            }
            var path = GetUnresolvedProviderPathFromPSPath(p);
            Try(() => WriteObject(new CheckpointManager(Manager).GetCheckpoint(path)));
        }
    }
}
