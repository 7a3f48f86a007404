using PSContainers.Runtime.Backends;
namespace PSContainers.Runtime.Config;

/// <summary>
/// A container's config.yaml. Property names map to camelCase YAML keys (initCommand ->
/// <c>init.command</c> lives in <see cref="InitConfig"/>). Unknown keys are errors, see ConfigLoader.
/// </summary>
public sealed class ContainerConfig
{
    /// <summary>Template the rootfs was made from (busybox, debootstrap, none); informational.</summary>
    public string? Template { get; set; }
    public string? Hostname { get; set; }
    /// <summary>An existing root directory used in place of the store's rootfs/ (never deleted with the container).</summary>
    public string? Rootfs { get; set; }
    public InitConfig Init { get; set; } = new();
    public List<MountConfig> Mounts { get; set; } = new();
    public StopConfig Stop { get; set; } = new();
    public LimitsConfig Limits { get; set; } = new();
    public ConsoleConfig Console { get; set; } = new();
    /// <summary>Network interfaces (see NicConfig); empty = a network namespace with loopback only.</summary>
    public List<NicConfig> Network { get; set; } = new();
    public StorageConfig Storage { get; set; } = new();
    public SecurityConfig Security { get; set; } = new();
    /// <summary>User namespace map (LXC's lxc.idmap); null = no user namespace (a privileged container, root only).</summary>
    public UserNamespaces.IdMap? IdMap { get; set; }
    /// <summary>
    /// <c>privileged:</c> the container's mode. On creation: true = no user namespace (root only),
    /// false or absent = user-namespaced (the caller's default id map unless <see cref="IdMap"/> names
    /// one). New containers record it (true, or their idMap). An existing container's mode is its
    /// idMap: none = privileged (a config made before the key existed has neither and keeps the
    /// privileged mode it was made with: its rootfs is host-owned).
    /// </summary>
    public bool? Privileged { get; set; }
}

public sealed class InitConfig
{
    /// <summary>Program and arguments of the container's pid 1. Empty means /sbin/init.</summary>
    public List<string> Command { get; set; } = new();
    public Dictionary<string, string> Environment { get; set; } = new();
    public string WorkingDirectory { get; set; } = "/";
}

public sealed class MountConfig
{
    /// <summary>Host path (must exist).</summary>
    public string Source { get; set; } = "";
    /// <summary>Absolute path inside the container; created if missing, resolved within the rootfs.</summary>
    public string Target { get; set; } = "";
    public bool ReadOnly { get; set; }
}

public sealed class StopConfig
{
    /// <summary>Signal sent to init on a graceful stop: a name (SIGTERM, TERM, SIGPWR) or number. Null: the
    /// template's choice (busybox init powers off on SIGUSR2), else SIGTERM.</summary>
    public string? Signal { get; set; }
    /// <summary>Seconds to wait after the stop signal before everything is killed.</summary>
    public int Timeout { get; set; } = 10;
}

/// <summary>The cgroup limits (see <see cref="Cgroups.CgroupLimits"/>); YAML keys in ConfigLoader.Limits.cs.</summary>
public sealed class LimitsConfig : Cgroups.CgroupLimits
{
    /// <summary>Memory limit in bytes (YAML accepts 512M, 512MB, 1G, 1GiB, plain bytes). Null = none.</summary>
    public long? Memory { get => MemoryMax; set => MemoryMax = value; }
}

public sealed class ConsoleConfig
{
    /// <summary>Console log cap in bytes; the log restarts (previous kept as .1) past it. 0 = no cap.</summary>
    public long LogMaxBytes { get; set; } = 1024 * 1024;
}

public sealed class StorageConfig
{
    /// <summary>dir (default), overlay or btrfs: how the rootfs is stored (see Storage/StorageBackends.cs).</summary>
    public string? Backend { get; set; }
    /// <summary>overlay: the read-only lower layer (absolute path).</summary>
    public string? Lower { get; set; }
    /// <summary>The container whose rootfs this one's lower layer is (a snapshot clone depends on it).</summary>
    public string? Origin { get; set; }
    /// <summary>Destroyed when it stops (Copy-Container -Ephemeral).</summary>
    public bool Ephemeral { get; set; }
}
