using System.Management.Automation;
using PSContainers.Infrastructure;
using PSContainers.Runtime;
using PSContainers.Runtime.Autostart;
using PSContainers.Runtime.Containers;

namespace PSContainers.Cmdlets;

/// <summary>
/// Sets a container's autostart: settings in its config.yaml (lxc.start.auto, lxc.start.delay,
/// lxc.start.order, lxc.group); the parameters not given keep their values.
/// </summary>
[Cmdlet(VerbsCommon.Set, "ContainerAutostart", SupportsShouldProcess = true)]
[OutputType(typeof(ContainerInfo))]
public sealed class SetContainerAutostartCommand : PassThruCmdlet
{
    /// <summary>Start it with Start-ContainerAutostart and at boot; -Enabled:$false stops that.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [Alias("Autostart")]
    public SwitchParameter Enabled { get; set; }

    [Parameter]
    [ValidateRange(0, 86400)]
    public int Delay { get; set; }

    [Parameter]
    public int Order { get; set; }

    /// <summary>The groups (replacing the ones it has); an empty list puts it in the NULL group.</summary>
    [Parameter]
    [AllowEmptyCollection]
    [ValidateNotNull]
    public string[] Group { get; set; } = Array.Empty<string>();

    protected override void ProcessRecord()
    {
        var bound = MyInvocation.BoundParameters;
        var change = new AutostartChange(
            bound.ContainsKey(nameof(Enabled)) ? Enabled.IsPresent : null,
            bound.ContainsKey(nameof(Delay)) ? Delay : null,
            bound.ContainsKey(nameof(Order)) ? Order : null,
            bound.ContainsKey(nameof(Group)) ? Group : null);
        foreach (var name in ResolveNames(Name))
            Try(() =>
            {
                var next = AutostartSettings.Preview(Manager, name, change);
                var what = $"Set autostart: enabled {next.Enabled}, order {next.Order}, delay {next.Delay} s, groups [{string.Join(", ", next.Groups)}]";
                if (!ShouldProcess(name, what)) return;
                AutostartSettings.Set(Manager, name, change, out _);
                Emit(Manager.Get(name));
            });
    }
}

/// <summary>What Start- and Stop-ContainerAutostart share: which containers (lxc-autostart -g, -a).</summary>
public abstract class AutostartCmdlet : ContainerCmdlet
{
    /// <summary>Only these groups, in this order ('' = the containers in no group); default: every autostart container.</summary>
    [Parameter]
    [AllowEmptyString]
    [ValidateNotNull]
    public string[]? Group { get; set; }

    /// <summary>Also the containers not marked autostart (lxc-autostart -a).</summary>
    [Parameter]
    public SwitchParameter All { get; set; }

    private readonly CancellationTokenSource _cancel = new();
    protected CancellationToken Cancel => _cancel.Token;
    protected override void StopProcessing() => _cancel.Cancel();

    protected List<AutostartEntry> ReadContainers() => AutostartPlan.Read(Manager, (name, ex) =>
        WriteWarning($"Container '{name}' is left out: its config cannot be read, so whether it starts automatically is unknown ({ex.Message})."));

    protected AutostartRunner Runner() => new(Manager) { Approve = (entry, what) => ShouldProcess(entry.Name, what) };

    protected void Write(AutostartResult result)
    {
        FlushMessages();
        if (result.Exception is { } ex) WriteError(ToErrorRecord(ex));
        if (result.Result != AutostartOutcome.Skipped) WriteObject(result);
    }
}

/// <summary>
/// lxc-autostart: starts the containers marked autostart, higher order first (ties by name), waiting
/// each one's delay before the next. Start (not Invoke -Stop): the verb pairs with Stop-ContainerAutostart,
/// as Start-Container with Stop-Container, and each has its own parameters.
/// </summary>
[Cmdlet(VerbsLifecycle.Start, "ContainerAutostart", SupportsShouldProcess = true)]
[OutputType(typeof(AutostartResult))]
public sealed class StartContainerAutostartCommand : AutostartCmdlet
{
    protected override void EndProcessing()
    {
        var plan = AutostartPlan.StartOrder(ReadContainers(), Group, All);
        try
        {
            foreach (var result in Runner().Start(plan, Cancel)) Write(result);
        }
        catch (OperationCanceledException) { }
    }
}

/// <summary>lxc-autostart -s (-k): stops the same containers in the reverse order of their start.</summary>
[Cmdlet(VerbsLifecycle.Stop, "ContainerAutostart", SupportsShouldProcess = true)]
[OutputType(typeof(AutostartResult))]
public sealed class StopContainerAutostartCommand : AutostartCmdlet
{
    /// <summary>Seconds for each container's clean stop before it is killed (default: its stop.timeout).</summary>
    [Parameter]
    [ValidateRange(0, 86400)]
    public int? Timeout { get; set; }

    /// <summary>Kill each container at once (lxc-autostart -k).</summary>
    [Parameter]
    public SwitchParameter Kill { get; set; }

    protected override void EndProcessing()
    {
        var plan = AutostartPlan.StopOrder(ReadContainers(), Group, All);
        var storage = new PSContainers.Runtime.Storage.StorageManager(Manager);
        try
        {
            // An ephemeral container goes once it stopped, as with Stop-Container.
            foreach (var result in Runner().Stop(plan, Timeout is { } t ? TimeSpan.FromSeconds(t) : null, Kill, name => storage.ReapEphemeral(name), Cancel))
                Write(result);
        }
        catch (OperationCanceledException) { }
    }
}

