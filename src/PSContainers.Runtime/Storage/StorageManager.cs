using System.Text.Json;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Native;
using PSContainers.Runtime.State;
using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.Backends;
using PSContainers.Runtime.UserNamespaces;

namespace PSContainers.Runtime.Storage;

/// <summary>A saved state of a container's root filesystem (lxc-snapshot).</summary>
public sealed class ContainerSnapshot
{
    public string ContainerName { get; init; } = "";
    /// <summary>snap0, snap1, ...</summary>
    public string Name { get; init; } = "";
    public string? Comment { get; init; }
    public DateTimeOffset Created { get; init; }
    public string Backend { get; init; } = "dir";
    public string Path { get; init; } = "";
}

public enum ChangeKind { Added, Changed, Deleted }

/// <summary>One line of docker diff: a path inside the container and how it differs.</summary>
public sealed class ContainerChange
{
    public string ContainerName { get; init; } = "";
    public ChangeKind Kind { get; init; }
    /// <summary>Absolute path inside the container.</summary>
    public string Path { get; init; } = "";
    /// <summary>File, Directory, SymbolicLink, CharacterDevice, BlockDevice, Fifo, Socket.</summary>
    public string Type { get; init; } = "";
    public override string ToString() => $"{Kind.ToString()[0]} {Path}";
}

public sealed class CopyOptions
{
    /// <summary>Copy-on-write clone (lxc-copy -s) instead of a full copy.</summary>
    public bool Snapshot { get; set; }
    /// <summary>Destroyed when it stops; it is started right away (lxc-copy -e).</summary>
    public bool Ephemeral { get; set; }
    /// <summary>Told when the copy is not what was asked for in every respect (a snapshot clone made as a full copy).</summary>
    public Action<string>? Warning { get; set; }
}

/// <summary>
/// Copies (lxc-copy), snapshots (lxc-snapshot) and diffs (docker diff) of container root
/// filesystems. Like Create and Remove, every operation builds under a temporary name and renames
/// into place, or deletes what it made: a failure leaves the store as it was.
/// </summary>
public sealed class StorageManager
{
    public IContainerLifecycle Manager { get; }
    private ContainerStore Store => Manager.Store;

    public StorageManager(IContainerLifecycle manager) => Manager = manager;

