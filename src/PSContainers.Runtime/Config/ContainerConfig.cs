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
    /// <summary>restart: what the container's supervisor does when init ends on its own.</summary>
    public RestartConfig Restart { get; set; } = new();
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
    /// <summary>
    /// idMapIsolated: true (like Incus's security.idmap.isolated): the container gets a block of host
    /// ids of its own, allocated from the caller's subordinate ranges when it is made (its idMap is
    /// then that block) and freed when it is removed (IdRanges/IsolatedIdRanges).
    /// </summary>
    public bool IdMapIsolated { get; set; }
    /// <summary>Start at boot and in Start-ContainerAutostart (LXC's lxc.start.auto, lxc.start.delay, lxc.start.order, lxc.group).</summary>
    public AutostartConfig Autostart { get; set; } = new();
    /// <summary>
    /// <c>sysctl:</c> (LXC's lxc.sysctl.*): namespaced kernel settings, name to value, written in the
    /// container's network and IPC namespaces before init runs. Only namespaced names are accepted
    /// (ConfigRules.Sysctl); the host's values never change.
    /// </summary>
    public Dictionary<string, string> Sysctl { get; set; } = new(StringComparer.Ordinal);
    /// <summary><c>oomScoreAdj:</c> init's /proc/PID/oom_score_adj, -1000..1000 (LXC's lxc.proc.oom_score_adj); null = inherited.</summary>
    public int? OomScoreAdj { get; set; }
    /// <summary><c>hooks:</c> programs run at LXC's hook points (lxc.hook.*, lxc.net.[i].script.*); see <see cref="HooksConfig"/>.</summary>
    public HooksConfig Hooks { get; set; } = new();
    /// <summary><c>oci:</c> the image a container was made from (New-Container -Template oci); informational.</summary>
    public OciConfig? Oci { get; set; }
}

/// <summary>
/// The <c>oci:</c> section: what a container's image said that has no runtime setting of its own
/// (there is no port forwarding: exposed ports are recorded for whoever wires the network).
/// </summary>
public sealed class OciConfig
{
    /// <summary>The layout directory or archive the image came from.</summary>
    public string? Image { get; set; }
    /// <summary>Its ref name (OCI) or repo tag (docker save).</summary>
    public string? Tag { get; set; }
    /// <summary>The manifest's digest (OCI) or the config's (docker save).</summary>
    public string? Digest { get; set; }
    /// <summary>The image's User as the image gives it; resolved into init.user / init.group when the container is made.</summary>
    public string? User { get; set; }
    /// <summary>The image's ExposedPorts, e.g. 80/tcp.</summary>
    public List<string> ExposedPorts { get; set; } = new();
}

/// <summary>
/// The <c>autostart:</c> section. Containers in no group belong to the NULL group (lxc-autostart's
/// term), which Start-ContainerAutostart -Group '' selects.
/// </summary>
public sealed class AutostartConfig
{
    /// <summary>Started by Start-ContainerAutostart and at boot (lxc.start.auto).</summary>
    public bool Enabled { get; set; }
    /// <summary>Seconds to wait after starting this container before the next one is started (lxc.start.delay).</summary>
    public int Delay { get; set; }
    /// <summary>Higher starts first, and stops last (lxc.start.order); ties go by name.</summary>
    public int Order { get; set; }
    /// <summary>The groups the container belongs to (lxc.group); empty = the NULL group.</summary>
    public List<string> Groups { get; set; } = new();

    public bool IsDefault => !Enabled && Delay == 0 && Order == 0 && Groups.Count == 0;
}

public sealed class InitConfig
{
    /// <summary>Program and arguments of the container's pid 1. Empty means /sbin/init.</summary>
    public List<string> Command { get; set; } = new();
    public Dictionary<string, string> Environment { get; set; } = new();
    public string WorkingDirectory { get; set; } = "/";
    /// <summary>init.user: the uid (as the container sees it) init runs as; its root when null. An OCI image's User, resolved in its /etc/passwd when the container is made.</summary>
    public int? User { get; set; }
    /// <summary>init.group: init's gid (as the container sees it); with init.user absent, its root's.</summary>
    public int? Group { get; set; }
}

