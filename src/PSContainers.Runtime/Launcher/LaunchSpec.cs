using System.Text;

using PSContainers.Runtime.Namespaces;

namespace PSContainers.Runtime.Launcher;

/// <summary>Mount flags (sys/mount.h) plus the helper's own flags in the high bits.</summary>
[Flags]
public enum MountFlags : ulong
{
    None = 0,
    ReadOnly = 1,
    NoSuid = 2,
    NoDev = 4,
    NoExec = 8,
    Bind = 4096,
    Recursive = 16384,
    /// <summary>Source is a path inside the rootfs, opened without leaving it.</summary>
    SourceInRoot = 1UL << 40,
    /// <summary>Source is the console pty the supervisor allocated.</summary>
    Console = 1UL << 41,
    /// <summary>Skip the mount when the source does not exist.</summary>
    Optional = 1UL << 42,
    /// <summary>The target is a file (bind target for a device node), not a directory.</summary>
    FileTarget = 1UL << 43,
    /// <summary>Mask the target if it exists: /dev/null over a file, an empty read-only tmpfs over a directory.</summary>
    Mask = 1UL << 44,
}

public sealed record MountEntry(string Source, string Target, string FsType, MountFlags Flags, string Data = "");

/// <summary>
/// What psc-helper is asked to do, serialized as NUL-terminated key/value strings (the format
/// parse_spec() in psc-helper.c reads), sent on stdin after a "&lt;length&gt;\n" header so stdin stays
/// usable afterwards. Everything policy-like is decided here, in C#.
/// </summary>
public sealed class LaunchSpec
{
    public NamespaceKind Namespaces { get; set; }
    public string? Rootfs { get; set; }
    public string? Hostname { get; set; }
    public string? WorkingDirectory { get; set; }
    public List<string> Command { get; } = new();
    public List<string> Environment { get; } = new();
    public List<string> CgroupProcsFiles { get; } = new();
    public List<string> CgroupDirectories { get; } = new();
    /// <summary>The container's cgroup2 directory: init (or an exec'd command) is born in it with
    /// clone3(CLONE_INTO_CGROUP) instead of being migrated by a cgroup.procs write.</summary>
    public string? CgroupV2Directory { get; set; }
    public List<MountEntry> Mounts { get; } = new();
    /// <summary>Mounted on the rootfs path itself inside the new mount namespace, before anything else (an overlay rootfs).</summary>
    public List<MountEntry> RootMounts { get; } = new();
    /// <summary>start: stop before init proceeds and wait for the caller's "go" (see PscHelper.Start).</summary>
    public bool PauseBeforeExec { get; set; }
    public List<(string Target, string LinkPath)> Symlinks { get; } = new();
    public string? ConsoleLog { get; set; }
    public long ConsoleLogMaxBytes { get; set; }
    /// <summary>start/restore: where the supervisor writes its own record before init is released (see State.RunRecord).</summary>
    public string? RunRecord { get; set; }
    public string? ExitRecord { get; set; }
    /// <summary>exec: a new pty in the container's devpts for the command (its controlling terminal,
    /// in a session of its own), relayed by the helper to the caller's terminal (Enter-Container).</summary>
    public bool Terminal { get; set; }
    /// <summary>exec: the container's init pid whose namespaces are joined.</summary>
    public int? TargetPid { get; set; }
    public string? UidMap { get; set; }
    public string? GidMap { get; set; }
    /// <summary>netns-exec: the network namespace file to enter.</summary>
    public string? NetNsPath { get; set; }
    /// <summary>netns-exec: /etc/netns/&lt;name&gt;, whose files are bind-mounted over /etc.</summary>
    public string? EtcDirectory { get; set; }
    /// <summary>Capabilities (bit n = capability n) removed from every set before exec; null = none.</summary>
    public ulong? CapabilityDropMask { get; set; }
    /// <summary>A classic BPF program (struct sock_filter[]) installed with seccomp() as the last step before exec; sent as hex.</summary>
    public byte[]? SeccompFilter { get; set; }
    /// <summary>prctl(PR_SET_NO_NEW_PRIVS) before exec.</summary>
    public bool NoNewPrivileges { get; set; }
    /// <summary>restore: the inherited end of the socket on which the caller speaks CRIU's RPC (see Checkpoint/CriuService).</summary>
    public int? CriuSocketFd { get; set; }
    /// <summary>start: init brings loopback up itself (the caller cannot reach a user-namespaced container's network).</summary>
    public bool LoopbackUp { get; set; }
    /// <summary>start: further links init brings up itself, after the network hooks ran (a non-root user's veths).</summary>
    public List<string> LinksUp { get; } = new();
    /// <summary>userns-tree: the in-namespace id the caller's own uid and gid are mapped to.</summary>
    public uint? CallerId { get; set; }
    /// <summary>userns-tree: a file of NUL-terminated "uid gid relative-path" records applied after the shift.</summary>
    public string? OwnersFile { get; set; }

