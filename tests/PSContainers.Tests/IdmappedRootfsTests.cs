using PSContainers.Runtime.Config;
using PSContainers.Runtime.State;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.IdMapping;
using PSContainers.Runtime.Storage;
using PSContainers.Runtime.UserNamespaces;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// Idmapped rootfs (storage.ids idmapped): a user-namespaced container's tree keeps the ids the
/// container sees and is shown to it through an idmapped mount, on the dir, overlay and btrfs
/// backends; the shifting fallback on a filesystem that cannot be idmapped (ramfs); old shifted
/// trees never idmapped on top; copies, export/import and CRIU with it; and what a setuid file the
/// container's root makes means on the host.
/// </summary>
[Collection("Containers")]
public sealed class IdmappedRootfsTests : IDisposable
{
    private readonly List<IDisposable> _cleanup = new();

    public void Dispose()
    {
        for (var i = _cleanup.Count - 1; i >= 0; i--) _cleanup[i].Dispose();
    }

    private TestStore Store(string? root = null)
    {
        var s = new TestStore(root);
        _cleanup.Add(s);
        return s;
    }

    private static uint RangeStart() => 1_500_000_000u + (uint)Random.Shared.Next(0, 4000) * 65536u;

    private static CreateOptions Unprivileged(TestStore s, uint start, string? backend = null, string extra = "")
    {
        var path = Path.Combine(s.Root, $"cfg-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, $"idMap: [u 0 {start} 65536, g 0 {start} 65536]\n{extra}");
        return new CreateOptions { Template = "busybox", ConfigPath = path, Backend = backend };
    }

    private static ContainerConfig Config(TestStore s, string name) => ConfigLoader.Load(s.Manager.Store.ConfigPath(name));

    private static string[] Sh(ContainerManager m, string name, string script)
    {
        var r = m.Exec(name, new[] { "sh", "-c", script });
        Assert.True(r.ExitCode == 0, $"'{script}' failed ({r.ExitCode}): {string.Join(" ", r.Error)}");
        return r.Output;
    }

    private static (uint Uid, uint Gid, uint Mode) Owner(string path) => UnprivilegedContainerTests.StatOwner(path);

    /// <summary>The mount options of the container's / as its init sees them (mountinfo field 6).</summary>
    private static string RootMountOptions(int pid) =>
        File.ReadAllLines($"/proc/{pid}/mountinfo").Select(l => l.Split(' ')).Single(f => f[4] == "/")[5];

    [Fact]
    public void Dir_DiskHoldsContainerIds_RootInsideOwnsAndWritesThem()
    {
        var s = Store();
        var m = s.Manager;
        var start = RangeStart();
        var warnings = new List<string>();
        m.Warning += warnings.Add;
        var c = m.Create(TestStore.NewName("idm"), Unprivileged(s, start));
        Assert.Empty(warnings);
        Assert.Equal("idmapped", Config(s, c.Name).Storage.Ids);
        // Nothing chowned: the host sees what a privileged container's tree holds.
        Assert.Equal((0u, 0u), (Owner(c.RootfsPath).Uid, Owner(c.RootfsPath).Gid));
        Assert.Equal(0u, Owner(Path.Combine(c.RootfsPath, "bin", "busybox")).Uid);

        var started = m.Start(c.Name);
        Assert.Contains("idmapped", RootMountOptions(started.Pid!.Value));
        // Inside: root-owned files, and root (host uid start) writes them.
        Assert.Equal(["0 0 /bin/busybox", "0 0 /etc/passwd"], Sh(m, c.Name, "stat -c '%u %g %n' /bin/busybox /etc/passwd"));
        Sh(m, c.Name, "echo changed >> /etc/passwd; mkdir /home/u; touch /home/u/f; chown -R 1000:1000 /home/u; touch /root/r");
        Assert.Contains(File.ReadAllText($"/proc/{started.Pid}/status").Split('\n'), l => l.StartsWith("Uid:") && l.Contains(start.ToString()));
        // The host sees the ids the container gave: 1000 and 0, never start + n.
        Assert.Equal((1000u, 1000u), (Owner(Path.Combine(c.RootfsPath, "home", "u", "f")).Uid, Owner(Path.Combine(c.RootfsPath, "home", "u", "f")).Gid));
        Assert.Equal(0u, Owner(Path.Combine(c.RootfsPath, "root", "r")).Uid);
        Assert.EndsWith("changed\n", File.ReadAllText(Path.Combine(c.RootfsPath, "etc", "passwd")));
        // The idmapped mount exists only in the container's mount namespace.
        Assert.DoesNotContain(File.ReadAllLines("/proc/self/mountinfo"), l => l.Contains(c.RootfsPath));
        m.Stop(c.Name, kill: true);
    }

    [Fact]
    public void Overlay_SnapshotCloneOfIdmappedDir_IsALayer_WritesContainerIdsToItsUpper()
    {
        var s = Store();
        var m = s.Manager;
        var storage = new StorageManager(m);
        var c = m.Create(TestStore.NewName("base"), Unprivileged(s, RangeStart()));
        TreeFixture.Populate(c.RootfsPath);
        var clone = storage.Copy(c.Name, TestStore.NewName("ovl"), new CopyOptions { Snapshot = true });
        var cfg = Config(s, clone.Name);
        Assert.Equal(("overlay", "idmapped"), (cfg.Storage.Backend, cfg.Storage.Ids));
        var upper = Path.Combine(m.Store.ContainerDirectory(clone.Name), "overlay", "upper");
        // No copy: the upper layer holds only the rewritten hostname.
        Assert.Equal(new[] { "etc/hostname" }, Directory.EnumerateFiles(upper, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(upper, f)));

        var started = m.Start(clone.Name);
        Assert.Equal("overlay", File.ReadAllLines($"/proc/{started.Pid}/mountinfo").Select(l => l.Split(' ')).Single(f => f[4] == "/").SkipWhile(x => x != "-").ElementAt(1));
        Assert.Equal(["0 0 /bin/busybox"], Sh(m, clone.Name, "stat -c '%u %g %n' /bin/busybox"));
        Sh(m, clone.Name, "touch /made; mkdir -p /home/u; touch /home/u/f; chown -R 1000:1000 /home/u; rm /bin/ls");
        Assert.Equal(0u, Owner(Path.Combine(upper, "made")).Uid);
        Assert.Equal(1000u, Owner(Path.Combine(upper, "home", "u", "f")).Uid);
        // A whiteout for the deleted lower file, in the upper layer; the lower layer untouched.
        Assert.Equal("character special file", HostCommand.Run("stat", "-c", "%F", Path.Combine(upper, "bin", "ls")));
        Assert.True(File.Exists(Path.Combine(c.RootfsPath, "bin", "ls")) || new FileInfo(Path.Combine(c.RootfsPath, "bin", "ls")).LinkTarget is not null);
        m.Stop(clone.Name, kill: true);

        // And an overlay container made as one (-Backend overlay) works the same.
        var o = m.Create(TestStore.NewName("ovl2"), Unprivileged(s, RangeStart(), "overlay"));
        Assert.Equal(("overlay", "idmapped"), (Config(s, o.Name).Storage.Backend, Config(s, o.Name).Storage.Ids));
        m.Start(o.Name);
        Assert.Equal(["0"], Sh(m, o.Name, "touch /x; stat -c %u /x"));
        m.Stop(o.Name, kill: true);
    }

    [Fact]
    public void Btrfs_UnprivilegedSubvolume_SnapshotCloneIsABtrfsSnapshot_AndStarts()
    {
        using var fs = new LoopFilesystem("btrfs");
        var s = Store(Path.Combine(fs.MountPoint, "psc-test-store"));
        try
        {
            var m = s.Manager;
            var storage = new StorageManager(m);
            var c = m.Create(TestStore.NewName("btr"), Unprivileged(s, RangeStart()));
            Assert.Equal(("btrfs", "idmapped"), (Config(s, c.Name).Storage.Backend, Config(s, c.Name).Storage.Ids));
            Assert.True(FsNative.IsBtrfsSubvolume(c.RootfsPath));
            m.Start(c.Name);
            Sh(m, c.Name, "touch /in-base; chown 1000 /in-base");
            m.Stop(c.Name, kill: true);
            Assert.Equal(1000u, Owner(Path.Combine(c.RootfsPath, "in-base")).Uid);

            var clone = storage.Copy(c.Name, TestStore.NewName("snap"), new CopyOptions { Snapshot = true });
            Assert.Equal(("btrfs", "idmapped"), (Config(s, clone.Name).Storage.Backend, Config(s, clone.Name).Storage.Ids));
            Assert.True(FsNative.IsBtrfsSubvolume(clone.RootfsPath));
            m.Start(clone.Name);
            Assert.Equal(["1000 /in-base"], Sh(m, clone.Name, "stat -c '%u %n' /in-base"));
            Sh(m, clone.Name, "touch /in-clone");
            m.Stop(clone.Name, kill: true);
            Assert.Equal(0u, Owner(Path.Combine(clone.RootfsPath, "in-clone")).Uid);
            Assert.False(File.Exists(Path.Combine(c.RootfsPath, "in-clone")));
        }
        finally
        {
            _cleanup.Remove(s);
            s.Dispose();
        }
    }

    [Fact]
    public void Ramfs_CannotBeIdmapped_FallsBackToShifting_WarnsOnce_AndStarts()
    {
        var dir = Path.Combine(Path.GetTempPath(), "psc-test-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(dir);
        HostCommand.Run("mount", "-t", "ramfs", "psc-test-ramfs", dir);
        try
        {
            var s = new TestStore(Path.Combine(dir, "s"));
            try
            {
                var m = s.Manager;
                var start = RangeStart();
                Assert.False(RootfsIds.CanIdmap(dir, IdMap.ForRanges(start, start), out var why));
                Assert.Contains("Invalid argument", why);
                var warnings = new List<string>();
                m.Warning += warnings.Add;
                var c = m.Create(TestStore.NewName("ram"), Unprivileged(s, start));
                Assert.Single(warnings);
                Assert.Contains("cannot be shown to the container through an idmapped mount", warnings[0]);
                Assert.Equal("shifted", Config(s, c.Name).Storage.Ids);
                Assert.Equal(start, Owner(Path.Combine(c.RootfsPath, "bin", "busybox")).Uid);
                var started = m.Start(c.Name);
                Assert.DoesNotContain("idmapped", RootMountOptions(started.Pid!.Value));
                Assert.Equal(["0 /bin/busybox"], Sh(m, c.Name, "stat -c '%u %n' /bin/busybox"));
                m.Stop(c.Name, kill: true);
                // Said once: the next container on this filesystem is shifted without a second warning.
                var d = m.Create(TestStore.NewName("ram2"), Unprivileged(s, start));
                Assert.Equal("shifted", Config(s, d.Name).Storage.Ids);
                Assert.Single(warnings);
            }
            finally { s.Dispose(); }
        }
        finally
        {
            HostCommand.Run("umount", dir);
            Directory.Delete(dir);
        }
    }

    [Fact]
    public void ShiftedContainerOfAnOlderStore_IsNotIdmappedOnTop()
    {
        // A container made before idmapped mounts: shifted tree, no storage.ids.
        var s = Store();
        var m = s.Manager;
        var start = RangeStart();
        var map = IdMap.ForRanges(start, start);
        var c = m.Create(TestStore.NewName("old"), Unprivileged(s, start));
        UserNamespace.Shift(c.RootfsPath, map);
        var config = Config(s, c.Name);
        config.Storage.Ids = null;
        File.WriteAllText(c.ConfigPath, ConfigLoader.Serialize(config));
        Assert.Equal(start, Owner(Path.Combine(c.RootfsPath, "bin", "busybox")).Uid);

        var started = m.Start(c.Name);
        Assert.DoesNotContain("idmapped", RootMountOptions(started.Pid!.Value));
        // Shifted once: root-owned inside (twice would show the overflow id 65534).
        Assert.Equal(["0 0 /bin/busybox"], Sh(m, c.Name, "stat -c '%u %g %n' /bin/busybox"));
        Sh(m, c.Name, "touch /root/new");
        Assert.Equal(start, Owner(Path.Combine(c.RootfsPath, "root", "new")).Uid);
        m.Stop(c.Name, kill: true);
        // Its copies stay shifted too.
        var copy = new StorageManager(m).Copy(c.Name, TestStore.NewName("oldcopy"), new CopyOptions());
        Assert.Null(Config(s, copy.Name).Storage.Ids);
        m.Start(copy.Name);
        Assert.Equal(["0 /bin/busybox"], Sh(m, copy.Name, "stat -c '%u %n' /bin/busybox"));
        m.Stop(copy.Name, kill: true);
    }

    [Fact]
    public void ExportImport_KeepsContainerIds_AndAnIdmappableStoreExtractsThemAsTheyAre()
    {
        var s = Store();
        var m = s.Manager;
        var start = RangeStart();
        var c = m.Create(TestStore.NewName("exp"), Unprivileged(s, start));
        m.Start(c.Name);
        Sh(m, c.Name, "mkdir /home/u; echo hi > /home/u/f; chown -R 1000:1001 /home/u");
        m.Stop(c.Name, kill: true);
        var archive = Path.Combine(s.Root, "c.tar");
        ContainerArchive.Export(m, c.Name, archive, force: false);
        var listing = HostCommand.Run("tar", "--numeric-owner", "-tvf", archive);
        Assert.Contains(listing.Split('\n'), l => l.Contains(" 1000/1001 ") && l.EndsWith("rootfs/home/u/f"));
        Assert.Contains(listing.Split('\n'), l => l.Contains(" 0/0 ") && l.EndsWith("rootfs/etc/passwd"));

        using var ids = new TempDir();
        var paths = SubordinateIdPaths.InDirectory(ids.Path);
        File.WriteAllText(paths.SubUid, $"root:{start}:65536\n");
        File.WriteAllText(paths.SubGid, $"root:{start}:65536\n");
        m.SubordinateIds = new SubordinateIdDatabase(paths);
        var imported = ContainerArchive.Import(m, archive, new ImportOptions { Name = TestStore.NewName("imp"), Unprivileged = true });
        Assert.Empty(imported.Warnings.Where(w => w.Contains("idmapped")));
        Assert.Equal("idmapped", Config(s, imported.Container.Name).Storage.Ids);
        Assert.Equal((1000u, 1001u), (Owner(Path.Combine(imported.Container.RootfsPath, "home", "u", "f")).Uid, Owner(Path.Combine(imported.Container.RootfsPath, "home", "u", "f")).Gid));
        m.Start(imported.Container.Name);
        Assert.Equal(["1000 1001 hi"], Sh(m, imported.Container.Name, "echo $(stat -c '%u %g' /home/u/f) $(cat /home/u/f)"));
        m.Stop(imported.Container.Name, kill: true);

        // (An import into a store that cannot be idmapped shifts, as a non-root user's import does:
        // NonRootContainerTests.ExportOfAShiftedContainer_...; ramfs, the filesystem the fallback
        // test uses, reports no free space, which the import's size check refuses.)
    }

    [Fact]
    public void SetuidFileMadeInside_IsRootsOnDisk_ButNoOtherHostUserCanReachIt()
    {
        var s = Store();
        var m = s.Manager;
        var start = RangeStart();
        var c = m.Create(TestStore.NewName("suid"), Unprivileged(s, start));
        m.Start(c.Name);
        Sh(m, c.Name, "cp /bin/busybox /suid-root; chmod 4755 /suid-root");
        m.Stop(c.Name, kill: true);
        // Through the idmapped mount the container's root (host uid start) made a file that is
        // owned by host uid 0 on disk, setuid: a host user who could execute it would run as root.
        var suid = Path.Combine(c.RootfsPath, "suid-root");
        Assert.Equal((0u, 0b100_111_101_101u), (Owner(suid).Uid, Owner(suid).Mode));
        // So the store keeps every host user but root out: 0711 root, the container directory 0700.
        Assert.Equal((0u, 0b111_000_000u), (Owner(m.Store.ContainerDirectory(c.Name)).Uid, Owner(m.Store.ContainerDirectory(c.Name)).Mode));
        // (Through sh: setpriv itself reaches the program it is given before it drops root.)
        var psi = new System.Diagnostics.ProcessStartInfo("setpriv", new[] { "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", $"exec {suid} true" })
        { RedirectStandardError = true, RedirectStandardOutput = true };
        using var p = System.Diagnostics.Process.Start(psi)!;
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.NotEqual(0, p.ExitCode);
        Assert.Contains("Permission denied", err);
        // Even the container's own root's host uid cannot: it is no one on the host.
        psi = new System.Diagnostics.ProcessStartInfo("setpriv", new[] { $"--reuid={start}", $"--regid={start}", "--clear-groups", "stat", suid })
        { RedirectStandardError = true, RedirectStandardOutput = true };
        using var q = System.Diagnostics.Process.Start(psi)!;
        q.StandardError.ReadToEnd();
        q.WaitForExit();
        Assert.NotEqual(0, q.ExitCode);
    }

    [Fact]
    public void CheckpointRestore_OfAnIdmappedContainer_RecreatesTheIdmappedRoot()
    {
        var s = Store();
        using var ps = s.OpenSession();
        var m = s.Manager;
        var c = m.Create(TestStore.NewName("ckpt"), Unprivileged(s, RangeStart()));
        m.Start(c.Name);
        Sh(m, c.Name, "touch /before; chown 1000 /before");
        var images = Path.Combine(s.Root, "ckpt");
        ps.Run("Checkpoint-Container $args[0] -Path $args[1]", c.Name, images);
        Assert.Equal(ContainerStatus.Stopped, m.Get(c.Name).State);
        ps.Run("Restore-Container $args[0] -Path $args[1]", c.Name, images);
        var restored = m.Get(c.Name);
        Assert.Equal(ContainerStatus.Running, restored.State);
        Assert.Contains("idmapped", RootMountOptions(restored.Pid!.Value));
        Assert.Equal(["1000 /before", "0 /after"], Sh(m, c.Name, "touch /after; stat -c '%u %n' /before /after"));
        // The temporary idmapped mount criu was given is gone from the host.
        Assert.DoesNotContain(File.ReadAllLines("/proc/self/mountinfo"), l => l.Contains(c.RootfsPath));
        Assert.Equal(0u, Owner(Path.Combine(c.RootfsPath, "after")).Uid);
        m.Stop(c.Name, kill: true);
    }
}
