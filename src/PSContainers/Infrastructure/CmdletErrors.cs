using System.Management.Automation;
using PSContainers.Runtime;

namespace PSContainers.Infrastructure;

/// <summary>How every cmdlet of the module turns a runtime failure into a non-terminating ErrorRecord.</summary>
internal static class CmdletErrors
{
    public static ErrorRecord ToRecord(ContainerException ex) =>
        Record(ex, ex.ErrorId, Enum.TryParse<ErrorCategory>(ex.Kind.ToString(), out var c) ? c : ErrorCategory.NotSpecified, ex.Target);

    /// <summary>An error record whose ErrorDetails carry what to do about it, from the error catalog.</summary>
    public static ErrorRecord Record(Exception ex, string errorId, ErrorCategory category, object? target)
    {
        var record = new ErrorRecord(ex, errorId, category, target);
        if (Errors.ErrorCatalog.Find(errorId) is { } entry)
            record.ErrorDetails = new ErrorDetails(ex.Message) { RecommendedAction = entry.Action };
        return record;
    }

    /// <summary>Runs one step for one target; a failure is written as an error and the pipeline goes on.</summary>
    public static bool Try(Cmdlet cmdlet, Action action, string ioErrorId)
    {
        try
        {
            action();
            return true;
        }
        catch (ContainerException ex)
        {
            cmdlet.WriteError(ToRecord(ex));
            return false;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            cmdlet.WriteError(Record(ex, ioErrorId, ErrorCategory.WriteError, null));
            return false;
        }
    }
}
