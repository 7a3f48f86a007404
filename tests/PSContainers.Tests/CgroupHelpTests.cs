using System.Management.Automation;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>Help (en-US/help/Cgroups.xml) and formats of the resource-control cmdlets.</summary>
public sealed class CgroupHelpTests : IDisposable
{
    private readonly TestStore _store = new();
    public void Dispose() => _store.Dispose();

    public static readonly TheoryData<string> Cmdlets = new()
    {
        "Set-CgroupLimit", "Get-CgroupLimit", "Measure-Container", "New-Cgroup", "Get-Cgroup", "Add-CgroupProcess",
        "Remove-Cgroup", "Suspend-Cgroup", "Resume-Cgroup", "Get-ProcessNamespace",
    };

    [Theory]
    [MemberData(nameof(Cmdlets))]
    public void EveryCmdlet_HasSynopsisExamplesAndEveryParameterDescribed(string cmdlet)
    {
        using var ps = _store.OpenSession();
        var command = (CommandInfo)ps.Run("Get-Command $args[0] -Module PSContainers", cmdlet).Single().BaseObject;
        var synopsis = ps.Run("[string](Get-Help $args[0]).Synopsis", cmdlet).Single().ToString().Trim();
        Assert.False(string.IsNullOrWhiteSpace(synopsis));
        Assert.False(synopsis.StartsWith(cmdlet, StringComparison.Ordinal), $"{cmdlet} has no synopsis of its own: {synopsis}");
        var examples = (int)ps.Run("@((Get-Help $args[0] -Full).examples.example).Count", cmdlet).Single().BaseObject;
        Assert.True(examples >= 2, $"{cmdlet} has {examples} examples");
        var described = ps.Run("(Get-Help $args[0] -Full).parameters.parameter | ForEach-Object { if (\"$($_.description.Text)\".Trim()) { $_.name } }", cmdlet)
            .Select(o => o.ToString()).ToHashSet();
        var common = new HashSet<string>(System.Management.Automation.Cmdlet.CommonParameters.Concat(System.Management.Automation.Cmdlet.OptionalCommonParameters));
        foreach (var parameter in command.Parameters.Keys.Where(k => !common.Contains(k)))
            Assert.True(described.Contains(parameter), $"{cmdlet} -{parameter} is not described");
    }
}
