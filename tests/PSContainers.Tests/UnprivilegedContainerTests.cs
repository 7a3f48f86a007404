using System.Net;
using System.Net.Sockets;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.IdMapping;
using PSContainers.Runtime.UserNamespaces;
using PSContainers.Tests.Infrastructure;
using Tmds.Linux;

namespace PSContainers.Tests;

/// <summary>
/// Root's user-namespaced containers (New-Container -Unprivileged, idMap in config.yaml): real user
/// namespaces whose root is an unprivileged host uid, rootfs ownership shifted into the range, pasta
/// networking to the host's loopback, and what such a container's root cannot do that a privileged
/// one's can.
/// </summary>
[Collection("Containers")]
public sealed class UnprivilegedContainerTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly ModuleSession _ps;

    public UnprivilegedContainerTests()
    {
        try { _ps = _store.OpenSession(); }
        catch { _store.Dispose(); throw; }
    }

    public void Dispose()
    {
        _ps.Dispose();
        _store.Dispose();
    }

    /// <summary>A range of host ids no one else uses: root writes its maps directly, so it needs no /etc/subuid line.</summary>
    private static uint TestRangeStart() => 1_500_000_000u + (uint)Random.Shared.Next(0, 4000) * 65536u;

    private string ConfigWithIdMap(uint start, string extra = "")
    {
        var path = Path.Combine(_store.Root, $"cfg-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, $"idMap: [u 0 {start} 65536, g 0 {start} 65536]\n{extra}");
        return path;
    }

    private static ContainerCommandResult Exec(ModuleSession ps, string name, params string[] command) =>
        (ContainerCommandResult)ps.Run("Invoke-ContainerCommand $args[0] -Command $args[1]", name, command).Single().BaseObject;


    [Fact]
    public void RootUnprivilegedContainer_RunsAsMappedIds_AndRootInsideIsZero()
    {
        var name = TestStore.NewName("uns");
        var start = TestRangeStart();
        var created = (ContainerInfo)_ps.Run("New-Container $args[0] -ConfigPath $args[1]", name, ConfigWithIdMap(start)).Single().BaseObject;
        // The rootfs was built by root and kept with the container's own ids (0), shown to the
        // container through an idmapped mount: nothing was chowned into the range.
        Assert.Equal("idmapped", PSContainers.Runtime.Config.ConfigLoader.Load(created.ConfigPath).Storage.Ids);
        Assert.Equal(0u, StatOwner(created.RootfsPath).Uid);
        Assert.Equal(0u, StatOwner(Path.Combine(created.RootfsPath, "bin", "busybox")).Uid);
        Assert.Equal(0u, StatOwner(Path.Combine(created.RootfsPath, "etc", "shadow")).Gid);
        Assert.Equal(0b110_000_000u, StatOwner(Path.Combine(created.RootfsPath, "etc", "shadow")).Mode);
        Assert.Contains($"u 0 {start} 65536", File.ReadAllText(created.ConfigPath));

        var started = (ContainerInfo)_ps.Run("Start-Container $args[0] -PassThru", name).Single().BaseObject;
        var status = File.ReadAllLines($"/proc/{started.Pid}/status");
        Assert.Contains(status, l => l.StartsWith("Uid:") && l.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1] == start.ToString());
        Assert.Equal($"0 {start} 65536", File.ReadAllText($"/proc/{started.Pid}/uid_map").Split(' ', StringSplitOptions.RemoveEmptyEntries) is var f ? string.Join(' ', f).Trim() : "");
        Assert.Equal(["0"], Exec(_ps, name, "id", "-u").Output);
        Assert.Equal(["0"], Exec(_ps, name, "id", "-g").Output);
        // Files the container makes are stored with the ids it sees (its root's are 0 on disk).
        Assert.Equal(0, Exec(_ps, name, "touch", "/root/made-inside").ExitCode);
        Assert.Equal(0u, StatOwner(Path.Combine(created.RootfsPath, "root", "made-inside")).Uid);
        // Its own proc, sysfs and devices work in the user namespace.
        Assert.Equal(["1"], Exec(_ps, name, "sh", "-c", "echo $$ > /dev/null; cat /proc/1/stat | cut -d' ' -f1").Output);
        Assert.Equal(0, Exec(_ps, name, "ls", "/sys/class/net/lo").ExitCode);
        _ps.Run("Stop-Container $args[0] -Kill; Remove-Container $args[0]", name);
        Assert.False(Directory.Exists(created.Path));
    }

    [Fact]
    public void RootWithoutARange_Unprivileged_AllocatesTheLowestFreeRange_AndStartsOnIt()
    {
        // The allocation goes to copies of /etc/subuid and /etc/subgid (ContainerManager.SubordinateIds):
        // the real files stay as they are, while the start uses the range for real (root writes its maps itself).
        using var dir = new TempDir();
        var ids = SubordinateIdPaths.InDirectory(dir.Path);
        var window = TestRangeStart();
        // Someone else holds the first range of the window: root must get the next one.
        File.WriteAllText(ids.SubUid, $"psct-other:{window}:65536\n");
        File.WriteAllText(ids.SubGid, $"psct-other:{window}:65536\n");
        File.WriteAllText(ids.LoginDefs, $"SUB_UID_MIN {window}\nSUB_UID_MAX {window + 4 * 65536}\nSUB_GID_MIN {window}\nSUB_GID_MAX {window + 4 * 65536}\n");
        // Other programs may change the real files meanwhile; root's own lines there must not.
        string RootsRealRanges() => string.Join(",", new SubordinateIdDatabase().GetRanges("root", 0, SubordinateIdDatabase.BothKinds));
        var realRanges = RootsRealRanges();
        var manager = PSContainers.Runtime.Composition.ContainerRuntime.Open(new PSContainers.Runtime.State.ContainerStore(_store.StorePath));
        manager.SubordinateIds = new SubordinateIdDatabase(ids);
        var warnings = new List<string>();
        manager.Warning += warnings.Add;
        var expected = window + 65536;

        var name = TestStore.NewName("alloc");
        var created = manager.Create(name, new CreateOptions { Unprivileged = true });
        Assert.Equal($"psct-other:{window}:65536\nroot:{expected}:65536\n", File.ReadAllText(ids.SubUid));
        Assert.Equal($"psct-other:{window}:65536\nroot:{expected}:65536\n", File.ReadAllText(ids.SubGid));
        Assert.Contains(warnings, w => w.StartsWith("Root had no subordinate id range; allocated", StringComparison.Ordinal) && w.Contains(ids.SubUid));
        Assert.Equal(IdMap.ForRanges(expected, expected).ToString(), PSContainers.Runtime.Config.ConfigLoader.Load(created.ConfigPath).IdMap!.ToString());
        Assert.Equal(0u, StatOwner(created.RootfsPath).Uid); // idmapped: kept with the container's ids

        var started = manager.Start(name);
        Assert.Equal($"0 {expected} 65536", string.Join(' ', File.ReadAllText($"/proc/{started.Pid}/uid_map").Split(' ', StringSplitOptions.RemoveEmptyEntries)).Trim());
        Assert.Equal($"0 {expected} 65536", string.Join(' ', File.ReadAllText($"/proc/{started.Pid}/gid_map").Split(' ', StringSplitOptions.RemoveEmptyEntries)).Trim());
        Assert.Equal(["0"], Exec(_ps, name, "id", "-u").Output);

        // The next one reuses root's range: no second allocation, no warning.
        warnings.Clear();
        var second = manager.Create(TestStore.NewName("alloc"), new CreateOptions { Unprivileged = true });
        Assert.Empty(warnings);
        Assert.Equal(IdMap.ForRanges(expected, expected).ToString(), PSContainers.Runtime.Config.ConfigLoader.Load(second.ConfigPath).IdMap!.ToString());
        Assert.Equal(2, File.ReadAllLines(ids.SubUid).Length);

        manager.Stop(name, kill: true);
        Assert.Equal(realRanges, RootsRealRanges());
    }

    [Fact]
    public void Pasta_ReachesAListenerOnTheHostLoopback_AndForwardsAHostPortIn()
    {
        var name = TestStore.NewName("pasta");
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var hostPort = ((IPEndPoint)listener.LocalEndpoint).Port;
        int forwarded;
        using (var probe = new TcpListener(IPAddress.Loopback, 0)) { probe.Start(); forwarded = ((IPEndPoint)probe.LocalEndpoint).Port; }
        var config = ConfigWithIdMap(TestRangeStart(), $"network:\n  - type: pasta\n    ports: [\"{forwarded}:8080\"]\n    hostPorts: [{hostPort}]\n");
        _ps.Run("New-Container $args[0] -ConfigPath $args[1] | Start-Container", name, config);
        var info = (ContainerInfo)_ps.Run("Get-Container $args[0]", name).Single().BaseObject;
        var pastaPid = int.Parse(File.ReadAllText(Path.Combine(info.Path, "pasta.pid")).Trim());
        Assert.True(Directory.Exists($"/proc/{pastaPid}"));
        Assert.Contains(Exec(_ps, name, "cat", "/sys/class/net/eth0/operstate").Output, l => l is "up" or "unknown");

        // Container -> host loopback (pasta -T): the container's connection to its own 127.0.0.1
        // arrives at the listener on the host's.
        // (busybox nc exits when the other end closes: the host side reads one line and closes.)
        var received = Task.Run(() =>
        {
            using var client = listener.AcceptTcpClient();
            return new StreamReader(client.GetStream()).ReadLine();
        });
        var sent = Exec(_ps, name, "sh", "-c", $"echo hello-host | nc 127.0.0.1 {hostPort}");
        Assert.True(received.Wait(TimeSpan.FromSeconds(10)), "no connection reached the host listener: " + string.Join(" ", sent.Error));
        Assert.Equal("hello-host", received.Result);

        // Host loopback -> container (pasta -t): a listener inside answers a local connection.
        Exec(_ps, name, "sh", "-c", "echo hello-container | nc -l -p 8080 >/dev/null 2>&1 &");
        string? line = null;
        for (var i = 0; i < 50 && line is null; i++)
        {
            try
            {
                using var c = new TcpClient();
                c.Connect(IPAddress.Loopback, forwarded);
                line = new StreamReader(c.GetStream()).ReadLine();
            }
            catch (Exception ex) when (ex is SocketException or IOException) { }
            if (string.IsNullOrEmpty(line)) { line = null; Thread.Sleep(100); }
        }
        Assert.Equal("hello-container", line);

        _ps.Run("Stop-Container $args[0] -Kill", name);
        Assert.False(File.Exists(Path.Combine(info.Path, "pasta.pid")));
        Assert.Null(PSContainers.Runtime.Native.Sys.ProcessStartTime(pastaPid)); // gone (or a zombie awaiting its reaper)
        Assert.False(File.Exists(Path.Combine(info.Path, "pasta.netns")));
    }

    [Fact]
    public void UnprivilegedRoot_CannotDoWhatPrivilegedRootCan()
    {
        // A host file only host root may read, bind-mounted into both kinds of container.
        var secret = Path.Combine(_store.Root, "root-only-secret");
        File.WriteAllText(secret, "host secret\n");
        File.SetUnixFileMode(secret, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var mount = $"mounts: [{{ source: {secret}, target: /secret }}]\n";
        var privileged = TestStore.NewName("priv");
        var privilegedConfig = Path.Combine(_store.Root, "priv.yaml");
        File.WriteAllText(privilegedConfig, mount);
        var unprivileged = TestStore.NewName("unpriv");
        _ps.Run("New-Container $args[0] -ConfigPath $args[1] -Privileged | Start-Container", privileged, privilegedConfig);
        _ps.Run("New-Container $args[0] -ConfigPath $args[1] | Start-Container", unprivileged, ConfigWithIdMap(TestRangeStart(), mount));

        Assert.Equal(["host secret"], Exec(_ps, privileged, "cat", "/secret").Output);
        var denied = Exec(_ps, unprivileged, "cat", "/secret");
        Assert.NotEqual(0, denied.ExitCode);
        Assert.Contains("Permission denied", string.Join(" ", denied.Error));
        // Its root holds no capability on the host: no device nodes, no block device mounts.
        var mknod = Exec(_ps, unprivileged, "mknod", "/tmp/disk", "b", "7", "0");
        Assert.NotEqual(0, mknod.ExitCode);
        Assert.Contains("Operation not permitted", string.Join(" ", mknod.Error));
        var mountProc = Exec(_ps, unprivileged, "mount", "-t", "ext4", "/dev/null", "/mnt");
        Assert.NotEqual(0, mountProc.ExitCode);
    }

    internal static (uint Uid, uint Gid, uint Mode) StatOwner(string path)
    {
        var text = HostCommand.Run("stat", "-c", "%u %g %a", path).Split(' ');
        return (uint.Parse(text[0]), uint.Parse(text[1]), Convert.ToUInt32(text[2], 8));
    }
}
