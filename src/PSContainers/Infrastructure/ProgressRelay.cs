using System.Collections.Concurrent;
using System.Diagnostics;
using System.Management.Automation;

namespace PSContainers.Infrastructure;

/// <summary>
/// Runs long work on a worker thread and relays its progress reports to the pipeline thread as
/// Write-Progress (a cmdlet may only write from its own thread).
/// </summary>
/// <remarks>
/// pwsh's console host asks the terminal where the cursor is (ESC[6n) each time it draws progress
/// and waits for the answer; a terminal that never answers (a serial console, a pipe behind a pty)
/// costs seconds per draw. So progress is never queued behind the work: only the latest report is
/// written, none before the work ran for <see cref="FirstAfter"/> (a quick operation draws nothing),
/// then at most one per <see cref="Interval"/>, while the work goes on on its own thread; and none
/// at all on a console whose terminal did not answer (<see cref="ProgressTerminal"/>).
/// </remarks>
internal static class ProgressRelay
{
    public static readonly TimeSpan FirstAfter = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    public static T Run<TProgress, T>(PSCmdlet cmdlet, string activity, Func<TProgress, (string Status, int Percent)> describe, Func<IProgress<TProgress>, T> work)
    {
        var id = Math.Abs(activity.GetHashCode() % 10000) + 1;
        return Run<TProgress, T>(cmdlet, id, p => { var (status, percent) = describe(p); return new ProgressRecord(id, activity, status) { PercentComplete = percent }; },
            new ProgressRecord(id, activity, "Done") { RecordType = ProgressRecordType.Completed }, work);
    }

    /// <summary>Relays reports as the records <paramref name="record"/> makes; <paramref name="completed"/> closes them (written only if any was).</summary>
    public static T Run<TProgress, T>(PSCmdlet cmdlet, int id, Func<TProgress, ProgressRecord> record, ProgressRecord completed, Func<IProgress<TProgress>, T> work)
    {
        var queue = new BlockingCollection<TProgress>();
        var task = Task.Run(() =>
        {
            try { return work(new QueueProgress<TProgress>(queue)); }
            finally { queue.CompleteAdding(); }
        });
        var messages = cmdlet as ContainerCmdlet;
        var drawn = false;
        Relay(queue, p =>
        {
            if (!ProgressTerminal.CanDraw(cmdlet)) return;
            cmdlet.WriteProgress(record(p));
            drawn = true;
        }, () => messages?.FlushMessages());
        if (drawn) cmdlet.WriteProgress(completed);
        try { task.Wait(); } catch (AggregateException) { /* thrown below */ }
        messages?.FlushMessages();
        try { return task.GetAwaiter().GetResult(); }
        catch (OperationCanceledException) { throw new PipelineStoppedException(); }
    }

    /// <summary>
    /// Takes reports until the queue is completed, writing the latest one when it is due (see the
    /// class remarks); reports superseded in between are dropped. <paramref name="between"/> runs
    /// each time a report arrives (warnings and verbose messages of the work). True if anything was written.
    /// </summary>
    internal static bool Relay<TProgress>(BlockingCollection<TProgress> queue, Action<TProgress> write, Action? between = null)
    {
        var clock = Stopwatch.StartNew();
        var due = FirstAfter;
        var wrote = false;
        var pending = false;
        TProgress latest = default!;
        while (!queue.IsCompleted)
        {
            var wait = pending ? due - clock.Elapsed : Timeout.InfiniteTimeSpan;
            if (wait < TimeSpan.Zero) wait = TimeSpan.Zero;
            if (queue.TryTake(out var item, wait))
            {
                latest = item;
                pending = true;
                while (queue.TryTake(out item)) latest = item;
                between?.Invoke();
            }
            if (pending && clock.Elapsed >= due && !queue.IsCompleted)
            {
                write(latest);
                wrote = true;
                pending = false;
                due = clock.Elapsed + Interval;
            }
        }
        return wrote;
    }

    internal sealed class QueueProgress<TProgress>(BlockingCollection<TProgress> queue) : IProgress<TProgress>
    {
        public void Report(TProgress value)
        {
            try { queue.Add(value); } catch (InvalidOperationException) { }
        }
    }
}
