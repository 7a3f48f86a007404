using System.Management.Automation;
using PSContainers.Runtime;
using PSContainers.Runtime.Containers;

namespace PSContainers.Infrastructure;

/// <summary>
/// What every container cmdlet shares: the store (-StorePath, else $env:PSCONTAINERS_PATH, else
/// the default), mapping runtime failures to ErrorRecords, and resolving -Name with wildcards.
/// </summary>
public abstract class ContainerCmdlet : PSCmdlet
{
    /// <summary>The store directory (LXC's lxcpath).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string? StorePath { get; set; }

    private ContainerManager? _manager;
    private string? _managerStore;

    protected ContainerManager Manager
    {
        get
        {
            // -StorePath can be bound per pipeline object (by property name): follow it.
            var path = StorePath is null ? null : GetUnresolvedProviderPathFromPSPath(StorePath);
            if (_manager is null || _managerStore != path)
            {
                _manager = PSContainers.Runtime.Composition.ContainerRuntime.Open(path);
                _manager.Warning += m => Say(warning: true, m);
                _manager.Verbose += m => Say(warning: false, m);
                _managerStore = path;
                // The store's permissions are fixed on its first use, with a warning: only the
                // pipeline thread may write one (a worker thread's first use leaves it to the runtime).
                if (System.Management.Automation.Runspaces.Runspace.DefaultRunspace is not null) _manager.EnsureStoreSecure();
            }
            return _manager;
        }
    }

    // The runtime tells of warnings from whatever thread runs the operation (a worker of
    // ProgressRelay, say), and a cmdlet may write only from its pipeline thread: messages from
    // elsewhere wait here until the pipeline thread writes next (ProgressRelay flushes them).
    private readonly System.Collections.Concurrent.ConcurrentQueue<(bool Warning, string Message)> _pending = new();
    private int _pipelineThread = -1;

    private void Say(bool warning, string message)
    {
        // A cmdlet whose BeginProcessing did not call ours learns its pipeline thread here: that
        // thread has the runspace, a worker has none. A message from any other thread always waits
        // in the queue (writing it there is what failed with "WriteObject and WriteError methods
        // cannot be called from outside the overrides of ...").
        if (_pipelineThread == -1 && System.Management.Automation.Runspaces.Runspace.DefaultRunspace is not null)
            _pipelineThread = Environment.CurrentManagedThreadId;
        _pending.Enqueue((warning, message));
        if (Environment.CurrentManagedThreadId == _pipelineThread) FlushMessages();
    }

    /// <summary>Writes the warnings and verbose messages the runtime reported (pipeline thread only).</summary>
    internal void FlushMessages()
    {
        if (Environment.CurrentManagedThreadId != _pipelineThread) return;
        while (_pending.TryDequeue(out var m))
        {
            if (m.Warning) WriteWarning(m.Message);
            else WriteVerbose(m.Message);
        }
    }

    protected override void BeginProcessing()
    {
        _pipelineThread = Environment.CurrentManagedThreadId;
        base.BeginProcessing();
    }

    /// <summary>
    /// -AsJob: runs <paramref name="work"/> as a <see cref="ContainerJob"/> with a manager of its own
    /// (same store; its warnings and verbose messages go to the job), registers it with Get-Job and
    /// writes the job object.
    /// </summary>
    protected void StartJob(string target, Action<ContainerJob, ContainerManager> work)
    {
        var path = StorePath is null ? null : GetUnresolvedProviderPathFromPSPath(StorePath);
        var manager = PSContainers.Runtime.Composition.ContainerRuntime.Open(path);
        // The command with what it was given (the whole input line could hold several statements).
        var command = MyInvocation.MyCommand.Name + " " + string.Join(" ", MyInvocation.BoundParameters
            .Where(p => p.Key != "AsJob").Select(p => p.Value is SwitchParameter ? $"-{p.Key}" : $"-{p.Key} {FormatArgument(p.Value)}"));
        var job = new ContainerJob(command.Trim(), $"{MyInvocation.MyCommand.Name} {target}", System.Environment.MachineName);
        manager.Warning += job.WriteWarning;
        manager.Verbose += job.WriteVerbose;
        JobRepository.Add(job);
        job.Start(j => work(j, manager));
        WriteObject(job);
    }

    private static string FormatArgument(object? value) => value switch
    {
        null => "$null",
        string s => s.Any(char.IsWhiteSpace) ? $"'{s.Replace("'", "''")}'" : s,
        System.Collections.IEnumerable e => string.Join(",", e.Cast<object?>().Select(FormatArgument)),
        _ => value.ToString() ?? "",
    };

    protected static ErrorRecord ToErrorRecord(ContainerException ex) => CmdletErrors.ToRecord(ex);

    /// <summary>Runs one step for one target; a runtime failure becomes a non-terminating error.</summary>
    protected bool Try(Action action) => CmdletErrors.Try(this, action, ioErrorId: "ContainerIOError");

    /// <summary>
    /// Expands -Name values: a wildcard matches existing containers (none is fine, as with Get-Process);
    /// a literal name that does not exist is an ObjectNotFound error.
    /// </summary>
    protected IEnumerable<string> ResolveNames(IEnumerable<string> names, bool literalMustExist = true)
    {
        foreach (var name in names)
        {
            if (WildcardPattern.ContainsWildcardCharacters(name))
            {
                var pattern = new WildcardPattern(name, WildcardOptions.IgnoreCase);
                foreach (var match in Manager.Names().Where(pattern.IsMatch)) yield return match;
            }
            else if (!literalMustExist || Manager.Exists(name)) yield return name;
            else WriteError(ToErrorRecord(new ContainerException("ContainerNotFound", ContainerErrorKind.ObjectNotFound,
                $"No container named '{name}' exists in {Manager.Store.Root}. Get-Container lists the containers of this store.", name)));
        }
    }
}
