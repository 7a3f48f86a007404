using PSContainers.Runtime.Backends;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.State;
using PSContainers.Runtime.UserNamespaces;
using static Tmds.Linux.LibC;

namespace PSContainers.Runtime.Files;

/// <summary>Which way a copy goes.</summary>
public enum CopyDirection { ToContainer, FromContainer }

/// <summary>What Copy-ContainerItem was asked for.</summary>
public sealed record FileCopyOptions
{
    public bool Recurse { get; init; }
    /// <summary>Replace existing files and links (directories are merged either way).</summary>
    public bool Force { get; init; }
    /// <summary>Into a container: the owner as the container sees it (default 0, its root).</summary>
    public uint? Owner { get; init; }
    /// <summary>Into a container: the group as the container sees it (default 0).</summary>
    public uint? Group { get; init; }
    /// <summary>Into a container: the permission bits of the files written (directories keep their source's).</summary>
    public UnixFileMode? Mode { get; init; }
}

/// <summary>One file, directory or link a copy wrote.</summary>
public sealed record ContainerFileItem
{
    public required string Container { get; init; }
    public required CopyDirection Direction { get; init; }
    /// <summary>Where it was written: a path inside the container, or a host path.</summary>
    public required string FullName { get; init; }
    public string Name => Path.GetFileName(FullName.TrimEnd('/')) is { Length: > 0 } n ? n : "/";
    public required string Source { get; init; }
    /// <summary>File, Directory or SymbolicLink.</summary>
    public required string Type { get; init; }
    public long Length { get; init; }
    public UnixFileMode Mode { get; init; }
    /// <summary>The owner as the side written to sees it (container ids into a container).</summary>
    public uint Owner { get; init; }
    public uint Group { get; init; }
    public DateTimeOffset LastWriteTime { get; init; }
}

/// <summary>How far a copy is (for Write-Progress).</summary>
public sealed record FileCopyProgress(long FilesDone, long FilesTotal, long BytesDone, long BytesTotal, string Current);

/// <summary>
/// Copies files and trees into and out of a container (incus file push/pull, podman cp,
/// Copy-VMFile), running or stopped.
///
/// Where the files are reached: a running container through its init's root (/proc/PID/root),
/// so the copy sees what its processes see, mounts inside included (a tmpfs or a bind-mounted
/// volume at the destination is written, not the rootfs below it); a stopped one through its
/// rootfs (an overlay container's layers mounted for the copy and unmounted after), under its
/// lock so that it does not start meanwhile. Either way every path inside the container goes
/// through <see cref="InRoot"/>: resolved as if the container's root were "/", links to "/etc/shadow"
/// or "../../.." land inside it, and each created entry is made relative to its parent's descriptor
/// without following a link, so a link the container swaps in during the copy redirects nothing.
/// Host files written by a copy out are created the same way below the destination.
/// </summary>
public sealed unsafe class ContainerFiles(IContainerLifecycle lifecycle)
{
    /// <summary>
    /// The container's ids on its rootfs: as the container sees them when its rootfs is idmapped
    /// (storage.ids idmapped), otherwise shifted through its id map (also every container made
    /// before idmapped mounts).
    /// </summary>
    public static IdView IdsOf(ContainerConfig config) =>
        new(config.IdMap, config.Storage.IsIdmapped ? RootfsIdStorage.Idmapped : RootfsIdStorage.Shifted);

