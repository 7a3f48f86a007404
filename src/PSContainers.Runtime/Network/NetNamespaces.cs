using System.Text;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Launcher;
using static PSContainers.Runtime.Network.NetlinkNative;

namespace PSContainers.Runtime.Network;

/// <summary>Where a network operation happens: the host, a named namespace, a container, or a namespace file.</summary>
public sealed class NetworkLocation
{
    /// <summary>The namespace file; null = this process's own network namespace (the host).</summary>
    public string? Path { get; }
    public string Label { get; }

    private NetworkLocation(string? path, string label) { Path = path; Label = label; }

    public static NetworkLocation Host { get; } = new(null, "host");

    public static NetworkLocation ForNamespace(string name)
    {
        NetNamespaces.ValidateName(name);
        var path = NetNamespaces.PathOf(name);
        if (!File.Exists(path))
            throw new ContainerException("NetNamespaceNotFound", ContainerErrorKind.ObjectNotFound,
                $"No network namespace named '{name}' exists ({path}). Create it with New-NetNamespace, or list them with Get-NetNamespace.", name);
        return new NetworkLocation(path, "netns:" + name);
    }

    /// <summary>A container's network namespace, by its init's pid (null: it is not running).</summary>
    public static NetworkLocation ForContainer(string name, int? initPid)
    {
        if (initPid is not { } pid)
            throw new ContainerException("ContainerNotRunning", ContainerErrorKind.InvalidOperation,
                $"Container '{name}' is not running, so it has no network namespace. Start it with Start-Container.", name);
        return ForPid(pid, "container:" + name);
    }

    public static NetworkLocation ForPid(int pid, string? label = null) => new($"/proc/{pid}/ns/net", label ?? $"pid:{pid}");

    public static NetworkLocation ForPath(string path, string? label = null) => new(path, label ?? path);

    public override string ToString() => Label;
}

/// <summary>
/// Named network namespaces compatible with iproute2: a namespace is kept alive by a bind mount of
/// its nsfs file on /run/netns/&lt;name&gt; (a shared mount, so other mount namespaces see it), and
/// /etc/netns/&lt;name&gt;/ holds files bind-mounted over /etc for commands run inside.
/// </summary>
public static class NetNamespaces
{
    public const string RunDirectory = "/run/netns";
    public const string EtcDirectory = "/etc/netns";

    public static string PathOf(string name) => System.IO.Path.Combine(RunDirectory, name);

    public static void ValidateName(string name)
    {
        if (string.IsNullOrEmpty(name) || name.Contains('/') || name is "." or ".." || name.Contains('\0') || Encoding.UTF8.GetByteCount(name) > 255)
            throw new ContainerException("InvalidNetNamespaceName", ContainerErrorKind.InvalidArgument,
                $"'{name}' is not a valid network namespace name: use 1-255 bytes without '/', and not '.' or '..'.", name);
    }

    public static bool Exists(string name) => File.Exists(PathOf(name));

