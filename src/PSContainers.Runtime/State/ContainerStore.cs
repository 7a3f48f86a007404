using System.Security.Cryptography;
using System.Text;
using PSContainers.Runtime.Native;

namespace PSContainers.Runtime.State;

/// <summary>
/// The store directory (LXC's lxcpath). Layout:
/// <code>
///   &lt;root&gt;/&lt;name&gt;/config.yaml, rootfs/, state.json, exit, console.log, supervisor
///   &lt;root&gt;/.locks/&lt;name&gt;.lock   per-container locks (outlive the container directory)
///   &lt;root&gt;/.tmp/                 containers being created (renamed into place when complete)
///   &lt;root&gt;/.trash/               containers being removed (renamed out first)
///   &lt;root&gt;/.cache/               template caches
/// </code>
/// </summary>
public sealed class ContainerStore
{
    public const string EnvironmentVariable = "PSCONTAINERS_PATH";
    public const string SystemStorePath = "/var/lib/pscontainers";

    public string Root { get; }

    public ContainerStore(string? path = null)
    {
        // Normalized without a trailing slash: "/srv/psc/" and "/srv/psc" are one store, with one
        // cgroup parent (CgroupParent hashes Root), and "/var/lib/pscontainers/" is the system store.
        Root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(string.IsNullOrWhiteSpace(path) ? DefaultPath() : path));
    }

    /// <summary>$PSCONTAINERS_PATH, else /var/lib/pscontainers for root, else ~/.local/share/pscontainers.</summary>
    public static string DefaultPath()
    {
        var env = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(env)) return env;
        if (Sys.IsRoot) return SystemStorePath;
        var dataHome = Environment.GetEnvironmentVariable("XDG_DATA_HOME");
        if (string.IsNullOrEmpty(dataHome))
            dataHome = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share");
        return Path.Combine(dataHome, "pscontainers");
    }

    public string ContainerDirectory(string name) => Path.Combine(Root, name);
    public string ConfigPath(string name) => Path.Combine(Root, name, "config.yaml");
    public string RootfsPath(string name) => Path.Combine(Root, name, "rootfs");
    public string StatePath(string name) => Path.Combine(Root, name, "state.json");
    public string ExitRecordPath(string name) => Path.Combine(Root, name, "exit");
    public string ConsoleLogPath(string name) => Path.Combine(Root, name, "console.log");
    /// <summary>The supervisor's own record of the current run (see <see cref="RunRecord"/>).</summary>
    public string RunRecordPath(string name) => Path.Combine(Root, name, RunRecord.FileName);
    /// <summary>Export-Container -Force froze the container: "PID STARTTIME" of the exporting process (thawed if it died).</summary>
    public string ExportFreezePath(string name) => Path.Combine(Root, name, "frozen-by-export");
    public string LockDirectory => Path.Combine(Root, ".locks");
    public string TempDirectory => Path.Combine(Root, ".tmp");
    public string TrashDirectory => Path.Combine(Root, ".trash");
    public string CacheDirectory => Path.Combine(Root, ".cache");

    public bool Exists(string name) => File.Exists(ConfigPath(name));

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

    public ContainerLock Lock(string name, TimeSpan? timeout = null) =>
        ContainerLock.Acquire(LockDirectory, name, timeout ?? TimeSpan.FromSeconds(30));

    /// <summary>The lock if it is free now (or already held by this operation), else null.</summary>
    public ContainerLock? TryLock(string name)
    {
        try { return ContainerLock.Acquire(LockDirectory, name, TimeSpan.Zero); }
        catch (ContainerException ex) when (ex.ErrorId == "ContainerBusy") { return null; }
    }
}
