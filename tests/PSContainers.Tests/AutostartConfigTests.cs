using PSContainers.Runtime;
using PSContainers.Runtime.Autostart;
using PSContainers.Runtime.Config;

namespace PSContainers.Tests;

/// <summary>
/// The autostart: keys of config.yaml (LXC's lxc.start.auto, lxc.start.delay, lxc.start.order,
/// lxc.group): read, written back, refused at file:line:column; lxc-autostart's order (higher
/// order first, ties by name, groups in the order given, the NULL group) and its reverse for the
/// stop; the systemd unit's text and quoting. No containers: the stories with real ones are in
/// tests/Pester/Autostart.Tests.ps1.
/// </summary>
public sealed class AutostartConfigTests
{
    private static ContainerException Invalid(string yaml)
    {
        var ex = Assert.Throws<ContainerException>(() => ConfigLoader.Parse(yaml, "c.yaml"));
        Assert.Equal("InvalidConfig", ex.ErrorId);
        return ex;
    }

    [Fact]
    public void Keys_AreReadAndWrittenBack()
    {
        var config = ConfigLoader.Parse("autostart:\n  enabled: true\n  delay: 5\n  order: -3\n  groups: [web, db.main]\n", "c.yaml");
        Assert.True(config.Autostart.Enabled);
        Assert.Equal(5, config.Autostart.Delay);
        Assert.Equal(-3, config.Autostart.Order);
        Assert.Equal(new[] { "web", "db.main" }, config.Autostart.Groups);
        var again = ConfigLoader.Parse(ConfigLoader.Serialize(config), "again.yaml");
        Assert.Equal(ConfigLoader.Serialize(config), ConfigLoader.Serialize(again));
        Assert.Equal(new[] { "web", "db.main" }, again.Autostart.Groups);
        Assert.Equal(-3, again.Autostart.Order);
    }

    [Fact]
    public void Defaults_AreOffAndNotWritten()
    {
        var config = ConfigLoader.Parse("hostname: h\n", "c.yaml");
        Assert.False(config.Autostart.Enabled);
        Assert.Equal(0, config.Autostart.Delay);
        Assert.Empty(config.Autostart.Groups);
        Assert.DoesNotContain("autostart", ConfigLoader.Serialize(config));
        // An empty section means "defaults", as for every other section.
        Assert.False(ConfigLoader.Parse("autostart:\n", "c.yaml").Autostart.Enabled);
    }

    [Theory]
    [InlineData("autostart:\n  enabled: true\n  start: 1\n", "c.yaml:3:3: unknown key 'start' under 'autostart' (expected one of: enabled, delay, order, groups)")]
    [InlineData("autostart:\n  delay: 86401\n", "c.yaml:2:10: invalid value '86401' for autostart.delay (expected whole seconds from 0 to 86400)")]
    [InlineData("autostart:\n  delay: -1\n", "c.yaml:2:10: invalid value '-1' for autostart.delay")]
    [InlineData("autostart:\n  order: high\n", "c.yaml:2:10: invalid value 'high' for autostart.order (expected a whole number (higher starts first))")]
    [InlineData("autostart:\n  order: 4294967296\n", "c.yaml:2:10: invalid value '4294967296' for autostart.order")]
    [InlineData("autostart:\n  enabled: maybe\n", "c.yaml:2:12: invalid value 'maybe' for autostart.enabled (expected true or false)")]
    [InlineData("autostart:\n  groups: web\n", "c.yaml:2:11: expected a list of group names for autostart.groups")]
    [InlineData("autostart:\n  groups: [web, 'a,b']\n", "c.yaml:2:17: invalid group name 'a,b' for autostart.groups[1]")]
    [InlineData("autostart:\n  groups: [web, -x]\n", "c.yaml:2:17: invalid group name '-x' for autostart.groups[1]")]
    [InlineData("autostart:\n  groups: [web, '']\n", "c.yaml:2:17: autostart.groups[1] must not be empty")]
    [InlineData("autostart:\n  groups:\n    - web\n    - db\n    - web\n", "c.yaml:5:7: autostart.groups[2]: group 'web' is listed twice")]
    [InlineData("autostart: yes\n", "c.yaml:1:12: expected a mapping for autostart, got a scalar")]
    [InlineData("autostart:\n  groups: [[web]]\n", "c.yaml:2:12: expected a string for autostart.groups[0], got a list")]
    public void BadValues_AreRefusedAtTheirLineAndColumn(string yaml, string expected) =>
        Assert.StartsWith(expected, Invalid(yaml).Message);

    [Fact]
    public void DuplicateKey_IsRefusedAtTheSecond() =>
        Assert.StartsWith("c.yaml:3:3: duplicate key 'order' (first defined at line 2)", Invalid("autostart:\n  order: 1\n  order: 2\n").Message);

    [Fact]
    public void AConfigMadeInCode_IsCheckedByTheSameRules()
    {
        var config = new ContainerConfig();
        config.Autostart.Groups = new List<string> { "web", "bad group" };
        var ex = Assert.Throws<ContainerException>(() => ConfigLoader.Validate(config));
        Assert.Equal("InvalidArgument", ex.ErrorId);
        Assert.StartsWith("invalid group name 'bad group' for autostart.groups[1]", ex.Message);
        config.Autostart.Groups = new List<string> { "web" };
        config.Autostart.Delay = 90000;
        Assert.Contains("autostart.delay", Assert.Throws<ContainerException>(() => ConfigLoader.Validate(config)).Message);
        config.Autostart.Delay = 3;
        ConfigLoader.Validate(config);
    }

