using System.Collections.Concurrent;
using System.Management.Automation;

namespace PSContainers.Infrastructure;

/// <summary>
/// Runs long work on a worker thread and relays its progress reports to the pipeline thread as
/// Write-Progress (a cmdlet may only write from its own thread).
/// </summary>
internal static class ProgressRelay
{
    public static T Run<TProgress, T>(PSCmdlet cmdlet, string activity, Func<TProgress, (string Status, int Percent)> describe, Func<IProgress<TProgress>, T> work)
    {
        var queue = new BlockingCollection<TProgress>();
        var task = Task.Run(() =>
        {
            try { return work(new QueueProgress<TProgress>(queue)); }
            finally { queue.CompleteAdding(); }
        });
        var id = Math.Abs(activity.GetHashCode() % 10000) + 1;
        var messages = cmdlet as ContainerCmdlet;
        foreach (var p in queue.GetConsumingEnumerable())
        {
            messages?.FlushMessages();
            var (status, percent) = describe(p);
            cmdlet.WriteProgress(new ProgressRecord(id, activity, status) { PercentComplete = percent });
        }
        cmdlet.WriteProgress(new ProgressRecord(id, activity, "Done") { RecordType = ProgressRecordType.Completed });
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
