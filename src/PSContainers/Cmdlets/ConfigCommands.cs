using System.Collections;
using System.Management.Automation;
using PSContainers.Infrastructure;
using PSContainers.Runtime;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;

namespace PSContainers.Cmdlets;

/// <summary>
/// A container's config.yaml as an object (incus config show / get): the whole typed config, or
/// the value of one dotted key (limits.memory, init.command, network[0].bridge).
/// </summary>
[Cmdlet(VerbsCommon.Get, "ContainerConfig")]
[OutputType(typeof(ContainerConfig))]
public sealed class GetContainerConfigCommand : NameCmdlet
{
    /// <summary>Only this key's value: as written in config.yaml, else its default.</summary>
    [Parameter(Position = 1)]
    [ValidateNotNullOrEmpty]
    public string? Key { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var name in ResolveNames(Name))
            Try(() =>
            {
                var configs = new ContainerConfigs(Manager);
                if (Key is null) { WriteObject(configs.Get(name)); return; }
                var value = configs.Get(name, Key, out var found);
                if (!found)
                    throw new ContainerException("ConfigKeyNotFound", ContainerErrorKind.ObjectNotFound,
                        $"Container '{name}' has no config key '{Key}'. Get-ContainerConfig -Name {name} shows its config; keys are the names in config.yaml joined by dots.", Key);
                WriteObject(value, enumerateCollection: false);
            });
    }
}

/// <summary>
/// Sets or removes config.yaml keys by name (incus config set/unset), validated as config.yaml
/// is; each change says whether it applies now or at the next start.
/// </summary>
[Cmdlet(VerbsCommon.Set, "ContainerConfig", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = KeySet)]
[OutputType(typeof(ConfigChange))]
public sealed class SetContainerConfigCommand : NameCmdlet
{
    private const string KeySet = "Key";
    private const string ConfigSet = "Config";

    /// <summary>The dotted key to set or remove.</summary>
    [Parameter(Mandatory = true, Position = 1, ParameterSetName = KeySet)]
    [ValidateNotNullOrEmpty]
    public string Key { get; set; } = "";

    /// <summary>The new value: text, a number, $true/$false, an array (a YAML list) or a hashtable (a YAML mapping).</summary>
    [Parameter(Position = 2, ParameterSetName = KeySet)]
    [AllowNull]
    [AllowEmptyString]
    public object? Value { get; set; }

    /// <summary>Remove the key (its default applies again).</summary>
    [Parameter(ParameterSetName = KeySet)]
    [Alias("Unset")]
    public SwitchParameter Remove { get; set; }

    /// <summary>Several keys at once (dotted key -> value; $null removes), validated and written together.</summary>
    [Parameter(Mandatory = true, ParameterSetName = ConfigSet)]
    public Hashtable Config { get; set; } = new();

    protected override void BeginProcessing()
    {
        base.BeginProcessing();
        if (ParameterSetName == KeySet && !Remove && !MyInvocation.BoundParameters.ContainsKey(nameof(Value)))
            ThrowTerminatingError(new ErrorRecord(new ArgumentException("Give -Value, or -Remove to unset the key."), "ConfigValueMissing", ErrorCategory.InvalidArgument, Key));
    }

    protected override void ProcessRecord()
    {
        var edits = ParameterSetName == KeySet
            ? new List<ConfigEdit> { new(Key, Unwrap(Value), Remove) }
            : Config.Cast<DictionaryEntry>().Select(e => new ConfigEdit(e.Key.ToString()!, Unwrap(e.Value), e.Value is null)).ToList();
        var what = string.Join(", ", edits.Select(e => e.Remove ? $"remove {e.Key}" : $"{e.Key} = {Show(e.Value)}"));
        foreach (var name in ResolveNames(Name))
            Try(() =>
            {
                var configs = new ContainerConfigs(Manager);
                var whatIf = !ShouldProcess(name, $"Set config: {what}");
                // Validated even under -WhatIf: a bad value is an error either way.
                var changes = configs.Set(name, edits, whatIf);
                if (whatIf) return;
                foreach (var change in changes)
                {
                    if (change.AppliesAt == ConfigAppliesAt.NextStart && Manager.Get(name).State is PSContainers.Runtime.State.ContainerStatus.Running or PSContainers.Runtime.State.ContainerStatus.Frozen)
                        WriteWarning($"Container '{name}': {change.Key} takes effect at its next start (Restart-Container -Name {name}).");
                    WriteObject(change);
                }
            });
    }

    private static string Show(object? value) => value switch
    {
        null => "null",
        string s => s,
        IDictionary d => "@{" + string.Join("; ", d.Cast<DictionaryEntry>().Select(e => $"{e.Key}={Show(e.Value)}")) + "}",
        IEnumerable e => "@(" + string.Join(", ", e.Cast<object?>().Select(Show)) + ")",
        _ => value.ToString() ?? "",
    };

    /// <summary>PowerShell wrappers off, all the way down (the runtime sees plain strings, lists and dictionaries).</summary>
    private static object? Unwrap(object? value) => value switch
    {
        PSObject p => Unwrap(p.BaseObject),
        string s => s,
        IDictionary d => d.Cast<DictionaryEntry>().Aggregate(new System.Collections.Specialized.OrderedDictionary(), (o, e) => { o[Unwrap(e.Key)!] = Unwrap(e.Value); return o; }),
        IEnumerable e => e.Cast<object?>().Select(Unwrap).ToList(),
        _ => value,
    };
}
