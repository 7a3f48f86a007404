using System.Management.Automation;
using System.Runtime.ExceptionServices;
using PSContainers.Infrastructure;
using PSContainers.Runtime.Batch;
using PSContainers.Runtime.Containers;

namespace PSContainers.Cmdlets;

/// <summary>A cmdlet acting on containers named by -Name (wildcards allowed) or piped container objects.</summary>
public abstract class NameCmdlet : ContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Name { get; set; } = Array.Empty<string>();

    /// <summary>Runs <paramref name="action"/> for each resolved name that ShouldProcess approves.</summary>
    protected void ForEachContainer(string operation, Action<string> action)
    {
        foreach (var name in ResolveNames(Name))
            if (ShouldProcess(name, operation)) Try(() => action(name));
    }
}

/// <summary>A state-changing cmdlet with -PassThru (like Hyper-V's Start-VM).</summary>
public abstract class PassThruCmdlet : NameCmdlet
{
    /// <summary>Write the container object after the operation.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected void Emit(ContainerInfo info)
    {
        if (PassThru) WriteObject(info);
    }
}

/// <summary>
/// A PassThru cmdlet that can act on many containers at once (-ThrottleLimit): the operations run
/// on the runtime's <see cref="ParallelRunner{T}"/>, while everything PowerShell sees (ShouldProcess,
/// objects, errors, warnings) stays on the pipeline thread. Objects come in completion order.
/// </summary>
public abstract class ThrottledCmdlet : PassThruCmdlet, IDisposable
{
    /// <summary>How many containers at most are handled at once (1: one after the other, in input order).</summary>
    [Parameter]
    [ValidateRange(1, ParallelLifecycle.MaxThrottle)]
    public int ThrottleLimit { get; set; } = ParallelLifecycle.DefaultThrottle;

    private ParallelRunner<ContainerInfo>? _runner;

    /// <summary>
    /// <paramref name="operation"/> on each resolved, approved name: right here with -ThrottleLimit 1,
    /// else queued to the runner; finished ones are written as they come, the rest in EndProcessing.
    /// </summary>
    protected void ForEachContainer(string action, Func<ContainerManager, string, ContainerInfo> operation)
    {
        if (ThrottleLimit <= 1)
        {
            ForEachContainer(action, name => Emit(operation(Manager, name)));
            return;
        }
        _runner ??= new ParallelRunner<ContainerInfo>(ThrottleLimit);
        foreach (var name in ResolveNames(Name))
            if (ShouldProcess(name, action))
            {
                // The manager of this record's -StorePath, taken here: a worker has no runspace to resolve it.
                var manager = Manager;
                _runner.Add(name, () => operation(manager, name));
            }
        while (_runner.TryTake(out var done)) Write(done);
    }

    private void Write(ParallelOutcome<ContainerInfo> outcome)
    {
        // What the runtime said from a worker (warnings, verbose) first, then the outcome, as it would
        // have come in sequence; an exception becomes the same ErrorRecord a sequential run writes.
        FlushMessages();
        Try(() =>
        {
            if (outcome.Error is { } error) ExceptionDispatchInfo.Capture(error).Throw();
            Emit(outcome.Value!);
        });
    }

    protected override void EndProcessing()
    {
        if (_runner is not null)
            foreach (var outcome in _runner.Drain()) Write(outcome);
        FlushMessages();
        base.EndProcessing();
    }

    // Ctrl+C: nothing more is started; the starts and stops under way finish (Dispose waits for them).
    protected override void StopProcessing()
    {
        _runner?.Cancel();
        base.StopProcessing();
    }

    public void Dispose()
    {
        _runner?.Dispose();
        GC.SuppressFinalize(this);
    }
}
