using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Network;

namespace PSContainers.Infrastructure;

internal static class Completion
{
    public static IEnumerable<CompletionResult> Matching(IEnumerable<string> candidates, string wordToComplete)
    {
        var pattern = new WildcardPattern(wordToComplete.Trim('\'', '"') + "*", WildcardOptions.IgnoreCase);
        return candidates.Where(pattern.IsMatch).Distinct().Order(StringComparer.Ordinal)
            .Select(n => new CompletionResult(Quote(n), n, CompletionResultType.ParameterValue, n));
    }

    /// <summary>Names with characters the parser would split on are completed in quotes.</summary>
    private static string Quote(string name) =>
        name.Any(c => char.IsWhiteSpace(c) || "'\"`$(){}[];,&|@#<>".Contains(c)) ? "'" + name.Replace("'", "''") + "'" : name;

    public static string? Bound(IDictionary fakeBoundParameters, string name) =>
        fakeBoundParameters.Contains(name) ? fakeBoundParameters[name]?.ToString() : null;
}

/// <summary>Tab completion of named network namespaces (/run/netns), as ip netns list shows them.</summary>
public sealed class NetNamespaceNameCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        List<string> names;
        try { names = NetNamespaces.Names().ToList(); }
        catch (Exception) { return Array.Empty<CompletionResult>(); } // completion must never throw at the prompt
        return Completion.Matching(names, wordToComplete);
    }
}

/// <summary>
/// Tab completion of network link names where the command acts: the named namespace given with
/// -Namespace, the container given with -Container, else the host.
/// </summary>
public sealed class NetworkLinkNameCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        List<string> names;
        try
        {
            var ns = Completion.Bound(fakeBoundParameters, "Namespace");
            var container = Completion.Bound(fakeBoundParameters, "Container");
            var location = ns is not null ? NetworkLocation.ForNamespace(ns)
                : container is not null ? NetworkLocation.ForContainer(container, PSContainers.Runtime.Composition.ContainerRuntime.Open(Completion.Bound(fakeBoundParameters, "StorePath")).Get(container).Pid)
                : NetworkLocation.Host;
            using var client = new NetworkClient(location);
            names = client.GetLinks().Select(l => l.Name).ToList();
        }
        catch (Exception) { return Array.Empty<CompletionResult>(); }
        return Completion.Matching(names, wordToComplete);
    }
}
