using System.Management.Automation;
using PSContainers.Runtime;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.State;
using PSContainers.Runtime.Storage;
using PSContainers.Tests.Infrastructure;
using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.Backends;

namespace PSContainers.Tests;

/// <summary>Backends, copies, snapshot clones, ephemeral clones, snapshots and diffs on a dir store (tmpfs/ext4 under /tmp).</summary>
[Collection("Containers")]
public sealed class StorageTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly ModuleSession _ps;

    public StorageTests()
    {
        try { _ps = _store.OpenSession(); }
        catch { _store.Dispose(); throw; }
    }

    public void Dispose()
    {
        _ps.Dispose();
        _store.Dispose();
    }

    private ContainerManager M => _store.Manager;
    private StorageManager S => new(M);

    // overlay and btrfs rootfs with an id map come with idmapped layers (issue 15, 15a); until then
    // a test of those backends makes a privileged container. dir: the default (unprivileged).
    private ContainerInfo Busybox(string hint, string? backend = null, bool privileged = false) =>
        M.Create(TestStore.NewName(hint), new CreateOptions { Template = "busybox", Backend = backend, Privileged = privileged || backend is "overlay" or "btrfs" });

    private ContainerConfig Config(string name) => ConfigLoader.Load(M.Store.ConfigPath(name));

    private string[] Exec(string name, string script)
    {
        var r = M.Exec(name, new[] { "/bin/sh", "-c", script });
        Assert.True(r.ExitCode == 0, $"'{script}' failed ({r.ExitCode}): {string.Join("\n", r.Error)}");
        return r.Output;
    }

    [Theory]
    [InlineData("Copy-Container")]
    [InlineData("New-ContainerSnapshot")]
    [InlineData("Get-ContainerSnapshot")]
    [InlineData("Restore-ContainerSnapshot")]
    [InlineData("Remove-ContainerSnapshot")]
    [InlineData("Get-ContainerDiff")]
    [InlineData("Export-Container")]
    [InlineData("Import-Container")]
    public void StorageCmdlets_HaveHelp(string cmdlet)
    {
        var undocumented = _ps.Run(@"
            $help = Get-Help $args[0] -Full
            if (-not $help.Synopsis -or $help.Synopsis.StartsWith($args[0])) { 'synopsis' }
            if (@($help.examples.example).Count -lt 2) { 'examples' }
            $common = [System.Management.Automation.Cmdlet]::CommonParameters + [System.Management.Automation.Cmdlet]::OptionalCommonParameters
            foreach ($p in (Get-Command $args[0]).Parameters.Keys) {
                if ($p -in $common) { continue }
                $d = @($help.parameters.parameter) | Where-Object { $_.name -eq $p }
                if (-not $d -or -not ($d.description | ForEach-Object Text)) { ""parameter $p"" }
            }", cmdlet).Select(o => o.ToString()).ToList();
        Assert.Empty(undocumented);
    }

    [Fact]
    public void DirIsTheDefault_AndTheBackendIsRecordedInConfig()
    {
        var c = Busybox("dir");
        Assert.Equal("dir", Config(c.Name).Storage.Backend);
        Assert.Contains("storage:", File.ReadAllText(c.ConfigPath));
        var bad = Assert.Throws<ContainerException>(() => ConfigLoader.Parse("storage:\n  backend: zfs\n", "c.yaml"));
        Assert.Equal("c.yaml:2:12: unknown storage backend 'zfs' for storage.backend (expected one of: dir, overlay, btrfs)", bad.Message);
        var unknown = Assert.Throws<ContainerException>(() => ConfigLoader.Parse("storage:\n  lowr: /x\n", "c.yaml"));
        Assert.StartsWith("c.yaml:2:3: unknown key 'lowr' under 'storage'", unknown.Message);
        var r = _ps.Invoke("New-Container $args[0] -Template busybox -Backend btrfs -Privileged", TestStore.NewName("nobtrfs"));
        Assert.Equal("BackendUnavailable,PSContainers.Cmdlets.NewContainerCommand", r.SingleError.FullyQualifiedErrorId);
        Assert.Empty(Directory.EnumerateDirectories(M.Store.TempDirectory));
    }

    [Fact]
    public void OverlayBackend_WritesLandInUpper_TheHostHasNoMount()
    {
        var name = TestStore.NewName("ovl");
        var info = (ContainerInfo)_ps.Run("New-Container $args[0] -Template busybox -Backend overlay -Privileged", name).Single().BaseObject;
        var config = Config(name);
        Assert.Equal("overlay", config.Storage.Backend);
        var lower = config.Storage.Lower!;
        Assert.True(File.Exists(Path.Combine(lower, "bin", "busybox")));
        Assert.Empty(Directory.EnumerateFileSystemEntries(info.RootfsPath));
        M.Start(name);
        Exec(name, "echo hi > /written; rm /bin/true");
        Assert.DoesNotContain(File.ReadAllLines("/proc/self/mountinfo"), l => l.Contains(M.Store.ContainerDirectory(name)));
        M.Stop(name, kill: true);
        var upper = Path.Combine(info.Path, "overlay", "upper");
        Assert.Equal("hi\n", File.ReadAllText(Path.Combine(upper, "written")));
        Assert.True(File.Exists(Path.Combine(lower, "bin", "true")), "the lower layer is never written");
        var changes = S.Diff(name).Select(c => c.ToString()).ToList();

        // An existing root directory as the read-only lower layer (New-Container -RootfsPath -Backend overlay).
        var onTop = (ContainerInfo)_ps.Run("New-Container $args[0] -RootfsPath $args[1] -Backend overlay -Privileged -Command /bin/sleep,1000", TestStore.NewName("ontop"), lower).Single().BaseObject;
        Assert.Equal(lower, Config(onTop.Name).Storage.Lower);
        Assert.Null(Config(onTop.Name).Rootfs);
        M.Start(onTop.Name);
        Exec(onTop.Name, "echo mine > /mine");
        Assert.False(File.Exists(Path.Combine(lower, "mine")));
        Assert.True(File.Exists(Path.Combine(onTop.Path, "overlay", "upper", "mine")));
        // /bin was copied up, but a directory only counts as changed when its own mode, owner or xattrs did.
        Assert.Equal(new[] { "D /bin/true", "A /written" }, changes);
    }

    [Fact]
    public void FullCopy_PreservesEverything_AndFixesTheHostname()
    {
        var src = Busybox("src");
        TreeFixture.Populate(src.RootfsPath);
        File.WriteAllText(Path.Combine(src.RootfsPath, "etc", "hostname"), src.Name + "\n");
        var copyName = TestStore.NewName("copy");
        var copy = (ContainerInfo)_ps.Run("Copy-Container $args[0] $args[1]", src.Name, copyName).Single().BaseObject;
        Assert.Equal(copyName, copy.Hostname);
        Assert.Equal("dir", Config(copyName).Storage.Backend);
        Assert.Equal(copyName + "\n", File.ReadAllText(Path.Combine(copy.RootfsPath, "etc", "hostname")));
        foreach (var root in new[] { src.RootfsPath, copy.RootfsPath }) File.Delete(Path.Combine(root, "etc", "hostname"));
        TreeFixture.AssertSameTree(src.RootfsPath, copy.RootfsPath);
        Assert.True(TreeFixture.AllocatedBytes(Path.Combine(copy.RootfsPath, "opt/fixture/sparse")) < 1 << 20, "sparse files stay sparse");
        // The copy is independent, and starts.
        File.Delete(Path.Combine(src.RootfsPath, "bin", "cat"));
        Assert.True(File.Exists(Path.Combine(copy.RootfsPath, "bin", "cat")));
        M.Start(copyName);
        Assert.Equal(copyName, Exec(copyName, "hostname").Single());
    }

    [Fact]
    public void Copy_GetsItsOwnMacAndHostEndName()
    {
        var src = Busybox("mac");
        var path = M.Store.ConfigPath(src.Name);
        var config = ConfigLoader.Load(path);
        config.Network.Add(new NicConfig { Type = "veth", Link = "pstbr0", HostName = "vethsrc0", HwAddress = "00:16:3e:12:34:56" });
        config.Network.Add(new NicConfig { Type = "veth", Link = "pstbr0", HwAddress = "00:16:3e:xx:xx:xx" });
        File.WriteAllText(path, ConfigLoader.Serialize(config));
        var copyName = TestStore.NewName("maccopy");
        _ps.Run("Copy-Container $args[0] $args[1]", src.Name, copyName);
        var copied = Config(copyName).Network;
        Assert.Equal("00:16:3e:xx:xx:xx", copied[0].HwAddress);   // same vendor prefix, filled per container
        Assert.Null(copied[0].HostName);
        Assert.Equal("00:16:3e:xx:xx:xx", copied[1].HwAddress);
        Assert.Equal("00:16:3e:12:34:56", Config(src.Name).Network[0].HwAddress); // the source keeps its own
    }

    [Fact]
    public void Copy_RefusesARunningSourceAndAnExistingName_LeavingNothing()
    {
        var a = Busybox("a");
        var b = Busybox("b");
        var r = _ps.Invoke("Copy-Container $args[0] $args[1]", a.Name, b.Name);
        Assert.Equal("ContainerExists,PSContainers.Cmdlets.CopyContainerCommand", r.SingleError.FullyQualifiedErrorId);
        M.Start(a.Name);
        r = _ps.Invoke("Copy-Container $args[0] $args[1]", a.Name, TestStore.NewName("c"));
        Assert.Equal("ContainerNotStopped,PSContainers.Cmdlets.CopyContainerCommand", r.SingleError.FullyQualifiedErrorId);
        Assert.Equal(2, M.Names().Count());
        Assert.Empty(Directory.EnumerateFileSystemEntries(M.Store.TempDirectory));
    }

    [Fact]
    public void SnapshotClone_OfADirContainer_IsAnOverlay_AndProtectsItsSource()
    {
        // The overlay clone of a dir container: a privileged one (see the user-namespaced case below).
        var src = Busybox("base", privileged: true);
        File.WriteAllText(Path.Combine(src.RootfsPath, "etc", "hostname"), src.Name + "\n");
        var cloneName = TestStore.NewName("clone");
        var clone = (ContainerInfo)_ps.Run("Copy-Container -Name $args[0] -NewName $args[1] -Snapshot", src.Name, cloneName).Single().BaseObject;
        var config = Config(cloneName);
        Assert.Equal("overlay", config.Storage.Backend);
        Assert.Equal(src.RootfsPath, config.Storage.Lower);
        Assert.Equal(src.Name, config.Storage.Origin);
        // Only the hostname file was written (copied up); nothing of the rootfs was copied.
        var upper = Path.Combine(clone.Path, "overlay", "upper");
        Assert.Equal(new[] { "etc", "etc/hostname" }, Directory.EnumerateFileSystemEntries(upper, "*", SearchOption.AllDirectories).Select(p => Path.GetRelativePath(upper, p)).Order());
        Assert.Equal(src.Name + "\n", File.ReadAllText(Path.Combine(src.RootfsPath, "etc", "hostname")));
        M.Start(cloneName);
        Assert.Equal(cloneName, Exec(cloneName, "cat /etc/hostname").Single());
        Exec(cloneName, "echo clone > /only-in-clone");
        Assert.False(File.Exists(Path.Combine(src.RootfsPath, "only-in-clone")));
        M.Stop(cloneName, kill: true);

        var r = _ps.Invoke("Remove-Container $args[0]", src.Name);
        Assert.Equal("ContainerHasClones,PSContainers.Cmdlets.RemoveContainerCommand", r.SingleError.FullyQualifiedErrorId);
        Assert.Contains(cloneName, r.SingleError.Exception.Message);
        Assert.True(M.Exists(src.Name));

        // A clone of the clone shares the same base (and copies only the clone's upper layer).
        var second = TestStore.NewName("clone2");
        S.Copy(cloneName, second, new CopyOptions { Snapshot = true });
        Assert.Equal(src.Name, Config(second).Storage.Origin);
        Assert.True(File.Exists(Path.Combine(M.Store.ContainerDirectory(second), "overlay", "upper", "only-in-clone")));

        using var ps = PowerShell.Create();
        ps.Runspace = _ps.Runspace;
        ps.AddScript("Remove-Container $args[0] -Force").AddArgument(src.Name);
        ps.Invoke();
        Assert.False(ps.HadErrors);
        var warning = Assert.Single(ps.Streams.Warning).Message;
        Assert.Contains(cloneName, warning);
        Assert.Contains(second, warning);
        var broken = Assert.Throws<ContainerException>(() => M.Start(cloneName));
        Assert.Equal("OverlayLowerMissing", broken.ErrorId);
    }

    [Fact]
    public void SnapshotClone_OfAUserNamespacedContainer_IsAnOverlayOfItsIdmappedTree_AndRuns()
    {
        // The default container (user-namespaced, idmapped rootfs): its snapshot clone is as cheap as
        // a privileged one's, an overlay layer over the source's tree, with no warning and no walk.
        var src = Busybox("ubase");
        Assert.Equal(ContainerMode.Unprivileged, src.Mode);
        Assert.True(Config(src.Name).Storage.IsIdmapped);
        var cloneName = TestStore.NewName("uclone");
        using var ps = PowerShell.Create();
        ps.Runspace = _ps.Runspace;
        ps.AddScript("Copy-Container $args[0] $args[1] -Snapshot").AddArgument(src.Name).AddArgument(cloneName);
        var clone = (ContainerInfo)ps.Invoke().Single().BaseObject;
        Assert.False(ps.HadErrors);
        Assert.Empty(ps.Streams.Warning);
        var config = Config(cloneName);
        Assert.Equal("overlay", config.Storage.Backend);
        Assert.Equal(src.Name, config.Storage.Origin);
        Assert.True(config.Storage.IsIdmapped);
        Assert.Equal(Config(src.Name).IdMap!.ToString(), config.IdMap!.ToString());
        Assert.Equal(ContainerMode.Unprivileged, clone.Mode);
        Assert.Equal(src.HostIdRange, clone.HostIdRange);
        M.Start(cloneName);
        Assert.Equal(cloneName, Exec(cloneName, "cat /etc/hostname").Single());
        // Its root owns its tree as the container sees it (the idmapped layers), and writes land in
        // the clone's own layer only.
        Assert.Equal("0", Exec(cloneName, "stat -c %u /bin/busybox").Single());
        Exec(cloneName, "echo clone > /only-in-clone");
        Assert.False(File.Exists(Path.Combine(src.RootfsPath, "only-in-clone")));
        M.Stop(cloneName, kill: true);
        M.Remove(cloneName);
        M.Remove(src.Name);
    }

    [Fact]
    public void EphemeralClone_StartsAndIsDestroyedWhenItStops()
    {
        var src = Busybox("eph-src");
        var name = TestStore.NewName("eph");
        var info = (ContainerInfo)_ps.Run("Copy-Container $args[0] $args[1] -Snapshot -Ephemeral", src.Name, name).Single().BaseObject;
        Assert.Equal(ContainerStatus.Running, info.State);
        Assert.True(Config(name).Storage.Ephemeral);
        _ps.Run("Stop-Container $args[0] -Kill", name);
        Assert.False(M.Exists(name));
        Assert.False(Directory.Exists(M.Store.ContainerDirectory(name)));

        // Stopped from inside (init exits): reading it has no side effect, and it is gone at the next Get-Container.
        var second = TestStore.NewName("eph2");
        var running = S.Copy(src.Name, second, new CopyOptions { Ephemeral = true });
        PSContainers.Runtime.Native.Sys.Kill(running.Pid!.Value, 9);
        M.Wait(second, ContainerStatus.Stopped, TimeSpan.FromSeconds(10));
        Assert.Contains(M.List(), c => c.Name == second && c.State == ContainerStatus.Stopped);
        Assert.Equal(ContainerStatus.Stopped, M.Get(second).State);
        var listed = _ps.Run("Get-Container").Select(o => ((ContainerInfo)o.BaseObject).Name).ToList();
        Assert.DoesNotContain(second, listed);
        Assert.Contains(src.Name, listed);
        Assert.False(Directory.Exists(M.Store.ContainerDirectory(second)));
        Assert.True(M.Exists(src.Name));
    }

    [Fact]
    public void Snapshots_NewGetRestoreRemove_BringBackADeletedFile()
    {
        var c = Busybox("snap");
        var s0 = (ContainerSnapshot)_ps.Run("New-ContainerSnapshot $args[0] -Comment 'before the change'", c.Name).Single().BaseObject;
        Assert.Equal("snap0", s0.Name);
        Assert.Equal("before the change", s0.Comment);
        var file = Path.Combine(c.RootfsPath, "bin", "busybox");
        var bytes = File.ReadAllBytes(file);
        File.Delete(file);
        File.WriteAllText(Path.Combine(c.RootfsPath, "new-file"), "new");
        var s1 = (ContainerSnapshot)_ps.Run("New-ContainerSnapshot $args[0]", c.Name).Single().BaseObject;
        Assert.Equal("snap1", s1.Name);
        var listed = _ps.Run("Get-ContainerSnapshot $args[0]", c.Name).Select(o => ((ContainerSnapshot)o.BaseObject).Name);
        Assert.Equal(new[] { "snap0", "snap1" }, listed);

        _ps.Run("Get-ContainerSnapshot $args[0] snap0 | Restore-ContainerSnapshot -Confirm:$false", c.Name);
        Assert.Equal(bytes, File.ReadAllBytes(file));
        Assert.False(File.Exists(Path.Combine(c.RootfsPath, "new-file")));
        Assert.Equal(ContainerStatus.Running, M.Start(c.Name).State);

        // Restoring into a running container is refused; into a new container works any time.
        var r = _ps.Invoke("Restore-ContainerSnapshot $args[0] snap1 -Confirm:$false", c.Name);
        Assert.Equal("ContainerNotStopped,PSContainers.Cmdlets.RestoreContainerSnapshotCommand", r.SingleError.FullyQualifiedErrorId);
        var newName = TestStore.NewName("fromsnap");
        var made = (ContainerInfo)_ps.Run("Restore-ContainerSnapshot $args[0] snap1 -NewName $args[1]", c.Name, newName).Single().BaseObject;
        Assert.True(File.Exists(Path.Combine(made.RootfsPath, "new-file")));
        Assert.False(File.Exists(Path.Combine(made.RootfsPath, "bin", "busybox")));

        var completions = _ps.Run("(TabExpansion2 -inputScript ($s = \"Restore-ContainerSnapshot -StorePath $($args[1]) -Name $($args[0]) -SnapshotName sn\") -cursorColumn $s.Length).CompletionMatches.CompletionText", c.Name, _store.StorePath);
        Assert.Equal(new[] { "snap0", "snap1" }, completions.Select(o => o.ToString()));
        _ps.Run("Remove-ContainerSnapshot $args[0] snap0 -Confirm:$false", c.Name);
        Assert.Equal(new[] { "snap1" }, S.GetSnapshots(c.Name).Select(s => s.Name));
        r = _ps.Invoke("Remove-ContainerSnapshot $args[0] snap7 -Confirm:$false", c.Name);
        Assert.Equal("SnapshotNotFound,PSContainers.Cmdlets.RemoveContainerSnapshotCommand", r.SingleError.FullyQualifiedErrorId);
        Assert.Empty(Directory.EnumerateDirectories(Path.Combine(c.Path, "snapshots"), ".*"));
    }

    [Fact]
    public void OverlaySnapshots_RestoreTheUpperLayer()
    {
        var c = Busybox("osnap", "overlay");
        M.Start(c.Name);
        Exec(c.Name, "echo one > /one; rm /bin/ls");
        M.Stop(c.Name, kill: true);
        S.NewSnapshot(c.Name, null);
        M.Start(c.Name);
        Exec(c.Name, "rm /one; echo two > /two; rm -rf /etc; mkdir /etc; echo fresh > /etc/motd");
        M.Stop(c.Name, kill: true);
        var diff = S.Diff(c.Name, "snap0").Select(x => x.ToString()).ToList();
        Assert.Contains("D /one", diff);
        Assert.Contains("A /two", diff);
        Assert.Contains("A /etc/motd", diff);
        Assert.Contains("D /etc/passwd", diff);
        Assert.DoesNotContain("D /bin/ls", diff); // already gone when the snapshot was taken
        // Against the lower layer, the opaque /etc hides every file below it.
        var vsLower = S.Diff(c.Name).Select(x => x.ToString()).ToList();
        Assert.Contains("D /etc/passwd", vsLower);
        Assert.Contains("A /etc/motd", vsLower);
        Assert.Contains("D /bin/ls", vsLower);
        var fromSnap = S.RestoreSnapshot(c.Name, "snap0", TestStore.NewName("ofrom"));
        Assert.Equal(c.Name, Config(fromSnap.Name).Storage.Origin);
        Assert.Equal(Config(c.Name).Storage.Lower, Config(fromSnap.Name).Storage.Lower);
        M.Start(fromSnap.Name);
        Assert.Equal("one", Exec(fromSnap.Name, "cat /one").Single());
        S.RestoreSnapshot(c.Name, "snap0");
        M.Start(c.Name);
        Assert.Equal("one", Exec(c.Name, "cat /one").Single());
        Assert.Equal("1", Exec(c.Name, "test -e /two; echo $?").Single());
        Assert.Equal("1", Exec(c.Name, "test -e /bin/ls; echo $?").Single());
        Assert.True(Exec(c.Name, "cat /etc/passwd").Length > 0);
    }

    [Fact]
    public void AViewLeftMountedByAKilledProcess_IsCleanedByTheNextCreate()
    {
        var c = Busybox("view", "overlay");
        // What a pwsh killed during Export-Container or Get-ContainerDiff leaves: a mounted view in .tmp named after a dead pid.
        var view = StorageBackends.Overlay.View(c.Path, Config(c.Name).Storage, M.Store.TempDirectory);
        var stale = Path.Combine(M.Store.TempDirectory, $"view.{int.MaxValue - 1}.{Guid.NewGuid():N}");
        Directory.CreateDirectory(stale);
        try
        {
            FsNative.Mount(view.Path, stale, "", 4096 /* MS_BIND */, "");
            Busybox("after");
            Assert.False(Directory.Exists(stale));
            Assert.DoesNotContain(File.ReadAllLines("/proc/self/mountinfo"), l => l.Contains(stale));
        }
        finally
        {
            FsNative.Unmount(stale);
            view.Dispose();
        }
        Assert.DoesNotContain(File.ReadAllLines("/proc/self/mountinfo"), l => l.Contains(M.Store.Root));
    }

    [Fact]
    public void Diff_ListsExactlyTheChangedFiles()
    {
        var c = Busybox("diff");
        var root = c.RootfsPath;
        Directory.CreateDirectory(Path.Combine(root, "data", "keep"));
        File.WriteAllText(Path.Combine(root, "data", "keep", "same"), "same");
        File.WriteAllText(Path.Combine(root, "data", "edit"), "v1");
        File.WriteAllText(Path.Combine(root, "data", "gone"), "bye");
        File.WriteAllText(Path.Combine(root, "data", "chmod"), "x");
        S.NewSnapshot(c.Name, "baseline");
        File.AppendAllText(Path.Combine(root, "data", "edit"), "+v2");
        File.Delete(Path.Combine(root, "data", "gone"));
        File.SetUnixFileMode(Path.Combine(root, "data", "chmod"), (UnixFileMode)0b111_000_000);
        Directory.CreateDirectory(Path.Combine(root, "data", "newdir"));
        File.WriteAllText(Path.Combine(root, "data", "newdir", "f"), "new");
        File.Delete(Path.Combine(root, "bin", "ls"));
        var changes = _ps.Run("Get-ContainerDiff $args[0]", c.Name).Select(o => (ContainerChange)o.BaseObject).ToList();
        Assert.Equal(new[] { "D /bin/ls", "C /data/chmod", "C /data/edit", "D /data/gone", "A /data/newdir", "A /data/newdir/f" },
            changes.Select(x => x.ToString()));
        Assert.Equal("Directory", changes.Single(x => x.Path == "/data/newdir").Type);
        Assert.All(changes, x => Assert.Equal(c.Name, x.ContainerName));
        var r = _ps.Invoke("Get-ContainerDiff $args[0]", Busybox("nosnap").Name);
        Assert.Equal("NoSnapshot,PSContainers.Cmdlets.GetContainerDiffCommand", r.SingleError.FullyQualifiedErrorId);
    }
}
