using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using PSContainers.Runtime.Storage;
using PSContainers.Runtime.Filesystem;

namespace PSContainers.Runtime.Templates;

/// <summary>
/// A Debian rootfs made by debootstrap. The first build of a release/arch/variant is cached under
/// the store's cache directory; every container then gets a copy of that cache (no download).
/// </summary>
public sealed partial class DebootstrapTemplate : IRootfsTemplate
{
    public const string DefaultRelease = "bookworm";
    public const string DefaultMirror = "http://deb.debian.org/debian";
    public const string DefaultVariant = "minbase";
    const string Activity = "Building debootstrap rootfs";
    const int OutputLinesKept = 20;

    [DllImport("libc", SetLastError = true)]
    static extern int umount2(string target, int flags);
    const int MNT_DETACH = 2;

    readonly string? _debootstrapPath;
    readonly Func<bool> _isRoot;

    public DebootstrapTemplate() : this(null, null) { }

    /// <summary>For tests: a stand-in debootstrap executable and root check.</summary>
    internal DebootstrapTemplate(string? debootstrapPath, Func<bool>? isRoot)
    {
        _debootstrapPath = debootstrapPath;
        _isRoot = isRoot ?? (() => Host.HostContext.Current.IsRoot);
    }

    public string Name => "debootstrap";

    // minbase has no init system: a shell that sleeps and exits on SIGTERM, so a stop is graceful.
    public IReadOnlyList<string> DefaultInitCommand { get; } =
        new[] { "/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done" };
    public string DefaultStopSignal => "SIGTERM";

    /// <summary>The init systems a tree can be built with (-Init): none (the shell above) or systemd.</summary>
    public static readonly string[] InitSystems = { "none", "systemd" };

    // With systemd, the tree gets systemd-sysv (/sbin/init) and dbus (systemd-logind needs the bus).
    static readonly string[] SystemdPackages = { "systemd-sysv", "dbus" };

    /// <summary>
    /// systemd as pid 1 the way LXC starts it: /sbin/init, stopped by SIGRTMIN+3 (systemd's
    /// "halt", which runs the shutdown units and ends with reboot(2), i.e. the container exits),
    /// and container= in its environment, which systemd's CONTAINER_INTERFACE reads to know it is
    /// in a container (it then skips hardware units and starts console-getty on /dev/console).
    /// </summary>
    public TemplateInit InitFor(TemplateOptions options) => ResolveInit(options) == "systemd"
        ? new TemplateInit(new[] { "/sbin/init" }, "SIGRTMIN+3", new Dictionary<string, string> { ["container"] = "pscontainers" })
        : new TemplateInit(DefaultInitCommand, DefaultStopSignal, new Dictionary<string, string>());

    public void CheckPrerequisites(TemplateOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Resolve(options);
        FindDebootstrap();
        if (!_isRoot())
            throw new ContainerException("DebootstrapNeedsRoot", ContainerErrorKind.PermissionDenied,
                "The debootstrap template must run as root (debootstrap chroots, creates devices and sets owners). Run PowerShell as root, e.g. with sudo.");
    }

    public void Build(string rootfsDirectory, TemplateOptions options, IProgress<TemplateProgress>? progress, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(rootfsDirectory);
        CheckPrerequisites(options);
        var cached = EnsureCache(options, progress, cancellationToken);

        progress?.Report(new TemplateProgress(Activity, "Copying the cached rootfs", 99));
        TreeCopier.Copy(cached, rootfsDirectory, cancellationToken);
        var name = string.IsNullOrEmpty(options.ContainerName) ? "debian" : options.ContainerName;
        RootfsFile.WriteHostFiles(Path.GetFullPath(rootfsDirectory), name);
        progress?.Report(new TemplateProgress(Activity, "Done", 100));
    }

    internal sealed record Settings(string Release, string Mirror, string Variant, string Arch, string CacheDirectory, string Init = "none")
    {
        // Trees with and without an init system are cached apart: a container never gets the other one.
        public string Key => CacheKey(Release, Arch, Variant) + (Init == "none" ? "" : "-init-" + Init);
        public string BaseDirectory => Path.Combine(CacheDirectory, "debootstrap");
        public string CachedRootfs => Path.Combine(BaseDirectory, Key, "rootfs");
        public string LockFile => Path.Combine(BaseDirectory, Key + ".lock");
    }

