using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.State;

namespace PSContainers.Infrastructure;

/// <summary>
/// Tab completion of container names from the store the command would use (-StorePath on the command
/// line, else a matching $PSDefaultParameterValues key, else $env:PSCONTAINERS_PATH or the default). A command that
/// applies to containers in some states only offers those first (Start-Container the stopped ones,
/// Stop-Container the running ones, Resume-Container the frozen ones...); when none of the names
/// that match what was typed is in such a state, it offers them all (the command will say why not).
/// </summary>
public sealed class ContainerNameCompleter : IArgumentCompleter
{
    private static readonly ContainerStatus[] Live = { ContainerStatus.Running, ContainerStatus.Frozen };
    private static readonly ContainerStatus[] Down = { ContainerStatus.Stopped, ContainerStatus.Saved };

    /// <summary>The states a command's container parameter applies to (null: any).</summary>
    internal static ContainerStatus[]? StatesFor(string commandName, string parameterName)
    {
        var command = commandName[(commandName.LastIndexOf('\\') + 1)..];
        return (command.ToLowerInvariant(), parameterName.ToLowerInvariant()) switch
        {
            ("start-container", _) or ("rename-container", _) => Down,
            ("stop-container", _) or ("invoke-containercommand", _) or ("enter-container", _) or ("checkpoint-container", _)
                or ("save-container", _) or ("measure-container", _) or ("get-cgrouplimit", _) => Live,
            ("suspend-container", _) => new[] { ContainerStatus.Running },
            ("resume-container", _) => new[] { ContainerStatus.Frozen },
            // Network cmdlets act in a running container's namespace.
            (_, "container" or "destinationcontainer" or "peercontainer") => Live,
            _ => null,
        };
    }

    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var store = Completion.Bound(commandName, fakeBoundParameters, "StorePath");
        var pattern = new WildcardPattern(wordToComplete.Trim('\'', '"') + "*", WildcardOptions.IgnoreCase);
        var states = StatesFor(commandName, parameterName);
        List<string> names;
        try
        {
            var manager = PSContainers.Runtime.Composition.ContainerRuntime.Open(store);
            var matching = manager.Names().Where(pattern.IsMatch).ToList();
            names = matching;
            if (states is not null)
            {
                var applicable = matching.Where(n =>
                {
                    try { return states.Contains(manager.Get(n).State); }
                    catch (Exception) { return false; }
                }).ToList();
                if (applicable.Count > 0) names = applicable;
            }
        }
        catch (Exception) { yield break; } // completion must never throw at the prompt
        foreach (var name in names)
            yield return new CompletionResult(name, name, CompletionResultType.ParameterValue, name);
    }
}

/// <summary>Completes template names.</summary>
public sealed class TemplateNameCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters) =>
        PSContainers.Runtime.Templates.TemplateRegistry.Names
            .Where(n => n.StartsWith(wordToComplete, StringComparison.OrdinalIgnoreCase))
            .Select(n => new CompletionResult(n, n, CompletionResultType.ParameterValue, n));
}
