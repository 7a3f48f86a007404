using PSContainers.Runtime.State;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.Launcher;

namespace PSContainers.Runtime.Backends;

/// <summary>A read-only view of a root filesystem as a host path; disposing it undoes what made it visible.</summary>
public sealed class RootfsView : IDisposable
{
    private readonly Action? _dispose;
    public string Path { get; }
    public RootfsView(string path, Action? dispose = null) { Path = path; _dispose = dispose; }
    public void Dispose() => _dispose?.Invoke();
}

/// <summary>
/// How a container's root filesystem is stored. Every method works on a container directory laid
/// out as the backend wants (always with a rootfs/ that the container sees as /); callers build in
/// the store's .tmp and rename into place, so a backend never has to undo a half-made container
/// beyond deleting its directory (<see cref="FsNative.DeleteTree"/> also removes btrfs subvolumes).
/// </summary>
public interface IStorageBackend
{
    string Name { get; }
    /// <summary>Makes an empty rootfs for a new container being built in <paramref name="containerDir"/>
    /// (which is renamed to <paramref name="finalDir"/> when complete); returns the directory to fill.</summary>
    string CreateRootfs(string containerDir, string finalDir, StorageConfig storage);
    /// <summary>Saves the current state of the (stopped) container's rootfs in <paramref name="snapshotDir"/>.</summary>
    void Snapshot(string containerDir, StorageConfig storage, string snapshotDir, CancellationToken ct, UserNamespaces.IdMap? idMap = null);
    /// <summary>Makes <paramref name="stagingDir"/> (inside the container directory) hold the rootfs state
    /// saved in <paramref name="snapshotDir"/>, as the parts <see cref="SwapIn"/> puts in place.</summary>
    void StageRestore(string snapshotDir, StorageConfig storage, string stagingDir, CancellationToken ct, UserNamespaces.IdMap? idMap = null);
    /// <summary>The parts of the container directory a restore replaces (rootfs, or overlay/upper).</summary>
    IReadOnlyList<string> RestoredParts { get; }
    /// <summary>A read-only host view of the stopped container's root filesystem.</summary>
    RootfsView View(string containerDir, StorageConfig storage, string scratchDirectory);
    /// <summary>A read-only host view of a snapshot's root filesystem.</summary>
    RootfsView SnapshotView(string snapshotDir, StorageConfig storage, string scratchDirectory);
    /// <summary>What the helper mounts on the rootfs inside the new mount namespace at start.</summary>
    IEnumerable<MountEntry> RootMounts(string containerDir, StorageConfig storage);
    /// <summary>
    /// A rootfs in idmapped mode (storage.ids idmapped): what the helper idmaps onto the container's
    /// user namespace at start instead of the root mounts (psc-helper idmap.c). dir and btrfs: the
    /// rootfs itself; overlay: each layer, the overlay made over them.
    /// </summary>
    void IdmappedRoot(StartSpec spec, string containerDir, StorageConfig storage) => spec.IdmappedRoot = true;
}

public static class StorageBackends
{
    /// <summary>Snapshot clones: the containers of the store whose lower layer is <paramref name="name"/>'s rootfs.</summary>
    public static IReadOnlyList<string> DependentClones(ContainerStore store, string name)
    {
        var result = new List<string>();
        // Every other container's config, on each removal: parsed once and then served from the cache (a stat each).
        foreach (var other in store.ListNames())
        {
            if (other == name) continue;
            try { if (ConfigCache.Load(store.ConfigPath(other)).Storage.Origin == name) result.Add(other); }
            catch (ContainerException) { }
        }
        return result;
    }

    /// <summary>Remove-Container's check: a container whose rootfs is a clone's lower layer stays unless -Force.</summary>
    public static void CheckNoDependentClones(ContainerStore store, string name, bool force)
    {
        var clones = DependentClones(store, name);
        if (clones.Count > 0 && !force)
            throw new ContainerException("ContainerHasClones", ContainerErrorKind.InvalidOperation,
                $"Container '{name}' is the base of the snapshot clones {string.Join(", ", clones)}: removing it would break them. " +
                "Remove those clones first, or use -Force (they will not start any more).", name);
    }

    public static readonly IStorageBackend Dir = new DirBackend();
    public static readonly IStorageBackend Overlay = new OverlayBackend();
    public static readonly IStorageBackend Btrfs = new BtrfsBackend();

