using System.Text.RegularExpressions;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// The error-id catalog (src/PSContainers/Errors/ErrorCatalog.cs) against the code and the help:
/// every id the source emits is in the catalog with a category its code agrees with, every catalog
/// entry is emitted somewhere, and about_PSContainers' ERROR IDS section is the catalog rendered.
/// </summary>
[Collection("Containers")]
public sealed class ErrorCatalogTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "psc-test-errcat-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly ModuleSession _ps;
    private readonly Dictionary<string, (string Category, string[] Others, string Action)> _catalog = new(StringComparer.Ordinal);

    public ErrorCatalogTests()
    {
        _ps = new ModuleSession(Path.Combine(_dir, "store"));
        foreach (var line in _ps.Run("[PSContainers.Errors.ErrorCatalog]::Entries | ForEach-Object { \"$($_.Id)`t$($_.Category)`t$($_.OtherCategories -join ',')`t$($_.Action)\" }"))
        {
            var f = line.ToString().Split('\t');
            Assert.True(_catalog.TryAdd(f[0], (f[1], f[2].Split(',', StringSplitOptions.RemoveEmptyEntries), f[3])), $"{f[0]} is listed twice");
        }
    }

    public void Dispose()
    {
        _ps.Dispose();
        try { Directory.Delete(_dir, recursive: true); } catch (DirectoryNotFoundException) { }
    }

    // Where an id is written in the source: a literal followed by its kind or category; a named
    // errorId/ioErrorId/NotFoundErrorId/TimeoutErrorId argument or ErrorId constant; the literals of
    // a ContainerException's computed first argument; and any ContainerException("Id" or new("Id",
    // with a kind computed in place. Forwarded ids (ex.ErrorId, errorId) come from these.
    private static readonly Regex WithKind = new(@"""(\w+)"",\s*(?:ContainerErrorKind|ErrorCategory)\.(\w+)");
    private static readonly Regex Named = new(@"\b(?:errorId|ioErrorId|NotFoundErrorId|TimeoutErrorId|ErrorId)\s*[:=]\s*""(\w+)""");
    private static readonly Regex Computed = new(@"new ContainerException\(\s*(?!"")([^,]+),");
    // The script module (the DSC resource): an ErrorRecord's id and category, PowerShell-quoted.
    private static readonly Regex ScriptRecord = new(@"'(\w+)',\s*\[System\.Management\.Automation\.ErrorCategory\]::(\w+)");
    private static readonly Regex Literal = new(@"(?:new ContainerException\(\s*""(\w+)""|\bnew\(\s*""(\w+)"",[^,;]*ContainerErrorKind\.)");

    /// <summary>The ids a C# text emits, each with the kinds/categories written beside it.</summary>
    internal static Dictionary<string, HashSet<string>> Scan(string source)
    {
        var ids = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        HashSet<string> Of(string id) => ids.TryGetValue(id, out var k) ? k : ids[id] = new HashSet<string>();
        foreach (Match m in WithKind.Matches(source)) Of(m.Groups[1].Value).Add(m.Groups[2].Value);
        foreach (Match m in Named.Matches(source)) Of(m.Groups[1].Value);
        foreach (Match m in Computed.Matches(source))
            foreach (Match l in Regex.Matches(m.Groups[1].Value, @"""([A-Z]\w+)""")) Of(l.Groups[1].Value);
        foreach (Match m in Literal.Matches(source)) Of(m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Value);
        return ids;
    }

    private static Dictionary<string, List<(string Kind, string File)>> SourceIds()
    {
        var src = Path.Combine(TestPaths.RepoRoot, "src");
        var all = new Dictionary<string, List<(string, string)>>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(src, "*.cs", SearchOption.AllDirectories))
        {
            var rel = Path.GetRelativePath(src, file);
            if (rel.Contains("/obj/") || rel.Contains("/bin/") || rel == Path.Combine("PSContainers", "Errors", "ErrorCatalog.cs")) continue;
            foreach (var (id, kinds) in Scan(File.ReadAllText(file)))
            {
                if (!all.TryGetValue(id, out var uses)) all[id] = uses = new();
                if (kinds.Count == 0) uses.Add(("", rel));
                foreach (var k in kinds) uses.Add((k, rel));
            }
        }
        foreach (var file in Directory.EnumerateFiles(src, "*.psm1", SearchOption.AllDirectories))
        {
            var rel = Path.GetRelativePath(src, file);
            if (rel.Contains("/obj/") || rel.Contains("/bin/")) continue;
            foreach (Match m in ScriptRecord.Matches(File.ReadAllText(file)))
            {
                if (!all.TryGetValue(m.Groups[1].Value, out var uses)) all[m.Groups[1].Value] = uses = new();
                uses.Add((m.Groups[2].Value, rel));
            }
        }
        return all;
    }

    [Fact]
    public void Scan_FindsIdsInEveryFormTheSourceWritesThem()
    {
        var ids = Scan("""
            throw new ContainerException("PscTestA", ContainerErrorKind.InvalidData, "m");
            (id, kind) = code switch { 2 => ("PscTestB", ContainerErrorKind.InvalidArgument) };
            CallOnce(path, req, errorId: "PscTestC", what: "x");
            new ContainerException(op == "shift" ? "PscTestD" : e[0], kind, "m");
            new("PscTestE", errno == 1 ? ContainerErrorKind.PermissionDenied : ContainerErrorKind.InvalidOperation, "m");
            cmdlet.WriteError(CmdletErrors.Record(ex, "PscTestF", ErrorCategory.WriteError, null));
            new ProgramStart { NotFoundErrorId = "PscTestG" };
            new("criu", Tools, HostCheckStatus.Pass, "not an id");
            """);
        Assert.Equal(new[] { "PscTestA", "PscTestB", "PscTestC", "PscTestD", "PscTestE", "PscTestF", "PscTestG" }, ids.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(new[] { "InvalidData" }, ids["PscTestA"]);
        Assert.Equal(new[] { "WriteError" }, ids["PscTestF"]);
    }

    [Fact]
    public void EveryIdTheSourceEmits_IsInTheCatalog_AndEveryCatalogEntryIsEmitted()
    {
        var source = SourceIds();
        Assert.True(source.Count > 150, $"only {source.Count} ids found: the scan is broken");
        var unknown = source.Keys.Where(id => !_catalog.ContainsKey(id)).Select(id => $"{id} ({string.Join(", ", source[id].Select(u => u.File).Distinct())})").ToList();
        Assert.True(unknown.Count == 0, "ids emitted but missing from src/PSContainers/Errors/ErrorCatalog.cs: " + string.Join("; ", unknown));
        var unused = _catalog.Keys.Where(id => !source.ContainsKey(id)).ToList();
        Assert.True(unused.Count == 0, "catalog entries no code emits (remove them): " + string.Join(", ", unused));
    }

    [Fact]
    public void TheKindsWrittenBesideAnId_AreTheCategoriesItsCatalogEntryAllows()
    {
        var wrong = new List<string>();
        foreach (var (id, uses) in SourceIds())
        {
            if (!_catalog.TryGetValue(id, out var entry)) continue; // the test above reports it
            foreach (var (kind, file) in uses.Where(u => u.Kind.Length > 0).Distinct())
                if (kind != entry.Category && !entry.Others.Contains(kind))
                    wrong.Add($"{id} is {kind} in {file}, the catalog says {entry.Category}{(entry.Others.Length > 0 ? " or " + string.Join(", ", entry.Others) : "")}");
        }
        Assert.True(wrong.Count == 0, string.Join("\n", wrong));
    }

    [Fact]
    public void EveryEntry_SaysWhatToDo()
    {
        foreach (var (id, entry) in _catalog)
        {
            Assert.Matches("^[A-Z][A-Za-z0-9]+$", id);
            Assert.True(entry.Action.Length > 10 && entry.Action.EndsWith('.'), $"{id}: '{entry.Action}' is not a sentence saying what to do");
        }
    }

    [Fact]
    public void AboutHelp_ErrorIdsSection_IsTheCatalogRendered()
    {
        var expected = ((string)_ps.Run("[PSContainers.Errors.ErrorCatalog]::AboutSection()")[0].BaseObject).Replace("\r\n", "\n");
        foreach (var about in new[] { Path.Combine(TestPaths.RepoRoot, "en-US", "about_PSContainers.help.txt"), Path.Combine(TestPaths.ModuleFolder, "en-US", "about_PSContainers.help.txt") })
        {
            var text = File.ReadAllText(about).Replace("\r\n", "\n");
            var start = text.IndexOf("\nERROR IDS\n", StringComparison.Ordinal);
            Assert.True(start >= 0, $"{about} has no ERROR IDS section");
            var end = Regex.Match(text[(start + 1)..], @"\n\n(?=[A-Z][A-Z ]+\n)");
            Assert.True(end.Success, $"{about}: no section follows ERROR IDS");
            var section = text.Substring(start + 1, end.Index + 1);
            Assert.True(expected == section,
                $"{about}'s ERROR IDS section differs from the catalog: run 'pwsh -NoProfile -File tools/Update-AboutErrorIds.ps1' after the build.");
        }
        // Get-Help shows it: one id of each end of the list.
        var help = string.Join("\n", _ps.Run("Get-Help -Name about_PSContainers").Select(o => o.ToString()));
        Assert.Contains("AddressExists (ResourceExists)", help);
        Assert.Contains("WaitTimeout (OperationTimeout)", help);
    }

    [Fact]
    public void AnErrorRecord_CarriesItsEntrysActionAsRecommendedAction()
    {
        var result = _ps.Invoke("Get-Container psc-test-no-such-container");
        var error = result.SingleError;
        Assert.Equal("ContainerNotFound,PSContainers.Cmdlets.GetContainerCommand", error.FullyQualifiedErrorId);
        Assert.Equal(_catalog["ContainerNotFound"].Action, error.ErrorDetails.RecommendedAction);
        Assert.Equal(error.Exception.Message, error.ErrorDetails.Message);
    }
}