    public byte[] Serialize()
    {
        var sb = new StringBuilder();
        void Put(params string[] values)
        {
            foreach (var v in values)
            {
                if (v.Contains('\0')) throw new ContainerException("InvalidArgument", ContainerErrorKind.InvalidArgument, $"A value contains a NUL character: '{v.Replace("\0", "\\0")}'.");
                sb.Append(v).Append('\0');
            }
        }
        if (TargetPid is { } pid)
        {
            Put("pid", pid.ToString());
            foreach (var ns in NamespaceKinds.Each(Namespaces)) Put("ns", NamespaceKinds.ProcName(ns));
        }
        else Put("flags", ((ulong)(uint)Namespaces).ToString());
        if (Rootfs is not null) Put("rootfs", Rootfs);
        if (Hostname is not null) Put("hostname", Hostname);
        if (WorkingDirectory is not null) Put("cwd", WorkingDirectory);
        if (ConsoleLog is not null) Put("console", ConsoleLog, "logmax", ConsoleLogMaxBytes.ToString());
        if (PauseBeforeExec) Put("pause", "1");
        if (Terminal) Put("tty", "1");
        foreach (var m in RootMounts) Put("rootmount", m.Source, m.FsType, ((ulong)m.Flags).ToString(), m.Data);
        if (ExitRecord is not null) Put("exitfile", ExitRecord);
        if (RunRecord is not null) Put("runrecord", RunRecord);
        if (UidMap is not null) Put("uidmap", UidMap);
        if (CgroupV2Directory is not null) Put("cgroupv2", CgroupV2Directory);
        if (GidMap is not null) Put("gidmap", GidMap);
        if (NetNsPath is not null) Put("netns", NetNsPath);
        if (EtcDirectory is not null) Put("etcdir", EtcDirectory);
        if (CriuSocketFd is { } criuFd) Put("criufd", criuFd.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (LoopbackUp) Put("lo-up", "1");
        foreach (var link in LinksUp) Put("link-up", link);
        if (CallerId is { } callerId) Put("callerid", callerId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (OwnersFile is not null) Put("owners", OwnersFile);
        foreach (var f in CgroupProcsFiles) Put("cgroup", f);
        foreach (var d in CgroupDirectories) Put("cgdir", d);
        foreach (var m in Mounts) Put("mount", m.Source, m.Target, m.FsType, ((ulong)m.Flags).ToString(), m.Data);
        foreach (var (target, link) in Symlinks) Put("symlink", target, link);
        if (CapabilityDropMask is { } drop) Put("capdrop", drop.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (NoNewPrivileges) Put("nonewprivs", "1");
        if (SeccompFilter is { } filter) Put("seccomp", Convert.ToHexString(filter));
        foreach (var e in Environment) Put("env", e);
        foreach (var a in Command) Put("arg", a);
        return Encoding.UTF8.GetBytes(sb.ToString());
    }

    /// <summary>The spec as sent on stdin: its length, a newline, the spec.</summary>
    public byte[] SerializeFramed()
    {
        var body = Serialize();
        var header = Encoding.ASCII.GetBytes(body.Length.ToString(System.Globalization.CultureInfo.InvariantCulture) + "\n");
        return header.Concat(body).ToArray();
    }
}