    public static IReadOnlyList<string> Names { get; } = new[] { "dir", "overlay", "btrfs" };

    /// <summary>
    /// A read-only host view of a stopped container's root filesystem: its -RootfsPath tree, or the
    /// one its backend makes (overlay: its layers mounted until the view is disposed).
    /// </summary>
    public static RootfsView View(ContainerStore store, string name, ContainerConfig config) =>
        config.Rootfs is not null ? new RootfsView(config.Rootfs)
            : Get(config.Storage.Backend).View(store.ContainerDirectory(name), config.Storage, store.TempDirectory);

    public static IStorageBackend Get(string? name) => name switch
    {
        null or "dir" => Dir,
        "overlay" => Overlay,
        "btrfs" => Btrfs,
        _ => throw new ContainerException("UnknownBackend", ContainerErrorKind.InvalidArgument,
            $"Unknown storage backend '{name}'. Use one of: {string.Join(", ", Names)}.", name),
    };

    /// <summary>The backend for a new container when none is asked for: btrfs on a btrfs store, else dir.</summary>
    public static string DefaultFor(string storeRoot)
    {
        try { return FsNative.FilesystemType(storeRoot) == FsNative.BtrfsMagic ? "btrfs" : "dir"; }
        catch (ContainerException) { return "dir"; }
    }

    /// <summary>Refuses a backend the store's filesystem cannot hold, before anything is made.</summary>
    public static void CheckUsable(string name, string storeRoot)
    {
        if (name == "btrfs" && FsNative.FilesystemType(storeRoot) != FsNative.BtrfsMagic)
            throw new ContainerException("BackendUnavailable", ContainerErrorKind.InvalidOperation,
                $"The btrfs backend needs the store on a btrfs filesystem, but {storeRoot} is not on btrfs. " +
                "Use -Backend dir or overlay, or a store (-StorePath) on btrfs.", name);
        if (name == "overlay" && !File.ReadAllText("/proc/filesystems").Contains("\toverlay\n"))
            throw new ContainerException("BackendUnavailable", ContainerErrorKind.NotInstalled,
                "The overlay backend needs the kernel's overlay filesystem (modprobe overlay).", name);
    }

    internal static string Rootfs(string containerDir) => Path.Combine(containerDir, "rootfs");
}

/// <summary>dir: the rootfs is a plain directory; copies share extents where the filesystem can (FICLONE).</summary>
internal sealed class DirBackend : IStorageBackend
{
    public string Name => "dir";
    public IReadOnlyList<string> RestoredParts { get; } = new[] { "rootfs" };

    public string CreateRootfs(string containerDir, string finalDir, StorageConfig storage)
    {
        var rootfs = StorageBackends.Rootfs(containerDir);
        Directory.CreateDirectory(rootfs);
        return rootfs;
    }

    public void Snapshot(string containerDir, StorageConfig storage, string snapshotDir, CancellationToken ct, UserNamespaces.IdMap? idMap = null) =>
        UserNamespaces.RootfsIds.Copy(StorageBackends.Rootfs(containerDir), Path.Combine(snapshotDir, "rootfs"), idMap, storage.IsIdmapped, ct);

    public void StageRestore(string snapshotDir, StorageConfig storage, string stagingDir, CancellationToken ct, UserNamespaces.IdMap? idMap = null) =>
        UserNamespaces.RootfsIds.Copy(Path.Combine(snapshotDir, "rootfs"), Path.Combine(stagingDir, "rootfs"), idMap, storage.IsIdmapped, ct);

    public RootfsView View(string containerDir, StorageConfig storage, string scratchDirectory) => new(StorageBackends.Rootfs(containerDir));

    public RootfsView SnapshotView(string snapshotDir, StorageConfig storage, string scratchDirectory) => new(Path.Combine(snapshotDir, "rootfs"));

    public IEnumerable<MountEntry> RootMounts(string containerDir, StorageConfig storage) => Array.Empty<MountEntry>();
}

/// <summary>btrfs: the rootfs is a subvolume; snapshots and snapshot clones are btrfs snapshots.</summary>
internal sealed class BtrfsBackend : IStorageBackend
{
    public string Name => "btrfs";
    public IReadOnlyList<string> RestoredParts { get; } = new[] { "rootfs" };

    public string CreateRootfs(string containerDir, string finalDir, StorageConfig storage)
    {
        var rootfs = StorageBackends.Rootfs(containerDir);
        FsNative.BtrfsCreateSubvolume(rootfs);
        return rootfs;
    }

