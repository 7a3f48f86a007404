using System.Collections;
using System.Management.Automation;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>One module session for all help tests: Get-Help only reads the help files.</summary>
public sealed class HelpSessionFixture : IDisposable
{
    private readonly TestStore _store = new();
    public ModuleSession Session { get; }

    public HelpSessionFixture() => Session = _store.OpenSession();

    public void Dispose()
    {
        Session.Dispose();
        _store.Dispose();
    }
}

/// <summary>
/// The MAML help (en-US/PSContainers.dll-Help.xml) and about_PSContainers, as Get-Help reads them
/// from the built module: every exported cmdlet has real help, with examples and every parameter.
/// </summary>
[Collection("Containers")]
public sealed class HelpTests : IClassFixture<HelpSessionFixture>
{
    private readonly ModuleSession _ps;

    public HelpTests(HelpSessionFixture fixture) => _ps = fixture.Session;

    /// <summary>CmdletsToExport of PSContainers.psd1: every exported cmdlet must have full help.</summary>
    public static readonly string[] ExportedCmdlets = ReadManifestCmdlets();

    /// <summary>The lifecycle cmdlets, whose descriptions name the lxc-* command they replace.</summary>
    private static readonly string[] LxcCmdlets =
    {
        "New-Container", "Get-Container", "Start-Container", "Stop-Container", "Restart-Container",
        "Remove-Container", "Wait-Container", "Suspend-Container", "Resume-Container",
        "Invoke-ContainerCommand", "Enter-Container", "Get-ContainerConsoleLog",
    };

