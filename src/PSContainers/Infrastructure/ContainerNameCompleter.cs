using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using PSContainers.Runtime.Containers;

namespace PSContainers.Infrastructure;

/// <summary>Tab completion of container names from the store the command line points at.</summary>
public sealed class ContainerNameCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var store = fakeBoundParameters.Contains("StorePath") ? fakeBoundParameters["StorePath"]?.ToString() : null;
        var pattern = new WildcardPattern(wordToComplete.Trim('\'', '"') + "*", WildcardOptions.IgnoreCase);
        IEnumerable<string> names;
        try { names = new ContainerManager(store).Names().ToList(); }
        catch (Exception) { yield break; } // completion must never throw at the prompt
        foreach (var name in names.Where(pattern.IsMatch))
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
