using PSContainers.Runtime;
using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.Storage;
using PSContainers.Runtime.UserNamespaces;
using PSContainers.Tests.Infrastructure;
using Tmds.Linux;

namespace PSContainers.Tests;

/// <summary>
/// The rules of psc-helper's one tree walk (src/native/helper/tree_walk.c), under every operation
/// built on it (userns-tree copy, list, export, shift, remove): a symlink out of the tree is never
/// followed, a mount inside the tree (a tmpfs, and a bind of a host directory on the same filesystem,
/// which has the tree's st_dev) is never entered, and a tree deeper than the walk's bound fails with
/// an error saying so (and is removed all the same). Run as root through UserNamespace, which maps host ids 0.. into the namespace
/// as the container's: a followed link or a crossed mount would change host files root owns.
/// </summary>
public sealed class TreeWalkTests : IDisposable
{
    const int MaxDepth = 1024; // WALK_MAX_DEPTH in src/native/helper/helper.h

    readonly string _base = Path.Combine(Path.GetTempPath(), $"psc-test-walk-{Guid.NewGuid():N}");
    readonly List<string> _mounts = new();
    readonly uint _start = 1_500_000_000u + (uint)Random.Shared.Next(0, 4000) * 65536u;

    string Tree => Path.Combine(_base, "tree");
    string Host => Path.Combine(_base, "host");
    IdMap Map => IdMap.ForRanges(_start, _start);

    public TreeWalkTests() => Directory.CreateDirectory(_base);

    public void Dispose()
    {
        for (var i = _mounts.Count - 1; i >= 0; i--) HostCommand.Run("umount", "-l", _mounts[i]);
        // rm, not Directory.Delete: a tree a failed test left may be deeper than PATH_MAX.
        if (Directory.Exists(_base)) HostCommand.Run("rm", "-rf", "--one-file-system", _base);
    }

    void Mount(params string[] args)
    {
        HostCommand.Run("mount", args);
        _mounts.Add(args[^1]);
    }

    /// <summary>
    /// tree/ with a file, links out of it to host files (absolute, relative, to a directory), a bind
    /// mount of host/dir and a tmpfs; host/ holds root's files the walk must leave alone.
    /// </summary>
    void Build()
    {
        Directory.CreateDirectory(Path.Combine(Host, "dir"));
        File.WriteAllText(Path.Combine(Host, "secret"), "host");
        File.WriteAllText(Path.Combine(Host, "dir", "inner"), "host inner");
        Directory.CreateDirectory(Path.Combine(Tree, "sub"));
        File.WriteAllText(Path.Combine(Tree, "sub", "file"), "data");
        File.CreateSymbolicLink(Path.Combine(Tree, "escape"), Path.Combine(Host, "secret"));
        File.CreateSymbolicLink(Path.Combine(Tree, "sub", "relative"), "../../host/secret");
        Directory.CreateSymbolicLink(Path.Combine(Tree, "escape-dir"), Path.Combine(Host, "dir"));
        Directory.CreateDirectory(Path.Combine(Tree, "bind"));
        Mount("--bind", Path.Combine(Host, "dir"), Path.Combine(Tree, "bind"));
        Directory.CreateDirectory(Path.Combine(Tree, "tmp"));
        Mount("-t", "tmpfs", "-o", "size=1m", "psc-test-walk", Path.Combine(Tree, "tmp"));
        File.WriteAllText(Path.Combine(Tree, "tmp", "on-tmpfs"), "tmpfs");
    }

    void AssertHostUntouched()
    {
        Assert.Equal("host", File.ReadAllText(Path.Combine(Host, "secret")));
        Assert.Equal("host inner", File.ReadAllText(Path.Combine(Host, "dir", "inner")));
        foreach (var p in new[] { Path.Combine(Host, "secret"), Path.Combine(Host, "dir"), Path.Combine(Host, "dir", "inner"), Path.Combine(Tree, "tmp", "on-tmpfs") })
            Assert.Equal((0u, 0u), (UnprivilegedContainerTests.StatOwner(p).Uid, UnprivilegedContainerTests.StatOwner(p).Gid));
    }

