namespace PSContainers.Runtime.Security;

/// <summary>
/// Linux capability names and numbers (linux/capability.h) and the default drop list. The helper
/// gets a 64-bit mask of what to drop and removes those bits from the bounding, ambient,
/// inheritable, permitted and effective sets of init and of every attached command.
/// </summary>
public static class Capabilities
{
    /// <summary>Index = capability number (CAP_CHOWN = 0 ... CAP_CHECKPOINT_RESTORE = 40).</summary>
    public static readonly string[] Names =
    {
        "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid",
        "setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw",
        "ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
        "sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod",
        "lease", "audit_write", "audit_control", "setfcap", "mac_override", "mac_admin", "syslog",
        "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
    };

    /// <summary>
    /// Dropped unless the config says otherwise. LXC's default for privileged containers
    /// (mac_admin mac_override sys_time sys_module sys_rawio) plus what reaches past the
    /// container's namespaces on a shared kernel and no container needs (Docker drops these too):
    /// <list type="bullet">
    /// <item>sys_module: load/unload kernel modules into the host kernel.</item>
    /// <item>sys_rawio: iopl/ioperm, /dev/mem, /proc/kcore, raw SCSI commands: the host's hardware and memory.</item>
    /// <item>sys_time: the clock is not namespaced; setting it sets the host's.</item>
    /// <item>sys_boot: kexec_load (boot another kernel on the host) — except in a system container
    /// (init is the rootfs's own /sbin/init): its init ends a shutdown with reboot(2), which in a pid
    /// namespace only ends that init, and fails (init then lingers a second longer) without
    /// sys_boot. kexec_load and kexec_file_load stay denied by the default seccomp profile.</item>
    /// <item>mac_admin, mac_override: configure or bypass the host's LSM (AppArmor, SELinux, Smack).</item>
    /// <item>audit_control, audit_read: the audit subsystem is host-wide (rules, the log stream).</item>
    /// <item>syslog: read and clear the host kernel's log buffer (dmesg -c).</item>
    /// <item>wake_alarm, block_suspend: wake the host from suspend, or keep it from suspending.</item>
    /// <item>bpf, perfmon: load BPF programs and open perf events, which observe the whole host.</item>
    /// </list>
    /// Kept: sys_admin (mount, needed by system containers' init), net_admin (the container's own
    /// network namespace), mknod (gated by the devices cgroup), sys_ptrace (within the pid namespace).
    /// </summary>
    public static readonly string[] DefaultDrop =
    {
        "sys_module", "sys_rawio", "sys_time", "sys_boot", "mac_admin", "mac_override",
        "audit_control", "audit_read", "syslog", "wake_alarm", "block_suspend", "bpf", "perfmon",
    };

    /// <summary>Number of a capability given as sys_admin, SYS_ADMIN or CAP_SYS_ADMIN; -1 if unknown.</summary>
    public static int Number(string name)
    {
        var n = Normalize(name);
        return Array.IndexOf(Names, n);
    }

    /// <summary>Lower case, without the cap_ prefix: the spelling stored in config.yaml.</summary>
    public static string Normalize(string name)
    {
        var n = name.Trim().ToLowerInvariant();
        return n.StartsWith("cap_", StringComparison.Ordinal) ? n[4..] : n;
    }

    /// <summary>
    /// The bits to drop. Allow-list mode (keep) drops every bit not kept, also the numbers this table
    /// does not know yet (a newer kernel's capabilities are never granted by accident).
    /// </summary>
    /// <summary>The capabilities a drop list (null = default) or keep list removes; "default" in a drop
    /// list is <see cref="DefaultDrop"/>, without sys_boot for a system container.</summary>
    public static ulong DropMask(IReadOnlyList<string>? drop, IReadOnlyList<string>? keep, bool systemContainer = false)
    {
        if (keep is not null)
        {
            var mask = ulong.MaxValue;
            foreach (var k in keep) mask &= ~(1UL << Require(k));
            return mask;
        }
        ulong result = 0;
        var defaults = systemContainer ? DefaultDrop.Where(c => c != "sys_boot").ToArray() : DefaultDrop;
        foreach (var d in drop ?? defaults)
        {
            if (Normalize(d) == "default") result |= DropMask(defaults, null);
            else result |= 1UL << Require(d);
        }
        return result;
    }

    /// <summary>The names of the known capabilities in a mask, in number order.</summary>
    public static string[] NamesOf(ulong mask) =>
        Enumerable.Range(0, Names.Length).Where(i => (mask & (1UL << i)) != 0).Select(i => Names[i]).ToArray();

    private static int Require(string name)
    {
        var n = Number(name);
        if (n < 0)
            throw new ContainerException("InvalidCapability", ContainerErrorKind.InvalidArgument,
                $"Unknown capability '{name}'. Known: {string.Join(", ", Names)} (see capabilities(7)).", name);
        return n;
    }
}