    /// <summary>Copies host paths into the container; returns what was written.</summary>
    public IReadOnlyList<ContainerFileItem> CopyIn(string name, IReadOnlyList<string> hostPaths, string destination, FileCopyOptions options,
        IProgress<FileCopyProgress>? progress = null, Action<string>? warn = null, CancellationToken ct = default)
    {
        if (!destination.StartsWith('/'))
            throw new ContainerException("PathNotAbsolute", ContainerErrorKind.InvalidArgument,
                $"The destination '{destination}' in container '{name}' must be an absolute path (e.g. /root or /etc/app.conf).", destination);
        using var root = OpenContainerRoot(name, write: true, out var ids);
        var (uid, gid) = (Disk(ids, IdMapKind.Uid, options.Owner ?? 0, name), Disk(ids, IdMapKind.Gid, options.Group ?? 0, name));
        var sources = hostPaths.Select(p => Path.GetFullPath(p)).ToList();
        var (rootUid, rootGid) = ids.Root;
        var copier = new Copier(root.Root, CopyDirection.ToContainer, name, options, progress, warn, ct)
        {
            Chown = (fd, isLink, dir, entry) => Owner(fd, isLink, dir, entry, uid, gid, root.Root),
            ChownParent = fd => Owner(fd, false, -1, "", rootUid, rootGid, root.Root),
            CreateAs = root.Running && ids.Map is not null ? () => CreatingAs(rootUid, rootGid) : null,
            ViewIds = (u, g) => (ids.ToContainer(IdMapKind.Uid, u) ?? 65534, ids.ToContainer(IdMapKind.Gid, g) ?? 65534),
            ModeOf = (mode, type) => (uint)(type == Ft.IFREG && options.Mode is { } m ? (uint)m & 0xFFF : mode & 0xFFF),
        };
        var sourceRoot = InRoot.Open("/", "host");
        try { return copier.Run(sourceRoot, sources, destination); }
        finally { sourceRoot.Dispose(); }
    }

    /// <summary>Copies paths of the container to the host; the files are the caller's, with the container's permission bits (set-id bits dropped).</summary>
    public IReadOnlyList<ContainerFileItem> CopyOut(string name, IReadOnlyList<string> containerPaths, string hostDestination, FileCopyOptions options,
        IProgress<FileCopyProgress>? progress = null, Action<string>? warn = null, CancellationToken ct = default)
    {
        foreach (var p in containerPaths)
            if (!p.StartsWith('/'))
                throw new ContainerException("PathNotAbsolute", ContainerErrorKind.InvalidArgument,
                    $"The path '{p}' in container '{name}' must be absolute (e.g. /etc/os-release).", p);
        using var root = OpenContainerRoot(name, write: false, out _);
        var destination = Path.GetFullPath(hostDestination);
        var hostRoot = InRoot.Open("/", "host");
        var copier = new Copier(hostRoot, CopyDirection.FromContainer, name, options, progress, warn, ct)
        {
            Chown = (_, _, _, _) => { },
            ViewIds = (u, g) => (u, g),
            // A container's set-id programs must not become the host's.
            ModeOf = (mode, type) => mode & 0x3FF & (type == Ft.IFDIR ? 0x3FFu : 0x1FFu),
        };
        try { return copier.Run(root.Root, containerPaths, destination); }
        finally { hostRoot.Dispose(); }
    }

    private static uint Disk(IdView ids, IdMapKind kind, uint id, string name) =>
        ids.ToDisk(kind, id) ?? throw new ContainerException("IdNotMapped", ContainerErrorKind.InvalidArgument,
            $"Container '{name}' has no {(kind == IdMapKind.Uid ? "uid" : "gid")} {id}: its id map ({ids.Map}) does not cover it. Give an id inside the map.", name);

    private static void Owner(int fd, bool isLink, int dir, string entry, uint uid, uint gid, InRoot root)
    {
        int rc;
        var empty = stackalloc byte[1] { 0 };
        if (isLink)
            fixed (byte* e = FsNative.Z(entry)) rc = fchownat(dir, e, uid, gid, AT_SYMLINK_NOFOLLOW);
        else rc = fchownat(fd, empty, uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW); // an O_PATH descriptor too
        if (rc != 0) throw FsNative.Error("set the owner of", root.Show(entry), FsNative.Errno, "Copying into a container sets its owners: run as root, or as the user whose subordinate ids the container uses.");
    }

    // Without SetLastError: restoring the ids must not replace the errno of the creation it wrapped.
    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern int setfsuid(uint fsuid);
    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern int setfsgid(uint fsgid);

    /// <summary>
    /// A running user-namespaced container's own mounts (a tmpfs it mounted) take new files only from
    /// ids mapped in its namespace (else EOVERFLOW): this thread creates them as the container's root
    /// (fsuid/fsgid, this thread only; the whole copy runs on one thread), and is itself again after
    /// each creation (its file capabilities come back with fsuid 0), before the owner is set.
    /// </summary>
    private static IDisposable CreatingAs(uint uid, uint gid)
    {
        var oldGid = (uint)setfsgid(gid);
        var oldUid = (uint)setfsuid(uid);
        return new Restore(() => { setfsuid(oldUid); setfsgid(oldGid); });
    }