/// <summary>
/// One entry of <c>mounts:</c>. Without a type, a bind mount of a host path; with one (tmpfs, or any
/// filesystem type, like lxc.mount.entry), a new mount of that type whose source is the type's
/// (a device, or any name for tmpfs). Options are mount(8)'s: the flags (ro, nosuid, nodev, noexec)
/// and the filesystem's own (size=64m,mode=1777), checked by ConfigRules.MountOptions.
/// </summary>
public sealed class MountConfig
{
    /// <summary>Host path of a bind mount (must exist), or the source of a typed mount (tmpfs when absent).</summary>
    public string Source { get; set; } = "";
    /// <summary>Absolute path inside the container; created if missing, resolved within the rootfs.</summary>
    public string Target { get; set; } = "";
    public bool ReadOnly { get; set; }
    /// <summary>The filesystem type (tmpfs, ...); null or "bind" = a bind mount.</summary>
    public string? Type { get; set; }
    /// <summary>mount(8) options, comma-separated; null = none.</summary>
    public string? Options { get; set; }

    public bool IsBind => Type is null or "bind";
}

/// <summary>restart.policy: whether the supervisor starts init again when it ended on its own (never after Stop-Container).</summary>
public enum RestartPolicy
{
    /// <summary>Never (the default).</summary>
    No,
    /// <summary>After a non-zero exit or a signal (not after a clean exit or a power-off inside).</summary>
    OnFailure,
    /// <summary>After any end init came to on its own.</summary>
    Always,
}

/// <summary>restart: { policy, maxRetries, backoff }, carried out by the supervisor (psc-helper restart.c).</summary>
public sealed class RestartConfig
{
    public RestartPolicy Policy { get; set; } = RestartPolicy.No;
    /// <summary>The most restarts of one run (since Start-Container); 0 = no limit.</summary>
    public int MaxRetries { get; set; }
    /// <summary>The delay before the first restart, doubled for each further one (at most 5 minutes).</summary>
    public TimeSpan Backoff { get; set; } = TimeSpan.FromSeconds(1);

    public bool IsDefault => Policy == RestartPolicy.No && MaxRetries == 0 && Backoff == TimeSpan.FromSeconds(1);
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

    /// <summary>
    /// <c>limits.prlimit</c> (LXC's lxc.prlimit.*): resource name (nofile, nproc, core, memlock, ...)
    /// to "soft:hard", "both" or "unlimited"; set on init from the host before it runs, inherited by
    /// what init starts (like LXC, not by Enter-Container's commands). Rules in ConfigRules.Prlimit.
    /// </summary>
    public Dictionary<string, string> Prlimit { get; set; } = new(StringComparer.Ordinal);
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
    /// <summary>
    /// overlay from an image: the store's shared layers (&lt;store&gt;/.layers/HEX, see LayerStore),
    /// topmost first like overlayfs's lowerdir; used instead of <see cref="Lower"/>.
    /// </summary>
    public List<string> Layers { get; set; } = new();
    /// <summary>The container whose rootfs this one's lower layer is (a snapshot clone depends on it).</summary>
    public string? Origin { get; set; }
    /// <summary>Destroyed when it stops (Copy-Container -Ephemeral).</summary>
    public bool Ephemeral { get; set; }
    /// <summary>
    /// A user-namespaced container's rootfs ownership on disk (storage.ids, recorded by the store):
    /// "idmapped", the ids the container sees (0..65535), shown to it through an idmapped mount; or
    /// "shifted" (and absent: containers made before idmapped mounts), chowned into the host range.
    /// </summary>
    public string? Ids { get; set; }

    public const string IdsIdmapped = "idmapped";
    public const string IdsShifted = "shifted";

    /// <summary>True when the rootfs holds container-view ids (never for a privileged container).</summary>
    public bool IsIdmapped => Ids == IdsIdmapped;
}
