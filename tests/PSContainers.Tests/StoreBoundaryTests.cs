using System.Diagnostics;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.State;
using PSContainers.Runtime.Storage;
using PSContainers.Tests.Infrastructure;
using PSContainers.Runtime.Filesystem;

namespace PSContainers.Tests;

/// <summary>
/// Issue 11, item 3: no host user but the store's owner reaches into a container's directory. The
/// attacks are made for real by a real non-root host user (HostTestUser, setpriv), each next to a
/// control that shows the same attack works where the store does not stand in the way (this host's
/// /tmp is not nosuid/nodev): a setuid copy a privileged container's root made, and a 0666 block
/// device node an imported archive carried, pointing at a host loop device.
/// </summary>
[Collection("Containers")]
public sealed class StoreBoundaryTests : IDisposable
{
    const UnixFileMode Mode711 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
    const UnixFileMode Mode700 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    private readonly TestStore _store = new();
    private readonly HostTestUser _user = new();
    private readonly List<string> _loops = new();

    public void Dispose()
    {
        foreach (var loop in _loops) try { HostCommand.Run("losetup", "-d", loop); } catch (Exception) { }
        _user.Dispose();
        _store.Dispose();
    }

    /// <summary>A host loop device over a file that starts with a secret; its (major, minor).</summary>
    private (string Secret, int Major, int Minor) SecretLoopDevice()
    {
        var secret = "PSC-LOOP-SECRET-" + Guid.NewGuid().ToString("N");
        var image = Path.Combine(_store.Root, "secret.img");
        using (var f = new FileStream(image, FileMode.CreateNew))
        {
            f.Write(System.Text.Encoding.ASCII.GetBytes(secret));
            f.SetLength(1 << 20);
        }
        File.SetUnixFileMode(image, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var loop = HostCommand.Run("losetup", "--find", "--show", image);
        _loops.Add(loop);
        var numbers = HostCommand.Run("stat", "-c", "%t %T", loop).Split(' ').Select(h => Convert.ToInt32(h, 16)).ToArray();
        return (secret, numbers[0], numbers[1]);
    }

    [Fact]
    public void HostUser_CannotRunASetuidCopy_APrivilegedContainersRootMade()
    {
        var name = TestStore.NewName("suid");
        var c = _store.Manager.Create(name, new CreateOptions { Template = "busybox", Privileged = true });
        // An ordinary dynamically linked program in the image (the host's cat: it runs on the host as well).
        File.Copy("/usr/bin/cat", Path.Combine(c.RootfsPath, "bin", "hostcat"));
        _store.Manager.Start(name);
        var chmod = _store.Manager.Exec(name, new[] { "chmod", "4755", "/bin/hostcat" });
        Assert.True(chmod.Succeeded, string.Join("\n", chmod.Error));
        var inRootfs = Path.Combine(c.RootfsPath, "bin", "hostcat");
        Assert.True(File.GetUnixFileMode(inRootfs).HasFlag(UnixFileMode.SetUser), "the container's root made it setuid (root on the host: a privileged container)");

        // Control: the same setuid file where the user can reach it reads /etc/shadow (the attack is real here).
        var control = Path.Combine(_store.Root, "control-cat");
        File.Copy(inRootfs, control);
        File.SetUnixFileMode(control, (UnixFileMode)0b100_111_101_101);
        var works = _user.Run($"{control} /etc/shadow");
        Assert.True(works.ExitCode == 0 && works.Output.Contains("root:"), $"control failed: {works.Error}");
        File.Delete(control);

        // Through the store: the store is passable (0711), the container's directory is not.
        Assert.Equal(0, _user.Run($"test -x {_store.StorePath}").ExitCode);
        var attack = _user.Run($"{inRootfs} /etc/shadow");
        Assert.NotEqual(0, attack.ExitCode);
        Assert.DoesNotContain("root:", attack.Output);
        Assert.Contains("Permission denied", attack.Error);
        Assert.NotEqual(0, _user.Run($"ls {_store.StorePath}").ExitCode);
        Assert.Equal(Mode711, File.GetUnixFileMode(_store.StorePath));
        Assert.Equal(Mode700, File.GetUnixFileMode(c.Path));
    }

    [Fact]
    public void HostUser_CannotOpenADeviceNode_AnImportedArchiveCarried()
    {
        var (secret, major, minor) = SecretLoopDevice();
        var archive = Path.Combine(_store.Root, "dev.tar");
        using (var file = File.Create(archive))
        {
            var w = new PaxTarWriter(file);
            long now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            foreach (var dir in new[] { "rootfs", "rootfs/dev" })
                w.WriteEntry(new TarEntry { Path = dir, Type = TarEntryType.Directory, Mode = 0b111_101_101, MTimeSeconds = now }, null);
            w.WriteEntry(new TarEntry { Path = "rootfs/dev/evil", Type = TarEntryType.BlockDevice, Mode = 0b110_110_110, DevMajor = major, DevMinor = minor, MTimeSeconds = now }, null);
            w.Finish();
        }
        var imported = ContainerArchive.Import(_store.Manager, archive, TestStore.NewName("dev")).Container;
        var node = Path.Combine(imported.RootfsPath, "dev", "evil");
        Assert.Equal((UnixFileMode)0b110_110_110, File.GetUnixFileMode(node));

        // Control: the same node where the user can reach it reads the host's loop device.
        var control = Path.Combine(_store.Root, "control-dev");
        HostCommand.Run("mknod", "-m", "0666", control, "b", major.ToString(), minor.ToString());
        var works = _user.Run($"head -c {secret.Length} {control}");
        Assert.True(works.ExitCode == 0 && works.Output == secret, $"control failed: {works.Error}");
        File.Delete(control);

        var attack = _user.Run($"head -c {secret.Length} {node}");
        Assert.NotEqual(0, attack.ExitCode);
        Assert.DoesNotContain(secret, attack.Output);
        Assert.Contains("Permission denied", attack.Error);
        Assert.Equal(Mode700, File.GetUnixFileMode(imported.Path));
    }

    [Fact]
    public void ExistingStore_IsFixedOnFirstUse_WithAWarningThatSaysWhatChanged()
    {
        var name = TestStore.NewName("old");
        var c = _store.Manager.Create(name, new CreateOptions { Template = "busybox" });
        // As an older version left it: everything 0755.
        foreach (var dir in new[] { _store.StorePath, c.Path, _store.Manager.Store.TempDirectory, _store.Manager.Store.LockDirectory })
            File.SetUnixFileMode(dir, (UnixFileMode)0b111_101_101);
        Assert.Equal(0, _user.Run($"ls {c.RootfsPath}/bin/busybox").ExitCode); // reachable: the state this fixes

        using var ps = _store.OpenSession();
        var first = ps.Run("Get-Container -WarningVariable w -WarningAction SilentlyContinue | Out-Null; $w | ForEach-Object { \"$_\" }")
            .Select(o => o.ToString()).ToList();
        var warning = Assert.Single(first);
        Assert.Contains("tightened", warning);
        Assert.Contains("the store directory 0755 -> 0711", warning);
        Assert.Contains($"container directory '{name}' 0755 -> 0700", warning);
        Assert.Contains(".tmp 0755 -> 0700", warning);
        Assert.Contains(".locks 0755 -> 0700", warning);
        Assert.Equal(Mode711, File.GetUnixFileMode(_store.StorePath));
        Assert.Equal(Mode700, File.GetUnixFileMode(c.Path));
        Assert.NotEqual(0, _user.Run($"ls {c.RootfsPath}/bin/busybox").ExitCode);
        // Said once: the next use finds nothing to change.
        Assert.Empty(ps.Run("Get-Container -WarningVariable w -WarningAction SilentlyContinue | Out-Null; $w | ForEach-Object { \"$_\" }"));
    }

    [Fact]
    public void NewStore_IsMade0711_AndItsDirectories0700_AndAUserNamespacedContainerStillStarts()
    {
        var path = Path.Combine(_store.Root, "fresh");
        var manager = PSContainers.Runtime.Composition.ContainerRuntime.Open(path);
        var name = TestStore.NewName("un");
        try
        {
            var c = manager.Create(name, new CreateOptions { Template = "busybox", Unprivileged = true });
            Assert.Equal(Mode711, File.GetUnixFileMode(path));
            foreach (var dir in Directory.EnumerateDirectories(path))
                Assert.True(File.GetUnixFileMode(dir) == Mode700, $"{dir} is {File.GetUnixFileMode(dir)}");
            // The rootfs belongs to root's subordinate ids, which cannot pass the 0700 container
            // directory: start reaches it as the caller, then pivots into it.
            var started = manager.Start(name);
            Assert.Equal(ContainerStatus.Running, started.State);
            Assert.Equal("0", manager.Exec(name, new[] { "id", "-u" }).Output.Single());
            Assert.NotEqual("0", File.ReadLines($"/proc/{started.Pid}/status").First(l => l.StartsWith("Uid:")).Split('\t')[1]);
            Assert.NotEqual(0, _user.Run($"ls {c.RootfsPath}").ExitCode);
        }
        finally
        {
            foreach (var n in manager.Names().ToList()) try { manager.Remove(n, force: true); } catch (Exception) { }
            foreach (var dir in PSContainers.Runtime.Cgroups.CgroupManager.ForHost().Directories(manager.Store.CgroupParent))
                try { Directory.Delete(dir); } catch (Exception) { }
        }
    }

    [Fact]
    public void NonRootUsersOwnStore_Is0711_ItsContainers0700_AndTheyStillStart()
    {
        using var owner = new TestUser();
        var name = TestStore.NewName("nrs");
        var run = owner.Run($$"""
            $c = New-Container {{name}}
            "path=$($c.Path)"
            "rootfs=$($c.RootfsPath)"
            Start-Container {{name}} -WarningAction SilentlyContinue
            "uid=$((Invoke-ContainerCommand {{name}} -Command id,-u).Output)"
            """);
        Assert.True(run.ExitCode == 0, run.StdErr + run.StdOut);
        string Value(string key) => run.Lines.Single(l => l.StartsWith(key + "=", StringComparison.Ordinal))[(key.Length + 1)..];
        var path = Value("path");
        Assert.Equal("0", Value("uid")); // user-namespaced, running, its rootfs owned by subordinate ids
        Assert.Equal(Mode711, File.GetUnixFileMode(Path.GetDirectoryName(path)!));
        Assert.Equal(Mode700, File.GetUnixFileMode(path));
        Assert.Equal(owner.UidRange.Start, UnprivilegedContainerTests.StatOwner(Value("rootfs")).Uid);
        Assert.NotEqual(0, _user.Run($"ls {Value("rootfs")}").ExitCode);
        var end = owner.Run($"Stop-Container {name} -Kill; Remove-Container {name}");
        Assert.True(end.ExitCode == 0, end.StdErr + end.StdOut);
    }

    [Fact]
    public void CheckpointDirectory_IsMade0700_AndRestoreIgnoresTheConfigCopyInIt()
    {
        var name = TestStore.NewName("ck");
        _store.Manager.Create(name, new CreateOptions { Template = "busybox", Command = new[] { "/bin/sh", "-c", "while true; do sleep 1; done" } });
        _store.Manager.Start(name);
        var dir = Path.Combine(_store.Root, "ckpt");
        Directory.CreateDirectory(dir); // given empty, 0755 by the umask
        new PSContainers.Runtime.Checkpoint.CheckpointManager(_store.Manager).Checkpoint(name, dir, new PSContainers.Runtime.Checkpoint.CheckpointOptions());
        Assert.Equal(Mode700, File.GetUnixFileMode(dir));
        Assert.NotEqual(0, _user.Run($"ls {dir}").ExitCode);
        // A hostile edit of the checkpoint's config copy: a bind mount of a host directory.
        var hostDir = Path.Combine(_store.Root, "host-ckpt");
        Directory.CreateDirectory(hostDir);
        var copy = Path.Combine(dir, "config.yaml");
        File.WriteAllText(copy, File.ReadAllText(copy).Replace("mounts: []\n", "") + $"mounts:\n  - source: {hostDir}\n    target: /hostdir\n");
        Assert.Equal(hostDir, PSContainers.Runtime.Config.ConfigLoader.Load(copy).Mounts.Single().Source); // a valid config that would mount it
        var restored = new PSContainers.Runtime.Checkpoint.CheckpointManager(_store.Manager).Restore(dir, null, new PSContainers.Runtime.Checkpoint.RestoreOptions());
        Assert.Equal(ContainerStatus.Running, restored.State);
        var attempt = _store.Manager.Exec(name, new[] { "/bin/sh", "-c", "echo pwned > /hostdir/pwned" });
        Assert.NotEqual(0, attempt.ExitCode);
        Assert.False(File.Exists(Path.Combine(hostDir, "pwned")));
        Assert.Empty(PSContainers.Runtime.Config.ConfigLoader.Load(_store.Manager.Store.ConfigPath(name)).Mounts);
    }

    [Fact]
    public void ExportedArchive_IsItsOwnersOnly()
    {
        var name = TestStore.NewName("exp");
        _store.Manager.Create(name, new CreateOptions { Template = "busybox" });
        var archive = Path.Combine(_store.Root, "x.tar.gz");
        ContainerArchive.Export(_store.Manager, name, archive, force: false);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(archive));
        Assert.NotEqual(0, _user.Run($"head -c 1 {archive}").ExitCode);
    }
}
