using PSContainers.Runtime;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.UserNamespaces;

namespace PSContainers.Tests;

/// <summary>The pieces under Copy-ContainerItem and Set-ContainerConfig, on real files: resolution inside a root, key edits, id views.</summary>
public sealed class OperateTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("psc-test-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string MakeRoot()
    {
        var root = Path.Combine(_dir, "root");
        Directory.CreateDirectory(Path.Combine(root, "etc"));
        File.WriteAllText(Path.Combine(root, "etc", "shadow"), "inside");
        var outside = Path.Combine(_dir, "outside");
        Directory.CreateDirectory(outside);
        File.WriteAllText(Path.Combine(outside, "secret"), "HOST");
        File.CreateSymbolicLink(Path.Combine(root, "abs"), outside);
        File.CreateSymbolicLink(Path.Combine(root, "rel"), "../../../../../../" + outside.TrimStart('/'));
        File.CreateSymbolicLink(Path.Combine(root, "shadow"), "/etc/shadow");
        File.CreateSymbolicLink(Path.Combine(root, "magic"), "/proc/self/root/etc");
        return root;
    }

    [Fact]
    public void InRoot_ResolvesLinksInsideTheRoot()
    {
        using var root = InRoot.Open(MakeRoot(), "t");
        Assert.Equal("inside", root.ReadText("/shadow"));
        Assert.Equal("inside", root.ReadText("../../../etc/shadow"));
        Assert.Null(root.ReadText("/abs/secret"));
        Assert.Null(root.ReadText("/rel/secret"));
        // A magic link is refused, never followed to the host.
        Assert.True(root.TryOpen("/magic/shadow", 0) < 0);
    }

    [Fact]
    public void InRoot_MakeDirectories_StaysInsideThroughALink()
    {
        var path = MakeRoot();
        using var root = InRoot.Open(path, "t");
        // "abs" leads to a host path that does not exist inside: resolved inside, it is refused, not created on the host.
        Assert.Throws<ContainerException>(() => root.MakeDirectories("/abs/new"));
        Assert.False(Directory.Exists(Path.Combine(_dir, "outside", "new")));
        int fd = root.MakeDirectories("/a/b/c");
        Tmds.Linux.LibC.close(fd);
        Assert.True(Directory.Exists(Path.Combine(path, "a", "b", "c")));
    }

    [Fact]
    public void ConfigEditor_SetsAnyKeyAndValidatesTheWhole()
    {
        const string yaml = "template: busybox\nstop: { timeout: 10 }\n";
        var (text, config) = ConfigEditor.Apply(yaml, new[] { new ConfigEdit("limits.memory", "256M"), new ConfigEdit("init.command", new[] { "/bin/sh", "-c", "x" }) }, "t");
        Assert.Equal(256L << 20, config.Limits.Memory);
        Assert.Equal(new[] { "/bin/sh", "-c", "x" }, config.Init.Command);
        Assert.Equal(10, ConfigLoader.Parse(text, "t").Stop.Timeout);
        var bad = Assert.Throws<ContainerException>(() => ConfigEditor.Apply(yaml, new[] { new ConfigEdit("stop.timeout", "soon") }, "t"));
        Assert.Equal("InvalidConfig", bad.ErrorId);
        Assert.Contains("stop.timeout", bad.Message);
        var unknown = Assert.Throws<ContainerException>(() => ConfigEditor.Apply(yaml, new[] { new ConfigEdit("stop.when", "1") }, "t"));
        Assert.Contains("unknown key 'when'", unknown.Message);
        var (removed, _) = ConfigEditor.Apply(yaml, new[] { new ConfigEdit("stop.timeout", null, Remove: true) }, "t");
        Assert.Null(ConfigEditor.Get(removed, "stop.timeout", out var found));
        Assert.False(found);
        Assert.Throws<ContainerException>(() => ConfigEditor.ParseKey("limits..memory"));
    }

    [Fact]
    public void RootfsIds_TranslateThroughTheMapOnlyWhenShifted()
    {
        var map = IdMap.ForRanges(100000, 200000);
        var shifted = new IdView(map);
        Assert.Equal(101000u, shifted.ToDisk(IdMapKind.Uid, 1000));
        Assert.Equal(200000u, shifted.Root.Gid);
        Assert.Null(shifted.ToDisk(IdMapKind.Uid, 70000));
        Assert.Equal(1000u, shifted.ToContainer(IdMapKind.Uid, 101000));
        var idmapped = new IdView(map, RootfsIdStorage.Idmapped);
        Assert.Equal(1000u, idmapped.ToDisk(IdMapKind.Uid, 1000));
        Assert.Null(idmapped.ToDisk(IdMapKind.Uid, 70000));     // outside the map: no one the container has
        Assert.Equal(1000u, idmapped.ToContainer(IdMapKind.Uid, 1000));
        Assert.Equal(101000u, idmapped.ThroughContainerMounts().ToDisk(IdMapKind.Uid, 1000));
        Assert.Equal(5u, new IdView(null).ToDisk(IdMapKind.Gid, 5));
    }
}
