using PSContainers.Runtime.Containers;
using PSContainers.Runtime.State;

namespace PSContainers.Runtime.Autostart;

public enum AutostartAction { Start, Stop, Kill }

public enum AutostartOutcome
{
    Started,
    AlreadyRunning,
    Stopped,
    AlreadyStopped,
    /// <summary>Not approved (-WhatIf, or answered No to -Confirm): nothing was done.</summary>
    Skipped,
    Failed,
}

/// <summary>What Start-/Stop-ContainerAutostart did to one container.</summary>
public sealed class AutostartResult
{
    public string Name { get; init; } = "";
    public AutostartAction Action { get; init; }
    public AutostartOutcome Result { get; init; }
    public int Order { get; init; }
    public int Delay { get; init; }
    public string[] Groups { get; init; } = Array.Empty<string>();
    /// <summary>When the action ended.</summary>
    public DateTimeOffset Time { get; init; }
    /// <summary>The container after the action (null when it failed or was skipped).</summary>
    public ContainerInfo? Container { get; init; }
    public string? ErrorId { get; init; }
    public string? Error { get; init; }
    /// <summary>The failure, for the caller's error stream.</summary>
    public ContainerException? Exception { get; init; }

    public override string ToString() => $"{Action} {Name}: {Result}";
}

/// <summary>
/// Carries out an <see cref="AutostartPlan"/>: one container after the other through the lifecycle
/// (each start and stop takes that container's lock), a failure of one recorded and the rest carried
/// on, as lxc-autostart does. After a container was started, its delay passes before the next start.
/// </summary>
public sealed class AutostartRunner(IContainerLifecycle lifecycle)
{
    /// <summary>Asked before each action (ShouldProcess); false skips the container.</summary>
    public Func<AutostartEntry, string, bool> Approve { get; init; } = (_, _) => true;

    public IEnumerable<AutostartResult> Start(IReadOnlyList<AutostartEntry> plan, CancellationToken ct = default)
    {
        for (int i = 0; i < plan.Count; i++)
        {
            ct.ThrowIfCancellationRequested();
            var entry = plan[i];
            bool last = i == plan.Count - 1;
            var what = entry.Delay > 0 && !last ? $"Start container (order {entry.Order}), then wait {entry.Delay} s" : $"Start container (order {entry.Order})";
            if (!Approve(entry, what)) { yield return Result(entry, AutostartAction.Start, AutostartOutcome.Skipped); continue; }
            var result = Run(entry, AutostartAction.Start, () =>
            {
                var info = lifecycle.Get(entry.Name);
                if (info.State is ContainerStatus.Running or ContainerStatus.Frozen) return (AutostartOutcome.AlreadyRunning, info);
                return (AutostartOutcome.Started, lifecycle.Start(entry.Name));
            });
            yield return result;
            // lxc.start.delay: time for this container to come up before the next one is started.
            if (result.Result == AutostartOutcome.Started && entry.Delay > 0 && !last)
                ct.WaitHandle.WaitOne(TimeSpan.FromSeconds(entry.Delay));
        }
    }

    /// <param name="timeout">Seconds for each container's clean stop (null: its stop.timeout), then everything is killed.</param>
    /// <param name="stopped">Called after a container stopped (Stop-Container's follow-up, such as removing an ephemeral one).</param>
    public IEnumerable<AutostartResult> Stop(IReadOnlyList<AutostartEntry> plan, TimeSpan? timeout, bool kill, Action<string>? stopped = null, CancellationToken ct = default)
    {
        var action = kill ? AutostartAction.Kill : AutostartAction.Stop;
        foreach (var entry in plan)
        {
            ct.ThrowIfCancellationRequested();
            if (!Approve(entry, $"{(kill ? "Kill" : "Stop")} container (order {entry.Order})")) { yield return Result(entry, action, AutostartOutcome.Skipped); continue; }
            var result = Run(entry, action, () =>
            {
                var info = lifecycle.Get(entry.Name);
                if (info.State is ContainerStatus.Stopped or ContainerStatus.Saved or ContainerStatus.Broken) return (AutostartOutcome.AlreadyStopped, info);
                var after = lifecycle.Stop(entry.Name, timeout, kill);
                stopped?.Invoke(entry.Name);
                return (AutostartOutcome.Stopped, after);
            });
            yield return result;
        }
    }

    private static AutostartResult Run(AutostartEntry entry, AutostartAction action, Func<(AutostartOutcome, ContainerInfo)> act)
    {
        try
        {
            var (outcome, info) = act();
            return Result(entry, action, outcome, info);
        }
        catch (ContainerException ex)
        {
            return Result(entry, action, AutostartOutcome.Failed, null, ex);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return Result(entry, action, AutostartOutcome.Failed, null, new ContainerException("AutostartFailed", ContainerErrorKind.DeviceError,
                $"Could not {action.ToString().ToLowerInvariant()} container '{entry.Name}': {ex.Message}", entry.Name, ex));
        }
    }

    private static AutostartResult Result(AutostartEntry entry, AutostartAction action, AutostartOutcome outcome, ContainerInfo? info = null, ContainerException? error = null) => new()
    {
        Name = entry.Name,
        Action = action,
        Result = outcome,
        Order = entry.Order,
        Delay = entry.Delay,
        Groups = entry.Groups.ToArray(),
        Time = DateTimeOffset.Now,
        Container = info,
        ErrorId = error?.ErrorId,
        Error = error?.Message,
        Exception = error,
    };
}
