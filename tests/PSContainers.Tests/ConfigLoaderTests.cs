using PSContainers.Runtime;
using PSContainers.Runtime.Config;
using Xunit;

namespace PSContainers.Tests;

public class ConfigLoaderTests
{
    private const string Full = """
        template: busybox
        hostname: web1
        init:
          command: [/bin/sh, -c, "sleep 100"]
          environment: { FOO: bar }
          workingDirectory: /
        mounts:
          - { source: /srv/data, target: /data, readOnly: true }
        stop: { signal: SIGTERM, timeout: 10 }
        limits: { memory: 256M }
        console: { logMaxBytes: 1M }
        """;

    private static ContainerException Fails(string yaml)
    {
        var ex = Assert.Throws<ContainerException>(() => ConfigLoader.Parse(yaml, "config.yaml"));
        Assert.Equal("InvalidConfig", ex.ErrorId);
        Assert.Equal(ContainerErrorKind.ParserError, ex.Kind);
        return ex;
    }

    [Fact]
    public void ParsesTheDocumentedExample()
    {
        var c = ConfigLoader.Parse(Full, "config.yaml");
        Assert.Equal("busybox", c.Template);
        Assert.Equal("web1", c.Hostname);
        Assert.Equal(new[] { "/bin/sh", "-c", "sleep 100" }, c.Init.Command);
        Assert.Equal("bar", Assert.Single(c.Init.Environment, kv => kv.Key == "FOO").Value);
        Assert.Equal("/", c.Init.WorkingDirectory);
        var m = Assert.Single(c.Mounts);
        Assert.Equal("/srv/data", m.Source);
        Assert.Equal("/data", m.Target);
        Assert.True(m.ReadOnly);
        Assert.Equal("SIGTERM", c.Stop.Signal);
        Assert.Equal(10, c.Stop.Timeout);
        Assert.Equal(256L * 1024 * 1024, c.Limits.Memory);
        Assert.Equal(1024L * 1024, c.Console.LogMaxBytes);
    }

    [Theory]
    [InlineData("")]
    [InlineData("\n\n")]
    [InlineData("# only a comment\n")]
    [InlineData("---\n")]
    [InlineData("~\n")]
    [InlineData("init:\nstop: {}\nmounts: []\n")]
    public void EmptyInputMeansDefaults(string yaml)
    {
        var c = ConfigLoader.Parse(yaml, "config.yaml");
        var d = new ContainerConfig();
        Assert.Null(c.Template);
        Assert.Null(c.Hostname);
        Assert.Empty(c.Init.Command);
        Assert.Empty(c.Init.Environment);
        Assert.Equal(d.Init.WorkingDirectory, c.Init.WorkingDirectory);
        Assert.Empty(c.Mounts);
        Assert.Equal(d.Stop.Signal, c.Stop.Signal);
        Assert.Equal(d.Stop.Timeout, c.Stop.Timeout);
        Assert.Null(c.Limits.Memory);
        Assert.Equal(d.Console.LogMaxBytes, c.Console.LogMaxBytes);
    }

