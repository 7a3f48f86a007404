using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Launcher;

using PSContainers.Runtime.Security;

namespace PSContainers.Runtime.Containers;

/// <summary>What a container's security section resolves to: the numbers and bytes the helper applies.</summary>
public sealed record SecuritySettings(ulong CapabilityDropMask, SeccompProfile? Seccomp, string SeccompSource, byte[]? SeccompFilter)
{
    public string[] DroppedCapabilities => Capabilities.NamesOf(CapabilityDropMask);
}

/// <summary>
/// Managed code decides, the helper applies: resolves config.yaml's <c>security:</c> section into
/// the capability mask, the compiled seccomp program, the /proc and /sys mounts with masked paths,
/// and the default device rules, for init (start) and for attached commands (exec) alike.
/// </summary>
public static class SecurityPlan
{
    /// <summary>
    /// Hidden behind /dev/null or an empty read-only tmpfs (Docker's list): kernel memory
    /// (kcore), the host's keys, timers and scheduler internals that leak host activity and
    /// addresses, and firmware/hardware interfaces that are host-wide.
    /// </summary>
    public static readonly string[] DefaultMaskedPaths =
    {
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
    };

    /// <summary>Read-only under proc: mixed (LXC's proc:mixed plus Docker's read-only paths): the host-wide knobs under /proc.</summary>
    public static readonly string[] ProcReadOnlyPaths = { "/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs" };

    /// <summary>
    /// LXC's default device policy: nothing may be read or written except the pseudo devices a
    /// container has in /dev (null, zero, full, random, urandom, tty, console, ptmx, pts) and fuse
    /// and tun; device nodes may be created (mknod, "m"), never opened. User rules in
    /// limits.devices come after these (the last matching rule wins).
    /// </summary>
    public static readonly DeviceRule[] DefaultDeviceRules =
        new[] { "deny a", "allow c *:* m", "allow b *:* m", "allow c 1:3 rwm", "allow c 1:5 rwm", "allow c 1:7 rwm",
                "allow c 1:8 rwm", "allow c 1:9 rwm", "allow c 5:0 rwm", "allow c 5:1 rwm", "allow c 5:2 rwm",
                "allow c 136:* rwm", "allow c 10:229 rwm", "allow c 10:200 rwm" }
        .Select(r => DeviceRule.Parse(r, allow: true)).ToArray();

    /// <summary>
    /// A system container runs an init system (/sbin/init, systemd: what the templates set, or no
    /// command at all), which ends its shutdown with reboot(2); an application container runs a
    /// program of its own.
    /// </summary>
    public static bool IsSystemContainer(ContainerConfig config) =>
        config.Init.Command.Count == 0 || Path.GetFileName(config.Init.Command[0]) is "init" or "systemd";

    public static SecuritySettings Resolve(SecurityConfig security, bool systemContainer = false)
    {
        var mask = Capabilities.DropMask(security.CapabilitiesDrop, security.CapabilitiesKeep, systemContainer);
        var errno = 1;
        if (security.SeccompErrno is { } e && !SyscallTable.TryParseErrno(e, out errno))
            throw new ContainerException("InvalidConfig", ContainerErrorKind.InvalidArgument, $"Invalid security.seccomp.errno '{e}' ({SyscallTable.ErrnoHelp}).");
        var (profile, filter) = CompiledSeccomp(security, errno);
        return new SecuritySettings(mask, profile, security.SeccompProfile, filter);
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, (SeccompProfile?, byte[]?)> Compiled = new();

    /// <summary>
    /// The seccomp profile and its BPF program, compiled once per distinct input (every start and
    /// every attach needs it): the profile name, the allow/deny lists, the errno and, for a profile
    /// file, its path, size and modification time, so an edited file is compiled again.
    /// </summary>
    private static (SeccompProfile? Profile, byte[]? Filter) CompiledSeccomp(SecurityConfig security, int errno)
    {
        var source = security.SeccompProfile;
        var file = source is "default" or "unconfined" ? null : new FileInfo(source);
        var key = string.Join('\0', source, file is { Exists: true } ? $"{file.Length}:{file.LastWriteTimeUtc.Ticks}" : "",
            string.Join(',', security.SeccompAllow), string.Join(',', security.SeccompDeny), errno.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (Compiled.TryGetValue(key, out var cached)) return cached;
        var baseProfile = source switch
        {
            "default" => SeccompProfile.Default,
            "unconfined" => new SeccompProfile(),
            var path => ConfigLoader.LoadSeccompProfile(path),
        };
        var profile = baseProfile.With(security.SeccompAllow, security.SeccompDeny, errno);
        var result = profile.IsUnconfined ? ((SeccompProfile?)null, (byte[]?)null) : (profile, SeccompCompiler.Compile(profile, SyscallTable.HostArch));
        // Missing or unreadable profile files threw above and are not cached: the next start says so again.
        Compiled[key] = result;
        return result;
    }

    /// <summary>Puts the capability mask, the seccomp program and no_new_privs into a start or exec spec.</summary>
    public static SecuritySettings Apply(ISecuritySpec spec, ContainerConfig config, bool attach)
    {
        var security = config.Security;
        var settings = Resolve(security, IsSystemContainer(config));
        spec.CapabilityDropMask = settings.CapabilityDropMask;
        spec.SeccompFilter = settings.SeccompFilter;
        spec.NoNewPrivileges = attach || security.NoNewPrivileges;
        return settings;
    }

    /// <summary>The /proc and /sys mounts and the masks, in mount order (MountPlan calls this first).</summary>
    /// <param name="hostSysfs">
    /// A user-namespaced container in the host's network namespace (network type none): the kernel
    /// lets only the network namespace's owner (the host's user namespace) mount a sysfs, so the
    /// host's /sys is bound in instead, read-only whatever security.sys says.
    /// </param>
    public static void AddKernelFilesystems(StartSpec spec, SecurityConfig security, bool hostSysfs = false)
    {
        const MountFlags safe = MountFlags.NoSuid | MountFlags.NoDev | MountFlags.NoExec;
        spec.Mounts.Add(new MountEntry("proc", "/proc", "proc", safe));
        if (security.Proc == "mixed")
            foreach (var p in ProcReadOnlyPaths)
                spec.Mounts.Add(new MountEntry(p, p, "", MountFlags.Bind | MountFlags.ReadOnly | MountFlags.SourceInRoot | MountFlags.Optional | safe));
        spec.Mounts.Add(hostSysfs
            ? new MountEntry("/sys", "/sys", "", MountFlags.Bind | MountFlags.Recursive | MountFlags.ReadOnly | safe)
            : new MountEntry("sysfs", "/sys", "sysfs", safe | (security.Sys == "ro" ? MountFlags.ReadOnly : MountFlags.None)));
        foreach (var p in security.MaskedPaths ?? (IEnumerable<string>)DefaultMaskedPaths)
            spec.Mounts.Add(new MountEntry("", p, "", MountFlags.Mask));
    }

    /// <summary>The cgroup limits a start applies: the default device rules (unless unconfined), then the config's limits.</summary>
    public static CgroupLimits EffectiveLimits(ContainerConfig config)
    {
        var limits = new CgroupLimits();
        // A non-root caller cannot attach a device program (it needs CAP_SYS_ADMIN); its containers are
        // user-namespaced, where the kernel refuses mknod and /dev holds only bind-mounted pseudo devices.
        if (config.Security.Devices == "default" && (config.IdMap is null || Host.HostContext.Current.IsRoot)) limits.Devices.AddRange(DefaultDeviceRules);
        limits.MergeFrom(config.Limits);
        return limits;
    }
}
