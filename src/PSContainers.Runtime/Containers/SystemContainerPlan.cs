using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Namespaces;

namespace PSContainers.Runtime.Containers;

/// <summary>
/// What an init system (systemd) needs beyond <see cref="MountPlan"/>'s defaults, as LXC's
/// lxc.mount.auto=cgroup:rw:force gives it: its own cgroup2 tree at /sys/fs/cgroup (the cgroup
/// namespace's root, which is the container's inner cgroup, handed to the container's root so systemd
/// can make its slices and scopes there), and /run and /run/lock as tmpfs (systemd's
/// CONTAINER_INTERFACE: /run must be a fresh tmpfs). On a hybrid host the v1 controllers stay the
/// host's: systemd inside sees a pure cgroup2 tree (unified mode) without controllers, which it runs on.
/// </summary>
public static class SystemContainerPlan
{
    /// <summary>
    /// An init that wants these: systemd itself as the command, or an init told it runs in a
    /// container (init.environment has container=, which -Init systemd sets, as LXC does). Other
    /// inits (busybox's) get the plain mounts: they neither need nor expect a cgroup tree or a /run tmpfs.
    /// </summary>
    public static bool WantsInitSystemMounts(ContainerConfig config) =>
        SecurityPlan.IsSystemContainer(config)
        && (config.Init.Environment.ContainsKey("container") || (config.Init.Command.Count > 0 && Path.GetFileName(config.Init.Command[0]) == "systemd"));

    public static void Apply(StartSpec spec, ContainerConfig config, CgroupManager cgroups, string? cgroupPath)
    {
        if (!WantsInitSystemMounts(config)) return;
        const MountFlags safe = MountFlags.NoSuid | MountFlags.NoDev | MountFlags.NoExec;
        spec.Mounts.Add(new MountEntry("tmpfs", "/run", "tmpfs", MountFlags.NoSuid | MountFlags.NoDev, "mode=755,size=65536k"));
        spec.Mounts.Add(new MountEntry("tmpfs", "/run/lock", "tmpfs", safe, "mode=1777,size=5120k"));
        // Without a cgroup of its own (a non-root caller with no delegated subtree) the namespace's
        // root would be the caller's cgroup, not the container's: nothing is mounted, and systemd
        // says so on the console when it fails to start.
        if (cgroupPath is null || cgroups.V2 is not { } v2) return;
        var inner = CgroupManager.InnerOf(cgroupPath);
        spec.Mounts.Add(new MountEntry("cgroup2", "/sys/fs/cgroup", "cgroup2", safe));
        if (config.IdMap is { } map) v2.Delegate(inner, map.RootUid, map.RootGid);
    }
}