    [Fact]
    public void Restart_IsParsed_Validated_AndRoundTrips()
    {
        var c = ConfigLoader.Parse("restart: { policy: on-failure, maxRetries: 5, backoff: 500ms }\n", "config.yaml");
        Assert.Equal(RestartPolicy.OnFailure, c.Restart.Policy);
        Assert.Equal(5, c.Restart.MaxRetries);
        Assert.Equal(TimeSpan.FromMilliseconds(500), c.Restart.Backoff);
        var again = ConfigLoader.Parse(ConfigLoader.Serialize(c), "config.yaml");
        Assert.Equal((c.Restart.Policy, c.Restart.MaxRetries, c.Restart.Backoff), (again.Restart.Policy, again.Restart.MaxRetries, again.Restart.Backoff));
        Assert.Equal(TimeSpan.FromMinutes(2), ConfigLoader.Parse("restart: { policy: always, backoff: 2m }", "c").Restart.Backoff);
        Assert.Equal(RestartPolicy.No, ConfigLoader.Parse("hostname: a", "c").Restart.Policy);
        Assert.DoesNotContain("restart", ConfigLoader.Serialize(new ContainerConfig()));

        Assert.StartsWith("config.yaml:2:11: ", Fails("restart:\n  policy: sometimes\n").Message);
        Assert.Contains("restart.policy", Fails("restart:\n  policy: sometimes\n").Message);
        Assert.StartsWith("config.yaml:1:21: ", Fails("restart: { backoff: 1 }").Message);
        Assert.Contains("restart.backoff", Fails("restart: { backoff: 2d }").Message);
        Assert.Contains("restart.maxRetries", Fails("restart: { maxRetries: -1 }").Message);
        Assert.Contains("unknown key 'retries' under 'restart'", Fails("restart: { retries: 3 }").Message);
    }

    [Fact]
    public void UnknownTopLevelKey()
    {
        var ex = Fails("hostname: web1\nhostnmae: web2\n");
        Assert.Equal("config.yaml:2:1: unknown key 'hostnmae' (expected one of: template, hostname, rootfs, init, mounts, stop, restart, limits, console, network, storage, security, idMap, idMapIsolated, privileged, autostart, sysctl, oomScoreAdj, oci, hooks)", ex.Message);
    }

    [Fact]
    public void UnknownNestedKey()
    {
        var ex = Fails("template: busybox\nhostname: web1\ninit:\n  comand: [/bin/sh]\n");
        Assert.Equal("config.yaml:4:3: unknown key 'comand' under 'init' (expected one of: command, environment, workingDirectory, user, group)", ex.Message);
    }

    [Fact]
    public void UnknownKeyInMount()
    {
        var ex = Fails("mounts:\n  - source: /a\n    target: /b\n    ro: true\n");
        Assert.Equal("config.yaml:4:5: unknown key 'ro' under 'mounts[0]' (expected one of: source, target, readOnly, type, options)", ex.Message);
    }

    [Fact]
    public void MappingWhereListExpected()
    {
        var ex = Fails("init:\n  command:\n    program: /bin/sh\n");
        Assert.StartsWith("config.yaml:3:5: expected a list for init.command", ex.Message);
        Assert.EndsWith("got a mapping", ex.Message);

        ex = Fails("mounts: { source: /a, target: /b }\n");
        Assert.StartsWith("config.yaml:1:9: expected a list for mounts", ex.Message);
    }

    [Fact]
    public void ListWhereMappingExpected()
    {
        var ex = Fails("stop:\n  - SIGTERM\n");
        Assert.Equal("config.yaml:2:3: expected a mapping for stop, got a list", ex.Message);
    }

    [Fact]
    public void ScalarWhereStringExpectedButMappingGiven()
    {
        var ex = Fails("hostname: { a: b }\n");
        Assert.Equal("config.yaml:1:11: expected a string for hostname, got a mapping", ex.Message);
    }

    [Fact]
    public void TopLevelMustBeAMapping()
    {
        var ex = Fails("- a\n- b\n");
        Assert.StartsWith("config.yaml:1:1: expected a mapping of settings", ex.Message);
    }

    [Fact]
    public void BadSize()
    {
        const string yaml = """
            template: busybox
            hostname: web1
            init:
              command: [/bin/sh]
            mounts: []
            stop:
              signal: TERM
            limits:
              memory:         12Q
            """;
        var ex = Fails(yaml);
        Assert.Equal("config.yaml:9:19: invalid size '12Q' for limits.memory (use bytes or a suffix K, M, G, T with optional B or iB, e.g. 512M or 512MB)", ex.Message);
    }