    private static string[] ReadManifestCmdlets()
    {
        var manifest = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "PSContainers.psd1"));
        var list = System.Text.RegularExpressions.Regex.Match(manifest, @"CmdletsToExport\s*=\s*@\(([^)]*)\)").Groups[1].Value;
        return System.Text.RegularExpressions.Regex.Matches(list, "'([^']+)'").Select(m => m.Groups[1].Value).ToArray();
    }

    public static IEnumerable<object[]> Cmdlets => ExportedCmdlets.Select(c => new object[] { c });

    [Fact]
    public void ExportedCmdletList_MatchesTheModule()
    {
        var exported = _ps.Run("Get-Command -Module PSContainers")
            .Select(o => ((CommandInfo)o.BaseObject).Name).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(ExportedCmdlets.Order(StringComparer.Ordinal).ToArray(), exported);
    }

    [Fact]
    public void HelpFile_IsShippedInTheModuleFolder()
    {
        Assert.True(File.Exists(Path.Combine(TestPaths.ModuleFolder, "en-US", "PSContainers.dll-Help.xml")));
        Assert.True(File.Exists(Path.Combine(TestPaths.ModuleFolder, "en-US", "about_PSContainers.help.txt")));
    }

    [Theory]
    [MemberData(nameof(Cmdlets))]
    public void Help_HasSynopsisDescriptionAndExamples(string cmdlet)
    {
        var help = GetHelp(cmdlet);

        var synopsis = Text(Prop(help, "Synopsis"));
        Assert.False(string.IsNullOrWhiteSpace(synopsis), $"{cmdlet}: empty synopsis");
        // Help made up from the syntax when no help file was found has the syntax as its synopsis.
        Assert.False(synopsis.TrimStart().StartsWith(cmdlet, StringComparison.OrdinalIgnoreCase),
            $"{cmdlet}: the synopsis is auto-generated ('{synopsis.Trim()}'), so the MAML help was not found");

        var description = Text(Prop(help, "description"));
        Assert.False(string.IsNullOrWhiteSpace(description), $"{cmdlet}: empty description");
        if (LxcCmdlets.Contains(cmdlet)) Assert.Contains("lxc-", description);

        var examples = Items(Prop(Prop(help, "examples"), "example")).ToList();
        Assert.True(examples.Count >= 2, $"{cmdlet}: {examples.Count} example(s), at least 2 expected");
        foreach (var example in examples)
        {
            Assert.False(string.IsNullOrWhiteSpace(Text(Prop(example, "code"))), $"{cmdlet}: an example without code");
            Assert.False(string.IsNullOrWhiteSpace(Text(Prop(example, "remarks"))), $"{cmdlet}: an example without remarks");
        }

        Assert.False(string.IsNullOrWhiteSpace(Text(Prop(Prop(help, "returnValues"), "returnValue"))), $"{cmdlet}: no outputs");
        Assert.False(string.IsNullOrWhiteSpace(Text(Prop(Prop(help, "inputTypes"), "inputType"))), $"{cmdlet}: no inputs");
    }

    [Theory]
    [MemberData(nameof(Cmdlets))]
    public void Help_DescribesEveryParameter(string cmdlet)
    {
        var help = GetHelp(cmdlet);
        var documented = new Dictionary<string, PSObject>(StringComparer.OrdinalIgnoreCase);
        foreach (var p in Items(Prop(Prop(help, "parameters"), "parameter")))
            documented[Text(Prop(p, "name")).Trim()] = p;

        var command = (CommandInfo)Assert.Single(_ps.Run("Get-Command -Name $args[0]", cmdlet)).BaseObject;
        var actual = command.Parameters.Keys.Where(k => !Cmdlet.CommonParameters.Contains(k)).ToList();
        Assert.NotEmpty(actual);
        foreach (var name in actual)
        {
            Assert.True(documented.TryGetValue(name, out var p), $"{cmdlet}: parameter -{name} is not in the help");
            Assert.False(string.IsNullOrWhiteSpace(Text(Prop(p!, "description"))), $"{cmdlet}: parameter -{name} has no description");
        }
        // And no help for parameters that do not exist (renamed or removed).
        foreach (var name in documented.Keys)
            Assert.True(command.Parameters.ContainsKey(name), $"{cmdlet}: the help documents -{name}, which the cmdlet does not have");

        var supportsShouldProcess = command.Parameters.ContainsKey("WhatIf");
        Assert.Equal(supportsShouldProcess, documented.ContainsKey("WhatIf"));
        Assert.Equal(supportsShouldProcess, documented.ContainsKey("Confirm"));
    }

    [Theory]
    [MemberData(nameof(Cmdlets))]
    public void Help_ParameterMetadataMatchesTheCmdlet(string cmdlet)
    {
        var help = GetHelp(cmdlet);
        var command = (CommandInfo)Assert.Single(_ps.Run("Get-Command -Name $args[0]", cmdlet)).BaseObject;
        foreach (var p in Items(Prop(Prop(help, "parameters"), "parameter")))
        {
            var name = Text(Prop(p, "name")).Trim();
            Assert.True(command.Parameters.TryGetValue(name, out var meta), $"{cmdlet}: the help documents -{name}, which the cmdlet does not have");
            var attributes = meta!.Attributes.OfType<ParameterAttribute>().ToList();
            // Required in the help means required in some parameter set (New-Container -RootfsPath).
            var required = string.Equals(Text(Prop(p, "required")).Trim(), "true", StringComparison.OrdinalIgnoreCase);
            Assert.True(required == attributes.Any(a => a.Mandatory), $"{cmdlet} -{name}: required={required} in the help");
            var position = Text(Prop(p, "position")).Trim();
            var actualPosition = attributes.Select(a => a.Position).Where(x => x >= 0).Select(x => x.ToString()).FirstOrDefault() ?? "named";
            Assert.True(string.Equals(actualPosition, position, StringComparison.OrdinalIgnoreCase), $"{cmdlet} -{name}: position {position} in the help, {actualPosition} in the cmdlet");
            var pipeline = Text(Prop(p, "pipelineInput"));
            var byValue = attributes.Any(a => a.ValueFromPipeline);
            var byName = attributes.Any(a => a.ValueFromPipelineByPropertyName);
            Assert.True(byValue == pipeline.Contains("ByValue"), $"{cmdlet} -{name}: pipeline input '{pipeline}'");
            Assert.True(byName == pipeline.Contains("ByPropertyName"), $"{cmdlet} -{name}: pipeline input '{pipeline}'");
            var globbing = string.Equals(Text(Prop(p, "globbing")).Trim(), "true", StringComparison.OrdinalIgnoreCase);
            Assert.True(globbing == meta.Attributes.OfType<SupportsWildcardsAttribute>().Any(), $"{cmdlet} -{name}: globbing={globbing} in the help");
        }
    }

    [Fact]
    public void AboutTopic_IsFound()
    {
        var text = string.Join("\n", _ps.Run("Get-Help -Name about_PSContainers").Select(o => o.ToString()));
        Assert.Contains("config.yaml", text);
        Assert.Contains("PSCONTAINERS_PATH", text);
        Assert.Contains("lxc-start", text);
    }

    [Fact]
    public void HelpBuilder_RefusesAWrittenSyntax_WhichWouldBeASecondSource()
    {
        // en-US/help as it is, plus a copy of one file whose entry has a command:syntax of its own.
        var root = Path.Combine(Path.GetTempPath(), "psc-test-help-" + Guid.NewGuid().ToString("N")[..12]);
        var prose = Path.Combine(root, "help");
        Directory.CreateDirectory(prose);
        try
        {
            foreach (var f in Directory.GetFiles(Path.Combine(TestPaths.RepoRoot, "en-US", "help"), "*.xml"))
                File.Copy(f, Path.Combine(prose, Path.GetFileName(f)));
            var file = Path.Combine(prose, "Migration.xml");
            var text = File.ReadAllText(file);
            var at = text.IndexOf("<command:parameters>", StringComparison.Ordinal);
            Assert.True(at > 0);
            File.WriteAllText(file, text.Insert(at, "<command:syntax><command:syntaxItem><maml:name>Move-Container</maml:name></command:syntaxItem></command:syntax>\n    "));

            var testBin = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/'));
            var builder = Path.Combine(TestPaths.RepoRoot, "tools", "HelpBuilder", "bin", testBin.Parent!.Name, testBin.Name, "psc-helpbuilder.dll");
            var psi = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { builder, "--module", TestPaths.ModuleFolder, "--prose", prose, "--output", Path.Combine(root, "out.xml") }) psi.ArgumentList.Add(a);
            using var p = System.Diagnostics.Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEnd();
            Assert.True(p.WaitForExit(120_000));
            Assert.Equal(1, p.ExitCode);
            Assert.Contains("Migration.xml: Move-Container has a written command:syntax", stderr + stdout.Result);
            Assert.False(File.Exists(Path.Combine(root, "out.xml")));
        }
        finally { Directory.Delete(root, recursive: true); }
    }

    // ---- reading help objects -----------------------------------------------------------------

    private PSObject GetHelp(string cmdlet)
    {
        var help = Assert.Single(_ps.Run("Get-Help -Name $args[0] -Full", cmdlet));
        Assert.Equal("Cmdlet", Text(Prop(help, "Category")));
        return help;
    }

    private static PSObject? Prop(PSObject? o, string name) => o?.Properties[name]?.Value switch
    {
        null => null,
        PSObject p => p,
        var v => PSObject.AsPSObject(v),
    };

    /// <summary>A help node that holds one item or an array of them.</summary>
    private static IEnumerable<PSObject> Items(PSObject? o)
    {
        if (o is null) yield break;
        if (o.BaseObject is IEnumerable e and not string)
        {
            foreach (var item in e)
                if (item is not null) yield return PSObject.AsPSObject(item);
        }
        else yield return o;
    }

    /// <summary>The text of a help node: a string, an object with Text (maml:para), or nested ones.</summary>
    private static string Text(PSObject? o)
    {
        if (o is null) return "";
        if (o.BaseObject is string s) return s;
        if (o.BaseObject is IEnumerable e)
            return string.Join("\n", e.Cast<object?>().Where(x => x is not null).Select(x => Text(PSObject.AsPSObject(x))));
        if (o.Properties["Text"]?.Value is { } t) return t.ToString() ?? "";
        if (o.BaseObject is PSCustomObject)
            return string.Join("\n", o.Properties.Select(p => p.Value is null ? "" : Text(PSObject.AsPSObject(p.Value))));
        return o.ToString();
    }
}
