using System.Management.Automation;
using PSContainers.Runtime;
using PSContainers.Runtime.Containers;

namespace PSContainers.Infrastructure;

/// <summary>
/// A PowerShell job that runs one long container operation (-AsJob, as Hyper-V's cmdlets have) on a
/// thread of its own: Get-Job lists it, Wait-Job waits for it, Receive-Job returns the same objects
/// the cmdlet would have written, with its errors, warnings, verbose messages and progress, and
/// Stop-Job cancels it (operations that can be cancelled roll back, as on Ctrl+C). A failure ends
/// the job Failed with the operation's ErrorRecord (same id, category and target as without -AsJob).
/// </summary>
public sealed class ContainerJob : Job
{
    public const string JobTypeName = "PSContainersJob";

    private readonly CancellationTokenSource _cancel = new();
    private Task? _task;
    private string _status = "";

    internal ContainerJob(string command, string name, string location) : base(command, name)
    {
        PSJobTypeName = JobTypeName;
        Location = location;
    }

    public override string Location { get; }
    public override string StatusMessage => _status;
    public override bool HasMoreData =>
        Output.Count > 0 || Error.Count > 0 || Warning.Count > 0 || Verbose.Count > 0 || Progress.Count > 0 || Information.Count > 0;

    internal CancellationToken Token => _cancel.Token;

    /// <summary>A progress sink that turns the runtime's reports into the job's progress records.</summary>
    internal IProgress<T> ProgressOf<T>(string activity, Func<T, (string Status, int Percent)> describe)
    {
        var id = Math.Abs(activity.GetHashCode() % 10000) + 1;
        return new Progress<T>(activity, id, describe, this);
    }

    internal void WriteWarning(string message) => Warning.Add(new WarningRecord(message));
    internal void WriteVerbose(string message) => Verbose.Add(new VerboseRecord(message));

    /// <summary>Starts the work on its own thread; the job ends Completed, Failed (an error) or Stopped (Stop-Job).</summary>
    internal void Start(Action<ContainerJob> work)
    {
        SetJobState(JobState.Running);
        _task = Task.Factory.StartNew(() =>
        {
            JobState final;
            try
            {
                work(this);
                final = _cancel.IsCancellationRequested ? JobState.Stopped : Error.Count > 0 ? JobState.Failed : JobState.Completed;
            }
            catch (OperationCanceledException) { final = JobState.Stopped; }
            catch (PipelineStoppedException) { final = JobState.Stopped; }
            catch (ContainerException ex)
            {
                Error.Add(CmdletErrors.ToRecord(ex));
                _status = ex.Message;
                final = JobState.Failed;
            }
            catch (Exception ex)
            {
                // As the cmdlets map them without -AsJob (CmdletErrors.Try).
                Error.Add(ex is IOException or UnauthorizedAccessException
                    ? CmdletErrors.Record(ex, "ContainerIOError", ErrorCategory.WriteError, null)
                    : CmdletErrors.Record(ex, "ContainerJobFailed", ErrorCategory.NotSpecified, null));
                _status = ex.Message;
                final = JobState.Failed;
            }
            if (final == JobState.Completed) _status = "Completed";
            // Close the streams first: a Receive-Job -Wait that waits on them returns with everything.
            Output.Complete(); Error.Complete(); Warning.Complete(); Verbose.Complete(); Progress.Complete(); Debug.Complete(); Information.Complete();
            SetJobState(final);
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    public override void StopJob()
    {
        if (IsFinishedState(JobStateInfo.State)) return;
        SetJobState(JobState.Stopping);
        _cancel.Cancel();
        // Cancellable operations roll back and end; the others (a CRIU dump) finish first.
        _task?.Wait();
    }

    private static bool IsFinishedState(JobState s) => s is JobState.Completed or JobState.Failed or JobState.Stopped;

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            if (!IsFinishedState(JobStateInfo.State)) _cancel.Cancel();
            _cancel.Dispose();
        }
        base.Dispose(disposing);
    }

    private sealed class Progress<T>(string activity, int id, Func<T, (string Status, int Percent)> describe, ContainerJob job) : IProgress<T>
    {
        public void Report(T value)
        {
            var (status, percent) = describe(value);
            job.Progress.Add(new ProgressRecord(id, activity, string.IsNullOrEmpty(status) ? "..." : status) { PercentComplete = Math.Clamp(percent, -1, 100) });
            job._status = status;
        }
    }
}