    [Theory]
    [InlineData("limits: { memory: 1023K }", "config.yaml:1:19: size '1023K' for limits.memory is out of range (it must be between 1M and 1E)")]
    [InlineData("limits: { memory: 2E }", "config.yaml:1:19: size '2E' for limits.memory is out of range (it must be between 1M and 1E)")]
    [InlineData("limits: { memory: -5M }", "config.yaml:1:19: invalid size '-5M' for limits.memory (use bytes or a suffix K, M, G, T with optional B or iB, e.g. 512M or 512MB)")]
    [InlineData("console: { logMaxBytes: -1 }", "config.yaml:1:25: invalid size '-1' for console.logMaxBytes (use bytes or a suffix K, M, G, T with optional B or iB, e.g. 512M or 512MB)")]
    public void SizeRanges(string yaml, string expected) => Assert.Equal(expected, Fails(yaml).Message);

    [Fact]
    public void SizeEdges()
    {
        Assert.Equal(1L << 20, ConfigLoader.Parse("limits: { memory: 1M }", "c").Limits.Memory);
        Assert.Equal(1L << 60, ConfigLoader.Parse("limits: { memory: 1EiB }", "c").Limits.Memory);
        Assert.Equal(1610612736L, ConfigLoader.Parse("limits: { memory: 1.5G }", "c").Limits.Memory);
        Assert.Equal(0L, ConfigLoader.Parse("console: { logMaxBytes: 0 }", "c").Console.LogMaxBytes);
        Assert.Null(ConfigLoader.Parse("limits: { memory: }", "c").Limits.Memory);
    }

    [Fact]
    public void BadSignal()
    {
        var ex = Fails("stop:\n  signal: SIGFOO\n");
        Assert.Equal("config.yaml:2:11: invalid signal 'SIGFOO' for stop.signal (use a name such as SIGTERM, TERM or SIGPWR, or a number 1-64)", ex.Message);
        ex = Fails("stop: { signal: 65 }");
        Assert.StartsWith("config.yaml:1:17: invalid signal '65' for stop.signal", ex.Message);
    }

    [Theory]
    [InlineData("stop: { signal: 10 }", "10")]
    [InlineData("stop: { signal: pwr }", "pwr")]
    [InlineData("stop: { signal: SIGRTMIN+3 }", "SIGRTMIN+3")]
    public void AcceptsSignals(string yaml, string expected) =>
        Assert.Equal(expected, ConfigLoader.Parse(yaml, "c").Stop.Signal);

    [Theory]
    [InlineData("stop: { timeout: -1 }", "config.yaml:1:18: invalid value '-1' for stop.timeout (expected whole seconds from 0 to 86400)")]
    [InlineData("stop: { timeout: 86401 }", "config.yaml:1:18: invalid value '86401' for stop.timeout (expected whole seconds from 0 to 86400)")]
    [InlineData("stop: { timeout: 1.5 }", "config.yaml:1:18: invalid value '1.5' for stop.timeout (expected whole seconds from 0 to 86400)")]
    [InlineData("mounts: [{ source: /a, target: /b, readOnly: yes }]", "config.yaml:1:46: invalid value 'yes' for mounts[0].readOnly (expected true or false)")]
    public void BadScalars(string yaml, string expected) => Assert.Equal(expected, Fails(yaml).Message);

    [Fact]
    public void DuplicateKey()
    {
        var ex = Fails("hostname: a\ntemplate: busybox\nhostname: b\n");
        Assert.Equal("config.yaml:3:1: duplicate key 'hostname' (first defined at line 1)", ex.Message);
    }

    [Fact]
    public void DuplicateNestedKey()
    {
        var ex = Fails("init:\n  environment:\n    FOO: a\n    FOO: b\n");
        Assert.Equal("config.yaml:4:5: duplicate key 'FOO' (first defined at line 3)", ex.Message);
    }

    [Fact]
    public void RelativeMountTarget()
    {
        var ex = Fails("mounts:\n  - source: /srv/data\n    target: data\n");
        Assert.Equal("config.yaml:3:13: invalid path 'data' for mounts[0].target: it must be absolute (start with '/')", ex.Message);
    }

