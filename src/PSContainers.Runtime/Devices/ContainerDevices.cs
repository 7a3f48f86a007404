using System.Globalization;
using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.Launcher;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.State;
using Tmds.Linux;

namespace PSContainers.Runtime.Devices;

/// <summary>A device node given to a container (Add-ContainerDevice) or taken from it (Remove-ContainerDevice).</summary>
public sealed record ContainerDevice
{
    public required string Container { get; init; }
    /// <summary>The node on the host.</summary>
    public required string Path { get; init; }
    /// <summary>Where the container sees it.</summary>
    public required string Destination { get; init; }
    /// <summary>Char or Block.</summary>
    public required string Type { get; init; }
    public int Major { get; init; }
    public int Minor { get; init; }
    /// <summary>The device-cgroup rule that allows (or, after a removal, denies) it: "c 10:200 rw".</summary>
    public required string Rule { get; init; }
    /// <summary>Changed in the running container now.</summary>
    public bool Live { get; init; }
    /// <summary>Recorded in config.yaml (a bind mount of the node plus its limits.devices rule), so every start has it.</summary>
    public bool Persisted { get; init; }
}

/// <summary>
/// Device nodes into and out of containers (lxc-device add/del). Live: the node is bind-mounted from
/// the host into the running container's /dev by psc-helper (a user-namespaced container's root
/// cannot mknod, and a bind of the host's node is what the start path gives every container for
/// /dev/null and the rest), and allowed in its device cgroup (v1 devices.allow, v2 the eBPF program);
/// a removal denies it again and takes the node out. Persisted: the same two things in config.yaml,
/// as a mounts: entry and a limits.devices rule, which the start path already applies.
/// </summary>
public sealed unsafe class ContainerDevices(IContainerLifecycle manager)
{
    /// <summary>Access a device gets: read and write (no mknod: the node is bound, not made).</summary>
    public const DeviceAccess Access = DeviceAccess.Read | DeviceAccess.Write;

    /// <summary>The node's type and numbers; refuses what is not a device node, and one the caller cannot open.</summary>
    public (char Type, int Major, int Minor) Inspect(string path)
    {
        CheckPath(path, "Path");
        stat st;
        int rc;
        fixed (byte* p = FsNative.Z(path)) rc = LibC.stat(p, &st);
        if (rc != 0)
            throw new ContainerException("DeviceNotFound", ContainerErrorKind.ObjectNotFound,
                $"The device node '{path}' does not exist on the host ({Native.Sys.ErrnoMessage(FsNative.Errno)}). ls -l /dev lists the nodes.", path);
        var kind = (uint)st.st_mode & (uint)LibC.S_IFMT;
        if (kind != (uint)LibC.S_IFCHR && kind != (uint)LibC.S_IFBLK)
            throw new ContainerException("NotADeviceNode", ContainerErrorKind.InvalidArgument,
                $"'{path}' is not a device node (a character or block special file); only those can be added with Add-ContainerDevice. Use a bind mount (mounts: in config.yaml) for files and directories.", path);
        int a;
        fixed (byte* p = FsNative.Z(path)) a = LibC.access(p, LibC.R_OK | LibC.W_OK);
        if (a != 0)
            throw new ContainerException("DeviceAccessDenied", ContainerErrorKind.PermissionDenied,
                $"You cannot read and write the device '{path}' on the host, so it cannot be given to a container. Run as a user who can (ls -l {path} shows its owner and group).", path);
        var rdev = (ulong)st.st_rdev;
        var major = (int)(((rdev >> 8) & 0xfff) | ((rdev >> 32) & ~0xfffUL));
        var minor = (int)((rdev & 0xff) | ((rdev >> 12) & ~0xffUL));
        return (kind == (uint)LibC.S_IFCHR ? 'c' : 'b', major, minor);
    }

    /// <summary>Absolute, no "." or ".." components, no NUL.</summary>
    private static void CheckPath(string path, string what)
    {
        if (string.IsNullOrEmpty(path) || path[0] != '/' || path.Contains('\0')
            || path.Split('/', StringSplitOptions.RemoveEmptyEntries).Any(p => p is "." or ".."))
            throw new ContainerException("InvalidDevicePath", ContainerErrorKind.InvalidArgument,
                $"Invalid device {what} '{path}': give an absolute path without '.' or '..' components, like /dev/ttyUSB0.", path);
    }

