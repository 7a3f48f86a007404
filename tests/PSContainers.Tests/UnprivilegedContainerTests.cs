using System.Net;
using System.Net.Sockets;
using PSContainers.Runtime.Containers;
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
        // The rootfs was built by root and handed to the container's root: host uid = start.
        Assert.Equal(start, StatOwner(created.RootfsPath).Uid);
        Assert.Equal(start, StatOwner(Path.Combine(created.RootfsPath, "bin", "busybox")).Uid);
        Assert.Equal(start, StatOwner(Path.Combine(created.RootfsPath, "etc", "shadow")).Gid);
        Assert.Equal(0b110_000_000u, StatOwner(Path.Combine(created.RootfsPath, "etc", "shadow")).Mode);
        Assert.Contains($"u 0 {start} 65536", File.ReadAllText(created.ConfigPath));

        var started = (ContainerInfo)_ps.Run("Start-Container $args[0] -PassThru", name).Single().BaseObject;
        var status = File.ReadAllLines($"/proc/{started.Pid}/status");
        Assert.Contains(status, l => l.StartsWith("Uid:") && l.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1] == start.ToString());
        Assert.Equal($"0 {start} 65536", File.ReadAllText($"/proc/{started.Pid}/uid_map").Split(' ', StringSplitOptions.RemoveEmptyEntries) is var f ? string.Join(' ', f).Trim() : "");
        Assert.Equal(["0"], Exec(_ps, name, "id", "-u").Output);
        Assert.Equal(["0"], Exec(_ps, name, "id", "-g").Output);
        // Files the container makes belong to its root on the host, i.e. the mapped uid.
        Assert.Equal(0, Exec(_ps, name, "touch", "/root/made-inside").ExitCode);
        Assert.Equal(start, StatOwner(Path.Combine(created.RootfsPath, "root", "made-inside")).Uid);
        // Its own proc, sysfs and devices work in the user namespace.
        Assert.Equal(["1"], Exec(_ps, name, "sh", "-c", "echo $$ > /dev/null; cat /proc/1/stat | cut -d' ' -f1").Output);
        Assert.Equal(0, Exec(_ps, name, "ls", "/sys/class/net/lo").ExitCode);
        _ps.Run("Stop-Container $args[0] -Kill; Remove-Container $args[0]", name);
        Assert.False(Directory.Exists(created.Path));
    }

    internal static (uint Uid, uint Gid, uint Mode) StatOwner(string path)
    {
        var text = HostCommand.Run("stat", "-c", "%u %g %a", path).Split(' ');
        return (uint.Parse(text[0]), uint.Parse(text[1]), Convert.ToUInt32(text[2], 8));
    }
}
