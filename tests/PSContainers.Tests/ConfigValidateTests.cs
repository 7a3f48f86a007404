using System.Text.RegularExpressions;
using PSContainers.Runtime;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.UserNamespaces;
using Xunit;

namespace PSContainers.Tests;

/// <summary>
/// A config built in code (cmdlet parameters) and the same config in YAML are checked by the same
/// rules (ConfigRules): one bad value per kind, refused by <see cref="ConfigLoader.Validate"/> as
/// InvalidArgument naming the setting, and by <see cref="ConfigLoader.Parse"/> as InvalidConfig at
/// its line:column.
/// </summary>
public class ConfigValidateTests
{
    public sealed record Case(string Name, Action<ContainerConfig> Set, string Yaml, string Setting, string Position, bool SameText = true)
    {
        public override string ToString() => Name;
    }

    private static readonly Case[] Cases =
    {
        new("hostname", c => c.Hostname = "-bad", "hostname: -bad", "hostname", "1:11"),
        new("rootfs", c => c.Rootfs = "relative/root", "rootfs: relative/root", "rootfs", "1:9"),
        new("init.command", c => c.Init.Command = new() { "bin/sh" }, "init:\n  command: [bin/sh]", "init.command", "2:13"),
        new("init.environment", c => c.Init.Environment = new() { ["X"] = "a\0b" }, "init:\n  environment:\n    X: \"a\\0b\"", "init.environment.X", "3:8"),
        new("init.environment size", c => c.Init.Environment = new() { ["X"] = new string('x', 200_000) },
            "init:\n  environment:\n    X: " + new string('x', 200_000), "init.environment.X", "3:8"),
        new("init.workingDirectory", c => c.Init.WorkingDirectory = "rel", "init:\n  workingDirectory: rel", "init.workingDirectory", "2:21"),
        new("init.user", c => c.Init.User = -1, "init:\n  user: -1", "init.user", "2:9"),
        new("mounts", c => c.Mounts = new() { new MountConfig { Source = "/srv", Target = "/a/../b" } },
            "mounts:\n- source: /srv\n  target: /a/../b", "mounts[0].target", "3:11"),
        new("stop.signal", c => c.Stop.Signal = "SIGNOPE", "stop:\n  signal: SIGNOPE", "stop.signal", "2:11"),
        new("stop.timeout", c => c.Stop.Timeout = 90000, "stop:\n  timeout: 90000", "stop.timeout", "2:12"),
        // The file's text is not a size at all; in code the number is out of range: same id and setting.
        new("console.logMaxBytes", c => c.Console.LogMaxBytes = -1, "console:\n  logMaxBytes: -1", "console.logMaxBytes", "2:16", SameText: false),
        new("limits.memory", c => c.Limits.Memory = 1000, "limits:\n  memory: 1000", "limits.memory", "2:11"),
        new("limits.cpuWeight", c => c.Limits.CpuWeight = 0, "limits:\n  cpuWeight: 0", "limits.cpuWeight", "2:14"),
        new("limits.pids", c => c.Limits.PidsMax = 0, "limits:\n  pids: 0", "limits.pids", "2:9"),
        new("limits.cpusetCpus", c => c.Limits.CpusetCpus = "3-1", "limits:\n  cpusetCpus: 3-1", "limits.cpusetCpus", "2:15"),
        new("limits.netPrio", c => c.Limits.NetPrioIfPrioMap = new() { ["a/b"] = 1 }, "limits:\n  netPrio:\n    a/b: 1", "limits.netPrio", "3:5"),
        new("network.type", c => c.Network = new() { new NicConfig { Type = "bogus" } }, "network:\n- type: bogus", "network[0].type", "2:9"),
        new("network.mtu", c => c.Network = new() { new NicConfig { Mtu = 20 } }, "network:\n- type: veth\n  mtu: 20", "network[0].mtu", "3:8"),
        new("network.ipv4", c => c.Network = new() { new NicConfig { IPv4 = new() { "10.0.0.2" } } }, "network:\n- ipv4: [10.0.0.2]", "network[0].ipv4", "2:10"),
        new("network key for type", c => c.Network = new() { new NicConfig { Type = "pasta", Link = "br0" } },
            "network:\n- type: pasta\n  link: br0", "network[0]", "3:9"),
        new("network vlan without id", c => c.Network = new() { new NicConfig { Type = "vlan", Link = "eth0" } },
            "network:\n- type: vlan\n  link: eth0", "network[0]", "2:3"),
        new("network duplicate name", c => c.Network = new() { new NicConfig(), new NicConfig { Name = "eth0" } },
            "network:\n- type: veth\n- name: eth0", "network[1]", "3:3"),
        // A type in another case is that type (as in YAML), so this is a second pasta interface.
        new("network second pasta", c => c.Network = new() { new NicConfig { Type = "PASTA" }, new NicConfig { Type = "pasta" } },
            "network:\n- type: PASTA\n- type: pasta", "network[1]", "3:3"),
        new("storage.backend", c => c.Storage.Backend = "zfs", "storage:\n  backend: zfs", "storage.backend", "2:12"),
        new("storage.lower", c => c.Storage.Lower = "/x/../y", "storage:\n  lower: /x/../y", "storage.lower", "2:10"),
        new("security.capabilities", c => c.Security.CapabilitiesDrop = new() { "cap_nope" },
            "security:\n  capabilities:\n    drop: [cap_nope]", "security.capabilities.drop", "3:12"),
        new("security drop and keep", c => { c.Security.CapabilitiesDrop = new() { "chown" }; c.Security.CapabilitiesKeep = new() { "chown" }; },
            "security:\n  capabilities:\n    drop: [chown]\n    keep: [chown]", "security.capabilities", "4:11"),
        new("security.seccomp.profile", c => c.Security.SeccompProfile = "profile.yaml",
            "security:\n  seccomp:\n    profile: profile.yaml", "security.seccomp.profile", "3:14"),
        new("security.seccomp.errno", c => c.Security.SeccompErrno = "ENOPE", "security:\n  seccomp:\n    errno: ENOPE", "security.seccomp.errno", "3:12"),
        new("security.seccomp.deny", c => c.Security.SeccompDeny = new() { "nosuchcall" },
            "security:\n  seccomp:\n    deny: [nosuchcall]", "security.seccomp.deny", "3:12"),
        new("security.proc", c => c.Security.Proc = "ro", "security:\n  proc: ro", "security.proc", "2:9"),
        new("security.maskedPaths", c => c.Security.MaskedPaths = new() { "proc/kcore" },
            "security:\n  maskedPaths: [proc/kcore]", "security.maskedPaths[0]", "2:17"),
    };