    internal static string CacheKey(string release, string arch, string variant) => $"{release}-{arch}-{variant}";

    [GeneratedRegex("^[a-z0-9][a-z0-9._+-]*$")]
    private static partial Regex NamePattern();

    internal static Settings Resolve(TemplateOptions options)
    {
        var release = string.IsNullOrWhiteSpace(options.Release) ? DefaultRelease : options.Release.Trim();
        var variant = string.IsNullOrWhiteSpace(options.Variant) ? DefaultVariant : options.Variant.Trim();
        var mirror = string.IsNullOrWhiteSpace(options.Mirror) ? DefaultMirror : options.Mirror.Trim();
        // Release and variant become path components of the cache: no slashes, no dots-only names.
        if (!NamePattern().IsMatch(release))
            throw new ContainerException("InvalidRelease", ContainerErrorKind.InvalidArgument,
                $"'{release}' is not a valid Debian release name; use a codename such as bookworm or trixie.", release);
        if (!NamePattern().IsMatch(variant))
            throw new ContainerException("InvalidVariant", ContainerErrorKind.InvalidArgument,
                $"'{variant}' is not a valid debootstrap variant; use minbase, buildd or fakechroot.", variant);
        if (!Uri.TryCreate(mirror, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https" or "file"))
            throw new ContainerException("InvalidMirror", ContainerErrorKind.InvalidArgument,
                $"'{mirror}' is not a valid mirror URL; use an http(s):// or file:// URL such as {DefaultMirror}.", mirror);
        if (string.IsNullOrWhiteSpace(options.CacheDirectory))
            throw new ContainerException("CacheDirectoryMissing", ContainerErrorKind.InvalidArgument,
                "The debootstrap template needs a cache directory (TemplateOptions.CacheDirectory) to keep the downloaded rootfs.");
        return new Settings(release, mirror, variant, DebianArch(), Path.GetFullPath(options.CacheDirectory), ResolveInit(options));
    }

    internal static string ResolveInit(TemplateOptions options)
    {
        var init = string.IsNullOrWhiteSpace(options.Init) ? "none" : options.Init.Trim().ToLowerInvariant();
        if (!InitSystems.Contains(init))
            throw new ContainerException("InvalidInit", ContainerErrorKind.InvalidArgument,
                $"'{options.Init}' is not an init system the debootstrap template can install; use {string.Join(" or ", InitSystems)}.", options.Init);
        return init;
    }

    internal static string DebianArch() => RuntimeInformation.OSArchitecture switch
    {
        Architecture.X64 => "amd64",
        Architecture.Arm64 => "arm64",
        Architecture.Arm => "armhf",
        Architecture.X86 => "i386",
        Architecture.S390x => "s390x",
        Architecture.Ppc64le => "ppc64el",
        Architecture.LoongArch64 => "loong64",
        var other => throw new ContainerException("UnsupportedArchitecture", ContainerErrorKind.NotImplemented,
            $"No Debian architecture is known for {other}; use the busybox template on this machine."),
    };

    string FindDebootstrap()
    {
        if (_debootstrapPath is not null)
            return File.Exists(_debootstrapPath) ? _debootstrapPath : throw NotInstalled();
        // root's PATH usually has the sbin directories, but sudo -E or a service may not.
        var dirs = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Concat(new[] { "/usr/sbin", "/sbin", "/usr/bin", "/bin" });
        return dirs.Select(d => Path.Combine(d, "debootstrap")).FirstOrDefault(File.Exists) ?? throw NotInstalled();
    }

    static ContainerException NotInstalled() => new("DebootstrapNotInstalled", ContainerErrorKind.NotInstalled,
        "debootstrap was not found on PATH. Install it: apt-get install debootstrap");

    /// <summary>
    /// Returns the cached rootfs, building it first if needed. The build goes to a temporary sibling
    /// that is renamed into place only after debootstrap succeeded, under an exclusive lock, so the
    /// cache is either complete or absent, and two builders never download the same release twice.
    /// </summary>
    internal string EnsureCache(TemplateOptions options, IProgress<TemplateProgress>? progress, CancellationToken ct)
    {
        var s = Resolve(options);
        if (Directory.Exists(s.CachedRootfs))
            return s.CachedRootfs;

        Directory.CreateDirectory(s.BaseDirectory);
        using var lockFile = AcquireLock(s.LockFile, progress, ct);
        if (Directory.Exists(s.CachedRootfs))
            return s.CachedRootfs; // built by whoever held the lock before us

        var keyDir = Path.Combine(s.BaseDirectory, s.Key);
        Directory.CreateDirectory(keyDir);
        // Leftovers of a build that crashed; we hold the lock, so nobody is using them.
        foreach (var stale in Directory.EnumerateDirectories(keyDir, "rootfs.tmp-*"))
            RemoveBuildDirectory(stale);

        var temp = Path.Combine(keyDir, $"rootfs.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            RunDebootstrap(s, temp, progress, ct);
            Directory.Move(temp, s.CachedRootfs);
        }
        catch
        {
            RemoveBuildDirectory(temp);
            throw;
        }
        return s.CachedRootfs;
    }

    static FileStream AcquireLock(string path, IProgress<TemplateProgress>? progress, CancellationToken ct)
    {
        bool reported = false;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            try
            {
                // FileShare.None makes .NET take flock(LOCK_EX|LOCK_NB); it is released when the process dies.
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException)
            {
                if (!reported)
                {
                    progress?.Report(new TemplateProgress(Activity, "Waiting for another build of the same release to finish", 0));
                    reported = true;
                }
                ct.WaitHandle.WaitOne(500);
            }
        }
    }

    void RunDebootstrap(Settings s, string target, IProgress<TemplateProgress>? progress, CancellationToken ct)
    {
        var program = FindDebootstrap();
        // debootstrap needs chroot, mknod etc., which live in the sbin directories.
        var path = Environment.GetEnvironmentVariable("PATH") is { Length: > 0 } p ? p : "/usr/bin:/bin";
        var tail = new Queue<string>();
        var tracker = new ProgressTracker(progress, $"debootstrap {s.Release} ({s.Arch}, {s.Variant})");
        void OnLine(string line)
        {
            lock (tail)
            {
                tail.Enqueue(line);
                if (tail.Count > OutputLinesKept) tail.Dequeue();
                tracker.OnLine(line);
            }
        }

        progress?.Report(new TemplateProgress(Activity, $"Starting debootstrap {s.Release} from {s.Mirror}", 0));
        // Cancelling kills debootstrap with all its children (wget, dpkg in the chroot), so no child
        // keeps the output pipes open; mounts it leaves in the target are undone by RemoveBuildDirectory.
        var result = Processes.ProcessRunner.Run(new Processes.ProgramStart
        {
            Program = program,
            Arguments = (s.Init == "systemd" ? new[] { "--include=" + string.Join(',', SystemdPackages) } : Array.Empty<string>())
                .Concat(new[] { "--variant=" + s.Variant, "--arch=" + s.Arch, s.Release, target, s.Mirror }).ToArray(),
            Environment = new Dictionary<string, string?>
            {
                ["LC_ALL"] = "C",
                ["DEBIAN_FRONTEND"] = "noninteractive",
                ["PATH"] = path + ":/usr/local/sbin:/usr/sbin:/sbin",
            },
            // Its output is progress, kept as the last lines for an error; none of it is needed whole.
            OutputLimit = 0,
            ErrorLimit = 64 << 10,
            OnOutputLine = OnLine,
            OnErrorLine = OnLine,
            NotFoundErrorId = "DebootstrapStartFailed",
            NotFoundAdvice = "Reinstall it: apt-get install debootstrap",
            Target = program,
        }, ct);
        if (result.ExitCode != 0)
        {
            string output;
            lock (tail) output = string.Join("\n", tail);
            var log = LogTail(Path.Combine(target, "debootstrap", "debootstrap.log"));
            var message = new StringBuilder()
                .Append($"debootstrap {s.Release} ({s.Arch}, variant {s.Variant}) from {s.Mirror} failed with exit code {result.ExitCode}. ")
                .Append("Check the release name, the mirror URL and network access (a proxy can be set with http_proxy).")
                .Append("\nLast output:\n").Append(output);
            if (log.Length > 0)
                message.Append("\ndebootstrap.log (tail):\n").Append(log);
            throw new ContainerException("DebootstrapFailed", ContainerErrorKind.InvalidOperation, message.ToString(), s.Release);
        }
    }

    static string LogTail(string path)
    {
        try
        {
            if (!File.Exists(path)) return "";
            var lines = File.ReadLines(path).TakeLast(OutputLinesKept);
            return string.Join("\n", lines);
        }
        catch (IOException) { return ""; }
        catch (UnauthorizedAccessException) { return ""; }
    }

    /// <summary>
    /// Deletes a failed build. An interrupted debootstrap can leave /proc, /sys or a bind-mounted
    /// /dev mounted inside the target: unmount those first, and never recurse into a mount.
    /// </summary>
    internal static void RemoveBuildDirectory(string dir)
    {
        if (!Directory.Exists(dir)) return;
        var full = Path.GetFullPath(dir).TrimEnd('/');
        var mounts = MountPointsBelow(full);
        foreach (var m in mounts.OrderByDescending(m => m.Length))
            umount2(m, MNT_DETACH);
        if (MountPointsBelow(full).Count > 0)
            throw new ContainerException("DebootstrapCleanupFailed", ContainerErrorKind.ResourceBusy,
                $"Cannot remove the failed debootstrap build '{full}': something is still mounted inside it. Unmount it (umount -R '{full}') and delete the directory.", full);
        Directory.Delete(full, recursive: true);
    }

    static List<string> MountPointsBelow(string dir) => MountInfo.PointsBelow(MountInfo.Current(), dir).ToList();

    /// <summary>Turns debootstrap's "I: ..." lines into a rough percentage by phase.</summary>
    internal sealed class ProgressTracker
    {
        readonly IProgress<TemplateProgress>? _progress;
        readonly string _activity;
        int _retrieved, _extracted, _unpacked, _configured, _percent;
        const int ExpectedPackages = 100; // minbase bookworm has ~90

        public ProgressTracker(IProgress<TemplateProgress>? progress, string activity)
        {
            _progress = progress;
            _activity = activity;
        }

        public int Percent => _percent;

        public void OnLine(string line)
        {
            if (!line.StartsWith("I: ", StringComparison.Ordinal))
                return;
            var text = line[3..].Trim();
            int total = Math.Max(_retrieved, 1);
            int? pct = null;
            if (text.StartsWith("Retrieving InRelease", StringComparison.Ordinal) || text.StartsWith("Retrieving Release", StringComparison.Ordinal))
                pct = 2;
            else if (text.StartsWith("Retrieving Packages", StringComparison.Ordinal))
                pct = 4;
            else if (text.StartsWith("Resolving", StringComparison.Ordinal) || text.StartsWith("Checking component", StringComparison.Ordinal))
                pct = 8;
            else if (text.StartsWith("Retrieving ", StringComparison.Ordinal))
                pct = 10 + 35 * Math.Min(++_retrieved, ExpectedPackages) / ExpectedPackages;
            else if (text.StartsWith("Validating", StringComparison.Ordinal))
                pct = null; // the status line still updates below
            else if (text.StartsWith("Extracting", StringComparison.Ordinal))
                pct = 45 + 15 * Math.Min(++_extracted, total) / total;
            else if (text.StartsWith("Installing core", StringComparison.Ordinal))
                pct = 60;
            else if (text.StartsWith("Unpacking", StringComparison.Ordinal))
                pct = 60 + 17 * Math.Min(++_unpacked, total) / total;
            else if (text.StartsWith("Configuring", StringComparison.Ordinal))
                pct = 77 + 20 * Math.Min(++_configured, total) / total;
            else if (text.StartsWith("Base system installed successfully", StringComparison.Ordinal))
                pct = 98; // the copy into the container follows
            if (pct is int p && p > _percent)
                _percent = p;
            _progress?.Report(new TemplateProgress(_activity, text, _percent));
        }
    }
}
