using PSContainers.Runtime.Config;
using PSContainers.Runtime.Launcher;
using PSContainers.Runtime.Namespaces;

namespace PSContainers.Runtime.Containers;

/// <summary>
/// The mounts every container gets, in order: /proc (with the host-wide knobs under it read-only,
/// LXC's proc:mixed), /sys read-only, masked paths (all per the security section, see
/// Containers/SecurityPlan.cs), a tmpfs /dev holding only the device nodes a container needs
/// (bind-mounted from the host, which also works inside a user namespace), its own devpts, /dev/shm,
/// the console; then the user's bind mounts from config.yaml.
/// </summary>
public static class MountPlan
{
    private static readonly string[] Devices = { "null", "zero", "full", "random", "urandom", "tty" };

    public static void AddDefaults(StartSpec spec, ContainerConfig config)
    {
        const MountFlags safe = MountFlags.NoSuid | MountFlags.NoDev | MountFlags.NoExec;
        Containers.SecurityPlan.AddKernelFilesystems(spec, config.Security, hostSysfs: config.IdMap is not null && NetworkPlan.SharesHostNetwork(config));
        spec.Mounts.Add(new MountEntry("tmpfs", "/dev", "tmpfs", MountFlags.NoSuid | MountFlags.NoExec, "mode=755,size=65536k"));
        foreach (var d in Devices)
            spec.Mounts.Add(new MountEntry("/dev/" + d, "/dev/" + d, "", MountFlags.Bind | MountFlags.FileTarget));
        spec.Mounts.Add(new MountEntry("devpts", "/dev/pts", "devpts", MountFlags.NoSuid | MountFlags.NoExec, "newinstance,ptmxmode=0666,mode=0620"));
        spec.Mounts.Add(new MountEntry("tmpfs", "/dev/shm", "tmpfs", safe, "mode=1777,size=65536k"));
        spec.Mounts.Add(new MountEntry("", "/dev/console", "", MountFlags.Bind | MountFlags.Console));
        spec.Symlinks.Add(("pts/ptmx", "/dev/ptmx"));
        spec.Symlinks.Add(("/proc/self/fd", "/dev/fd"));
        spec.Symlinks.Add(("/proc/self/fd/0", "/dev/stdin"));
        spec.Symlinks.Add(("/proc/self/fd/1", "/dev/stdout"));
        spec.Symlinks.Add(("/proc/self/fd/2", "/dev/stderr"));

        foreach (var m in config.Mounts)
        {
            // The loader checked the options; parsed again here for the flags and the filesystem's data.
            ConfigRules.MountOptions(m.Options, m.IsBind, "mounts", out var optionFlags, out var data);
            if (m.ReadOnly) optionFlags |= MountFlags.ReadOnly;
            if (!m.IsBind)
            {
                // A new mount of its type (lxc.mount.entry): its target is made and opened inside the
                // rootfs like every other (helper/rootfs.c, RESOLVE_IN_ROOT), so a link never leads out.
                spec.Mounts.Add(new MountEntry(m.Source.Length > 0 ? m.Source : m.Type!, m.Target, m.Type!, optionFlags, data));
                continue;
            }
            if (!Path.Exists(m.Source))
                throw new ContainerException("MountSourceNotFound", ContainerErrorKind.ObjectNotFound,
                    $"The bind mount source '{m.Source}' (for '{m.Target}') does not exist on the host. Create it or remove the mount from config.yaml.", m.Source);
            var flags = MountFlags.Bind | MountFlags.Recursive | optionFlags;
            if (!Directory.Exists(m.Source)) flags |= MountFlags.FileTarget;
            spec.Mounts.Add(new MountEntry(m.Source, m.Target, "", flags));
        }
    }
}
