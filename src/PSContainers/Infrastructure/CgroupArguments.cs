using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using PSContainers.Runtime.Cgroups;

namespace PSContainers.Infrastructure;

/// <summary>A size (512MB, '512M') or 'max' for "no limit".</summary>
public sealed class SizeOrMaxTransformationAttribute : ArgumentTransformationAttribute
{
    private static readonly SizeTransformationAttribute Size = new();

    public override object? Transform(EngineIntrinsics engineIntrinsics, object? inputData)
    {
        var value = inputData is PSObject pso ? pso.BaseObject : inputData;
        // A value Get-CgroupLimit or Measure-Container read back (max included) is taken as it is.
        if (value is CgroupLimitValue read) return read.Value;
        if (value is string s && CgroupLimits.IsMax(s)) return CgroupLimits.Unlimited;
        if (value is string n && n.TrimStart().StartsWith('-'))
            throw new ArgumentTransformationMetadataException($"'{value}' is negative: give a size of 0 or more, or 'max' for no limit.");
        var result = Size.Transform(engineIntrinsics, inputData);
        if (result is long l && l < 0)
            throw new ArgumentTransformationMetadataException($"'{value}' is negative: give a size of 0 or more, or 'max' for no limit.");
        return result;
    }
}

/// <summary>A whole number or 'max' for "no limit".</summary>
public sealed class CountOrMaxTransformationAttribute : ArgumentTransformationAttribute
{
    public override object? Transform(EngineIntrinsics engineIntrinsics, object? inputData)
    {
        var value = inputData is PSObject pso ? pso.BaseObject : inputData;
        switch (value)
        {
            case null: return null;
            case CgroupLimitValue read: return read.Value;
            case string s when CgroupLimits.IsMax(s): return CgroupLimits.Unlimited;
            case string s when long.TryParse(s, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var n): value = n; break;
        }
        long result = value switch
        {
            int i => i,
            long l => l,
            double d when d == Math.Floor(d) => (long)d,
            decimal m when m == Math.Floor(m) => (long)m,
            _ => throw new ArgumentTransformationMetadataException($"'{value}' is not a whole number: give a count like 200, or 'max' for no limit."),
        };
        if (result < 0) throw new ArgumentTransformationMetadataException($"'{value}' is negative: give a count of 0 or more, or 'max' for no limit.");
        return result;
    }
}

/// <summary>Completes cgroup paths (as Get-Cgroup shows them) from the host's hierarchies.</summary>
public sealed class CgroupPathCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var word = wordToComplete.Trim('\'', '"').TrimStart('/');
        var parent = word.Contains('/') ? word[..word.LastIndexOf('/')] : null;
        List<string> paths;
        try
        {
            paths = CgroupManager.ForHost().List(parent, recurse: true)
                .Select(c => c.Path.TrimStart('/')).Where(p => p.Length > 0 && p.StartsWith(word, StringComparison.Ordinal))
                .Distinct().Take(200).ToList();
        }
        catch (Exception) { yield break; }
        foreach (var p in paths) yield return new CompletionResult(p, p, CompletionResultType.ParameterValue, p);
    }
}
