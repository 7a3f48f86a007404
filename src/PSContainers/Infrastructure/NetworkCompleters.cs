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

    /// <summary>
    /// The value the command would get for parameter <paramref name="name"/>: what the command line
    /// gives, else what a $PSDefaultParameterValues key matching the command and the parameter gives
    /// ('*-Container*:StorePath'), as PowerShell binds it when the command runs; else null.
    /// </summary>
    public static string? Bound(string commandName, IDictionary fakeBoundParameters, string name)
    {
        if (fakeBoundParameters.Contains(name)) return fakeBoundParameters[name]?.ToString();
        try { return DefaultFor(commandName, name); }
        catch (Exception) { return null; } // completion must never throw at the prompt
    }

    private static string? DefaultFor(string commandName, string parameter)
    {
        // The caller's $PSDefaultParameterValues, as the command would see it: a script block run on
        // the pipeline thread looks it up from the caller's scope (a test or script may keep its own copy).
        if (ScriptBlock.Create("$PSDefaultParameterValues").Invoke().FirstOrDefault()?.BaseObject is not IDictionary defaults) return null;
        if (defaults["Disabled"] is { } disabled && LanguagePrimitives.IsTrue(disabled)) return null;
        var command = commandName[(commandName.LastIndexOf('\\') + 1)..];
        string? found = null;
        foreach (DictionaryEntry entry in defaults)
        {
            if (entry.Key is not string key) continue;
            var colon = key.IndexOf(':');
            if (colon <= 0) continue;
            if (!WildcardPattern.Get(key[..colon].Trim(), WildcardOptions.IgnoreCase).IsMatch(command)
                || !WildcardPattern.Get(key[(colon + 1)..].Trim(), WildcardOptions.IgnoreCase).IsMatch(parameter)) continue;
            // A script block value is computed when the command binds; so here.
            var value = entry.Value is ScriptBlock block ? block.Invoke().FirstOrDefault()?.BaseObject : entry.Value;
            if (value is PSObject pso) value = pso.BaseObject;
            if (value?.ToString() is not { } text) continue;
            // Keys that match with different values: PowerShell ignores them all (with a warning).
            if (found is not null && found != text) return null;
            found = text;
        }
        return found;
    }
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
            var ns = Completion.Bound(commandName, fakeBoundParameters, "Namespace");
            var container = Completion.Bound(commandName, fakeBoundParameters, "Container");
            var location = ns is not null ? NetworkLocation.ForNamespace(ns)
                : container is not null ? NetworkLocation.ForContainer(container, PSContainers.Runtime.Composition.ContainerRuntime.Open(Completion.Bound(commandName, fakeBoundParameters, "StorePath")).Get(container).Pid)
                : NetworkLocation.Host;
            using var client = new NetworkClient(location);
            names = client.GetLinks().Select(l => l.Name).ToList();
        }
        catch (Exception) { return Array.Empty<CompletionResult>(); }
        return Completion.Matching(names, wordToComplete);
    }
}
