using PSContainers.Runtime;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.UserNamespaces;

namespace PSContainers.Tests;

/// <summary>config.yaml's idMap (lxc.idmap) and pasta network keys: parsing, validation with positions, round trip.</summary>
public class IdMapConfigTests
{
    [Fact]
    public void IdMap_ParsesRoundTripsAndTranslatesIds()
    {
        var config = ConfigLoader.Parse("idMap: [u 0 100000 65536, g 0 200000 1000, g 1000 300000 64536]\n", "t.yaml");
        var map = config.IdMap!;
        Assert.Equal(100000u, map.RootUid);
        Assert.Equal(200000u, map.RootGid);
        Assert.Equal(300005u, map.ToHost(IdMapKind.Gid, 1005));
        Assert.Equal(1005u, map.ToContainer(IdMapKind.Gid, 300005));
        Assert.Null(map.ToContainer(IdMapKind.Uid, 5));
        Assert.Equal("0 200000 1000\n1000 300000 64536\n", map.KernelText(IdMapKind.Gid));
        Assert.Equal(["0", "100000", "65536"], map.NewIdMapArguments(IdMapKind.Uid));
        Assert.Equal(65536u, map.End(IdMapKind.Uid));
        var again = ConfigLoader.Parse(ConfigLoader.Serialize(config), "again");
        Assert.Equal(map.Entries, again.IdMap!.Entries);
        Assert.Null(ConfigLoader.Parse("hostname: a\n", "t").IdMap);
    }

    [Fact]
    public void Privileged_ParsesRoundTrips_AndContradictsAnIdMap()
    {
        Assert.True(ConfigLoader.Parse("privileged: true\n", "t").Privileged);
        Assert.False(ConfigLoader.Parse("privileged: false\n", "t").Privileged);
        Assert.Null(ConfigLoader.Parse("hostname: a\n", "t").Privileged);
        var privileged = new ContainerConfig { Privileged = true };
        Assert.Contains("privileged: true", ConfigLoader.Serialize(privileged));
        Assert.True(ConfigLoader.Parse(ConfigLoader.Serialize(privileged), "again").Privileged);
        Assert.DoesNotContain("privileged", ConfigLoader.Serialize(new ContainerConfig()));
        var both = Assert.Throws<ContainerException>(() => ConfigLoader.Parse("privileged: true\nidMap: [u 0 100000 65536, g 0 100000 65536]\n", "b.yaml"));
        Assert.StartsWith("b.yaml:1:1: privileged: true contradicts idMap [u 0 100000 65536, g 0 100000 65536]", both.Message);
        var coded = Assert.Throws<ContainerException>(() => ConfigLoader.Validate(new ContainerConfig { Privileged = true, IdMap = IdMap.ForRanges(100000, 100000) }));
        Assert.Contains("contradicts idMap", coded.Message);
        var notBool = Assert.Throws<ContainerException>(() => ConfigLoader.Parse("privileged: maybe\n", "n.yaml"));
        Assert.StartsWith("n.yaml:1:13:", notBool.Message);
    }

    [Fact]
    public void ContainerModes_DecideTheNewContainersMode_AndRecordIt()
    {
        var unprivileged = new ContainerConfig();
        Assert.False(PSContainers.Runtime.Containers.ContainerModes.Decide(unprivileged, false, false, isRoot: true, "c"));
        Assert.Null(unprivileged.Privileged);
        var privileged = new ContainerConfig();
        Assert.True(PSContainers.Runtime.Containers.ContainerModes.Decide(privileged, true, false, isRoot: true, "c"));
        Assert.True(privileged.Privileged);
        Assert.True(PSContainers.Runtime.Containers.ContainerModes.Decide(new ContainerConfig { Privileged = true }, false, false, isRoot: true, "c"));
        Assert.Equal("PrivilegedNeedsRoot", Assert.Throws<ContainerException>(() =>
            PSContainers.Runtime.Containers.ContainerModes.Decide(new ContainerConfig(), true, false, isRoot: false, "c")).ErrorId);
        Assert.Equal("ConflictingParameters", Assert.Throws<ContainerException>(() =>
            PSContainers.Runtime.Containers.ContainerModes.Decide(new ContainerConfig(), true, true, isRoot: true, "c")).ErrorId);
        Assert.Equal("ConflictingParameters", Assert.Throws<ContainerException>(() =>
            PSContainers.Runtime.Containers.ContainerModes.Decide(new ContainerConfig { IdMap = IdMap.ForRanges(100000, 100000) }, true, false, isRoot: true, "c")).ErrorId);
        // An existing config: its idMap decides; neither key is the privileged mode it was made with.
        Assert.Equal(PSContainers.Runtime.Containers.ContainerMode.Privileged, PSContainers.Runtime.Containers.ContainerModes.Of(new ContainerConfig()));
        Assert.Equal(PSContainers.Runtime.Containers.ContainerMode.Unprivileged, PSContainers.Runtime.Containers.ContainerModes.Of(new ContainerConfig { IdMap = IdMap.ForRanges(1, 1) }));
        Assert.Equal("ContainerModeUndecided", Assert.Throws<ContainerException>(() =>
            PSContainers.Runtime.Containers.ContainerModes.CheckExisting(new ContainerConfig { Privileged = false }, "c")).ErrorId);
        Assert.Equal("100000-165535", PSContainers.Runtime.Containers.ContainerModes.HostIdRange(IdMap.ForRanges(100000, 100000)));
        Assert.Equal("uid 100000-165535, gid 200000-265535", PSContainers.Runtime.Containers.ContainerModes.HostIdRange(IdMap.ForRanges(100000, 200000)));
        Assert.Null(PSContainers.Runtime.Containers.ContainerModes.HostIdRange(null));
    }