    public void Snapshot(string containerDir, StorageConfig storage, string snapshotDir, CancellationToken ct, UserNamespaces.IdMap? idMap = null) =>
        FsNative.BtrfsSnapshot(StorageBackends.Rootfs(containerDir), Path.Combine(snapshotDir, "rootfs"), readOnly: true);

    public void StageRestore(string snapshotDir, StorageConfig storage, string stagingDir, CancellationToken ct, UserNamespaces.IdMap? idMap = null) =>
        FsNative.BtrfsSnapshot(Path.Combine(snapshotDir, "rootfs"), Path.Combine(stagingDir, "rootfs"), readOnly: false);

    public RootfsView View(string containerDir, StorageConfig storage, string scratchDirectory) => new(StorageBackends.Rootfs(containerDir));

    public RootfsView SnapshotView(string snapshotDir, StorageConfig storage, string scratchDirectory) => new(Path.Combine(snapshotDir, "rootfs"));

    public IEnumerable<MountEntry> RootMounts(string containerDir, StorageConfig storage) => Array.Empty<MountEntry>();
}

/// <summary>
/// overlay: a read-only lower layer (storage.lower: the container's own overlay/lower, or another
/// container's rootfs for a snapshot clone) and overlay/upper + overlay/work in the container
/// directory. The overlay is mounted on rootfs/ only inside the container's mount namespace (the
/// helper's root mounts), so the host never holds it; host-side views are short read-only mounts.
/// </summary>
internal sealed class OverlayBackend : IStorageBackend
{
    public string Name => "overlay";
    public IReadOnlyList<string> RestoredParts { get; } = new[] { "overlay/upper", "overlay/work" };

    internal static string Upper(string containerDir) => Path.Combine(containerDir, "overlay", "upper");
    internal static string Work(string containerDir) => Path.Combine(containerDir, "overlay", "work");
    internal static string OwnLower(string containerDir) => Path.Combine(containerDir, "overlay", "lower");

    /// <summary>Makes rootfs/ (the mount point), overlay/upper and overlay/work.</summary>
    internal static void CreateLayers(string containerDir)
    {
        Directory.CreateDirectory(StorageBackends.Rootfs(containerDir));
        Directory.CreateDirectory(Upper(containerDir));
        Directory.CreateDirectory(Work(containerDir));
        File.SetUnixFileMode(Upper(containerDir), (UnixFileMode)0b111_101_101);
    }

    public string CreateRootfs(string containerDir, string finalDir, StorageConfig storage)
    {
        CreateLayers(containerDir);
        var lower = OwnLower(containerDir);
        Directory.CreateDirectory(lower);
        storage.Lower = OwnLower(finalDir);
        return lower;
    }

    /// <summary>
    /// The read-only layers under the container's upper layer, topmost first: an image's shared
    /// layers (storage.layers), or the one lower layer (storage.lower).
    /// </summary>
    internal static IReadOnlyList<string> Lowers(StorageConfig storage, string containerDir) =>
        storage.Layers is { Count: > 0 } layers ? layers
        : storage.Lower is { } lower ? new[] { lower }
        : throw new ContainerException("OverlayLowerMissing", ContainerErrorKind.InvalidData,
            $"The overlay container in {containerDir} has no storage.lower in its config. Add the lower layer's path to config.yaml.", containerDir);

    /// <summary>The most lower layers one overlay takes here: psc-helper passes at most 64 (ovl-lower) to an idmapped overlay.</summary>
    public const int MaxLowers = 64;

    /// <summary>
    /// Refuses a stack of lower layers the kernel would not mount: more than <see cref="MaxLowers"/>,
    /// or a lowerdir= option (with the upper layer of a read-only view on top) longer than the one
    /// page mount(2) takes.
    /// </summary>
    public static void CheckStack(IReadOnlyList<string> lowers, string containerDir, string what)
    {
        var option = LowerDirOption(new[] { Upper(containerDir) }.Concat(lowers));
        if (lowers.Count > MaxLowers || option.Length + "lowerdir=,upperdir=,workdir=".Length + Upper(containerDir).Length + Work(containerDir).Length > 4000)
            throw new ContainerException("OverlayTooManyLayers", ContainerErrorKind.InvalidArgument,
                $"{what} has {lowers.Count} layers: an overlay of them would exceed the kernel's limits (at most {MaxLowers} layers, and their paths in one 4 KiB mount option). " +
                "Use -Backend dir or btrfs, which apply the layers into one tree, or a store with a shorter path.", containerDir);
    }

