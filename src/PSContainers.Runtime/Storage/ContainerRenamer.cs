using PSContainers.Runtime.Backends;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.NetworkHooks;
using PSContainers.Runtime.State;

namespace PSContainers.Runtime.Storage;

/// <summary>
/// Rename-Container (lxc-copy -R, lxc-rename): a stopped container gets a new name, and what refers
/// to it by name or by path follows: its directory (rootfs, snapshots, logs) is renamed, paths into
/// it in its own config and its snapshots' configs are rewritten, snapshot clones of it (storage.origin
/// and storage.lower) point at the new place, its default-bridge leases (so its address) carry over
/// and /etc/hostname is rewritten when it named the container. A stopped container has no cgroup (the
/// supervisor removes it with init), so none moves. All or nothing: both names are locked, every
/// rewritten config is validated before anything moves, and a failure undoes the steps already made.
/// </summary>
public sealed class ContainerRenamer(IContainerLifecycle lifecycle)
{
    public ContainerInfo Rename(string name, string newName)
    {
        ContainerNames.Validate(name);
        ContainerNames.Validate(newName);
        var store = lifecycle.Store;
        if (name == newName)
            throw new ContainerException("ContainerExists", ContainerErrorKind.ResourceExists, $"Container '{name}' already has that name.", name);
        // Both names, always in the same order: two renames crossing each other cannot deadlock.
        var (first, second) = string.CompareOrdinal(name, newName) < 0 ? (name, newName) : (newName, name);
        using var lock1 = store.Lock(first);
        using var lock2 = store.Lock(second);
        if (!store.Exists(name))
            throw new ContainerException("ContainerNotFound", ContainerErrorKind.ObjectNotFound,
                $"No container named '{name}' exists. Get-Container lists the containers of this store.", name);
        lifecycle.RecoverLocked(name);
        var oldDir = store.ContainerDirectory(name);
        var newDir = store.ContainerDirectory(newName);
        if (store.Exists(newName) || Directory.Exists(newDir) || File.Exists(newDir))
            throw new ContainerException("ContainerExists", ContainerErrorKind.ResourceExists,
                $"A container named '{newName}' already exists in {store.Root}. Choose another -NewName, or remove it first.", newName);
        var status = lifecycle.Inspect(name).Status;
        if (status != ContainerStatus.Stopped)
            throw new ContainerException("ContainerNotStopped", ContainerErrorKind.InvalidOperation,
                $"Container '{name}' is {status.ToString().ToLowerInvariant()}; only a stopped container can be renamed. Stop it first with Stop-Container" +
                (status == ContainerStatus.Saved ? " (a saved container: start it to restore its checkpoint, then stop it)." : "."), name);

        // Everything rewritten is planned and validated first, at its path after the move.
        var rewrites = new List<(string Path, string Old, string New)>();
        void Plan(string pathNow, string pathAfter, Func<ContainerConfig, List<ConfigEdit>> edits)
        {
            var text = ConfigLoader.ReadBounded(pathNow);
            var list = edits(ConfigLoader.Parse(text, pathNow));
            if (list.Count > 0) rewrites.Add((pathAfter, text, ConfigEditor.Apply(text, list, pathNow).Yaml));
        }
        string? Moved(string? path) =>
            path is not null && (path == oldDir || path.StartsWith(oldDir + "/", StringComparison.Ordinal)) ? newDir + path[oldDir.Length..] : null;
        List<ConfigEdit> OwnPaths(ContainerConfig c) =>
            Moved(c.Storage.Lower) is { } lower ? new List<ConfigEdit> { new("storage.lower", lower) } : new();
        Plan(store.ConfigPath(name), Path.Combine(newDir, "config.yaml"), OwnPaths);
        var snapshots = Path.Combine(oldDir, "snapshots");
        if (Directory.Exists(snapshots))
            foreach (var snap in Directory.EnumerateDirectories(snapshots))
                if (File.Exists(Path.Combine(snap, "config.yaml")) && new FileInfo(snap).LinkTarget is null)
                    Plan(Path.Combine(snap, "config.yaml"), Path.Combine(newDir, "snapshots", Path.GetFileName(snap), "config.yaml"), OwnPaths);
        foreach (var clone in StorageBackends.DependentClones(store, name))
            Plan(store.ConfigPath(clone), store.ConfigPath(clone), c =>
            {
                var edits = new List<ConfigEdit> { new("storage.origin", newName) };
                if (Moved(c.Storage.Lower) is { } lower) edits.Add(new("storage.lower", lower));
                return edits;
            });
        var config = ConfigLoader.Load(store.ConfigPath(name));

        var undo = new Stack<Action>();
        try
        {
            Directory.Move(oldDir, newDir);
            undo.Push(() => Directory.Move(newDir, oldDir));
            foreach (var (path, old, @new) in rewrites)
            {
                AtomicFile.WriteAllText(path, @new);
                undo.Push(() => AtomicFile.WriteAllText(path, old));
            }
            var lowerAfter = Moved(config.Storage.Lower) ?? config.Storage.Lower;
            RewriteHostname(newDir, config, lowerAfter, name, newName);
            undo.Push(() => RewriteHostname(newDir, config, lowerAfter, newName, name));
            var bridge = DefaultBridge.For(store);
            if (bridge.RenameLeases(name, newName))
            {
                undo.Push(() => bridge.RenameLeases(newName, name));
                // Other containers resolve it by its new name from their next start; refreshed now where possible.
                try { bridge.UpdateHosts(store); }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ContainerException) { }
            }
            Renamed(name, newName);
        }
        catch
        {
            while (undo.Count > 0)
            {
                try { undo.Pop()(); }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ContainerException) { /* the rest is still undone */ }
            }
            throw;
        }
        return lifecycle.Get(newName);
    }

    /// <summary>
    /// The one place a completed rename is announced (the event journal emits its "Renamed" event
    /// here). Nothing else observes renames yet.
    /// </summary>
    private static void Renamed(string oldName, string newName) { }

    /// <summary>
    /// /etc/hostname naming the container by its old name follows the new one (as Copy-Container
    /// does), inside the rootfs only. On overlay the file is looked up through the whole stack (its
    /// upper layer, then its lower layer or an image's shared layers) and always written into the
    /// container's own upper layer: a shared layer is every other container's of that image too.
    /// </summary>
    private static void RewriteHostname(string dir, ContainerConfig config, string? lower, string from, string to)
    {
        if (config.Rootfs is not null) return; // someone else's tree: not ours to edit
        if (config.Storage.Backend == "overlay")
        {
            var upper = OverlayBackend.Upper(dir);
            IReadOnlyList<string> lowers = config.Storage.Layers is { Count: > 0 } layers ? layers
                : lower is not null ? new[] { lower } : Array.Empty<string>();
            HostnameFile.Rewrite(new[] { upper }.Concat(lowers).ToArray(), upper, from, to);
            return;
        }
        var rootfs = StorageBackends.Rootfs(dir);
        HostnameFile.Rewrite(new[] { rootfs }, rootfs, from, to);
    }
}
