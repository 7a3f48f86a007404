using PSContainers.Runtime.Config;

namespace PSContainers.Runtime.Containers;

/// <summary>A container's mode as Get-Container shows it.</summary>
public enum ContainerMode
{
    /// <summary>No user namespace: the container's root is the host's root.</summary>
    Privileged,
    /// <summary>A user namespace: the container's ids are subordinate ids of the host (its root is no one on the host).</summary>
    Unprivileged,
}

/// <summary>
/// The one rule for a container's mode. A new container (New-Container, Import-Container, the
/// templates, -ConfigPath configs) is user-namespaced unless privileged is asked for (-Privileged or
/// <c>privileged: true</c>); it records the choice in config.yaml: <c>privileged: true</c>, or its
/// idMap. An existing container's mode is what its config.yaml records: an idMap = unprivileged,
/// none = privileged. A config with neither key was made before unprivileged became the default,
/// as a privileged container whose rootfs is host-owned: it stays privileged (making it
/// user-namespaced would need its tree shifted, and its owners changed under it is not a start's job).
/// </summary>
public static class ContainerModes
{
    public static ContainerMode Of(ContainerConfig config) => config.IdMap is null ? ContainerMode.Privileged : ContainerMode.Unprivileged;

    /// <summary>
    /// The host ids a user-namespaced container's ids are, first to last: "100000-165535", or with
    /// uids and gids on different ranges "uid 100000-165535, gid 200000-265535"; null when privileged.
    /// </summary>
    public static string? HostIdRange(UserNamespaces.IdMap? map)
    {
        if (map is null) return null;
        string Of(UserNamespaces.IdMapKind kind) => string.Join(",", map.Of(kind).Select(e =>
            string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{e.HostId}-{e.HostId + (ulong)e.Count - 1}")));
        var (uids, gids) = (Of(UserNamespaces.IdMapKind.Uid), Of(UserNamespaces.IdMapKind.Gid));
        return uids == gids ? uids : $"uid {uids}, gid {gids}";
    }

    /// <summary>
    /// A new container's mode from the caller's switches and its config; records privileged: true in
    /// the config when privileged. Returns true for a privileged container.
    /// </summary>
    public static bool Decide(ContainerConfig config, bool privilegedSwitch, bool unprivilegedSwitch, bool isRoot, string name)
    {
        if (privilegedSwitch && unprivilegedSwitch)
            throw new ContainerException("ConflictingParameters", ContainerErrorKind.InvalidArgument,
                "Give -Privileged or -Unprivileged, not both (unprivileged is the default).", name);
        if (privilegedSwitch && config.IdMap is not null)
            throw new ContainerException("ConflictingParameters", ContainerErrorKind.InvalidArgument,
                $"-Privileged contradicts the config's idMap [{config.IdMap}]: a privileged container has no user namespace. Drop one of them.", name);
        if (unprivilegedSwitch && config.Privileged == true)
            throw new ContainerException("ConflictingParameters", ContainerErrorKind.InvalidArgument,
                "-Unprivileged contradicts the config's privileged: true. Drop one of them.", name);
        var privileged = privilegedSwitch || config.Privileged == true;
        if (privileged && !isRoot)
            throw new ContainerException("PrivilegedNeedsRoot", ContainerErrorKind.PermissionDenied,
                "Only root can make a privileged container (-Privileged or privileged: true): its root would be the host's root. " +
                "Leave it out: your containers are user-namespaced on your subordinate ids.", name);
        config.Privileged = privileged ? true : null;
        return privileged;
    }

    /// <summary>
    /// An existing container's config that asks for a user namespace (privileged: false) without an
    /// idMap (written by hand: New-Container records the map) cannot be started as asked.
    /// </summary>
    public static void CheckExisting(ContainerConfig config, string name)
    {
        if (config.Privileged == false && config.IdMap is null)
            throw new ContainerException("ContainerModeUndecided", ContainerErrorKind.InvalidArgument,
                $"Container '{name}' has privileged: false but no idMap: an existing container's user namespace needs its map, which New-Container records " +
                "(its rootfs is owned by those ids). Add the idMap its rootfs was made for, or set privileged: true if its rootfs is host-owned.", name);
    }
}
