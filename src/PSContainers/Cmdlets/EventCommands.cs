using System.Management.Automation;
using PSContainers.Infrastructure;
using PSContainers.Runtime.Events;
using PSContainers.Runtime.Namespaces;

namespace PSContainers.Cmdlets;

/// <summary>What the event filters of both cmdlets share: container names (wildcards) and kinds.</summary>
internal static class EventFilter
{
    public static Func<ContainerEvent, bool> Of(string[]? names, ContainerEventKind[]? kinds)
    {
        var patterns = names?.Select(n => WildcardPattern.Get(n, WildcardOptions.IgnoreCase)).ToArray();
        return e => (patterns is null || patterns.Any(p => p.IsMatch(e.Container))) && (kinds is null || kinds.Contains(e.Kind));
    }
}

/// <summary>lxc-monitor: the store's container events, past (-Since) and live (-Wait, until Ctrl+C).</summary>
[Cmdlet(VerbsCommon.Get, "ContainerEvent")]
[OutputType(typeof(ContainerEvent))]
public sealed class GetContainerEventCommand : ContainerCmdlet
{
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[]? Name { get; set; }

    [Parameter]
    public ContainerEventKind[]? Kind { get; set; }

    [Parameter]
    public DateTime? Since { get; set; }

    [Parameter]
    public SwitchParameter Wait { get; set; }

    private readonly CancellationTokenSource _cancel = new();

    protected override void EndProcessing()
    {
        var filter = EventFilter.Of(Name, Kind);
        DateTimeOffset? since = Since is { } s ? new DateTimeOffset(s) : null;
        var journal = Manager.Events;
        if (!Wait)
        {
            foreach (var e in journal.Read(since)) if (filter(e)) WriteObject(e);
            return;
        }
        // -Wait without -Since: the past is not repeated, only what happens from now on.
        foreach (var e in journal.Follow(since, _cancel.Token))
            if (filter(e)) WriteObject(e);
        if (_cancel.IsCancellationRequested) throw new PipelineStoppedException();
    }

    protected override void StopProcessing() => _cancel.Cancel();
}

/// <summary>The argument of a container event raised to a subscriber ($EventArgs): the event itself.</summary>
public sealed class ContainerEventArgs(ContainerEvent containerEvent) : EventArgs
{
    public ContainerEvent Event { get; } = containerEvent;
}

/// <summary>
/// The source Register-ContainerEvent subscribes to with the engine's own machinery (as
/// Register-ObjectEvent does): a thread follows the journal and raises <see cref="EventRaised"/>
/// per matching event; the engine queues it and runs the action on the runspace's thread.
/// </summary>
public sealed class ContainerEventSource : IDisposable
{
    private readonly EventJournal _journal;
    private readonly Func<ContainerEvent, bool> _filter;
    private readonly CancellationTokenSource _cancel = new();
    private Thread? _thread;

    public ContainerEventSource(EventJournal journal, Func<ContainerEvent, bool> filter) => (_journal, _filter) = (journal, filter);

    public event EventHandler<ContainerEventArgs>? EventRaised;

    public void Start()
    {
        // The follow begins here, before the subscriber is handed out: nothing after it is missed.
        var events = _journal.Follow(null, _cancel.Token).GetEnumerator();
        _thread = new Thread(() =>
        {
            try
            {
                while (events.MoveNext())
                    if (_filter(events.Current)) EventRaised?.Invoke(this, new ContainerEventArgs(events.Current));
            }
            catch (ObjectDisposedException) { }
            finally { events.Dispose(); }
        }) { IsBackground = true, Name = "PSContainers event source" };
        _thread.Start();
    }

    public void Dispose()
    {
        _cancel.Cancel();
    }
}

/// <summary>Runs a scriptblock per container event, as Register-ObjectEvent does for .NET events ($Event, $EventArgs; Unregister-Event ends it).</summary>
[Cmdlet(VerbsLifecycle.Register, "ContainerEvent")]
[OutputType(typeof(PSEventJob))]
public sealed class RegisterContainerEventCommand : ContainerCmdlet
{
    [Parameter(Position = 0)]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[]? Name { get; set; }

    [Parameter]
    public ContainerEventKind[]? Kind { get; set; }

    [Parameter(Mandatory = true, Position = 1)]
    public ScriptBlock Action { get; set; } = null!;

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? SourceIdentifier { get; set; }

    [Parameter]
    public PSObject? MessageData { get; set; }

    protected override void EndProcessing()
    {
        var source = new ContainerEventSource(Manager.Events, EventFilter.Of(Name, Kind));
        source.Start();
        var subscriber = Events.SubscribeEvent(source, nameof(ContainerEventSource.EventRaised), SourceIdentifier ?? Guid.NewGuid().ToString(), MessageData, Action, supportEvent: false, forwardEvent: false);
        subscriber.Unsubscribed += (_, _) => source.Dispose();
        WriteObject(subscriber.Action);
    }
}