    /// <summary>overlayfs's lowerdir= value: the layers, topmost first, escaped and joined by ':'.</summary>
    internal static string LowerDirOption(IEnumerable<string> layers) => string.Join(':', layers.Select(Escape));

    static IReadOnlyList<string> ExistingLowers(StorageConfig storage, string containerDir)
    {
        var lowers = Lowers(storage, containerDir);
        foreach (var lower in lowers)
            if (!Directory.Exists(lower))
                throw new ContainerException("OverlayLowerMissing", ContainerErrorKind.ObjectNotFound,
                    storage.Layers is { Count: > 0 }
                        ? $"The image layer {lower} of this overlay container is gone from the store's shared layers. The container cannot start; remove it and make it again from its image."
                        : $"The lower layer {lower} of this overlay container is gone (was the container it was cloned from removed with -Force?). " +
                          "The container cannot start; remove it.", containerDir);
        return lowers;
    }

    public void Snapshot(string containerDir, StorageConfig storage, string snapshotDir, CancellationToken ct, UserNamespaces.IdMap? idMap = null) =>
        TreeCopier.Copy(Upper(containerDir), Path.Combine(snapshotDir, "upper"), ct);

    public void StageRestore(string snapshotDir, StorageConfig storage, string stagingDir, CancellationToken ct, UserNamespaces.IdMap? idMap = null)
    {
        TreeCopier.Copy(Path.Combine(snapshotDir, "upper"), Path.Combine(stagingDir, "overlay", "upper"), ct);
        Directory.CreateDirectory(Path.Combine(stagingDir, "overlay", "work"));
    }

    public RootfsView View(string containerDir, StorageConfig storage, string scratchDirectory) =>
        MountView(new[] { Upper(containerDir) }.Concat(Lowers(storage, containerDir)).ToList(), scratchDirectory);

    public RootfsView SnapshotView(string snapshotDir, StorageConfig storage, string scratchDirectory) =>
        MountView(new[] { Path.Combine(snapshotDir, "upper") }.Concat(Lowers(storage, snapshotDir)).ToList(), scratchDirectory);

    /// <summary>
    /// The merged tree as a read-only overlay of lower layers only (upper above the lowers, no upper
    /// dir of its own): whiteouts and opaque directories are honoured by the kernel, nothing can be
    /// written, and the work dir of a running container is never touched. Unmounted on dispose.
    /// One layer alone is itself the tree.
    /// </summary>
    public static RootfsView MountView(IReadOnlyList<string> layers, string scratchDirectory)
    {
        if (layers.Count == 1) return new RootfsView(layers[0]);
        Directory.CreateDirectory(scratchDirectory);
        var target = Path.Combine(scratchDirectory, $"view.{Environment.ProcessId}.{Guid.NewGuid():N}");
        Directory.CreateDirectory(target);
        try
        {
            FsNative.Mount("overlay", target, "overlay", 1 /* MS_RDONLY */, $"lowerdir={LowerDirOption(layers)}");
        }
        catch
        {
            Directory.Delete(target);
            throw;
        }
        return new RootfsView(target, () =>
        {
            FsNative.Unmount(target);
            try { Directory.Delete(target); } catch (IOException) { }
        });
    }

    // overlay's option parser splits on ',' and ':' unless escaped with a backslash.
    internal static string Escape(string path) => path.Replace("\\", "\\\\").Replace(",", "\\,").Replace(":", "\\:");

    public void IdmappedRoot(StartSpec spec, string containerDir, StorageConfig storage)
    {
        spec.IdmappedRoot = true;
        // Each layer is idmapped on its own (a detached clone): a shared layer is never chowned.
        spec.OverlayLowers.AddRange(ExistingLowers(storage, containerDir));
        spec.OverlayDirectory = Path.Combine(containerDir, "overlay");
    }

    public IEnumerable<MountEntry> RootMounts(string containerDir, StorageConfig storage)
    {
        var lowers = ExistingLowers(storage, containerDir);
        yield return new MountEntry("overlay", "", "overlay", MountFlags.None,
            $"lowerdir={LowerDirOption(lowers)},upperdir={Escape(Upper(containerDir))},workdir={Escape(Work(containerDir))}");
    }
}