    const string SnapshotMeta = "snapshot.json";
    static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true };

    // ---- shared -----------------------------------------------------------------------------------

    private IdRanges.IsolatedIdRanges Ranges => new(Store, Manager.SubordinateIds);

    private ContainerConfig LoadConfig(string name) => ConfigLoader.Load(Store.ConfigPath(name));

    private static ContainerConfig CloneConfig(ContainerConfig config) => ConfigLoader.Parse(ConfigLoader.Serialize(config), "config");

    /// <summary>Under the container's lock: first finishes an interrupted run of another command (see ContainerManager.RecoverLocked).</summary>
    private void RequireStopped(string name, string what)
    {
        Manager.RecoverLocked(name);
        var status = Manager.Get(name).State;
        if (status != ContainerStatus.Stopped)
            throw new ContainerException("ContainerNotStopped", ContainerErrorKind.InvalidOperation,
                $"Cannot {what} container '{name}' while it is {status.ToString().ToLowerInvariant()}: its files may be changing. Stop it first with Stop-Container.", name);
    }

    private void RequireExists(string name)
    {
        ContainerNames.Validate(name);
        if (!Store.Exists(name))
            throw new ContainerException("ContainerNotFound", ContainerErrorKind.ObjectNotFound,
                $"No container named '{name}' exists in {Store.Root}. Get-Container lists the containers of this store.", name);
    }

    private void RequireNew(string name)
    {
        ContainerNames.Validate(name);
        if (Store.Exists(name) || Directory.Exists(Store.ContainerDirectory(name)))
            throw new ContainerException("ContainerExists", ContainerErrorKind.ResourceExists,
                $"A container named '{name}' already exists in {Store.Root}. Choose another name, or remove it first with Remove-Container.", name);
    }

    /// <summary>Two container locks, always taken in the same order so two copies cannot deadlock.</summary>
    private IDisposable LockBoth(string a, string b)
    {
        var (first, second) = string.CompareOrdinal(a, b) <= 0 ? (a, b) : (b, a);
        var l1 = Store.Lock(first);
        try { return new Both(l1, Store.Lock(second)); }
        catch { l1.Dispose(); throw; }
    }

    private sealed class Both(IDisposable a, IDisposable b) : IDisposable
    {
        public void Dispose() { b.Dispose(); a.Dispose(); }
    }

    private string NewTemp(string name)
    {
        Manager.CleanStaleTemp();
        return Store.NewTempDirectory(name);
    }

    /// <summary>Writes config and a fresh state into <paramref name="temp"/> and renames it into the store.</summary>
    private ContainerInfo Commit(string temp, string name, ContainerConfig config)
    {
        File.WriteAllText(Path.Combine(temp, "config.yaml"), ConfigLoader.Serialize(config));
        new PersistedState { Created = DateTimeOffset.Now }.Save(Path.Combine(temp, "state.json"));
        Directory.Move(temp, Store.ContainerDirectory(name));
        return Manager.Get(name);
    }

    /// <summary>The container that owns the lower layer a clone of <paramref name="name"/> would share.</summary>
    private string? LowerOwner(string name, ContainerConfig config) =>
        config.Storage.Lower == OverlayBackend.OwnLower(Store.ContainerDirectory(name)) ? name : config.Storage.Origin;

    /// <summary>
    /// Destroys an ephemeral container that has run and stopped: what lxc-start's monitor does when an
    /// ephemeral container ends (the supervisor here is C and cannot remove a store entry). An explicit
    /// step of the commands (Stop-Container after its stop, Get-Container before it reports), never a
    /// side effect of reading a container. True when it was removed.
    /// </summary>
    public bool ReapEphemeral(string name)
    {
        try
        {
            if (!ConfigCache.Load(Store.ConfigPath(name)).Storage.Ephemeral) return false;
            var (state, status) = Manager.Inspect(name);
            if (state.StartedAt is null || status != ContainerStatus.Stopped) return false;
            // A run only root may end (its supervisor outlived init): left to root.
            if (state.SupervisorPid is not null && !Host.HostContext.Current.IsRoot) return false;
            Manager.Remove(name, force: true);
            return true;
        }
        catch (Exception ex) when (ex is ContainerException or IOException or JsonException or InvalidDataException)
        {
            return false;
        }
    }

    // ---- copy -------------------------------------------------------------------------------------

    /// <summary>
    /// A copy must not share its original's link-layer identity (lxc-copy does the same): a fixed MAC
    /// becomes a template with the same vendor prefix, filled per container at start, and an explicit
    /// veth host-end name is dropped so a per-container one is generated.
    /// </summary>
    internal static void NewNetworkIdentity(ContainerConfig clone)
    {
        foreach (var nic in clone.Network)
        {
            if (nic.HwAddress is { } mac && !mac.Contains('x', StringComparison.OrdinalIgnoreCase) && mac.Length == 17)
                nic.HwAddress = mac[..9] + "xx:xx:xx";
            nic.HostName = null;
        }
    }

    /// <summary>lxc-copy: a full copy, or (Snapshot) a copy-on-write clone; fixes up the hostname and MACs.</summary>
    public ContainerInfo Copy(string source, string newName, CopyOptions options, CancellationToken ct = default)
    {
        RequireExists(source);
        ContainerNames.Validate(newName);
        ContainerInfo info;
        using (LockBoth(source, newName))
        {
            RequireExists(source);
            RequireNew(newName);
            RequireStopped(source, options.Snapshot ? "snapshot-clone" : "copy");
            var config = LoadConfig(source);
            var backend = StorageBackends.Get(config.Storage.Backend);
            var sourceDir = Store.ContainerDirectory(source);
            var finalDir = Store.ContainerDirectory(newName);
            var clone = CloneConfig(config);
            clone.Rootfs = null;
            // The copy's tree holds what the source's holds: its mode (storage.ids) goes with it. A
            // copy of an idmapped tree walks nothing for ids (a btrfs or overlay clone is O(1)).
            clone.Storage = new StorageConfig { Ephemeral = options.Ephemeral, Ids = config.Rootfs is null ? config.Storage.Ids : null };
            if (clone.Hostname == source) clone.Hostname = null;
            NewNetworkIdentity(clone);
            // An isolated container's copy gets a block of its own: with an idmapped tree that is
            // only a new map (the tree holds container ids); a shifted tree holds the source's block.
            var allocated = false;
            if (clone.IdMapIsolated && clone.IdMap is not null)
            {
                if (!config.Storage.IsIdmapped)
                    throw new ContainerException("IsolatedCopyShifted", ContainerErrorKind.InvalidOperation,
                        $"Container '{source}' is isolated (idMapIsolated) and its rootfs is shifted into its own host id block ({config.IdMap}), which a copy must not share. " +
                        $"Export it (Export-Container) and import the archive under the new name: the import gives it a block of its own.", source);
                clone.IdMap = Ranges.Allocate(newName, out allocated).Map;
            }
            var temp = NewTemp(newName);
            try
            {
                string readLayer, writeRoot;
                // An idmapped container's clone is an overlay of idmapped layers (or a btrfs snapshot).
                // A shifted one's root mounts are made in its user namespace, where an overlay over
                // host-made layers cannot create its work directory (the kernel refuses files for the
                // unmapped host root: EOVERFLOW): its snapshot clone is a full copy, with the same ids.
                var snapshot = options.Snapshot && !(config.IdMap is not null && !config.Storage.IsIdmapped && backend.Name != "btrfs");
                if (options.Snapshot && !snapshot)
                    options.Warning?.Invoke($"Container '{source}' is user-namespaced with a shifted rootfs: its clone '{newName}' is a full copy, not a copy-on-write overlay (an overlay over its layers cannot be mounted in its user namespace without idmapped layers).");
                if (snapshot)
                {
                    if (backend.Name == "btrfs" && config.Rootfs is null)
                    {
                        // An independent subvolume sharing every extent: the source can go at any time.
                        FsNative.BtrfsSnapshot(StorageBackends.Rootfs(sourceDir), StorageBackends.Rootfs(temp), readOnly: false);
                        clone.Storage.Backend = "btrfs";
                        readLayer = writeRoot = StorageBackends.Rootfs(temp);
                    }
                    else if (backend.Name == "overlay")
                    {
                        // Share the source's lower layer; copy only its upper layer (its changes).
                        OverlayBackend.CreateLayers(temp);
                        Directory.Delete(OverlayBackend.Upper(temp));
                        TreeCopier.Copy(OverlayBackend.Upper(sourceDir), OverlayBackend.Upper(temp), ct);
                        clone.Storage.Backend = "overlay";
                        clone.Storage.Lower = config.Storage.Lower;
                        // An image's shared layers are the store's: the clone uses them as the source does.
                        clone.Storage.Layers = config.Storage.Layers.ToList();
                        clone.Storage.Origin = LowerOwner(source, config);
                        HostnameFile.Rewrite(new[] { OverlayBackend.Upper(temp) }.Concat(OverlayBackend.Lowers(clone.Storage, temp)).ToArray(), OverlayBackend.Upper(temp), source, newName);
                        readLayer = writeRoot = "";
                    }
                    else
                    {
                        // dir (or an external root directory): the source rootfs becomes the lower layer.
                        StorageBackends.CheckUsable("overlay", Store.Root);
                        OverlayBackend.CreateLayers(temp);
                        clone.Storage.Backend = "overlay";
                        clone.Storage.Lower = config.Rootfs ?? StorageBackends.Rootfs(sourceDir);
                        clone.Storage.Origin = config.Rootfs is null ? source : null;
                        HostnameFile.Rewrite(new[] { OverlayBackend.Upper(temp), clone.Storage.Lower }, OverlayBackend.Upper(temp), source, newName);
                        readLayer = writeRoot = "";
                    }
                }
                else
                {
                    // A full copy: btrfs stays btrfs (a new subvolume, extents reflinked), everything else becomes dir.
                    var target = backend.Name == "btrfs" ? StorageBackends.Btrfs : StorageBackends.Dir;
                    using var view = config.Rootfs is not null ? new RootfsView(config.Rootfs) : backend.View(sourceDir, config.Storage, Store.TempDirectory);
                    var rootfs = target.CreateRootfs(temp, finalDir, clone.Storage);
                    RootfsIds.Copy(view.Path, rootfs, config.Rootfs is null ? config.IdMap : null, config.Storage.IsIdmapped, ct, (source, newName));
                    clone.Storage.Backend = target.Name;
                    readLayer = writeRoot = rootfs;
                }
                if (readLayer.Length > 0 && !RootfsIds.OutOfReach(config.Rootfs is null ? config.IdMap : null, config.Storage.IsIdmapped))
                    HostnameFile.Rewrite(new[] { readLayer }, writeRoot, source, newName);
                ct.ThrowIfCancellationRequested();
                info = Commit(temp, newName, clone);
            }
            catch
            {
                RootfsIds.Delete(temp, config.IdMap, config.Storage.IsIdmapped);
                if (allocated) Ranges.Free(newName);
                throw;
            }
        }
        if (options.Ephemeral)
        {
            try { info = Manager.Start(newName); }
            catch
            {
                Manager.Remove(newName, force: true);
                throw;
            }
        }
        return info;
    }

    // ---- snapshots --------------------------------------------------------------------------------

    private string SnapshotsDirectory(string name) => Path.Combine(Store.ContainerDirectory(name), "snapshots");

    public IReadOnlyList<ContainerSnapshot> GetSnapshots(string name)
    {
        RequireExists(name);
        var dir = SnapshotsDirectory(name);
        if (!Directory.Exists(dir)) return Array.Empty<ContainerSnapshot>();
        var result = new List<ContainerSnapshot>();
        foreach (var path in Directory.EnumerateDirectories(dir, "snap*"))
        {
            var meta = Path.Combine(path, SnapshotMeta);
            if (!File.Exists(meta)) continue;
            var record = JsonSerializer.Deserialize<SnapshotRecord>(Filesystem.BoundedFile.ReadAllText(meta), JsonOptions);
            if (record is null) continue;
            result.Add(new ContainerSnapshot
            {
                ContainerName = name,
                Name = Path.GetFileName(path),
                Comment = record.Comment,
                Created = record.Created,
                Backend = record.Backend,
                Path = path,
            });
        }
        return result.OrderBy(s => SnapshotNumber(s.Name)).ToList();
    }

    private sealed class SnapshotRecord
    {
        public string? Comment { get; set; }
        public DateTimeOffset Created { get; set; }
        public string Backend { get; set; } = "dir";
    }

    private static int SnapshotNumber(string snapshotName) =>
        snapshotName.StartsWith("snap", StringComparison.Ordinal) && int.TryParse(snapshotName.AsSpan(4), out var n) ? n : -1;

    private ContainerSnapshot FindSnapshot(string name, string snapshotName)
    {
        var snapshot = GetSnapshots(name).FirstOrDefault(s => s.Name == snapshotName);
        return snapshot ?? throw new ContainerException("SnapshotNotFound", ContainerErrorKind.ObjectNotFound,
            $"Container '{name}' has no snapshot named '{snapshotName}'. Get-ContainerSnapshot -Name {name} lists its snapshots.", snapshotName);
    }

    /// <summary>lxc-snapshot: saves the stopped container's rootfs (and config) as the next snapN.</summary>
    public ContainerSnapshot NewSnapshot(string name, string? comment, CancellationToken ct = default)
    {
        RequireExists(name);
        using var _ = Store.Lock(name);
        RequireExists(name);
        RequireStopped(name, "snapshot");
        var config = LoadConfig(name);
        if (config.Rootfs is not null)
            throw new ContainerException("SnapshotUnsupported", ContainerErrorKind.InvalidOperation,
                $"Container '{name}' uses the external root directory {config.Rootfs}, which the store does not own; it cannot be snapshotted. Copy it into the store with Copy-Container first.", name);
        var backend = StorageBackends.Get(config.Storage.Backend);
        var dir = SnapshotsDirectory(name);
        Directory.CreateDirectory(dir);
        var next = GetSnapshots(name).Select(s => SnapshotNumber(s.Name)).DefaultIfEmpty(-1).Max() + 1;
        var snapshotName = $"snap{next}";
        var temp = Path.Combine(dir, $".tmp-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        try
        {
            backend.Snapshot(Store.ContainerDirectory(name), config.Storage, temp, ct, config.IdMap);
            File.Copy(Store.ConfigPath(name), Path.Combine(temp, "config.yaml"));
            var record = new SnapshotRecord { Comment = comment, Created = DateTimeOffset.Now, Backend = backend.Name };
            File.WriteAllText(Path.Combine(temp, SnapshotMeta), JsonSerializer.Serialize(record, JsonOptions));
            ct.ThrowIfCancellationRequested();
            Directory.Move(temp, Path.Combine(dir, snapshotName));
        }
        catch
        {
            RootfsIds.Delete(temp, config.IdMap, config.Storage.IsIdmapped);
            throw;
        }
        return FindSnapshot(name, snapshotName);
    }

    public void RemoveSnapshot(string name, string snapshotName)
    {
        RequireExists(name);
        using var _ = Store.Lock(name);
        var snapshot = FindSnapshot(name, snapshotName);
        var config = LoadConfig(name);
        var trash = Path.Combine(SnapshotsDirectory(name), $".trash-{Guid.NewGuid():N}");
        Directory.Move(snapshot.Path, trash);
        RootfsIds.Delete(trash, config.IdMap, config.Storage.IsIdmapped);
    }

    /// <summary>Puts the snapshot's rootfs back in the stopped container (parts swapped by rename), or makes a new container from it.</summary>
    public ContainerInfo RestoreSnapshot(string name, string snapshotName, string? newName = null, CancellationToken ct = default)
    {
        RequireExists(name);
        if (newName is not null && newName != name) return RestoreAsNew(name, snapshotName, newName, ct);
        using var _ = Store.Lock(name);
        RequireStopped(name, "restore a snapshot into");
        var snapshot = FindSnapshot(name, snapshotName);
        var config = LoadConfig(name);
        var backend = StorageBackends.Get(config.Storage.Backend);
        var containerDir = Store.ContainerDirectory(name);
        var staging = Path.Combine(containerDir, $".restore-{Guid.NewGuid():N}");
        var old = Path.Combine(containerDir, $".restore-old-{Guid.NewGuid():N}");
        Directory.CreateDirectory(staging);
        var moved = new List<string>();
        try
        {
            backend.StageRestore(snapshot.Path, config.Storage, staging, ct, config.IdMap);
            ct.ThrowIfCancellationRequested();
            // Swap part by part; on a failure the parts already swapped are put back.
            foreach (var part in backend.RestoredParts)
            {
                var current = Path.Combine(containerDir, part);
                var saved = Path.Combine(old, part);
                Directory.CreateDirectory(Path.GetDirectoryName(saved)!);
                if (Directory.Exists(current)) RootfsIds.Move(current, saved, config.IdMap, config.Storage.IsIdmapped);
                moved.Add(part);
                RootfsIds.Move(Path.Combine(staging, part), current, config.IdMap, config.Storage.IsIdmapped);
            }
            // The snapshot's config, but storage (paths of this container) as it is now.
            var restored = ConfigLoader.Load(Path.Combine(snapshot.Path, "config.yaml"));
            restored.Storage = config.Storage;
            AtomicFile.WriteAllText(Store.ConfigPath(name), ConfigLoader.Serialize(restored));
        }
        catch
        {
            foreach (var part in moved)
            {
                var current = Path.Combine(containerDir, part);
                var saved = Path.Combine(old, part);
                if (Directory.Exists(saved))
                {
                    if (Directory.Exists(current)) RootfsIds.Delete(current, config.IdMap, config.Storage.IsIdmapped);
                    RootfsIds.Move(saved, current, config.IdMap, config.Storage.IsIdmapped);
                }
            }
            RootfsIds.Delete(staging, config.IdMap, config.Storage.IsIdmapped);
            RootfsIds.Delete(old, config.IdMap, config.Storage.IsIdmapped);
            throw;
        }
        RootfsIds.Delete(staging, config.IdMap, config.Storage.IsIdmapped);
        RootfsIds.Delete(old, config.IdMap, config.Storage.IsIdmapped);
        return Manager.Get(name);
    }

    private ContainerInfo RestoreAsNew(string name, string snapshotName, string newName, CancellationToken ct)
    {
        ContainerNames.Validate(newName);
        using var _ = LockBoth(name, newName);
        RequireNew(newName);
        var snapshot = FindSnapshot(name, snapshotName);
        var config = LoadConfig(name);
        var clone = ConfigLoader.Load(Path.Combine(snapshot.Path, "config.yaml"));
        clone.Rootfs = null;
        if (clone.Hostname == name) clone.Hostname = null;
        NewNetworkIdentity(clone);
        clone.Storage = new StorageConfig { Backend = snapshot.Backend, Ids = clone.Storage.Ids };
        var temp = NewTemp(newName);
        try
        {
            string[] readLayers;
            string writeRoot;
            switch (snapshot.Backend)
            {
                case "btrfs":
                    FsNative.BtrfsSnapshot(Path.Combine(snapshot.Path, "rootfs"), StorageBackends.Rootfs(temp), readOnly: false);
                    readLayers = new[] { writeRoot = StorageBackends.Rootfs(temp) };
                    break;
                case "overlay":
                    OverlayBackend.CreateLayers(temp);
                    Directory.Delete(OverlayBackend.Upper(temp));
                    TreeCopier.Copy(Path.Combine(snapshot.Path, "upper"), OverlayBackend.Upper(temp), ct);
                    clone.Storage.Lower = config.Storage.Lower;
                    clone.Storage.Layers = config.Storage.Layers.ToList();
                    clone.Storage.Origin = LowerOwner(name, config);
                    writeRoot = OverlayBackend.Upper(temp);
                    readLayers = new[] { writeRoot }.Concat(OverlayBackend.Lowers(clone.Storage, temp)).ToArray();
                    break;
                default:
                    RootfsIds.Copy(Path.Combine(snapshot.Path, "rootfs"), StorageBackends.Rootfs(temp), clone.IdMap, clone.Storage.IsIdmapped, ct, (name, newName));
                    readLayers = new[] { writeRoot = StorageBackends.Rootfs(temp) };
                    break;
            }
            if (!RootfsIds.OutOfReach(clone.IdMap, clone.Storage.IsIdmapped)) HostnameFile.Rewrite(readLayers, writeRoot, name, newName);
            ct.ThrowIfCancellationRequested();
            return Commit(temp, newName, clone);
        }
        catch
        {
            RootfsIds.Delete(temp, clone.IdMap, clone.Storage.IsIdmapped);
            throw;
        }
    }

    // ---- diff -------------------------------------------------------------------------------------

    /// <summary>
    /// docker diff: what was added, changed or deleted relative to a snapshot (the newest when none is
    /// named) or, for an overlay container without a snapshot, relative to its lower layer.
    /// </summary>
    public IReadOnlyList<ContainerChange> Diff(string name, string? snapshotName = null)
    {
        RequireExists(name);
        var config = LoadConfig(name);
        var backend = StorageBackends.Get(config.Storage.Backend);
        var containerDir = Store.ContainerDirectory(name);
        var result = new List<ContainerChange>();
        if (snapshotName is null && backend.Name == "overlay")
        {
            // An image's layers are compared as the one tree they make.
            using var lowers = OverlayBackend.MountView(OverlayBackend.Lowers(config.Storage, containerDir), Store.TempDirectory);
            TreeDiff.Overlay(OverlayBackend.Upper(containerDir), lowers.Path, name, result);
            return result;
        }
        var snapshot = snapshotName is not null ? FindSnapshot(name, snapshotName)
            : GetSnapshots(name).LastOrDefault() ?? throw new ContainerException("NoSnapshot", ContainerErrorKind.ObjectNotFound,
                $"Container '{name}' ({backend.Name} backend) has no snapshot to compare with. Make one with New-ContainerSnapshot, or name one with -Snapshot.", name);
        using var current = config.Rootfs is not null ? new RootfsView(config.Rootfs) : backend.View(containerDir, config.Storage, Store.TempDirectory);
        using var saved = backend.SnapshotView(snapshot.Path, config.Storage, Store.TempDirectory);
        // A non-root user's shifted tree is read by root of a namespace mapping its owners: the
        // caller itself cannot enter the container root's 0700 directories.
        var map = config.Rootfs is null ? config.IdMap : null;
        if (RootfsIds.OutOfReach(map, config.Storage.IsIdmapped))
            TreeDiff.Compare(TreeListing.Read(current.Path, map!, Store.TempDirectory), TreeListing.Read(saved.Path, map!, Store.TempDirectory), name, result);
        else TreeDiff.Compare(current.Path, saved.Path, name, result);
        return result;
    }

    /// <summary>A read-only host view of the container's root filesystem (for export).</summary>
    public RootfsView View(string name, ContainerConfig config) => StorageBackends.View(Store, name, config);
}
