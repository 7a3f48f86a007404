namespace PSContainers.Runtime.UserNamespaces;

/// <summary>How a container's rootfs stores the owners of its files on disk.</summary>
public enum RootfsIdStorage
{
    /// <summary>Host ids: the rootfs was chowned through the id map (container uid 0 = the map's host root). Today's layout.</summary>
    Shifted,
    /// <summary>Container-view ids: an idmapped mount translates them when the container runs.</summary>
    Idmapped,
}

/// <summary>
/// The one place that translates between the ids a container sees and the ids written on its rootfs
/// (copying files in and out, exec's -User). A container without a user namespace has the same
/// ids on both sides; a user-namespaced one goes through its id map when its rootfs is
/// <see cref="RootfsIdStorage.Shifted"/>, and stores container ids as they are when it is
/// <see cref="RootfsIdStorage.Idmapped"/>.
/// </summary>
public sealed class IdView
{
    public IdMap? Map { get; }
    public RootfsIdStorage Storage { get; }

    public IdView(IdMap? map, RootfsIdStorage storage = RootfsIdStorage.Shifted)
    {
        Map = map;
        Storage = storage;
    }

    /// <summary>The id written on disk for the container's <paramref name="containerId"/>; null when the map has none for it.</summary>
    public uint? ToDisk(IdMapKind kind, uint containerId) =>
        Map is null ? containerId
        // Idmapped: stored as the container's id, but only an id its map has is one it can own.
        : Storage == RootfsIdStorage.Idmapped ? (Map.ToHost(kind, containerId) is null ? null : containerId)
        : Map.ToHost(kind, containerId);

    /// <summary>The id the container sees for an on-disk <paramref name="diskId"/>; null when it is outside the map (the container sees nobody).</summary>
    public uint? ToContainer(IdMapKind kind, uint diskId) =>
        Map is null ? diskId
        : Storage == RootfsIdStorage.Idmapped ? (Map.ToHost(kind, diskId) is null ? null : diskId)
        : Map.ToContainer(kind, diskId);

    /// <summary>
    /// The view for files reached through the running container's own mounts (/proc/PID/root): an
    /// idmapped mount there translates host ids itself, so ids are given as the host sees them,
    /// i.e. through the map, whatever the storage.
    /// </summary>
    public IdView ThroughContainerMounts() => Storage == RootfsIdStorage.Shifted ? this : new IdView(Map, RootfsIdStorage.Shifted);

    /// <summary>The container's root, as written on disk.</summary>
    public (uint Uid, uint Gid) Root => (ToDisk(IdMapKind.Uid, 0) ?? 0, ToDisk(IdMapKind.Gid, 0) ?? 0);
}
