using System.Security.Cryptography;
using System.Text;
using PSContainers.Runtime.Native;

namespace PSContainers.Runtime.State;

/// <summary>
/// The store directory (LXC's lxcpath). Layout:
/// <code>
///   &lt;root&gt;/&lt;name&gt;/config.yaml, rootfs/, state.json, exit, console.log, console.sock, supervisor
///   &lt;root&gt;/.locks/&lt;name&gt;.lock   per-container locks (outlive the container directory)
///   &lt;root&gt;/.tmp/                 containers being created (renamed into place when complete)
///   &lt;root&gt;/.trash/               containers being removed (renamed out first)
///   &lt;root&gt;/.cache/               template caches
/// </code>
/// Permissions (as Incus keeps its containers directory): the store 0711, every container directory
/// and every dot directory 0700, owned by the store's owner. A container's rootfs may hold setuid
/// files and device nodes its root made; no other host user may reach them through the store.
/// </summary>
public sealed unsafe class ContainerStore
{
    public const string EnvironmentVariable = Host.HostContext.StoreEnvironmentVariable;
    public const string SystemStorePath = Host.HostContext.SystemStorePath;

    public string Root { get; }

    public ContainerStore(string? path = null)
    {
        // Normalized without a trailing slash: "/srv/psc/" and "/srv/psc" are one store, with one
        // cgroup parent (CgroupParent hashes Root), and "/var/lib/pscontainers/" is the system store.
        Root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(string.IsNullOrWhiteSpace(path) ? DefaultPath() : path));
    }

    /// <summary>$PSCONTAINERS_PATH, else /var/lib/pscontainers for root, else ~/.local/share/pscontainers.</summary>
    public static string DefaultPath() => Host.HostContext.Current.DefaultStorePath;

    public string ContainerDirectory(string name) => Path.Combine(Root, name);
    public string ConfigPath(string name) => Path.Combine(Root, name, "config.yaml");
    public string RootfsPath(string name) => Path.Combine(Root, name, "rootfs");
    public string StatePath(string name) => Path.Combine(Root, name, "state.json");
    public string ExitRecordPath(string name) => Path.Combine(Root, name, "exit");
    public string ConsoleLogPath(string name) => Path.Combine(Root, name, "console.log");
    /// <summary>The unix socket (0600) on which a running container's supervisor lends its console (Enter-Container -Console).</summary>
    public string ConsoleSocketPath(string name) => Path.Combine(Root, name, "console.sock");
    /// <summary>The supervisor's own record of the current run (see <see cref="RunRecord"/>).</summary>
    public string RunRecordPath(string name) => Path.Combine(Root, name, RunRecord.FileName);
    /// <summary>Export-Container -Force froze the container: "PID STARTTIME" of the exporting process (thawed if it died).</summary>
    /// <summary>Written by a stop or a dump before it ends init: the supervisor reads it as "asked for" (no died event, no restart).</summary>
    public string StopMarkerPath(string name) => Path.Combine(Root, name, "stop-requested");
    public string ExportFreezePath(string name) => Path.Combine(Root, name, "frozen-by-export");
    public string LockDirectory => Path.Combine(Root, ".locks");
    public string TempDirectory => Path.Combine(Root, ".tmp");
    public string TrashDirectory => Path.Combine(Root, ".trash");
    public string CacheDirectory => Path.Combine(Root, ".cache");

    public bool Exists(string name) => File.Exists(ConfigPath(name));

    /// <summary>The store directory's mode: its owner only, others may pass through (not list).</summary>
    public const UnixFileMode RootMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
    /// <summary>Every directory in the store (containers, .tmp, .trash, .locks, .cache, checkpoints): its owner only.</summary>
    public const UnixFileMode PrivateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>Makes the store directory (0711) if it does not exist; its parents as usual.</summary>
    public void EnsureRoot()
    {
        if (Directory.Exists(Root)) return;
        var parent = Path.GetDirectoryName(Root);
        if (parent is not null) Directory.CreateDirectory(parent);
        CreatePrivateDirectory(Root, RootMode);
    }

    /// <summary>mkdir with exactly <paramref name="mode"/> (0700 by default), whatever the umask; an existing directory is left as it is.</summary>
    public static void CreatePrivateDirectory(string path, UnixFileMode mode = PrivateMode)
    {
        if (Directory.Exists(path)) return;
        try { Directory.CreateDirectory(path, mode); }
        catch (IOException) when (Directory.Exists(path)) { return; }
        File.SetUnixFileMode(path, mode);
    }

    /// <summary>
    /// Root's user-namespaced container: <paramref name="directory"/> (its container directory, a
    /// checkpoint of it) becomes 0710 with the group of the container's root (a subordinate gid no
    /// host user has), so that CRIU, restoring as the container's root, can pass; other host users
    /// still cannot. Nothing for privileged containers or a non-root caller (whose own ids reach
    /// their containers anyway).
    /// </summary>
    public static void ShareWithContainerRoot(string directory, UserNamespaces.IdMap map)
    {
        if (!Host.HostContext.Current.IsRoot || !Directory.Exists(directory)) return;
        int rc;
        fixed (byte* p = Filesystem.FsNative.Z(directory)) rc = Tmds.Linux.LibC.chown(p, (Tmds.Linux.uid_t)uint.MaxValue, (Tmds.Linux.gid_t)map.RootGid);
        if (rc != 0) throw Filesystem.FsNative.Error("chown", directory, Filesystem.FsNative.Errno);
        File.SetUnixFileMode(directory, SharedMode);
    }

    /// <summary>0710: a user-namespaced container's root group may pass (see <see cref="ShareWithContainerRoot"/>).</summary>
    public const UnixFileMode SharedMode = PrivateMode | UnixFileMode.GroupExecute;

    /// <summary>A fresh directory under .tmp for a container being made (0700, renamed into place when complete).</summary>
    public string NewTempDirectory(string name)
    {
        EnsureRoot();
        CreatePrivateDirectory(TempDirectory);
        var temp = Path.Combine(TempDirectory, $"{name}.{Environment.ProcessId}.{Guid.NewGuid():N}");
        CreatePrivateDirectory(temp);
        return temp;
    }

    /// <summary>
    /// Brings an existing store to the permissions above: the store to (at most) 0711, container
    /// and dot directories to (at most) 0700. Only the store's owner can; for anyone else, and for a
    /// store that does not exist yet, nothing happens. Returns what was changed (empty when nothing).
    /// </summary>
    public IReadOnlyList<string> Secure()
    {
        var changes = new List<string>();
        if (!Directory.Exists(Root)) return changes;
        try
        {
            if (!Filesystem.FsNative.TryLstat(Root, out var st) || (uint)st.st_uid != Host.HostContext.Current.Uid) return changes;
            Tighten(Root, RootMode, "the store directory", changes);
            foreach (var dir in Directory.EnumerateDirectories(Root))
            {
                var leaf = Path.GetFileName(dir);
                if (new FileInfo(dir).LinkTarget is not null) continue;
                // A directory given to a user-namespaced container's root group (ShareWithContainerRoot) keeps 0710.
                var shared = !leaf.StartsWith('.') && Filesystem.FsNative.TryLstat(dir, out var dst) && (uint)dst.st_gid != Host.HostContext.Current.Gid;
                Tighten(dir, shared ? SharedMode : PrivateMode, leaf.StartsWith('.') ? leaf : $"container directory '{leaf}'", changes);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { /* best effort; a later operation reports real errors */ }
        return changes;
    }

    static void Tighten(string path, UnixFileMode allowed, string what, List<string> changes)
    {
        var mode = File.GetUnixFileMode(path);
        var tight = mode & allowed;
        if (tight == mode) return;
        File.SetUnixFileMode(path, tight);
        changes.Add($"{what} {Octal(mode)} -> {Octal(tight)}");
    }

    static string Octal(UnixFileMode mode) => "0" + Convert.ToString((int)mode & 0xFFF, 8);

    public IEnumerable<string> ListNames()
    {
        if (!Directory.Exists(Root)) return Array.Empty<string>();
        return Directory.EnumerateDirectories(Root)
            .Select(Path.GetFileName)
            .Where(n => n is not null && !n.StartsWith('.') && File.Exists(ConfigPath(n)))
            .Select(n => n!)
            .OrderBy(n => n, StringComparer.Ordinal);
    }

    /// <summary>
    /// The cgroup all of this store's containers live under. Containers of two stores may share a
    /// name, so every store but the system one gets its own parent, named after a hash of its path.
    /// </summary>
    public string CgroupParent
    {
        get
        {
            var env = Environment.GetEnvironmentVariable("PSCONTAINERS_CGROUP_PARENT");
            if (!string.IsNullOrWhiteSpace(env)) return env.Trim('/');
            if (Root == SystemStorePath) return "pscontainers";
            var hash = SHA256.HashData(Encoding.UTF8.GetBytes(Root));
            return "pscontainers-" + Convert.ToHexString(hash, 0, 4).ToLowerInvariant();
        }
    }

    public ContainerLock Lock(string name, TimeSpan? timeout = null)
    {
        EnsureRoot();
        CreatePrivateDirectory(LockDirectory);
        return ContainerLock.Acquire(LockDirectory, name, timeout ?? TimeSpan.FromSeconds(30));
    }

    /// <summary>The lock if it is free now (or already held by this operation), else null.</summary>
    public ContainerLock? TryLock(string name)
    {
        try { return Lock(name, TimeSpan.Zero); }
        catch (ContainerException ex) when (ex.ErrorId == "ContainerBusy") { return null; }
    }
}
