using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using PSContainers.Runtime.IdMapping;

namespace PSContainers.Infrastructure;

/// <summary>Tab completion of user names from the password database (getpwent: /etc/passwd and any NSS source that enumerates).</summary>
public sealed class UserNameCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var pattern = new WildcardPattern(wordToComplete.Trim('\'', '"') + "*", WildcardOptions.IgnoreCase);
        IReadOnlyList<UserAccount> users;
        try { users = UserAccounts.All(); }
        catch (Exception) { yield break; } // completion must never throw at the prompt
        foreach (var u in users.Where(u => pattern.IsMatch(u.Name)).DistinctBy(u => u.Name).OrderBy(u => u.Name, StringComparer.Ordinal))
            yield return new CompletionResult(u.Name, u.Name, CompletionResultType.ParameterValue, $"{u.Name} (uid {u.Uid}, {u.Home})");
    }
}
