using System.Management.Automation;
using PSContainers.Runtime;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.State;
using PSContainers.Runtime.Storage;
using PSContainers.Tests.Infrastructure;
using PSContainers.Runtime.Filesystem;

namespace PSContainers.Tests;

/// <summary>Export-Container / Import-Container: round trips, GNU tar and LXC interop, hostile archives.</summary>
[Collection("Containers")]
public sealed class MigrationTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly TestStore _other = new();
    private readonly ModuleSession _ps;

    public MigrationTests()
    {
        try { _ps = _store.OpenSession(); }
        catch { _store.Dispose(); _other.Dispose(); throw; }
    }

    public void Dispose()
    {
        _ps.Dispose();
        _store.Dispose();
        _other.Dispose();
    }

    private string Archive(string name) => Path.Combine(_store.Root, name);

    // The fixture gives files host owners outside any container's 0-65535 (123456, 654321): an
    // owner-exact round trip is a privileged container's (the default's is below).
    private ContainerInfo Populated(string hint)
    {
        var c = _store.Manager.Create(TestStore.NewName(hint), new CreateOptions { Template = "busybox", Hostname = "exported-host", Environment = new Dictionary<string, string> { ["MODE"] = "test" }, Privileged = true });
        TreeFixture.Populate(c.RootfsPath);
        return c;
    }

    [Theory]
    [InlineData("x.tar")]
    [InlineData("x.tar.gz")]
    [InlineData("x.tar.zst")]
    public void RoundTrip_ToAnotherStore_PreservesEveryFile(string file)
    {
        var src = Populated("exp");
        var archive = Archive(file);
        var export = _ps.Invoke("Export-Container $args[0] -Path $args[1] -PassThru", src.Name, archive);
        Assert.Empty(export.Errors);
        var exported = (PSContainers.Runtime.Storage.ContainerArchiveInfo)export.Output.Single().BaseObject;
        Assert.Contains(export.Progress, p => p.Activity == $"Exporting {src.Name}" && p.StatusDescription.Contains("entries"));
        Assert.True(exported.Size > 0);
        Assert.Equal(new FileInfo(archive).Length, exported.Size);
        Assert.Equal(src.Name, exported.Container);
        Assert.Empty(Directory.EnumerateFiles(_store.Root, "*.partial"));
        var name = TestStore.NewName("imp");
        var imported = (ContainerInfo)_ps.Run("Import-Container -Path $args[0] -Name $args[1] -StorePath $args[2] -Privileged", archive, name, _other.StorePath).Single().BaseObject;
        Assert.Equal(_other.StorePath, imported.StorePath);
        TreeFixture.AssertSameTree(src.RootfsPath, imported.RootfsPath);
        var caps = FsNative.GetXattr(Path.Combine(imported.RootfsPath, "opt/fixture/cap-bin"), "security.capability");
        Assert.Equal(TreeFixture.Capability, caps);
        Assert.Equal((UnixFileMode)0b100_111_101_101, File.GetUnixFileMode(Path.Combine(imported.RootfsPath, "opt/fixture/suid")));
        Assert.True(TreeFixture.AllocatedBytes(Path.Combine(imported.RootfsPath, "opt/fixture/sparse")) < 1 << 20, "zero blocks are imported as holes");
        var config = ConfigLoader.Load(imported.ConfigPath);
        Assert.Equal("exported-host", config.Hostname);
        Assert.Equal("test", config.Init.Environment["MODE"]);
        Assert.Equal(ContainerStatus.Running, _other.Manager.Start(name).State);
        Assert.Equal("exported-host", _other.Manager.Exec(name, new[] { "hostname" }).Output.Single());
    }

    [Fact]
    public void RoundTrip_OfTheDefaultUnprivilegedContainer_KeepsTheOwnersItSees()
    {
        var src = _store.Manager.Create(TestStore.NewName("uexp"), new CreateOptions { Template = "busybox", Hostname = "exported-host" });
        Assert.Equal(ContainerMode.Unprivileged, src.Mode);
        var srcMap = ConfigLoader.Load(src.ConfigPath).IdMap!;
        var archive = Archive("u.tar.zst");
        _ps.Run("Export-Container $args[0] -Path $args[1]", src.Name, archive);
        var name = TestStore.NewName("uimp");
        var imported = (ContainerInfo)_ps.Run("Import-Container -Path $args[0] -Name $args[1] -StorePath $args[2]", archive, name, _other.StorePath).Single().BaseObject;
        Assert.Equal(ContainerMode.Unprivileged, imported.Mode);
        var map = ConfigLoader.Load(imported.ConfigPath).IdMap!;
        // Owned by the container's root on both sides: on disk its own id 0 where the rootfs is
        // idmapped (storage.ids), the range's first id where it is shifted.
        uint OnDisk(ContainerInfo c, PSContainers.Runtime.UserNamespaces.IdMap m) => ConfigLoader.Load(c.ConfigPath).Storage.IsIdmapped ? 0u : m.RootUid;
        Assert.Equal(OnDisk(src, srcMap), UnprivilegedContainerTests.StatOwner(Path.Combine(src.RootfsPath, "bin", "busybox")).Uid);
        Assert.Equal(OnDisk(imported, map), UnprivilegedContainerTests.StatOwner(Path.Combine(imported.RootfsPath, "bin", "busybox")).Uid);
        Assert.Equal(ContainerStatus.Running, _other.Manager.Start(name).State);
        Assert.Equal("0", _other.Manager.Exec(name, new[] { "/bin/sh", "-c", "stat -c %u /bin/busybox" }).Output.Single());
        Assert.Equal("exported-host", _other.Manager.Exec(name, new[] { "hostname" }).Output.Single());
    }

    [Fact]
    public void ExportedArchive_IsReadByGnuTar_WithCapabilitiesAndAcls()
    {
        var src = Populated("gnu");
        var archive = Archive("gnu.tar");
        ContainerArchive.Export(_store.Manager, src.Name, archive, force: false);
        var dir = Path.Combine(_store.Root, "gnu-extract");
        Directory.CreateDirectory(dir);
        LoopFilesystem.Run("tar", "--xattrs", "--xattrs-include=*", "--acls", "--numeric-owner", "-xpf", archive, "-C", dir);
        TreeFixture.AssertSameTree(src.RootfsPath, Path.Combine(dir, "rootfs"));
        Assert.Contains("exported-host", File.ReadAllText(Path.Combine(dir, "config.yaml")));
    }

    [Fact]
    public void LxcArchive_MadeByGnuTar_IsImported_ConfigTranslated()
    {
        var src = Populated("lxcsrc");
        var lxcName = "lxcbox";
        var tree = Path.Combine(_store.Root, "lxc");
        var containerDir = Path.Combine(tree, "var", "lib", "lxc", lxcName);
        Directory.CreateDirectory(containerDir);
        TreeCopier.Copy(src.RootfsPath, Path.Combine(containerDir, "rootfs"));
        File.WriteAllText(Path.Combine(containerDir, "config"),
            "# Template used to create this container\nlxc.include = /usr/share/lxc/config/common.conf\n" +
            $"lxc.rootfs.path = dir:/var/lib/lxc/{lxcName}/rootfs\nlxc.uts.name = lxc-host\nlxc.net.0.type = veth\n" +
            "lxc.init.cmd = /sbin/init\nlxc.environment = FOO=bar\nlxc.cgroup2.memory.max = 256M\nlxc.signal.halt = SIGUSR2\n");
        File.WriteAllText(Path.Combine(containerDir, "fstab"), "");
        var archive = Archive("lxc.tgz");
        // What `tar --numeric-owner -czf x.tgz /var/lib/lxc/NAME` stores (tar drops the leading '/').
        LoopFilesystem.Run("tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "-czf", archive, "-C", tree, $"var/lib/lxc/{lxcName}");

        using var ps = PowerShell.Create();
        ps.Runspace = _ps.Runspace;
        // A privileged LXC container's archive (host owners, 123456 among them): imported as one.
        ps.AddScript("Import-Container $args[0] -Name $args[1] -Privileged").AddArgument(archive).AddArgument(TestStore.NewName("fromlxc"));
        var output = ps.Invoke();
        Assert.False(ps.HadErrors, string.Join("\n", ps.Streams.Error));
        var info = (ContainerInfo)output.Single().BaseObject;
        var warnings = ps.Streams.Warning.Select(w => w.Message).ToList();
        Assert.Contains(warnings, w => w.Contains("lxc.net.0.type"));
        Assert.Contains(warnings, w => w.Contains("lxc.include"));
        Assert.Contains(warnings, w => w.Contains("fstab"));
        TreeFixture.AssertSameTree(src.RootfsPath, info.RootfsPath);
        var config = ConfigLoader.Load(info.ConfigPath);
        Assert.Equal("lxc-host", config.Hostname);
        Assert.Equal(new[] { "/sbin/init" }, config.Init.Command);
        Assert.Equal("bar", config.Init.Environment["FOO"]);
        Assert.Equal(256L << 20, config.Limits.Memory);
        Assert.Equal("SIGUSR2", config.Stop.Signal);
        Assert.Equal(ContainerStatus.Running, _store.Manager.Start(info.Name).State);
    }

    [Fact]
    public void RunningContainer_NeedsForce_WhichFreezesAndThawsIt()
    {
        var c = _store.Manager.Create(TestStore.NewName("run"), new CreateOptions { Template = "busybox", Backend = "overlay", Privileged = true /* overlay with an id map: 15a */ });
        _store.Manager.Start(c.Name);
        _store.Manager.Exec(c.Name, new[] { "/bin/sh", "-c", "echo live > /live-file" });
        var r = _ps.Invoke("Export-Container $args[0] $args[1]", c.Name, Archive("run.tar"));
        Assert.Equal("ContainerNotStopped,PSContainers.Cmdlets.ExportContainerCommand", r.SingleError.FullyQualifiedErrorId);
        Assert.False(File.Exists(Archive("run.tar")));
        _ps.Run("Export-Container $args[0] $args[1] -Force", c.Name, Archive("run.tar"));
        Assert.Equal(ContainerStatus.Running, _store.Manager.Get(c.Name).State);
        var imported = ContainerArchive.Import(_other.Manager, Archive("run.tar"), "psct-live-" + Guid.NewGuid().ToString("N")[..6]).Container;
        Assert.Equal("live\n", File.ReadAllText(Path.Combine(imported.RootfsPath, "live-file")));
        Assert.True(File.Exists(Path.Combine(imported.RootfsPath, "bin", "busybox")), "the merged overlay tree is exported");
    }

    // ---- hostile archives ------------------------------------------------------------------------

    private static void Write(string path, params TarEntry[] entries)
    {
        using var file = File.Create(path);
        var w = new PaxTarWriter(file);
        foreach (var e in entries)
        {
            var data = e.Type == TarEntryType.Regular ? new MemoryStream(new byte[e.Size]) : null;
            w.WriteEntry(e, data);
        }
        w.Finish();
    }

    private static TarEntry Dir(string p) => new() { Path = p, Type = TarEntryType.Directory, Mode = 0x1ED };
    private static TarEntry File_(string p) => new() { Path = p, Type = TarEntryType.Regular, Mode = 0x1A4, Size = 5 };
    private static TarEntry Sym(string p, string target) => new() { Path = p, Type = TarEntryType.SymbolicLink, LinkPath = target, Mode = 0x1FF };
    private static TarEntry Hard(string p, string target) => new() { Path = p, Type = TarEntryType.HardLink, LinkPath = target, Mode = 0x1A4 };

    public static TheoryData<string> HostileCases => new() { "dotdot", "absolute", "dotdot-inside", "abs-symlink", "rel-symlink", "symlink-chain", "hardlink-outside", "hardlink-dotdot", "hardlink-absolute" };

    [Theory]
    [MemberData(nameof(HostileCases))]
    public void HostileArchive_IsRefused_AndLeavesNothing(string kind)
    {
        var outside = Path.Combine(_store.Root, "outside-" + kind);
        Directory.CreateDirectory(outside);
        var up = string.Concat(Enumerable.Repeat("../", 20));
        var entries = new List<TarEntry> { Dir("rootfs"), Dir("rootfs/etc"), File_("rootfs/etc/ok") };
        entries.AddRange(kind switch
        {
            "dotdot" => new[] { File_("../" + outside.TrimStart('/') + "/pwned") },
            "absolute" => new[] { File_(outside + "/pwned") },
            "dotdot-inside" => new[] { File_("rootfs/etc/../../pwned") },
            "abs-symlink" => new[] { Sym("rootfs/esc", outside), File_("rootfs/esc/pwned") },
            "rel-symlink" => new[] { Sym("rootfs/esc", up + outside.TrimStart('/')), File_("rootfs/esc/pwned") },
            "symlink-chain" => new[] { Sym("rootfs/a", "b"), Sym("rootfs/b", "/"), File_("rootfs/a/" + outside.TrimStart('/') + "/pwned") },
            "hardlink-outside" => new[] { Hard("rootfs/passwd", "etc/passwd") },
            "hardlink-dotdot" => new[] { Hard("rootfs/passwd", "rootfs/../../../../etc/passwd") },
            "hardlink-absolute" => new[] { Hard("rootfs/passwd", "/etc/passwd") },
            _ => throw new ArgumentException(kind),
        });
        var archive = Archive(kind + ".tar");
        Write(archive, entries.ToArray());
        var name = TestStore.NewName("evil");
        var r = _ps.Invoke("Import-Container $args[0] -Name $args[1]", archive, name);
        Assert.Equal("ArchiveEntryUnsafe,PSContainers.Cmdlets.ImportContainerCommand", r.SingleError.FullyQualifiedErrorId);
        Assert.Contains("Refusing archive entry", r.SingleError.Exception.Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(outside));
        Assert.False(File.Exists(Path.Combine(_store.Root, "pwned")));
        Assert.False(_store.Manager.Exists(name));
        // Refused in the first pass (headers only): nothing was even staged.
        Assert.False(Directory.Exists(_store.Manager.Store.TempDirectory) && Directory.EnumerateFileSystemEntries(_store.Manager.Store.TempDirectory).Any());
        Assert.False(Directory.Exists(_store.Manager.Store.ContainerDirectory(name)));
    }

    [Fact]
    public void SymlinksInsideTheRootfs_AreFine_AndStoredAsTheyAre()
    {
        var archive = Archive("ok.tar");
        Write(archive, Dir("./rootfs/"), Dir("rootfs/usr"), Dir("rootfs/usr/lib"), Sym("rootfs/lib", "usr/lib"),
            File_("rootfs/lib/through-link"), Sym("rootfs/etc-link", "/etc"), Hard("rootfs/hard", "rootfs/usr/lib/through-link"));
        var info = ContainerArchive.Import(_store.Manager, archive, TestStore.NewName("ok"));
        var root = info.Container.RootfsPath;
        Assert.True(File.Exists(Path.Combine(root, "usr/lib/through-link")));
        Assert.Equal("/etc", new FileInfo(Path.Combine(root, "etc-link")).LinkTarget);
        Assert.Contains(info.Warnings, w => w.Contains("no config.yaml"));
    }

    [Fact]
    public void CorruptArchive_IsAClearError()
    {
        var archive = Archive("corrupt.tar");
        File.WriteAllBytes(archive, System.Security.Cryptography.RandomNumberGenerator.GetBytes(4096));
        var ex = Assert.Throws<ContainerException>(() => ContainerArchive.Import(_store.Manager, archive, TestStore.NewName("bad")));
        Assert.Equal("ArchiveCorrupt", ex.ErrorId);
        // Refused in the first pass (headers only): nothing was even staged.
        Assert.False(Directory.Exists(_store.Manager.Store.TempDirectory) && Directory.EnumerateFileSystemEntries(_store.Manager.Store.TempDirectory).Any());
    }
}
