using System.Diagnostics;
using System.Text;
using PSContainers.Runtime;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.State;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// Hostile YAML (issue 12, item 2): deep nesting, alias bombs, huge files and lists are refused
/// while reading, quickly, as InvalidConfig at file:line:column; a store with such a config lists
/// the others and shows that one as Broken with the reason.
/// </summary>
[Collection("Containers")]
public sealed class ConfigLimitsTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "psc-test-yaml-" + Guid.NewGuid().ToString("N")[..12]);

    public ConfigLimitsTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (Exception) { }
    }

    /// <summary>Parses in a thread with a small stack: a recursion the limits missed would crash the test host, not pass.</summary>
    private static ContainerException Rejects(Func<ContainerConfig> read, TimeSpan within)
    {
        Exception? caught = null;
        var clock = Stopwatch.StartNew();
        var thread = new Thread(() =>
        {
            try { read(); }
            catch (Exception ex) { caught = ex; }
        }, maxStackSize: 256 * 1024);
        thread.Start();
        thread.Join();
        clock.Stop();
        var ex = Assert.IsType<ContainerException>(caught);
        Assert.Equal("InvalidConfig", ex.ErrorId);
        Assert.True(clock.Elapsed < within, $"rejected only after {clock.Elapsed}");
        return ex;
    }

    private static string Nested(int depth) =>
        "init: { command: " + new string('[', depth) + new string(']', depth) + " }\n";

    [Fact]
    public void TenThousandLevelsOfNesting_RejectedAtTheLevelPastTheLimit()
    {
        var ex = Rejects(() => ConfigLoader.Parse(Nested(10_000), "deep.yaml"), TimeSpan.FromSeconds(5));
        // "init: { command: " is 17 characters; the top mapping and '{' are levels 1 and 2, so the
        // 63rd '[' (column 18 + 62) is the first past 64 levels.
        Assert.StartsWith("deep.yaml:1:80: ", ex.Message);
        Assert.Contains("nested more than 64 levels", ex.Message);
    }

    [Fact]
    public void NestingWithinTheLimit_IsAnOrdinaryTypeError()
    {
        var ex = Assert.Throws<ContainerException>(() => ConfigLoader.Parse(Nested(ConfigLoader.MaxDepth - 2), "ok.yaml"));
        Assert.Equal("ok.yaml:1:19: expected a string for init.command[0], got a list", ex.Message);
    }

    [Fact]
    public void BillionLaughs_RejectedAtTheAliasThatCrossesTheLimit()
    {
        var yaml = new StringBuilder("init:\n  environment:\n    a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        var prev = "a";
        for (var i = 0; i < 9; i++)
        {
            var next = ((char)('b' + i)).ToString();
            yaml.Append($"    {next}: &{next} [{string.Join(", ", Enumerable.Repeat("*" + prev, 10))}]\n");
            prev = next;
        }
        var ex = Rejects(() => ConfigLoader.Parse(yaml.ToString(), "laughs.yaml"), TimeSpan.FromSeconds(2));
        Assert.Matches(@"^laughs\.yaml:\d+:\d+: alias '\*[a-j]' takes the document past 20000 YAML nodes", ex.Message);
    }

    [Fact]
    public void OneBigAnchorUsedTwoThousandTimes_RejectedBeforeAnythingIsExpanded()
    {
        var path = Path.Combine(_dir, "config.yaml");
        var big = new string('x', 100 * 1024);
        var yaml = new StringBuilder($"template: &big {big}\ninit:\n  command:\n");
        for (var i = 0; i < 2000; i++) yaml.Append("    - *big\n");
        File.WriteAllText(path, yaml.ToString());
        var before = GC.GetTotalAllocatedBytes();
        var ex = Rejects(() => ConfigLoader.Load(path), TimeSpan.FromSeconds(2));
        Assert.True(GC.GetTotalAllocatedBytes() - before < 64L << 20, "tens of megabytes were allocated for a 300 KB file");
        // The anchor's 100 KiB is the first 2 MiB-crossing at the 20th alias: line 3 + 20.
        Assert.StartsWith($"{path}:23:7: alias '*big' takes the document past 2M of text", ex.Message);
    }

    [Fact]
    public void TenMegabyteFile_RejectedWithoutReadingIt_AtTheLineWhereTheLimitIsCrossed()
    {
        var path = Path.Combine(_dir, "config.yaml");
        var yaml = new StringBuilder("init:\n  environment:\n");
        for (var i = 0; yaml.Length < 10 << 20; i++) yaml.Append($"    VAR_{i:D6}: value-{i:D6}-padding-padding-padding-padding-padding-padding\n");
        File.WriteAllText(path, yaml.ToString());
        var ex = Rejects(() => ConfigLoader.Load(path), TimeSpan.FromSeconds(2));
        // The line holding byte 1 MiB (the text is ASCII).
        var line = yaml.ToString(0, ConfigLoader.MaxFileBytes).Count(c => c == '\n') + 1;
        Assert.Matches($"^{System.Text.RegularExpressions.Regex.Escape(path)}:{line}:\\d+: the file is larger than 1M", ex.Message);
        // The same text from an archive or a pipeline (Parse) is refused alike.
        Rejects(() => ConfigLoader.Parse(yaml.ToString(), "archive.tar:config.yaml"), TimeSpan.FromSeconds(2));
    }

    [Fact]
    public void HundredTenThousandEnvironmentEntries_Rejected_AlsoWhenTheyFitInOneMegabyte()
    {
        var yaml = new StringBuilder("init:\n  environment:\n");
        for (var i = 0; i < 110_000; i++) yaml.Append($"    V{i}: x\n");
        Rejects(() => ConfigLoader.Parse(yaml.ToString(), "env.yaml"), TimeSpan.FromSeconds(2));
        // Short enough to fit in 1 MiB: the node limit refuses it, at the entry past it.
        var small = new StringBuilder("init:\n  environment:\n");
        for (var i = 0; i < 15_000; i++) small.Append($"    V{i}: x\n");
        Assert.True(small.Length < ConfigLoader.MaxFileBytes);
        var ex = Rejects(() => ConfigLoader.Parse(small.ToString(), "env.yaml"), TimeSpan.FromSeconds(2));
        Assert.Matches(@"^env\.yaml:\d+:\d+: .*past 20000 YAML nodes", ex.Message);
    }

    [Fact]
    public void AnEnvironmentValueTheKernelWouldRefuse_RejectedWhenRead_NotAtStart()
    {
        var yaml = "init:\n  environment:\n    BIG: " + new string('y', 200 * 1024) + "\n";
        var ex = Assert.Throws<ContainerException>(() => ConfigLoader.Parse(yaml, "c.yaml"));
        Assert.StartsWith("c.yaml:3:10: init.environment.BIG is 204804 bytes long; the kernel passes at most 131071 bytes", ex.Message);
    }

    [Fact]
    public void SeccompProfilesGoThroughTheSameLimits()
    {
        var path = Path.Combine(_dir, "profile.yaml");
        File.WriteAllText(path, "syscalls: " + new string('[', 5000) + new string(']', 5000) + "\n");
        var ex = Rejects(() => { ConfigLoader.LoadSeccompProfile(path); return new ContainerConfig(); }, TimeSpan.FromSeconds(5));
        Assert.StartsWith($"{path}:1:", ex.Message);
    }

    [Fact]
    public void AHugeStateFile_IsCorruptState_NotReadWhole()
    {
        var path = Path.Combine(_dir, "state.json");
        using (var f = File.Create(path)) f.SetLength(64L << 20);
        var clock = Stopwatch.StartNew();
        Assert.Throws<InvalidDataException>(() => PersistedState.Load(path));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2));
    }

    [Fact]
    public void AStoreWithHostileConfigs_ListsTheOthers_AndShowsEachBrokenOneWithItsReason()
    {
        using var store = new TestStore();
        using var s = store.OpenSession();
        var good = TestStore.NewName("good");
        var deep = TestStore.NewName("deep");
        var bomb = TestStore.NewName("bomb");
        var state = TestStore.NewName("state");
        foreach (var n in new[] { good, deep, bomb, state }) s.Run("New-Container -Name $args[0]", n);
        File.WriteAllText(store.Manager.Store.ConfigPath(deep), Nested(10_000));
        var big = new string('x', 100 * 1024);
        File.WriteAllText(store.Manager.Store.ConfigPath(bomb), $"template: &big {big}\ninit:\n  command:\n" + string.Concat(Enumerable.Repeat("    - *big\n", 2000)));
        File.WriteAllText(store.Manager.Store.StatePath(state), "{ \"Created\": ");

        var result = s.Invoke("Get-Container");
        Assert.Empty(result.Errors);
        var all = result.Output.Select(o => (Runtime.Containers.ContainerInfo)o.BaseObject).ToDictionary(c => c.Name);
        Assert.Equal(4, all.Count);
        Assert.Equal(ContainerStatus.Stopped, all[good].State);
        Assert.Null(all[good].Problem);
        Assert.Equal(ContainerStatus.Broken, all[deep].State);
        Assert.Contains(":1:80: lists and mappings are nested more than 64 levels", all[deep].Problem);
        Assert.Equal(ContainerStatus.Broken, all[bomb].State);
        Assert.Contains(":23:7: alias '*big'", all[bomb].Problem);
        Assert.Equal(ContainerStatus.Broken, all[state].State);
        Assert.Contains("state.json", all[state].Problem);

        // -State Broken finds them (the format views are checked by tests/Pester/Faults.Tests.ps1 in real pwsh).
        Assert.Equal(3, s.Run("Get-Container -State Broken").Count);

        // Starting a broken one says why; the good one starts and stops.
        var start = s.Invoke("Start-Container -Name $args[0]", deep);
        Assert.Equal("InvalidConfig", start.SingleError.FullyQualifiedErrorId.Split(',')[0]);
        Assert.Empty(s.Invoke("Remove-Container -Name $args[0]", bomb).Errors);
        Assert.Equal(3, s.Run("Get-Container").Count);
    }
    [Fact]
    public void AnArchiveWithAHostileConfig_IsRefusedByImport_AndNothingIsLeft()
    {
        using var store = new TestStore();
        using var s = store.OpenSession();
        var src = Path.Combine(_dir, "archive-src");
        Directory.CreateDirectory(Path.Combine(src, "rootfs", "bin"));
        File.WriteAllText(Path.Combine(src, "config.yaml"), Nested(10_000));
        var archive = Path.Combine(_dir, "hostile.tar");
        HostCommand.Run("tar", "-cf", archive, "-C", src, "config.yaml", "rootfs");

        var name = TestStore.NewName("imp");
        var result = s.Invoke("Import-Container -Path $args[0] -Name $args[1]", archive, name);
        var error = result.SingleError;
        Assert.Equal("InvalidConfig", error.FullyQualifiedErrorId.Split(',')[0]);
        Assert.StartsWith("hostile.tar:config.yaml:1:80: lists and mappings are nested more than 64 levels", error.Exception.Message);
        Assert.False(store.Manager.Exists(name));
        var temp = store.Manager.Store.TempDirectory;
        Assert.Empty(Directory.Exists(temp) ? Directory.GetFileSystemEntries(temp) : Array.Empty<string>());
    }
}