    [Fact]
    public void RelativeMountSource()
    {
        var ex = Fails("mounts:\n  - { source: /a, target: /a }\n  - { source: srv, target: /b }\n");
        Assert.Equal("config.yaml:3:15: invalid path 'srv' for mounts[1].source: it must be absolute (start with '/')", ex.Message);
    }

    [Fact]
    public void DotDotInMountTarget()
    {
        var ex = Fails("mounts:\n  - source: /srv/data\n    target: /data/../../etc\n");
        Assert.Equal("config.yaml:3:13: invalid path '/data/../../etc' for mounts[0].target: '..' components are not allowed", ex.Message);
    }

    [Fact]
    public void DotsInsideNamesAreFine()
    {
        var c = ConfigLoader.Parse("mounts: [{ source: /a/../b, target: /x..y/.z }]", "c");
        Assert.Equal("/x..y/.z", c.Mounts[0].Target);
        Assert.Equal("/a/../b", c.Mounts[0].Source);
    }

    [Fact]
    public void MountNeedsSourceAndTarget()
    {
        var ex = Fails("mounts:\n  - target: /data\n");
        Assert.Equal("config.yaml:2:5: mounts[0] needs a source (an absolute host path)", ex.Message);
        ex = Fails("mounts:\n  - source: /data\n");
        Assert.Equal("config.yaml:2:5: mounts[0] needs a target (an absolute path inside the container)", ex.Message);
        ex = Fails("mounts:\n  - /data\n");
        Assert.Equal("config.yaml:2:5: expected a mapping with source and target for mounts[0], got a scalar", ex.Message);
    }

    [Theory]
    [InlineData("hostname: -web", "config.yaml:1:11: invalid hostname '-web': a label must not start or end with '-'")]
    [InlineData("hostname: web_1", "config.yaml:1:11: invalid hostname 'web_1': only letters, digits, '-' and '.' are allowed")]
    [InlineData("hostname: a..b", "config.yaml:1:11: invalid hostname 'a..b': each dot-separated label must be 1 to 63 characters long")]
    [InlineData("hostname: ''", "config.yaml:1:11: invalid hostname '': it must be 1 to 64 characters long")]
    public void BadHostname(string yaml, string expected) => Assert.Equal(expected, Fails(yaml).Message);

    [Fact]
    public void HostnameLengthLimits()
    {
        string ok = new string('a', 63) ;
        Assert.Equal(ok, ConfigLoader.Parse($"hostname: {ok}", "c").Hostname);
        Assert.StartsWith("config.yaml:1:11: invalid hostname", Fails($"hostname: {new string('a', 64)}").Message);
        string dotted = new string('a', 30) + "." + new string('b', 33);
        Assert.Equal(64, dotted.Length);
        Assert.Equal(dotted, ConfigLoader.Parse($"hostname: {dotted}", "c").Hostname);
        Assert.Contains("1 to 64 characters", Fails($"hostname: {dotted}c").Message);
    }

    [Theory]
    [InlineData("init: { command: [bin/sh] }", "config.yaml:1:19: invalid program 'bin/sh' for init.command: use an absolute path (/bin/sh) or a bare program name looked up in PATH (sh)")]
    [InlineData("init: { command: [/bin/sh, ''] }", "config.yaml:1:28: init.command[1] must be a non-empty string")]
    [InlineData("init: { command: [/bin/sh, [a]] }", "config.yaml:1:28: expected a string for init.command[1], got a list")]
    [InlineData("init: { command: /bin/sh }", "config.yaml:1:18: expected a list for init.command (e.g. [/bin/sh, -c, \"echo hi\"]), got a scalar")]
    [InlineData("init: { workingDirectory: srv }", "config.yaml:1:27: invalid path 'srv' for init.workingDirectory: it must be absolute (start with '/')")]
    [InlineData("init: { environment: { A=B: c } }", "config.yaml:1:24: invalid environment variable name 'A=B': it must not contain '=' or NUL")]
    [InlineData("init: { environment: { '': c } }", "config.yaml:1:24: an environment variable name must not be empty")]
    [InlineData("init: { environment: [A=B] }", "config.yaml:1:22: expected a mapping of NAME: value for init.environment, got a list")]
    public void BadInit(string yaml, string expected) => Assert.Equal(expected, Fails(yaml).Message);