    [Fact]
    public void Copy_CopiesLinksAsLinks_AndMountPointsAsEmptyDirectories()
    {
        Build();
        var copy = Path.Combine(_base, "copy");
        UserNamespace.CopyTree(Tree, copy, Map);

        Assert.Equal("data", File.ReadAllText(Path.Combine(copy, "sub", "file")));
        Assert.Equal(Path.Combine(Host, "secret"), new FileInfo(Path.Combine(copy, "escape")).LinkTarget);
        Assert.Equal("../../host/secret", new FileInfo(Path.Combine(copy, "sub", "relative")).LinkTarget);
        Assert.Equal(Path.Combine(Host, "dir"), new FileInfo(Path.Combine(copy, "escape-dir")).LinkTarget);
        Assert.True(Directory.Exists(Path.Combine(copy, "bind")) && new DirectoryInfo(Path.Combine(copy, "bind")).LinkTarget is null);
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(copy, "bind")));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(copy, "tmp")));
        AssertHostUntouched();
    }

    [Fact]
    public void ListAndExport_DescribeLinksAsLinks_AndStopAtMountPoints()
    {
        Build();
        var listing = TreeListing.Read(Tree, Map, Path.Combine(_base, "temp"));
        Assert.Equal(["bind", "escape", "escape-dir", "sub", "tmp"], listing.Names("").ToArray());
        Assert.Equal(Path.Combine(Host, "secret"), listing.LinkTarget("escape"));
        Assert.Equal(Path.Combine(Host, "dir"), listing.LinkTarget("escape-dir"));
        Assert.Equal("../../host/secret", listing.LinkTarget("sub/relative"));
        Assert.True(listing.TryLstat("escape", out var st) && (st.st_mode & LibC.S_IFMT) == LibC.S_IFLNK);
        Assert.Empty(listing.Names("escape-dir"));
        Assert.Empty(listing.Names("bind"));
        Assert.Empty(listing.Names("tmp"));

        var exported = new Dictionary<string, string>();
        TreeListing.Stream(Tree, Map, Path.Combine(_base, "temp"), reader =>
        {
            while (reader.Next() is { } rec)
            {
                var content = "";
                if ((rec.Stat.st_mode & LibC.S_IFMT) == LibC.S_IFREG)
                    using (var s = new StreamReader(reader.Content(rec.Stat.st_size))) content = s.ReadToEnd();
                exported[rec.Path] = rec.Link ?? content;
            }
        });
        Assert.Equal(["", "bind", "escape", "escape-dir", "sub", "sub/file", "sub/relative", "tmp"], exported.Keys.Order(StringComparer.Ordinal).ToArray());
        Assert.Equal("data", exported["sub/file"]);
        Assert.Equal(Path.Combine(Host, "secret"), exported["escape"]);
        AssertHostUntouched();
    }

    [Fact]
    public void Shift_ChownsTheLinksThemselves_AndNothingBehindThemOrAMount()
    {
        Build();
        UserNamespace.Shift(Tree, Map);

        // Root's entries of the tree became the container root's (the host's _start)...
        foreach (var rel in new[] { "", "sub", "sub/file", "escape", "sub/relative", "escape-dir" })
            Assert.Equal(_start, UnprivilegedContainerTests.StatOwner(Path.Combine(Tree, rel)).Uid);
        // ...what links point to, and what is mounted in the tree (its mount points too), did not.
        AssertHostUntouched();
        Assert.Equal(0u, UnprivilegedContainerTests.StatOwner(Path.Combine(Tree, "tmp")).Uid);
    }

    [Fact]
    public void Remove_DeletesLinksNotTheirTargets_AndNothingInAMount()
    {
        Build();
        // Mounted on: the walk leaves the mounts, so their parent cannot go, which is the error.
        var e = Assert.Throws<ContainerException>(() => UserNamespace.DeleteTree(Tree, Map));
        Assert.Equal("RootfsRemoveFailed", e.ErrorId);
        Assert.Contains($"remove {Tree}: Directory not empty", e.Message);
        Assert.False(Path.Exists(Path.Combine(Tree, "escape")));
        Assert.False(Path.Exists(Path.Combine(Tree, "sub")));
        AssertHostUntouched();

        for (var i = _mounts.Count - 1; i >= 0; i--) HostCommand.Run("umount", _mounts[i]);
        _mounts.Clear();
        UserNamespace.DeleteTree(Tree, Map);
        Assert.False(Path.Exists(Tree));
        Assert.True(File.Exists(Path.Combine(Host, "secret")) && File.Exists(Path.Combine(Host, "dir", "inner")));
    }

    /// <summary>
    /// d/d/d/... levels deep, with a file at the bottom, made one level at a time from the parent's
    /// fd (a path that deep is longer than PATH_MAX). Returns the bottom's path relative to root.
    /// </summary>
    static unsafe string Deep(string root, int levels)
    {
        Directory.CreateDirectory(root);
        int fd;
        fixed (byte* p = FsNative.Z(root)) fd = LibC.open(p, LibC.O_RDONLY | LibC.O_DIRECTORY | LibC.O_CLOEXEC, 0);
        Assert.True(fd >= 0, $"open {root}: errno {FsNative.Errno}");
        try
        {
            fixed (byte* d = FsNative.Z("d"))
                for (var i = 0; i < levels; i++)
                {
                    Assert.True(LibC.mkdirat(fd, d, (mode_t)0b111_101_101) == 0, $"mkdir level {i}: errno {FsNative.Errno}");
                    var next = LibC.openat(fd, d, LibC.O_RDONLY | LibC.O_DIRECTORY | LibC.O_CLOEXEC, 0);
                    Assert.True(next >= 0, $"open level {i}: errno {FsNative.Errno}");
                    LibC.close(fd);
                    fd = next;
                }
            int file;
            fixed (byte* b = FsNative.Z("bottom")) file = LibC.openat(fd, b, LibC.O_WRONLY | LibC.O_CREAT | LibC.O_CLOEXEC, (mode_t)0b110_100_100);
            Assert.True(file >= 0, $"create the bottom: errno {FsNative.Errno}");
            LibC.close(file);
        }
        finally { LibC.close(fd); }
        return string.Join('/', Enumerable.Repeat("d", levels));
    }

    [Fact]
    public void TreeDeeperThanTheBound_FailsWithAnErrorSayingSo_ButIsRemoved_AndOneWithinItIsWalked()
    {
        var within = Path.Combine(_base, "within");
        var bottom = Deep(within, MaxDepth - 1);
        var copy = Path.Combine(_base, "within-copy");
        UserNamespace.CopyTree(within, copy, Map);
        Assert.True(File.Exists(Path.Combine(copy, bottom, "bottom")));
        var listing = TreeListing.Read(within, Map, Path.Combine(_base, "temp"));
        Assert.Equal(["bottom"], listing.Names(bottom).ToArray());
        UserNamespace.Shift(within, Map);
        Assert.Equal(_start, UnprivilegedContainerTests.StatOwner(Path.Combine(within, bottom, "bottom")).Uid);

        var deep = Path.Combine(_base, "deep");
        Deep(deep, MaxDepth + 5);
        var expected = $"a tree deeper than {MaxDepth} directories is refused";
        var errors = new[]
        {
            Assert.Throws<ContainerException>(() => UserNamespace.CopyTree(deep, Path.Combine(_base, "deep-copy"), Map)),
            Assert.Throws<ContainerException>(() => TreeListing.Read(deep, Map, Path.Combine(_base, "temp"))),
            Assert.Throws<ContainerException>(() => UserNamespace.Shift(deep, Map)),
        };
        Assert.Equal(["RootfsCopyFailed", "RootfsListFailed", "RootfsShiftFailed"], errors.Select(e => e.ErrorId).ToArray());
        foreach (var e in errors) Assert.Contains(expected, e.Message);

        // Removing is not refused (a container's depth must not keep its owner from deleting it):
        // what lies deeper than the walk goes is moved up and removed in another pass.
        var deeper = Path.Combine(_base, "deeper");
        Deep(deeper, 2 * MaxDepth + 100);
        UserNamespace.DeleteTree(deeper, Map);
        Assert.False(Path.Exists(deeper));
    }
}
