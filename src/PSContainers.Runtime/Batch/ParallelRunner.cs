using System.Collections.Concurrent;
using PSContainers.Runtime.Containers;

namespace PSContainers.Runtime.Batch;

/// <summary>The end of one item of a <see cref="ParallelRunner{T}"/>: its value, or the exception it threw.</summary>
public sealed record ParallelOutcome<T>(string Name, T? Value, Exception? Error);

/// <summary>
/// Runs lifecycle operations on many containers, at most <see cref="Throttle"/> at once (the
/// -ThrottleLimit of Start-Container and Stop-Container). Items are added one by one as their
/// caller learns of them (a pipeline), start in the order added, and their outcomes come back in
/// completion order: the caller collects them on its own thread (<see cref="TryTake"/> while it
/// still adds, <see cref="Drain"/> at the end), which is where a cmdlet may write them.
/// <para>
/// Why this is safe to run concurrently: each operation takes its container's lock (a flock per
/// open file, so two workers exclude each other as two processes would; the same name twice waits
/// its turn); what containers share is guarded across processes anyway: the cgroup parent is
/// created idempotently (mkdir of an existing directory, inherited cpuset values written alike by
/// whoever comes first), the event journal appends under its flock, the default bridge's leases and
/// the store's id blocks under their store-wide locks. Workers are dedicated threads, not the
/// thread pool: an operation blocks on a child process for its whole length.
/// </para>
/// </summary>
public sealed class ParallelRunner<T> : IDisposable
{
    private readonly BlockingCollection<(string Name, Func<T> Work)> _queue = new();
    private readonly BlockingCollection<ParallelOutcome<T>> _done = new();
    private readonly List<Thread> _workers = new();
    private readonly CancellationTokenSource _cancel = new();
    private int _added, _taken, _inFlight;

    public ParallelRunner(int throttle)
    {
        if (throttle < 1 || throttle > ParallelLifecycle.MaxThrottle)
            throw new ContainerException("InvalidThrottleLimit", ContainerErrorKind.InvalidArgument,
                $"A throttle limit of {throttle} is out of range: give 1 (one at a time) to {ParallelLifecycle.MaxThrottle}.", throttle);
        Throttle = throttle;
    }

    public int Throttle { get; }

    /// <summary>Operations running right now (never more than <see cref="Throttle"/>).</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Queues <paramref name="work"/> for <paramref name="name"/>; a worker takes it as soon as one is free.</summary>
    public void Add(string name, Func<T> work)
    {
        ObjectDisposedException.ThrowIf(_queue.IsAddingCompleted, this);
        _queue.Add((name, work));
        _added++;
        // One more worker while the queue outgrows them, up to the throttle: a short input never makes threads it does not need.
        if (_workers.Count < Throttle && _workers.Count < _added)
        {
            var worker = new Thread(Work, 256 * 1024) { IsBackground = true, Name = "psc-parallel-" + _workers.Count };
            _workers.Add(worker);
            worker.Start();
        }
    }

    private void Work()
    {
        try
        {
            foreach (var (name, work) in _queue.GetConsumingEnumerable(_cancel.Token))
            {
                Interlocked.Increment(ref _inFlight);
                ParallelOutcome<T> outcome;
                try { outcome = new(name, work(), null); }
                catch (Exception ex) { outcome = new(name, default, ex); }
                finally { Interlocked.Decrement(ref _inFlight); }
                _done.Add(outcome);
            }
        }
        catch (OperationCanceledException) { /* Cancel: what was not started stays undone */ }
    }

    /// <summary>An outcome that is ready, without waiting (the caller is still adding).</summary>
    public bool TryTake(out ParallelOutcome<T> outcome)
    {
        if (_done.TryTake(out outcome!)) { _taken++; return true; }
        return false;
    }

    /// <summary>
    /// No more items: waits for every outcome and returns each as it comes (completion order). After
    /// <see cref="Cancel"/>, the ones that were never started have none.
    /// </summary>
    public IEnumerable<ParallelOutcome<T>> Drain()
    {
        _queue.CompleteAdding();
        while (_taken < _added)
        {
            ParallelOutcome<T> outcome;
            if (_cancel.IsCancellationRequested)
            {
                // Only what is running will still end: wait for the workers, then hand over what they finished.
                foreach (var w in _workers) w.Join();
                if (!_done.TryTake(out outcome!)) yield break;
            }
            else
            {
                try { outcome = _done.Take(_cancel.Token); }
                catch (OperationCanceledException) { continue; }
            }
            _taken++;
            yield return outcome;
        }
    }

    /// <summary>Starts nothing more; the operations already running finish (a start or stop is not cut in the middle).</summary>
    public void Cancel() => _cancel.Cancel();

    /// <summary>Cancels what was not started and waits for what runs, so no worker outlives its caller.</summary>
    public void Dispose()
    {
        _queue.CompleteAdding();
        _cancel.Cancel();
        foreach (var w in _workers) w.Join();
    }
}

/// <summary>The lifecycle operations that run in parallel: many containers started or stopped at once.</summary>
public static class ParallelLifecycle
{
    /// <summary>The default: one at a time, in input order (what the cmdlets did before -ThrottleLimit).</summary>
    public const int DefaultThrottle = 1;
    /// <summary>More workers than this only queue on the per-container work of the kernel and the disk.</summary>
    public const int MaxThrottle = 64;

    /// <summary>Starts <paramref name="names"/>, at most <paramref name="throttle"/> at once; outcomes in completion order.</summary>
    public static IEnumerable<ParallelOutcome<ContainerInfo>> Start(IContainerLifecycle lifecycle, IEnumerable<string> names, int throttle) =>
        Run(names, throttle, name => lifecycle.Start(name));

    /// <summary>Stops <paramref name="names"/> (see <see cref="IContainerLifecycle.Stop"/>), at most <paramref name="throttle"/> at once.</summary>
    public static IEnumerable<ParallelOutcome<ContainerInfo>> Stop(IContainerLifecycle lifecycle, IEnumerable<string> names, int throttle, TimeSpan? timeout = null, bool kill = false) =>
        Run(names, throttle, name => lifecycle.Stop(name, timeout, kill));

    /// <summary><paramref name="operation"/> on every name, at most <paramref name="throttle"/> at once; outcomes in completion order.</summary>
    public static IEnumerable<ParallelOutcome<T>> Run<T>(IEnumerable<string> names, int throttle, Func<string, T> operation)
    {
        using var runner = new ParallelRunner<T>(throttle);
        foreach (var name in names) runner.Add(name, () => operation(name));
        foreach (var outcome in runner.Drain()) yield return outcome;
    }
}