    [Theory]
    [InlineData("idMap: [u 0 100000]\n", "1:9", "expected 'u|g CONTAINER-ID HOST-ID COUNT'")]
    [InlineData("idMap: [x 0 1 1, g 0 1 1]\n", "1:9", "expected 'u|g")]
    [InlineData("idMap: [u 0 -1 5, g 0 1 1]\n", "1:9", "'-1' is not an id")]
    [InlineData("idMap: [u 0 100000 65536]\n", "1:8", "maps no gids")]
    [InlineData("idMap: [u 1 100000 65536, g 0 1 1]\n", "1:8", "container uid 0 is not mapped")]
    [InlineData("idMap: [u 0 100000 10, u 5 200000 10, g 0 1 1]\n", "1:8", "overlap inside the container")]
    [InlineData("idMap: [u 0 100000 10, u 10 100005 10, g 0 1 1]\n", "1:8", "overlap on the host")]
    [InlineData("idMap: [u 0 4294967290 10, g 0 1 1]\n", "1:8", "runs past the highest id")]
    [InlineData("idMap: [u 0 1 0, g 0 1 1]\n", "1:8", "count 0")]
    [InlineData("idMap: u 0 1 1\n", "1:8", "expected a list for idMap")]
    public void IdMap_RejectsWhatTheKernelWould_WithThePosition(string yaml, string position, string message)
    {
        var ex = Assert.Throws<ContainerException>(() => ConfigLoader.Parse(yaml, "t.yaml"));
        Assert.Equal("InvalidConfig", ex.ErrorId);
        Assert.StartsWith($"t.yaml:{position}: ", ex.Message);
        Assert.Contains(message, ex.Message);
    }

    [Fact]
    public void Pasta_TakesPortsAndHostPorts_AndOnlyItsOwnKeys()
    {
        var config = ConfigLoader.Parse("network:\n  - type: pasta\n    ports: [8080, \"2222:22\"]\n    hostPorts: 5432\n", "t.yaml");
        var nic = Assert.Single(config.Network);
        Assert.Equal(["8080", "2222:22"], nic.Ports);
        Assert.Equal(["5432"], nic.HostPorts);
        Assert.Equal(nic.Ports, ConfigLoader.Parse(ConfigLoader.Serialize(config), "x").Network[0].Ports);
        Assert.Equal(["--config-net", "--ns-ifname", "eth0", "--quiet", "--pid", "/p", "--tcp-ports", "8080,2222:22", "--tcp-ns", "5432", "--udp-ports", "none", "--udp-ns", "none", "--no-map-gw"],
            PSContainers.Runtime.NetworkHooks.PastaHook.Arguments(nic, "eth0", "/p"));
        Assert.Contains("invalid port '70000'", Assert.Throws<ContainerException>(() => ConfigLoader.Parse("network: [{ type: pasta, ports: [70000] }]", "t")).Message);
        Assert.Contains("'link' does not apply to a pasta interface", Assert.Throws<ContainerException>(() => ConfigLoader.Parse("network: [{ type: pasta, link: br0 }]", "t")).Message);
        Assert.Contains("at most one pasta interface", Assert.Throws<ContainerException>(() => ConfigLoader.Parse("network: [{ type: pasta }, { type: pasta, name: eth1 }]", "t")).Message);
    }
}
