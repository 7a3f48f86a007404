using System.Management.Automation;
using PSContainers.Infrastructure;
using PSContainers.Runtime.IdMapping;
using PSContainers.Runtime.HostCheck;

namespace PSContainers.Cmdlets;

/// <summary>lxc-checkconfig plus a preflight for (unprivileged) containers: one finding per check, with what to do about it.</summary>
[Cmdlet(VerbsDiagnostic.Test, "ContainerHost")]
[OutputType(typeof(HostCheckFinding))]
public sealed class TestContainerHostCommand : PSCmdlet
{
    /// <summary>The user to check subordinate ids, delegation and user-namespace settings for (default: the caller).</summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(UserNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string? User { get; set; }

    protected override void ProcessRecord() => CmdletErrors.Try(this, () =>
    {
        var account = User is null ? null : UserAccounts.Require(User);
        WriteObject(new ContainerHostCheck().Run(account), enumerateCollection: true);
    }, ioErrorId: "HostCheckIOError");
}