    private sealed class Restore(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }

    /// <summary>The container's root as a descriptor, with what was mounted to reach it; see the class remarks.</summary>
    private OpenedRoot OpenContainerRoot(string name, bool write, out IdView ids)
    {
        ContainerNames.Validate(name);
        var store = lifecycle.Store;
        var @lock = store.Lock(name);
        try
        {
            if (!store.Exists(name))
                throw new ContainerException("ContainerNotFound", ContainerErrorKind.ObjectNotFound,
                    $"No container named '{name}' exists. Get-Container lists the containers of this store.", name);
            lifecycle.RecoverLocked(name);
            var config = ConfigLoader.Load(store.ConfigPath(name));
            ids = IdsOf(config);
            var run = lifecycle.Inspect(name);
            if (run.Status is ContainerStatus.Running or ContainerStatus.Frozen && run.State.InitPid is { } pid)
            {
                // Its init's root, checked to be that init after the open (a pid reused meanwhile is not it).
                var root = InRoot.Open($"/proc/{pid}/root", $"{name}");
                if (Native.Sys.ProcessStartTime(pid) != run.State.InitStartTime)
                {
                    root.Dispose();
                    throw new ContainerException("ContainerNotRunning", ContainerErrorKind.InvalidOperation,
                        $"Container '{name}' stopped while its files were being opened; try again.", name);
                }
                ids = ids.ThroughContainerMounts();
                @lock.Dispose();
                return new OpenedRoot(root, null, null) { Running = true };
            }
            if (run.Status is not (ContainerStatus.Stopped or ContainerStatus.Saved))
                throw new ContainerException("ContainerBusy", ContainerErrorKind.ResourceBusy,
                    $"Container '{name}' is {run.Status}; copy files once it is running or stopped.", name);
            var dir = store.ContainerDirectory(name);
            if (config.Storage.Backend == "overlay" && config.Rootfs is null)
            {
                var (mountPoint, unmount) = MountOverlay(store, dir, config.Storage, write);
                try { return new OpenedRoot(InRoot.Open(mountPoint, name), unmount, @lock); }
                catch { unmount(); throw; }
            }
            return new OpenedRoot(InRoot.Open(lifecycle.RootfsOf(name, config), name), null, @lock);
        }
        catch
        {
            @lock.Dispose();
            throw;
        }
    }

    /// <summary>A stopped overlay container's merged tree, mounted privately for the copy (read-write only when writing).</summary>
    private static (string MountPoint, Action Unmount) MountOverlay(ContainerStore store, string dir, StorageConfig storage, bool write)
    {
        var lowers = OverlayBackend.Lowers(storage, dir);
        Directory.CreateDirectory(store.TempDirectory);
        var target = Path.Combine(store.TempDirectory, $"files.{Environment.ProcessId}.{Guid.NewGuid():N}");
        Directory.CreateDirectory(target);
        var upper = Path.Combine(dir, "overlay", "upper");
        var work = Path.Combine(dir, "overlay", "work");
        try
        {
            if (write)
                FsNative.Mount("overlay", target, "overlay", 0, $"lowerdir={OverlayBackend.LowerDirOption(lowers)},upperdir={Escape(upper)},workdir={Escape(work)}");
            else
                FsNative.Mount("overlay", target, "overlay", 1 /* MS_RDONLY */, $"lowerdir={OverlayBackend.LowerDirOption(new[] { upper }.Concat(lowers))}");
        }
        catch
        {
            Directory.Delete(target);
            throw;
        }
        return (target, () =>
        {
            FsNative.Unmount(target);
            try { Directory.Delete(target); } catch (IOException) { }
        });
    }

    // overlay's option parser splits on ',' and ':' unless escaped with a backslash.
    private static string Escape(string path) => path.Replace("\\", "\\\\").Replace(",", "\\,").Replace(":", "\\:");

    private sealed class OpenedRoot(InRoot root, Action? unmount, ContainerLock? held) : IDisposable
    {
        public InRoot Root => root;
        public bool Running { get; init; }
        public void Dispose()
        {
            root.Dispose();
            unmount?.Invoke();
            held?.Dispose();
        }
    }
}
