using System.Collections.Concurrent;
using System.Management.Automation;

namespace PSContainers.Infrastructure;

/// <summary>
/// Runs long work on a worker thread and relays its progress reports to the pipeline thread as
/// Write-Progress (a cmdlet may only write from its own thread). Every report is written (scripts
/// and remote callers read the progress stream as data), except on a console whose terminal does
/// not answer cursor queries, where drawing would wait seconds each time (<see cref="ProgressTerminal"/>).
/// </summary>
internal static class ProgressRelay
{
    public static T Run<TProgress, T>(PSCmdlet cmdlet, string activity, Func<TProgress, (string Status, int Percent)> describe, Func<IProgress<TProgress>, T> work)
    {
        var id = Math.Abs(activity.GetHashCode() % 10000) + 1;
        return Run<TProgress, T>(cmdlet, p => { var (status, percent) = describe(p); return new ProgressRecord(id, activity, status) { PercentComplete = percent }; },
            new ProgressRecord(id, activity, "Done") { RecordType = ProgressRecordType.Completed }, work);
    }

    /// <summary>Relays reports as the records <paramref name="record"/> makes; <paramref name="completed"/> closes them (written only if any was).</summary>
    public static T Run<TProgress, T>(PSCmdlet cmdlet, Func<TProgress, ProgressRecord> record, ProgressRecord completed, Func<IProgress<TProgress>, T> work)
    {
        var queue = new BlockingCollection<TProgress>();
        var task = Task.Run(() =>
        {
            try { return work(new QueueProgress<TProgress>(queue)); }
            finally { queue.CompleteAdding(); }
        });
        var messages = cmdlet as ContainerCmdlet;
        var drawn = false;
        foreach (var p in queue.GetConsumingEnumerable())
        {
            messages?.FlushMessages();
            if (!ProgressTerminal.CanDraw(cmdlet)) continue;
            cmdlet.WriteProgress(record(p));
            drawn = true;
        }
        if (drawn) cmdlet.WriteProgress(completed);
        try { task.Wait(); } catch (AggregateException) { /* thrown below */ }
        messages?.FlushMessages();
        try { return task.GetAwaiter().GetResult(); }
        catch (OperationCanceledException) { throw new PipelineStoppedException(); }
    }

    private sealed class QueueProgress<TProgress>(BlockingCollection<TProgress> queue) : IProgress<TProgress>
    {
        public void Report(TProgress value)
        {
            try { queue.Add(value); } catch (InvalidOperationException) { }
        }
    }
}