/// <summary>
/// Installs the systemd unit that runs Start-ContainerAutostart at boot and Stop-ContainerAutostart
/// at shutdown (LXC's lxc.service). Where systemd does not run this machine it refuses (the unit
/// would never run), unless -Force, which writes the file without enabling it.
/// </summary>
[Cmdlet(VerbsLifecycle.Install, "ContainerAutostartService", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(AutostartServiceInfo))]
public sealed class InstallContainerAutostartServiceCommand : ContainerCmdlet
{
    /// <summary>Where the unit goes (default /etc/systemd/system/pscontainers-autostart.service).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Path { get; set; }

    /// <summary>Only these groups at boot and shutdown ('' = the containers in no group).</summary>
    [Parameter]
    [AllowEmptyString]
    [ValidateNotNull]
    public string[]? Group { get; set; }

    /// <summary>Seconds each container's stop may take at shutdown before it is killed.</summary>
    [Parameter]
    [ValidateRange(0, 86400)]
    public int? StopTimeout { get; set; }

    /// <summary>Write the unit even where systemd does not run this machine (it is not enabled).</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void EndProcessing()
    {
        var path = Path is null ? AutostartService.DefaultPath : GetUnresolvedProviderPathFromPSPath(Path);
        var systemd = AutostartService.SystemdRunning;
        if (!systemd && !Force)
        {
            WriteError(ToErrorRecord(new ContainerException("SystemdNotRunning", ContainerErrorKind.NotInstalled,
                $"systemd does not run this machine ({AutostartService.SystemdRuntimeDirectory} does not exist), so a unit would never run at boot: nothing was written. " +
                "Run Start-ContainerAutostart from the boot system this machine has, or use -Force to write the unit anyway (not enabled).", path)));
            return;
        }
        Try(() =>
        {
            var store = Manager.Store.Root;
            var options = new AutostartServiceOptions
            {
                PwshPath = PwshPath(),
                ModulePath = ModuleManifest(),
                // Boot runs as root with no PSCONTAINERS_PATH: the system store unless told otherwise.
                StorePath = store == Runtime.Host.HostContext.SystemStorePath ? null : store,
                Groups = Group,
                StopTimeout = StopTimeout,
            };
            var text = AutostartService.UnitText(options);
            if (!ShouldProcess(path, $"Write the systemd unit{(systemd && AutostartService.IsSystemdPath(path) ? ", reload systemd and enable it" : "")}")) return;
            var info = AutostartService.Install(path, options);
            if (!info.Enabled)
                WriteWarning(systemd
                    ? $"The unit was written to {path}, outside systemd's unit directories: it was not enabled."
                    : $"systemd does not run this machine: the unit was written to {path} but not enabled. On a systemd boot run 'systemctl daemon-reload; systemctl enable {info.UnitName}'.");
            WriteObject(info);
        });
    }

    /// <summary>The pwsh running this (the unit runs the same), else the first pwsh in PATH.</summary>
    private static string PwshPath()
    {
        var self = Environment.ProcessPath;
        if (self is not null && System.IO.Path.GetFileName(self) == "pwsh") return self;
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = System.IO.Path.Combine(dir, "pwsh");
            if (dir.StartsWith('/') && File.Exists(candidate)) return candidate;
        }
        throw new ContainerException("PwshNotFound", ContainerErrorKind.NotInstalled,
            "No pwsh was found (this is not pwsh and none is in PATH): the unit runs pwsh at boot. Install PowerShell 7, or run this from pwsh.");
    }

    /// <summary>The manifest of the module this cmdlet is from: boot has no user's PSModulePath to find it by name.</summary>
    private static string ModuleManifest()
    {
        var manifest = System.IO.Path.Combine(ModuleInfo.Directory, "PSContainers.psd1");
        return File.Exists(manifest) ? manifest : throw new ContainerException("ModuleManifestNotFound", ContainerErrorKind.ObjectNotFound,
            $"The module's manifest {manifest} does not exist, so the unit could not import the module at boot. Import PSContainers from its module folder (with PSContainers.psd1) and run this again.", manifest);
    }
}

/// <summary>Removes the unit of Install-ContainerAutostartService (disabled first where systemd runs); the containers are left as they are.</summary>
[Cmdlet(VerbsLifecycle.Uninstall, "ContainerAutostartService", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(AutostartServiceInfo))]
public sealed class UninstallContainerAutostartServiceCommand : PSCmdlet
{
    /// <summary>The unit to remove (default /etc/systemd/system/pscontainers-autostart.service).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Path { get; set; }

    protected override void EndProcessing()
    {
        var path = Path is null ? AutostartService.DefaultPath : GetUnresolvedProviderPathFromPSPath(Path);
        if (!File.Exists(path))
        {
            WriteError(CmdletErrors.ToRecord(new ContainerException("AutostartServiceNotInstalled", ContainerErrorKind.ObjectNotFound,
                $"There is no unit {path} to remove.", path)));
            return;
        }
        if (!ShouldProcess(path, AutostartService.SystemdRunning && AutostartService.IsSystemdPath(path) ? "Disable the systemd unit and remove it" : "Remove the systemd unit file")) return;
        CmdletErrors.Try(this, () =>
        {
            var info = AutostartService.Uninstall(path);
            if (!info.SystemdRunning) WriteVerbose("systemd does not run this machine: the file was removed, there was nothing to disable.");
            WriteObject(info);
        }, ioErrorId: "ContainerIOError");
    }
}