    public static TheoryData<Case> All()
    {
        var data = new TheoryData<Case>();
        foreach (var c in Cases) data.Add(c);
        return data;
    }

    [Theory]
    [MemberData(nameof(All))]
    public void CodeAndYamlRefuseTheSameValue(Case c)
    {
        var config = new ContainerConfig();
        c.Set(config);
        var code = Assert.Throws<ContainerException>(() => ConfigLoader.Validate(config));
        Assert.Equal("InvalidArgument", code.ErrorId);
        Assert.Equal(ContainerErrorKind.InvalidArgument, code.Kind);
        Assert.Contains(c.Setting, code.Message);
        // Names the setting, not a position in a YAML text that no one wrote.
        Assert.DoesNotMatch(@"^\S+:\d+:\d+: ", code.Message);

        var file = Assert.Throws<ContainerException>(() => ConfigLoader.Parse(c.Yaml, "c.yaml"));
        Assert.Equal("InvalidConfig", file.ErrorId);
        Assert.StartsWith($"c.yaml:{c.Position}: ", file.Message);
        Assert.Contains(c.Setting, file.Message);
        if (c.SameText)
            Assert.Equal(Regex.Replace(file.Message, @"^c\.yaml:\d+:\d+: ", ""), code.Message);
    }

    [Fact]
    public void AnIdMapIsCheckedWhereItIsMade()
    {
        // In code an IdMap cannot hold what the kernel refuses (so Validate has nothing to check);
        // in YAML the same map is InvalidConfig at the list.
        Assert.Throws<ContainerException>(() => new IdMap(new[] { new IdMapEntry(IdMapKind.Uid, 0, 100000, 65536) }));
        var file = Assert.Throws<ContainerException>(() => ConfigLoader.Parse("idMap: [u 0 100000 65536]", "c.yaml"));
        Assert.Equal("InvalidConfig", file.ErrorId);
        Assert.StartsWith("c.yaml:1:8: invalid idMap: it maps no gids", file.Message);
    }

    [Fact]
    public void TheDefaultConfigIsValid()
    {
        // The baseline the cases change is valid, so each refusal above is the changed value's.
        ConfigLoader.Validate(new ContainerConfig());
        Assert.NotNull(ConfigLoader.Parse("", "c.yaml"));
    }

    [Fact]
    public void AValidConfigBuiltInCodePasses()
    {
        var config = new ContainerConfig
        {
            Hostname = "web1",
            Init = new InitConfig { Command = new() { "/bin/sh", "-c", "sleep 1" }, Environment = new() { ["FOO"] = "" }, WorkingDirectory = "/srv" },
            Mounts = new() { new MountConfig { Source = "/srv/../data", Target = "/data", ReadOnly = true } },
            Stop = new StopConfig { Signal = "SIGPWR", Timeout = 0 },
            Network = new() { new NicConfig { Type = "VETH", Link = "default", IPv4 = new() { "10.0.0.2/24" }, Up = false }, new NicConfig { Type = "pasta", Ports = new() { "8080:80" } } },
            Storage = new StorageConfig { Backend = "overlay", Lower = "/var/lib/lower" },
            IdMap = new IdMap(new[] { new IdMapEntry(IdMapKind.Uid, 0, 100000, 65536), new IdMapEntry(IdMapKind.Gid, 0, 100000, 65536) }),
        };
        config.Limits.Memory = CgroupsUnlimited;
        config.Limits.PidsMax = 100;
        config.Security.CapabilitiesDrop = new() { "default", "sys_admin" };
        config.Security.SeccompDeny = new() { "keyctl" };
        config.Security.SeccompErrno = "ENOSYS";
        ConfigLoader.Validate(config);
        // What Validate accepts, the file reader accepts too.
        ConfigLoader.Parse(ConfigLoader.Serialize(config), "c.yaml");
    }

    private static long CgroupsUnlimited => PSContainers.Runtime.Cgroups.CgroupLimits.Unlimited;

    [Fact]
    public void ArgumentsAndEnvironmentShareOneExecBudget()
    {
        // Each string is under the per-string cap; together they pass what execve(2) takes.
        var config = new ContainerConfig();
        config.Init.Command = new() { "/bin/true" };
        for (int i = 0; i < 10; i++) config.Init.Command.Add(new string('a', 100_000));
        config.Init.Environment = new() { ["BIG"] = new string('b', 100_000) };
        var ex = Assert.Throws<ContainerException>(() => ConfigLoader.Validate(config));
        Assert.Equal("InvalidArgument", ex.ErrorId);
        Assert.Contains("init.command and init.environment together exceed", ex.Message);
    }
}
