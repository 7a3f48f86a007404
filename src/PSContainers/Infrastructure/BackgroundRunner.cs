using System.Collections.Concurrent;
using System.Management.Automation;

namespace PSContainers.Infrastructure;

/// <summary>
/// Runs a long runtime operation on a worker thread while the pipeline thread writes its progress
/// (a cmdlet may only write from the pipeline thread); Ctrl+C cancels the operation's token.
/// </summary>
internal static class BackgroundRunner
{
    public static T Run<TProgress, T>(PSCmdlet cmdlet, Func<IProgress<TProgress>, CancellationToken, T> work,
        Func<TProgress, ProgressRecord> toRecord, ProgressRecord completed, CancellationToken ct)
    {
        var queue = new BlockingCollection<TProgress>();
        var progress = new QueueProgress<TProgress>(queue);
        var task = Task.Run(() =>
        {
            try { return work(progress, ct); }
            finally { queue.CompleteAdding(); }
        });
        foreach (var p in queue.GetConsumingEnumerable()) cmdlet.WriteProgress(toRecord(p));
        cmdlet.WriteProgress(completed);
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
