namespace PSContainers.Runtime.Namespaces;

/// <summary>Linux namespaces, with their clone flag and their name under /proc/&lt;pid&gt;/ns.</summary>
[Flags]
public enum NamespaceKind
{
    None = 0,
    Mount = 0x00020000,   // CLONE_NEWNS
    Cgroup = 0x02000000,  // CLONE_NEWCGROUP
    Uts = 0x04000000,     // CLONE_NEWUTS
    Ipc = 0x08000000,     // CLONE_NEWIPC
    User = 0x10000000,    // CLONE_NEWUSER
    Pid = 0x20000000,     // CLONE_NEWPID
    Network = 0x40000000, // CLONE_NEWNET
    /// <summary>What a container gets by default (user namespaces come with unprivileged containers).</summary>
    ContainerDefault = Mount | Cgroup | Uts | Ipc | Pid | Network,
}

public static class NamespaceKinds
{
    /// <summary>The file name under /proc/&lt;pid&gt;/ns.</summary>
    public static string ProcName(NamespaceKind kind) => kind switch
    {
        NamespaceKind.Mount => "mnt",
        NamespaceKind.Cgroup => "cgroup",
        NamespaceKind.Uts => "uts",
        NamespaceKind.Ipc => "ipc",
        NamespaceKind.User => "user",
        NamespaceKind.Pid => "pid",
        NamespaceKind.Network => "net",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "not a single namespace"),
    };

    public static IEnumerable<NamespaceKind> Each(NamespaceKind set) =>
        new[] { NamespaceKind.User, NamespaceKind.Mount, NamespaceKind.Pid, NamespaceKind.Uts,
                NamespaceKind.Ipc, NamespaceKind.Network, NamespaceKind.Cgroup }.Where(k => set.HasFlag(k));
}