    /// <summary>ip netns add: a new network namespace (with its loopback up), pinned at /run/netns/name.</summary>
    public static NetNamespaceInfo Create(string name)
    {
        ValidateName(name);
        var path = PathOf(name);
        EnsureRunDirectory();
        int fd = open(path, 0x40 | 0x80 | O_CLOEXEC, 0), e0 = Errno; // O_CREAT | O_EXCL
        if (fd < 0)
        {
            if (e0 == 17)
                throw new ContainerException("NetNamespaceExists", ContainerErrorKind.ResourceExists,
                    $"A network namespace named '{name}' already exists ({path}). Choose another name or remove it with Remove-NetNamespace.", name);
            throw new ContainerException("NetNamespaceFailed", ContainerErrorKind.DeviceError, $"Cannot create {path}: {Message(e0)}.", name);
        }
        close(fd);
        try
        {
            NetNsThread.OnThread(() =>
            {
                int original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC, 0);
                if (original < 0) throw Fail(name, "open this thread's network namespace", Errno);
                try
                {
                    if (unshare(CLONE_NEWNET) < 0) throw Fail(name, "unshare a network namespace", Errno);
                    try
                    {
                        if (mount($"/proc/self/task/{gettid()}/ns/net", path, "none", MS_BIND, null) < 0)
                            throw Fail(name, $"bind-mount the namespace on {path}", Errno);
                        using var socket = NetlinkSocket.Open();
                        socket.Request(new NetlinkMessage(Rtnl.RTM_NEWLINK, Rtnl.F_REQUEST | Rtnl.F_ACK).IfInfo(1, Rtnl.IFF_UP, Rtnl.IFF_UP));
                    }
                    finally { setns(original, CLONE_NEWNET); }
                }
                finally { close(original); }
                return 0;
            });
        }
        catch
        {
            umount2(path, MNT_DETACH);
            File.Delete(path);
            throw;
        }
        return Get(name);
    }

    private static ContainerException Fail(string name, string what, int errno) =>
        new("NetNamespaceFailed", ContainerErrorKind.DeviceError, $"Cannot create network namespace '{name}': {what}: {Message(errno)}.", name);

    /// <summary>/run/netns, made a shared mount point (bind-mounted on itself first if needed), as ip does.</summary>
    private static void EnsureRunDirectory()
    {
        Directory.CreateDirectory(RunDirectory);
        if (mount("none", RunDirectory, null, MS_SHARED | MS_REC, null) == 0) return;
        if (Errno != 22 || mount(RunDirectory, RunDirectory, "none", MS_BIND | MS_REC, null) < 0 ||
            mount("none", RunDirectory, null, MS_SHARED | MS_REC, null) < 0)
            throw new ContainerException("NetNamespaceFailed", ContainerErrorKind.DeviceError,
                $"Cannot make {RunDirectory} a shared mount point: {Message(Errno)}.");
    }

    /// <summary>ip netns delete: detaches the pinning mount and removes the file. Processes inside keep it alive.</summary>
    public static void Remove(string name)
    {
        ValidateName(name);
        var path = PathOf(name);
        if (!File.Exists(path))
            throw new ContainerException("NetNamespaceNotFound", ContainerErrorKind.ObjectNotFound,
                $"No network namespace named '{name}' exists ({path}).", name);
        if (umount2(path, MNT_DETACH) < 0 && Errno != 22)
            throw new ContainerException("NetNamespaceBusy", ContainerErrorKind.ResourceBusy, $"Cannot unmount {path}: {Message(Errno)}.", name);
        File.Delete(path);
    }

    public static IEnumerable<string> Names() =>
        Directory.Exists(RunDirectory) ? Directory.EnumerateFiles(RunDirectory).Select(System.IO.Path.GetFileName).Order(StringComparer.Ordinal)! : Enumerable.Empty<string>()!;

    public static NetNamespaceInfo Get(string name)
    {
        ValidateName(name);
        var path = PathOf(name);
        var inode = Inode(path) ?? throw new ContainerException("NetNamespaceNotFound", ContainerErrorKind.ObjectNotFound,
            $"No network namespace named '{name}' exists ({path}).", name);
        return new NetNamespaceInfo { Name = name, Path = path, Inode = inode, Pids = PidsIn(inode).ToArray() };
    }

    public static IEnumerable<NetNamespaceInfo> List()
    {
        foreach (var name in Names())
        {
            var inode = Inode(PathOf(name));
            if (inode is null || inode == 0) continue; // a stale file, not a namespace
            yield return Get(name);
        }
    }

    /// <summary>The inode of a namespace file: nsfs files of the same namespace share it.</summary>
    public static unsafe ulong? Inode(string path)
    {
        Tmds.Linux.stat st;
        var bytes = Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = bytes)
            if (Tmds.Linux.LibC.stat(p, &st) < 0) return null;
        return (ulong)st.st_ino;
    }

    /// <summary>The inode of a process's network namespace (net:[inode]); null when the process is gone.</summary>
    public static ulong? InodeOfPid(int pid)
    {
        try
        {
            var target = new FileInfo($"/proc/{pid}/ns/net").LinkTarget;
            if (target is null || !target.StartsWith("net:[", StringComparison.Ordinal)) return null;
            return ulong.Parse(target[5..^1], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return null; }
    }

    /// <summary>ip netns pids: processes whose network namespace is this one.</summary>
    public static IEnumerable<int> PidsIn(ulong inode)
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(System.IO.Path.GetFileName(dir), out var pid)) continue;
            if (InodeOfPid(pid) == inode) yield return pid;
        }
    }

    /// <summary>ip netns identify: the named namespace a process is in, or null.</summary>
    public static string? Identify(int pid)
    {
        var inode = InodeOfPid(pid) ?? throw new ContainerException("ProcessNotFound", ContainerErrorKind.ObjectNotFound,
            $"No process {pid} exists (or its namespaces cannot be read).", pid);
        return Names().FirstOrDefault(n => Inode(PathOf(n)) == inode);
    }

    /// <summary>ip netns exec: runs a program in the namespace with /etc/netns/name/* over /etc and a fresh /sys.</summary>
    public static HelperResult Exec(string name, IReadOnlyList<string> command, CancellationToken cancellationToken = default)
    {
        ValidateName(name);
        if (command.Count == 0 || string.IsNullOrEmpty(command[0]))
            throw new ContainerException("NoCommand", ContainerErrorKind.InvalidArgument, "Give the program to run, e.g. -Command ip,addr or -Command ping,-c1,10.0.0.2.", name);
        var path = PathOf(name);
        if (!File.Exists(path))
            throw new ContainerException("NetNamespaceNotFound", ContainerErrorKind.ObjectNotFound,
                $"No network namespace named '{name}' exists ({path}). Create it with New-NetNamespace.", name);
        var spec = new NetNsExecSpec { NetNsPath = path };
        var etc = System.IO.Path.Combine(EtcDirectory, name);
        if (Directory.Exists(etc)) spec.EtcDirectory = etc;
        spec.Command.AddRange(command);
        spec.Environment.AddRange(Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
            .Select(e => $"{e.Key}={e.Value}").Where(s => !s.Contains('\0')));
        var result = PscHelper.Run(spec, cancellationToken);
        if (result.ExitCode == 125 && result.Error.Any(l => l.StartsWith("psc-helper:", StringComparison.Ordinal)))
            throw new ContainerException("NetNamespaceExecFailed", ContainerErrorKind.InvalidOperation,
                $"Could not run in network namespace '{name}': {string.Join(" ", result.Error).Replace("psc-helper: ", "")}", name);
        return result;
    }
}
