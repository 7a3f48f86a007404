using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.State;
using PSContainers.Runtime.UserNamespaces;
using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.Events;

namespace PSContainers.Runtime.Containers;

/// <summary>
/// Remove-Container: renamed out of the store first (a removal interrupted half-way leaves only a
/// .trash entry), deleted without following links out of it, with what the hooks kept for it, its
/// isolated id block and the image layers nobody uses any more.
/// </summary>
internal sealed class ContainerRemoval : ContainerOperation
{
    public ContainerRemoval(ContainerManager manager) : base(manager) { }

    private (ContainerConfig, PersistedState) StopLocked(string name, TimeSpan? timeout, bool kill) => Manager.Stopping.StopLocked(name, timeout, kill);
    private void CleanTrash() => Manager.Recovery.CleanTrash();
    private void CleanStaleLocks() => Manager.Recovery.CleanStaleLocks();

    public void Remove(string name, bool force = false)
    {
        ContainerNames.Validate(name);
        using var held = Store.Lock(name);
        if (!Store.Exists(name)) throw NotFound(name);
        RecoverLocked(name);
        Backends.StorageBackends.CheckNoDependentClones(Store, name, force);
        var state = LoadState(name);
        var live = Observe(name, state);
        if (live.Status is not (ContainerStatus.Stopped or ContainerStatus.Saved))
        {
            if (!force)
                throw new ContainerException("ContainerRunning", ContainerErrorKind.InvalidOperation,
                    $"Container '{name}' is {live.Status.ToString().ToLowerInvariant()}. Stop it first, or use -Force to kill and remove it.", name);
            StopLocked(name, TimeSpan.Zero, kill: true);
        }
        // Leftover cgroup of a run whose supervisor died.
        var cgroupPath = CgroupPathFor(name);
        if (cgroupPath is not null && Cgroups.Exists(cgroupPath))
        {
            if (Cgroups.AllPids(cgroupPath).Count > 0) Cgroups.KillAll(cgroupPath);
            Cgroups.RemoveContainer(cgroupPath);
        }
        // Rename out of the store first: the container disappears at once and entirely, and a
        // removal interrupted half-way leaves only a .trash entry.
        ContainerStore.CreatePrivateDirectory(Store.TrashDirectory);
        var trash = System.IO.Path.Combine(Store.TrashDirectory, $"{name}.{Guid.NewGuid():N}");
        ContainerConfig? removedConfig = null;
        try { removedConfig = ConfigLoader.Load(Store.ConfigPath(name)); }
        catch (ContainerException) { /* an unreadable config: delete as far as we can */ }
        // What the hooks keep for it outside a run (a pasta of a run whose init ended on its own, its
        // address leases on the default bridge) goes with it; a failure there does not keep it.
        foreach (var hook in Hooks)
            try { hook.Removed(name); }
            catch (Exception ex) when (ex is ContainerException or IOException or UnauthorizedAccessException or System.Text.Json.JsonException)
            { Warning?.Invoke($"Container '{name}' was removed, but what its {hook.GetType().Name} kept for it could not be released: {ex.Message}"); }
        Directory.Move(Store.ContainerDirectory(name), trash);
        DeleteContainerTree(trash, removedConfig);
        // Its isolated id block (idMapIsolated) is free for the next container.
        IsolatedIdRanges.Free(name);
        // Gone: its lock file goes too (deleted while held; see ContainerLock), and so do what
        // killed removals of other containers left.
        held.DeleteOnRelease();
        Emit(name, ContainerEventKind.Removed);
        CleanTrash();
        CleanStaleLocks();
        if (removedConfig?.Storage.Layers.Count > 0) CollectLayers();
    }

    /// <summary>Deletes the store's shared image layers no container uses any more (see LayerStore); a failure is a warning.</summary>
    internal void CollectLayers()
    {
        try { new Backends.LayerStore(Store).Collect(); }
        catch (Exception ex) when (ex is ContainerException or IOException or UnauthorizedAccessException)
        { Warning?.Invoke($"The store's unused image layers (in {System.IO.Path.Combine(Store.Root, ".layers")}) could not be deleted: {ex.Message}. They are deleted at the next Remove-Container of a container made from an image."); }
    }


    /// <summary>Deletes a tree without following symlinks out of it (.NET deletes links, never their targets).</summary>
    internal static void DeleteTree(string path)
    {
        Filesystem.FsNative.DeleteTree(path);
    }

    /// <summary>A container directory: a non-root caller deletes what its container's ids own from inside their user namespace.</summary>
    internal void DeleteContainerTree(string path, ContainerConfig? config)
    {
        if (config?.IdMap is { } map && !Host.IsRoot) UserNamespace.DeleteTree(path, map);
        else
        {
            // A restore killed mid-way leaves its idmapped root mounted here (CheckpointManager).
            if (config?.Storage.IsIdmapped == true) FsNative.UnmountBelow(path);
            DeleteTree(path);
        }
    }

}
