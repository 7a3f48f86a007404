namespace PSContainers.Runtime.Security;

public enum SeccompAction
{
    Allow,
    Errno,
    Kill,
    Log,
}

/// <summary>Comparison of one syscall argument (64 bits) with a value; maskedEq compares arg &amp; mask.</summary>
public enum SeccompOp
{
    Eq,
    Ne,
    MaskedEq,
}

public sealed record SeccompArg(int Index, SeccompOp Op, ulong Value, ulong Mask = ulong.MaxValue);

/// <summary>One rule: these syscalls (when every argument condition holds) get this action.</summary>
public sealed record SeccompRule(IReadOnlyList<string> Names, SeccompAction Action, int Errno = 1, IReadOnlyList<SeccompArg>? Args = null);

/// <summary>
/// A seccomp policy: rules in order (the first match decides), else the default action. Read from
/// a profile YAML file (ConfigLoader.LoadSeccompProfile) or the built-in <see cref="Default"/>, and
/// compiled to a classic BPF program by <see cref="SeccompCompiler"/>.
/// </summary>
public sealed class SeccompProfile
{
    public SeccompAction DefaultAction { get; init; } = SeccompAction.Allow;
    public int DefaultErrno { get; init; } = 1;
    public List<SeccompRule> Rules { get; init; } = new();

    private const int EPERM = 1, EACCES = 13, ENOSYS = 38;
    private const ulong MNT_FORCE = 1;

    /// <summary>
    /// The default: everything is allowed except what reaches the host kernel as a whole, after
    /// LXC's default (kexec, module loading, open_by_handle_at, keyctl as ENOSYS, forced umount)
    /// and the calls Docker's default profile grants only with capabilities a container does not have:
    /// <list type="bullet">
    /// <item>kexec_load, kexec_file_load: replacing the host kernel (reboot(2) is not filtered: in a pid
    /// namespace it only ends the container's init).</item>
    /// <item>init_module, finit_module, delete_module: kernel modules.</item>
    /// <item>open_by_handle_at: opens any file of a mounted filesystem by handle, around the mount
    /// namespace (the 2014 "shocker" escape).</item>
    /// <item>keyctl, add_key, request_key: the kernel keyring is not namespaced; ENOSYS (as in LXC) so
    /// programs fall back to not using it.</item>
    /// <item>bpf, perf_event_open: programs and probes that see the whole host.</item>
    /// <item>userfaultfd: a staple of kernel exploits, not needed by containers.</item>
    /// <item>iopl, ioperm (x86): raw port I/O. acct: host-wide process accounting file. swapon, swapoff:
    /// the host's swap. lookup_dcookie, nfsservctl: obsolete.</item>
    /// <item>settimeofday, clock_settime, clock_adjtime, adjtimex, stime: the host clock (also cap sys_time).</item>
    /// <item>syslog: the host kernel log. vhangup: hangs up the terminal of the host's session.</item>
    /// <item>io_uring_setup/enter/register: ENOSYS, as in Docker's default since 2023 (a frequent source
    /// of kernel CVEs); programs fall back to epoll.</item>
    /// <item>umount2 with MNT_FORCE: LXC's reject_force_umount (can break the host's NFS mounts).</item>
    /// <item>clone3: ENOSYS, never EPERM, so glibc falls back to clone(2), whose flags a filter can see
    /// (clone3 passes them in memory, out of seccomp's reach).</item>
    /// </list>
    /// </summary>
    public static SeccompProfile Default => new()
    {
        DefaultAction = SeccompAction.Allow,
        Rules =
        {
            new(new[] { "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
                "open_by_handle_at", "bpf", "perf_event_open", "userfaultfd", "iopl", "ioperm", "acct",
                "swapon", "swapoff", "lookup_dcookie", "nfsservctl", "settimeofday", "clock_settime",
                "clock_adjtime", "adjtimex", "syslog", "vhangup" }, SeccompAction.Errno, EPERM),
            new(new[] { "keyctl", "add_key", "request_key", "io_uring_setup", "io_uring_enter", "io_uring_register" }, SeccompAction.Errno, ENOSYS),
            new(new[] { "umount2" }, SeccompAction.Errno, EACCES, new[] { new SeccompArg(1, SeccompOp.MaskedEq, MNT_FORCE, MNT_FORCE) }),
            new(new[] { "clone3" }, SeccompAction.Errno, ENOSYS),
        },
    };

    /// <summary>Nothing filtered: no program is installed at all.</summary>
    public bool IsUnconfined => DefaultAction == SeccompAction.Allow && Rules.Count == 0;

    /// <summary>This profile with config additions: allowed calls first (they win), then denied ones, then the profile's rules.</summary>
    public SeccompProfile With(IReadOnlyList<string> allow, IReadOnlyList<string> deny, int denyErrno)
    {
        var rules = new List<SeccompRule>();
        if (allow.Count > 0) rules.Add(new SeccompRule(allow, SeccompAction.Allow));
        if (deny.Count > 0) rules.Add(new SeccompRule(deny, SeccompAction.Errno, denyErrno));
        rules.AddRange(Rules);
        return new SeccompProfile { DefaultAction = DefaultAction, DefaultErrno = DefaultErrno, Rules = rules };
    }
}