    [Fact]
    public void InitAcceptsBareProgramAndScalarEnvironmentValues()
    {
        var c = ConfigLoader.Parse("init:\n  command: [sh, -c, 'echo $PORT']\n  environment:\n    PORT: 8080\n    EMPTY:\n    FLAG: true\n", "c");
        Assert.Equal("sh", c.Init.Command[0]);
        Assert.Equal("8080", c.Init.Environment["PORT"]);
        Assert.Equal("", c.Init.Environment["EMPTY"]);
        Assert.Equal("true", c.Init.Environment["FLAG"]);
    }

    [Fact]
    public void SyntaxErrorHasPosition()
    {
        var ex = Fails("hostname: web1\ntemplate: a: b\n");
        Assert.Matches(@"^config\.yaml:2:\d+: YAML syntax error: \S", ex.Message);
        Assert.DoesNotContain("Idx:", ex.Message);

        ex = Fails("hostname: 'web1\n");
        Assert.Matches(@"^config\.yaml:\d+:\d+: YAML syntax error: \S", ex.Message);
    }

    [Fact]
    public void ScannerFailureIsStillAConfigError()
    {
        // YamlDotNet throws InvalidOperationException rather than YamlException for this one.
        var ex = Fails("init:\n  command: [/bin/sh\nstop: {}\n");
        Assert.Equal("config.yaml:2:10: YAML syntax error after this point (check for an unclosed bracket, brace or quote)", ex.Message);
    }

    [Fact]
    public void SecondDocumentIsAnError()
    {
        var ex = Fails("hostname: a\n---\nhostname: b\n");
        Assert.StartsWith("config.yaml:2:1: a config file holds a single YAML document", ex.Message);
    }

    [Fact]
    public void NonScalarKeyIsAnError()
    {
        var ex = Fails("? [a, b]\n: c\n");
        Assert.Equal("config.yaml:1:3: a key must be a plain name, not a list", ex.Message);
    }

    [Fact]
    public void AnchorsAndAliasesResolve()
    {
        var c = ConfigLoader.Parse("hostname: &h web1\ninit:\n  environment:\n    HOST: *h\n", "c");
        Assert.Equal("web1", c.Init.Environment["HOST"]);
        Assert.StartsWith("config.yaml:1:11: alias '*nope'", Fails("hostname: *nope\n").Message);
    }

    [Fact]
    public void QuotedNullIsAString()
    {
        var c = ConfigLoader.Parse("template: 'null'\nhostname: ~\n", "c");
        Assert.Equal("null", c.Template);
        Assert.Null(c.Hostname);
    }

