using System.Management.Automation;
using PSContainers.Infrastructure;
using PSContainers.Runtime;
using PSContainers.Runtime.IdMapping;

namespace PSContainers.Cmdlets;

/// <summary>What the subordinate-id cmdlets share: the database (/etc/subuid, /etc/subgid) and error mapping.</summary>
public abstract class SubordinateIdCmdlet : PSCmdlet
{
    protected SubordinateIdDatabase Database { get; } = new();

    protected bool Try(Action action) => CmdletErrors.Try(this, action, ioErrorId: "SubordinateIdIOError");

    protected static string Describe(IEnumerable<SubordinateIdKind> kinds) =>
        string.Join(" and ", kinds.Select(k => k == SubordinateIdKind.Uid ? "/etc/subuid" : "/etc/subgid"));
}

/// <summary>Lists subordinate uid/gid ranges (cat /etc/subuid /etc/subgid; getsubids USER).</summary>
[Cmdlet(VerbsCommon.Get, "SubordinateIdRange")]
[OutputType(typeof(SubordinateIdRange))]
public sealed class GetSubordinateIdRangeCommand : SubordinateIdCmdlet
{
    /// <summary>Users by name or uid (wildcards match names); a user's lines that name its numeric uid count too.</summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(UserNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string[]? User { get; set; }

    [Parameter]
    public SubordinateIdKind[]? Kind { get; set; }

    private bool _warned;

    protected override void ProcessRecord() => Try(() =>
    {
        var kinds = Kind ?? SubordinateIdDatabase.BothKinds;
        if (!_warned)
        {
            _warned = true;
            foreach (var p in Database.Problems(kinds))
                WriteWarning($"{p.Path}:{p.Line}: '{p.Text}' is ignored: {p.Problem}.");
        }
        if (User is null)
        {
            WriteObject(Database.GetRanges(kinds), enumerateCollection: true);
            return;
        }
        foreach (var user in User)
        {
            if (WildcardPattern.ContainsWildcardCharacters(user))
            {
                var pattern = new WildcardPattern(user, WildcardOptions.IgnoreCase);
                WriteObject(Database.GetRanges(kinds).Where(r => pattern.IsMatch(r.User) || pattern.IsMatch(r.Owner)), enumerateCollection: true);
            }
            else if (UserAccounts.Find(user) is { } account) WriteObject(Database.GetRanges(account, kinds), enumerateCollection: true);
            else WriteObject(Database.GetRanges(kinds).Where(r => r.Owner == user), enumerateCollection: true);
        }
    });
}

/// <summary>Gives users subordinate uid/gid ranges (usermod --add-subuids/--add-subgids; useradd's automatic allocation).</summary>
[Cmdlet(VerbsCommon.Add, "SubordinateIdRange", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(SubordinateIdRange))]
public sealed class AddSubordinateIdRangeCommand : SubordinateIdCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(UserNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string[] User { get; set; } = Array.Empty<string>();

    /// <summary>How many ids (default SUB_UID_COUNT/SUB_GID_COUNT of /etc/login.defs, 65536).</summary>
    [Parameter]
    [ValidateRange(1, uint.MaxValue)]
    public uint Count { get; set; }

    /// <summary>The first id; without it the lowest free range in SUB_UID_MIN..SUB_UID_MAX is taken.</summary>
    [Parameter]
    public uint Start { get; set; }

    [Parameter]
    public SubordinateIdKind[] Kind { get; set; } = SubordinateIdDatabase.BothKinds;

    protected override void ProcessRecord()
    {
        uint? count = MyInvocation.BoundParameters.ContainsKey(nameof(Count)) ? Count : null;
        uint? start = MyInvocation.BoundParameters.ContainsKey(nameof(Start)) ? Start : null;
        foreach (var user in User)
        {
            var what = $"{(count is null ? "a range" : $"{count} ids")}{(start is null ? "" : $" from {start}")} in {Describe(Kind)}";
            if (!ShouldProcess(user, $"Add subordinate ids: {what}")) continue;
            Try(() => WriteObject(Database.Add(user, count, start, Kind), enumerateCollection: true));
        }
    }
}

/// <summary>Takes subordinate uid/gid ranges away from users (usermod --del-subuids/--del-subgids).</summary>
[Cmdlet(VerbsCommon.Remove, "SubordinateIdRange", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(SubordinateIdRange))]
public sealed class RemoveSubordinateIdRangeCommand : SubordinateIdCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(UserNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string User { get; set; } = "";

    /// <summary>Only the range starting here (with -Count: exactly these ids, which may shorten or split a range).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    public uint Start { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateRange(1, uint.MaxValue)]
    public uint Count { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    public SubordinateIdKind[] Kind { get; set; } = SubordinateIdDatabase.BothKinds;

    /// <summary>Emits the ranges that were removed.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        uint? start = MyInvocation.BoundParameters.ContainsKey(nameof(Start)) ? Start : null;
        uint? count = MyInvocation.BoundParameters.ContainsKey(nameof(Count)) ? Count : null;
        var what = start is null ? "every range" : count is null ? $"the range starting at {start}" : $"ids {start}-{start + (ulong)count - 1}";
        if (!ShouldProcess(User, $"Remove subordinate ids: {what} in {Describe(Kind)}")) return;
        Try(() =>
        {
            var removed = Database.Remove(User, start, count, Kind);
            if (PassThru) WriteObject(removed, enumerateCollection: true);
        });
    }
}
