using System.Management.Automation;
using PSContainers.Infrastructure;
using PSContainers.Runtime;
using PSContainers.Runtime.Migration;

namespace PSContainers.Cmdlets;

/// <summary>
/// Moves a container to another store, on this host or on another host over SSH: cold (stop,
/// archive, transfer, import, start) or warm (-Warm: CRIU checkpoint, transfer, restore).
/// </summary>
[Cmdlet(VerbsCommon.Move, "Container", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(MigrationResult))]
public sealed class MoveContainerCommand : ContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string Name { get; set; } = "";

    /// <summary>Another store on this host (a path), or ssh://[user@]host[:port]/store/path.</summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string Destination { get; set; } = "";

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? NewName { get; set; }

    /// <summary>Live migration: checkpoint with CRIU and restore at the destination.</summary>
    [Parameter]
    [Alias("Live")]
    public SwitchParameter Warm { get; set; }

    [Parameter]
    public SwitchParameter TcpEstablished { get; set; }

    /// <summary>Keep the stopped source instead of removing it.</summary>
    [Parameter]
    public SwitchParameter Keep { get; set; }

    /// <summary>Seconds the graceful stop of a cold move may take before the container is killed.</summary>
    [Parameter]
    [ValidateRange(0, 86400)]
    public int? Timeout { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? IdentityFile { get; set; }

    [Parameter]
    public HostKeyChecking HostKeyChecking { get; set; } = HostKeyChecking.Strict;

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string[] SshOption { get; set; } = Array.Empty<string>();

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string RemotePowerShell { get; set; } = "pwsh";

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string RemoteModulePath { get; set; } = "PSContainers";

    /// <summary>Remove the source even when snapshot clones use its root filesystem; with -KeepHostAccess, do not ask.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>Let the destination keep the settings that widen the container's access to the host (bind mounts, dropped protections, host NICs); asks first unless -Force.</summary>
    [Parameter]
    public SwitchParameter KeepHostAccess { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    /// <summary>Move in the background: a PowerShell job (Receive-Job returns what -PassThru would, and the move's warnings).</summary>
    [Parameter]
    public SwitchParameter AsJob { get; set; }

    private readonly CancellationTokenSource _cancel = new();

    protected override void ProcessRecord()
    {
        Try(() =>
        {
            if (TcpEstablished && !Warm)
                throw new ContainerException("TcpEstablishedNeedsWarm", ContainerErrorKind.InvalidArgument,
                    "-TcpEstablished keeps TCP connections across a checkpoint: it needs -Warm.", Name);
            var destination = ResolveDestination();
            var mode = Warm ? MigrationMode.Warm : MigrationMode.Cold;
            var what = $"Move container ({mode.ToString().ToLowerInvariant()}) to {destination}{(NewName is null ? "" : $" as '{NewName}'")}{(Keep ? ", keeping the source" : "")}";
            if (!ShouldProcess(Name, what)) return;
            var manager = Manager;
            if (KeepHostAccess && !Force && manager.Exists(Name))
            {
                var hostAccess = PSContainers.Runtime.Storage.UntrustedConfigPolicy.Find(PSContainers.Runtime.Config.ConfigLoader.Load(manager.Store.ConfigPath(Name)));
                if (hostAccess.Count > 0 && !ShouldContinue(
                        $"Container '{Name}' keeps these settings at {destination}, which widen its access to that host:\n" +
                        string.Join("\n", hostAccess.Select(h => $"  {h.Key} ({h.Value}): {h.Reason}")) + "\nKeep them?",
                        "Move with host access"))
                    return;
            }
            var options = new MoveOptions
            {
                KeepHostAccess = KeepHostAccess,
                NewName = NewName,
                Mode = mode,
                TcpEstablished = TcpEstablished,
                Keep = Keep,
                Force = Force,
                StopTimeout = Timeout is { } t ? TimeSpan.FromSeconds(t) : null,
                Ssh = new SshOptions
                {
                    IdentityFile = IdentityFile is null ? null : GetUnresolvedProviderPathFromPSPath(IdentityFile),
                    HostKeyChecking = HostKeyChecking,
                    Options = SshOption,
                    RemotePowerShell = RemotePowerShell,
                    RemoteModule = RemoteModulePath,
                },
            };
            if (AsJob)
            {
                var (name, passThru) = (Name, PassThru.IsPresent);
                StartJob(name, (job, manager) =>
                {
                    var moved = ContainerMigrator.Move(manager, name, destination, options,
                        job.ProgressOf<MigrationProgress>($"Moving {name} to {destination}", p => ($"{p.Phase}: {p.Status}", p.PercentComplete)), job.Token);
                    foreach (var w in moved.Warnings) job.WriteWarning(w);
                    if (passThru) job.Output.Add(PSObject.AsPSObject(moved));
                });
                return;
            }
            var result = ProgressRelay.Run<MigrationProgress, MigrationResult>(this, $"Moving {Name} to {destination}",
                p => ($"{p.Phase}: {p.Status}", p.PercentComplete),
                p => ContainerMigrator.Move(manager, Name, destination, options, p, _cancel.Token));
            foreach (var w in result.Warnings) WriteWarning(w);
            if (PassThru) WriteObject(result);
        });
    }

    private MigrationDestination ResolveDestination()
    {
        if (MigrationDestination.LooksRemote(Destination)) return MigrationDestination.Parse(Destination);
        string path;
        try { path = GetUnresolvedProviderPathFromPSPath(Destination); }
        catch (Exception ex) when (ex is System.Management.Automation.DriveNotFoundException or ProviderNotFoundException or NotSupportedException)
        {
            throw new ContainerException("InvalidDestination", ContainerErrorKind.InvalidArgument,
                $"'{Destination}' is neither a store path nor an ssh://[user@]host[:port]/store/path destination ({ex.Message}).", Destination);
        }
        return MigrationDestination.Local(path);
    }

    protected override void StopProcessing() => _cancel.Cancel();
}