    // ---- order --------------------------------------------------------------------------------

    private static AutostartEntry E(string name, int order, bool enabled = true, params string[] groups) => new(name, enabled, order, 0, groups);

    private static readonly AutostartEntry[] Store =
    {
        E("web2", 10, true, "web"),
        E("db", 50, true, "backend"),
        E("web1", 10, true, "web", "onboot"),
        E("cache", 20, true),
        E("tool", 99, false),
        E("proxy", 10, true, "onboot"),
        E("Apex", 10, true),
    };

    private static string[] Names(IEnumerable<AutostartEntry> plan) => plan.Select(e => e.Name).ToArray();

    [Fact]
    public void StartOrder_IsHigherOrderFirst_ThenNameOrdinal_AndOnlyAutostart()
    {
        // 'A' sorts before lower case letters ordinally: the same order under every culture.
        Assert.Equal(new[] { "db", "cache", "Apex", "proxy", "web1", "web2" }, Names(AutostartPlan.StartOrder(Store, null, all: false)));
    }

    [Fact]
    public void StopOrder_IsTheExactReverse()
    {
        Assert.Equal(new[] { "web2", "web1", "proxy", "Apex", "cache", "db" }, Names(AutostartPlan.StopOrder(Store, null, all: false)));
        Assert.Equal(Names(AutostartPlan.StartOrder(Store, new[] { "onboot", "" }, true)).Reverse(), Names(AutostartPlan.StopOrder(Store, new[] { "onboot", "" }, true)));
    }

    [Fact]
    public void All_TakesTheContainersNotMarkedToo() =>
        Assert.Equal(new[] { "tool", "db", "cache", "Apex", "proxy", "web1", "web2" }, Names(AutostartPlan.StartOrder(Store, null, all: true)));

    [Fact]
    public void Groups_GoInTheOrderGiven_EachContainerOnce_AndTheNullGroupIsTheEmptyName()
    {
        // lxc-autostart -g onboot,web: the onboot group first (in its own order), then web's others.
        Assert.Equal(new[] { "proxy", "web1", "web2" }, Names(AutostartPlan.StartOrder(Store, new[] { "onboot", "web" }, false)));
        Assert.Equal(new[] { "web1", "web2", "proxy" }, Names(AutostartPlan.StartOrder(Store, new[] { "web", "onboot" }, false)));
        // '' = containers in no group (LXC's NULL group); tool is not marked, so only with -All.
        Assert.Equal(new[] { "cache", "Apex" }, Names(AutostartPlan.StartOrder(Store, new[] { "" }, false)));
        Assert.Equal(new[] { "tool", "cache", "Apex" }, Names(AutostartPlan.StartOrder(Store, new[] { "" }, true)));
        Assert.Empty(AutostartPlan.StartOrder(Store, new[] { "nosuchgroup" }, true));
    }

    // ---- the systemd unit ---------------------------------------------------------------------

    private static readonly AutostartServiceOptions Options = new()
    {
        PwshPath = "/opt/pwsh/pwsh",
        ModulePath = "/srv/it's here/PSContainers.psd1",
        StorePath = "/srv/100% \"store\" $HOME",
        Groups = new[] { "onboot", "" },
        StopTimeout = 20,
    };

    [Fact]
    public void Unit_IsAOneshotThatRemainsActive_WithItsCommandsQuotedForSystemd()
    {
        var text = AutostartService.UnitText(Options);
        var lines = text.Split('\n');
        Assert.Equal(AutostartService.Header, lines[0]);
        Assert.Contains("Type=oneshot", lines);
        Assert.Contains("RemainAfterExit=yes", lines);
        Assert.Contains("After=network-online.target local-fs.target remote-fs.target", lines);
        Assert.Contains("Wants=network-online.target", lines);
        Assert.Contains("WantedBy=multi-user.target", lines);
        // % is a specifier (doubled); Environment= does not expand $, ExecStart= does ($$).
        Assert.Contains("Environment=\"PSCONTAINERS_PATH=/srv/100%% \\\"store\\\" $HOME\"", lines);
        Assert.Contains("ExecStart=-/opt/pwsh/pwsh -NoProfile -NonInteractive -Command \"Import-Module '/srv/it''s here/PSContainers.psd1'; Start-ContainerAutostart -Group 'onboot',''\"", lines);
        Assert.Contains("ExecStop=/opt/pwsh/pwsh -NoProfile -NonInteractive -Command \"Import-Module '/srv/it''s here/PSContainers.psd1'; Stop-ContainerAutostart -Group 'onboot','' -Timeout 20\"", lines);
        Assert.Equal("\"a$$b \\\\ \\\"c\\\"\"", AutostartService.CommandLine(new[] { "a$b \\ \"c\"" }));
        Assert.Equal("plain", AutostartService.CommandLine(new[] { "plain" }));
    }

    [Fact]
    public void Unit_WithTheSystemStore_SetsNoStorePath() =>
        Assert.DoesNotContain("PSCONTAINERS_PATH", AutostartService.UnitText(Options with { StorePath = null }));

    [Theory]
    [InlineData("pwsh", null)]
    [InlineData("/opt/pwsh/pwsh", "/srv/a\nExecStart=/bin/evil")]
    public void Unit_RefusesPathsThatWouldBreakItsLines(string pwsh, string? store)
    {
        var ex = Assert.Throws<ContainerException>(() => AutostartService.UnitText(Options with { PwshPath = pwsh, StorePath = store }));
        Assert.Equal("InvalidArgument", ex.ErrorId);
    }
}