    [Fact]
    public void RoundTrip()
    {
        var original = new ContainerConfig
        {
            Template = "true",
            Hostname = "web-1.example",
            Init = new InitConfig
            {
                Command = { "/bin/sh", "-c", "echo \"hi, there\": #1 'x' [y] {z} & *a !b %c @d `e`", "- dash", "", "null", "123", "é ünï", "multi\nline\ttab" },
                Environment = { ["FOO"] = "bar", ["EMPTY"] = "", ["NUM"] = "0x10", ["Q"] = "'\"", ["~"] = "yes", ["K:V"] = "a: b" },
                WorkingDirectory = "/srv/my app",
            },
            Mounts =
            {
                new MountConfig { Source = "/srv/data", Target = "/data", ReadOnly = true },
                new MountConfig { Source = "/tmp/#x", Target = "/mnt/a b", ReadOnly = false },
            },
            Stop = new StopConfig { Signal = "SIGRTMIN+3", Timeout = 0 },
            Limits = new LimitsConfig { Memory = 268435456 + 4096 },
            Console = new ConsoleConfig { LogMaxBytes = 0 },
        };
        // The empty string would be rejected as a command argument; keep it only in the environment.
        original.Init.Command.Remove("");

        string yaml = ConfigLoader.Serialize(original);
        var back = ConfigLoader.Parse(yaml, "roundtrip.yaml");

        Assert.Equal(original.Template, back.Template);
        Assert.Equal(original.Hostname, back.Hostname);
        Assert.Equal(original.Init.Command, back.Init.Command);
        Assert.Equal(original.Init.Environment.OrderBy(kv => kv.Key), back.Init.Environment.OrderBy(kv => kv.Key));
        Assert.Equal(original.Init.WorkingDirectory, back.Init.WorkingDirectory);
        Assert.Equal(original.Mounts.Count, back.Mounts.Count);
        for (int i = 0; i < original.Mounts.Count; i++)
        {
            Assert.Equal(original.Mounts[i].Source, back.Mounts[i].Source);
            Assert.Equal(original.Mounts[i].Target, back.Mounts[i].Target);
            Assert.Equal(original.Mounts[i].ReadOnly, back.Mounts[i].ReadOnly);
        }
        Assert.Equal(original.Stop.Signal, back.Stop.Signal);
        Assert.Equal(original.Stop.Timeout, back.Stop.Timeout);
        Assert.Equal(original.Limits.Memory, back.Limits.Memory);
        Assert.Equal(original.Console.LogMaxBytes, back.Console.LogMaxBytes);

        // Serializing again gives the same text: nothing drifts across saves.
        Assert.Equal(yaml, ConfigLoader.Serialize(back));
    }

    [Fact]
    public void SerializesDefaultsReadably()
    {
        string yaml = ConfigLoader.Serialize(new ContainerConfig { Hostname = "web1", Limits = { Memory = 256L << 20 } });
        Assert.Contains("hostname: web1\n", yaml);
        Assert.Contains("  memory: 256M\n", yaml);
        Assert.Contains("  logMaxBytes: 1M\n", yaml);
        // No stop signal given: none written, so the template's choice applies at start.
        Assert.DoesNotContain("signal:", yaml);
        Assert.Contains("  signal: SIGPWR\n", ConfigLoader.Serialize(new ContainerConfig { Stop = { Signal = "SIGPWR" } }));
        Assert.DoesNotContain("template", yaml);
        Assert.DoesNotContain("rootfs", yaml);
        Assert.Contains("rootfs: /srv/root\n", ConfigLoader.Serialize(new ContainerConfig { Rootfs = "/srv/root" }));
        Assert.DoesNotContain("...", yaml);

        var back = ConfigLoader.Parse(ConfigLoader.Serialize(new ContainerConfig()), "c");
        Assert.Null(back.Limits.Memory);
        Assert.Empty(back.Mounts);
    }

    [Fact]
    public void LoadReadsFileAndNamesItInErrors()
    {
        string dir = Directory.CreateTempSubdirectory("psc-config-").FullName;
        try
        {
            string path = Path.Combine(dir, "config.yaml");
            File.WriteAllText(path, Full);
            Assert.Equal("web1", ConfigLoader.Load(path).Hostname);

            File.WriteAllText(path, "hostname: web1\nbogus: 1\n");
            var ex = Assert.Throws<ContainerException>(() => ConfigLoader.Load(path));
            Assert.StartsWith(path + ":2:1: unknown key 'bogus'", ex.Message);

            var missing = Assert.Throws<ContainerException>(() => ConfigLoader.Load(Path.Combine(dir, "nope.yaml")));
            Assert.Equal("ConfigNotFound", missing.ErrorId);
            Assert.Equal(ContainerErrorKind.ObjectNotFound, missing.Kind);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