    /// <summary>The destination inside the container: below /dev (not /dev itself, nor the container's own devpts and shm).</summary>
    public static string DestinationFor(string path, string? destination)
    {
        var d = destination ?? path;
        CheckPath(d, "destination");
        var normal = "/" + string.Join('/', d.Split('/', StringSplitOptions.RemoveEmptyEntries));
        var parts = normal.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length < 2 || parts[0] != "dev" || parts[1] is "pts" or "shm" or "console" or "ptmx")
            throw new ContainerException("DeviceDestinationOutsideDev", ContainerErrorKind.InvalidArgument,
                $"The device destination '{d}' must be a file below /dev in the container (not /dev/pts, /dev/shm, /dev/console or /dev/ptmx, which the container's start makes); give -Destination /dev/NAME.", d);
        return normal;
    }

    /// <summary>
    /// The node a container gets bound. A privileged container gets the host's node itself. A
    /// user-namespaced one would see the host's node owned by ids it does not map (root:disk is
    /// nobody:nogroup inside), so even its root could not open it: it gets a copy of the node, made
    /// in its store directory (devices/) with the same numbers and mode, owned by the host's owner and
    /// group shifted through its id map, as Incus does. The copy serves the running container only:
    /// config.yaml records the host's node, which the start path binds from inside the container's
    /// user namespace, where the store's private directories cannot be reached (so a persisted node
    /// of a user-namespaced container opens at the next start only where its host mode lets the
    /// container's ids open it, such as /dev/net/tun or /dev/fuse; Add-ContainerDevice without
    /// -Persist after the start gives any node).
    /// </summary>
    private string NodeFor(string name, ContainerConfig config, string path, string dest, (char Type, int Major, int Minor) n)
    {
        if (config.IdMap is not { } map) return path;
        stat st;
        int rc;
        fixed (byte* p = FsNative.Z(path)) rc = LibC.stat(p, &st);
        if (rc != 0) throw FsNative.Error("stat", path, FsNative.Errno);
        var dir = System.IO.Path.Combine(manager.Store.ContainerDirectory(name), "devices");
        Directory.CreateDirectory(dir);
        File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
        var node = CopyPath(name, dest);
        var uid = map.ToHost(UserNamespaces.IdMapKind.Uid, (uint)st.st_uid) ?? map.RootUid;
        var gid = map.ToHost(UserNamespaces.IdMapKind.Gid, (uint)st.st_gid) ?? map.RootGid;
        var tmp = node + ".new";
        File.Delete(tmp);
        fixed (byte* p = FsNative.Z(tmp))
        {
            if (LibC.mknod(p, (mode_t)((uint)st.st_mode & ((uint)LibC.S_IFMT | 0x1ffu)), st.st_rdev) != 0) throw FsNative.Error("mknod", tmp, FsNative.Errno);
            if (LibC.chown(p, uid, gid) != 0 || LibC.chmod(p, (mode_t)((uint)st.st_mode & 0xfffu)) != 0)
            {
                var e = FsNative.Errno;
                File.Delete(tmp);
                throw FsNative.Error("chown", tmp, e);
            }
        }
        File.Move(tmp, node, overwrite: true);
        return node;
    }

    /// <summary>Where the copy of a user-namespaced container's node for <paramref name="dest"/> lives.</summary>
    private string CopyPath(string name, string dest) =>
        System.IO.Path.Combine(manager.Store.ContainerDirectory(name), "devices", dest.TrimStart('/').Replace('/', '_'));

    private static DeviceRule Rule(bool allow, (char Type, int Major, int Minor) n) => new(allow, n.Type, n.Major, n.Minor, allow ? Access : DeviceAccess.All);

    /// <summary>Gives a device node to a container: live when it runs, in config.yaml with <paramref name="persist"/> (required when it is stopped).</summary>
    public ContainerDevice Add(string name, string path, string? destination, bool persist)
    {
        ContainerNames.Validate(name);
        var node = Inspect(path);
        var dest = DestinationFor(path, destination);
        using var _ = manager.Store.Lock(name);
        var info = manager.Get(name);
        var running = info.State is ContainerStatus.Running or ContainerStatus.Frozen && info.Pid is not null && info.CgroupPath is not null;
        if (!running && !persist)
            throw NotRunning(name, "add a device to");
        var allow = Rule(true, node);
        var config = ConfigLoader.Load(manager.Store.ConfigPath(name));
        var bound = NodeFor(name, config, path, dest, node);
        string? yaml = null;
        if (persist)
        {
            if (!config.Mounts.Any(m => m.Target == dest && m.Source == path))
            {
                if (config.Mounts.Any(m => m.Target == dest))
                    throw new ContainerException("DeviceDestinationInUse", ContainerErrorKind.ResourceExists,
                        $"config.yaml of container '{name}' already mounts something else on '{dest}'. Remove that mount (Remove-ContainerDevice or Set-ContainerConfig) or choose another -Destination.", dest);
                config.Mounts.Add(new MountConfig { Source = path, Target = dest });
            }
            if (!config.Limits.Devices.Contains(allow)) config.Limits.Devices.Add(allow);
            ConfigLoader.Validate(config);
            yaml = ConfigLoader.Serialize(config);
        }
        if (running)
        {
            var cgroup = info.CgroupPath!;
            manager.Cgroups.ApplyContainerLimits(cgroup, new CgroupLimits { Devices = { allow } });
            try { RunHelper(name, info.Pid!.Value, bound, dest); }
            catch
            {
                try { manager.Cgroups.ApplyContainerLimits(cgroup, new CgroupLimits { Devices = { Rule(false, node) } }); }
                catch (ContainerException) { /* the helper's error is what matters */ }
                if (bound != path) File.Delete(bound);
                throw;
            }
        }
        if (yaml is not null) AtomicFile.WriteAllText(manager.Store.ConfigPath(name), yaml);
        var result = Result(name, path, dest, node, allow, running, persist);
        manager.Emit(name, ContainerEventKind.DeviceAdded, Details(result));
        return result;
    }

    /// <summary>
    /// Takes a device node out of a container: unmounted and removed from its /dev and denied in its
    /// device cgroup when it runs; with <paramref name="persist"/> also out of config.yaml.
    /// </summary>
    public ContainerDevice Remove(string name, string path, string? destination, bool persist)
    {
        ContainerNames.Validate(name);
        CheckPath(path, "Path");
        var dest = DestinationFor(path, destination);
        using var _ = manager.Store.Lock(name);
        var info = manager.Get(name);
        var running = info.State is ContainerStatus.Running or ContainerStatus.Frozen && info.Pid is not null && info.CgroupPath is not null;
        if (!running && !persist) throw NotRunning(name, "remove a device from");
        // The numbers come from the host's node; once it is gone, from the rule config.yaml recorded.
        var config = ConfigLoader.Load(manager.Store.ConfigPath(name));
        (char Type, int Major, int Minor) node;
        if (File.Exists(path) || Directory.Exists(path) || new FileInfo(path).LinkTarget is not null) node = Inspect(path);
        else
        {
            var recorded = config.Mounts.Any(m => m.Target == dest && m.Source == path)
                ? config.Limits.Devices.LastOrDefault(r => r.Allow && r.Major is not null && r.Minor is not null && r.Access == Access) : null;
            node = recorded is null
                ? throw new ContainerException("DeviceNotFound", ContainerErrorKind.ObjectNotFound,
                    $"The device node '{path}' does not exist on the host, and container '{name}' has no record of it in config.yaml.", path)
                : (recorded.Type, recorded.Major!.Value, recorded.Minor!.Value);
        }
        var allow = Rule(true, node);
        string? yaml = null;
        if (persist)
        {
            var removedMount = config.Mounts.RemoveAll(m => m.Target == dest && m.Source == path);
            var removedRule = config.Limits.Devices.RemoveAll(r => r == allow);
            if (removedMount == 0 && removedRule == 0 && !running)
                throw new ContainerException("DeviceNotInContainer", ContainerErrorKind.ObjectNotFound,
                    $"Container '{name}' has no device '{path}' at '{dest}' in its config.yaml (mounts: and limits.devices). Get-ContainerConfig -Name {name} shows them.", path);
            ConfigLoader.Validate(config);
            yaml = ConfigLoader.Serialize(config);
        }
        var deny = Rule(false, node);
        if (running)
        {
            manager.Cgroups.ApplyContainerLimits(info.CgroupPath!, new CgroupLimits { Devices = { deny } });
            RunHelper(name, info.Pid!.Value, null, dest);
        }
        if (yaml is not null) AtomicFile.WriteAllText(manager.Store.ConfigPath(name), yaml);
        // The copy served only the running container.
        if (running && File.Exists(CopyPath(name, dest))) File.Delete(CopyPath(name, dest));
        var result = Result(name, path, dest, node, deny, running, persist);
        manager.Emit(name, ContainerEventKind.DeviceRemoved, Details(result));
        return result;
    }

    private static ContainerException NotRunning(string name, string verb) =>
        new("ContainerNotRunning", ContainerErrorKind.InvalidOperation,
            $"Cannot {verb} container '{name}': it is not running. Use -Persist to record the change in its config.yaml for the next start.", name);

    private static ContainerDevice Result(string name, string path, string dest, (char Type, int Major, int Minor) n, DeviceRule rule, bool live, bool persisted) => new()
    {
        Container = name, Path = path, Destination = dest, Type = n.Type == 'c' ? "Char" : "Block",
        Major = n.Major, Minor = n.Minor, Rule = rule.ToString(), Live = live, Persisted = persisted,
    };

    private static (string, string)[] Details(ContainerDevice d) => new[]
    {
        ("path", d.Path), ("destination", d.Destination), ("rule", d.Rule.Replace(' ', '_')),
        ("live", d.Live ? "true" : "false"), ("persisted", d.Persisted ? "true" : "false"),
    };

    private static void RunHelper(string name, int pid, string? source, string destination)
    {
        var spec = new DeviceSpec { TargetPid = pid, SourceNode = source, TargetPath = destination };
        var result = PscHelper.Run(spec);
        if (result.ExitCode != 0)
            throw new ContainerException("DeviceMountFailed", ContainerErrorKind.InvalidOperation,
                $"Could not {(source is null ? "take" : "put")} '{destination}' {(source is null ? "out of" : "into")} container '{name}': " +
                string.Join(" ", result.Error).Replace("psc-helper: ", "", StringComparison.Ordinal).Trim(), name);
    }
}
