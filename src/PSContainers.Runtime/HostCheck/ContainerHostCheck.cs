using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Text;
using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Templates;
using PSContainers.Runtime.Launcher;
using PSContainers.Runtime.Network;

using PSContainers.Runtime.IdMapping;

namespace PSContainers.Runtime.HostCheck;

/// <summary>
/// A preflight of this host for (unprivileged) containers, like lxc-checkconfig plus the user
/// setup LXC's documentation walks through: kernel namespaces and user-namespace sysctls, cgroup
/// layout, controllers and delegation, overlayfs, seccomp, newuidmap/newgidmap, the user's
/// subordinate ids, and the programs the module drives (psc-helper, busybox, criu).
/// The roots are injectable so the kernel-facing checks can also be run against a prepared tree.
/// </summary>
public sealed unsafe class ContainerHostCheck
{
    /// <summary>The one variable that names criu: the same one checkpointing reads (<see cref="Checkpoint.CriuService"/>).</summary>
    public const string CriuEnvironmentVariable = Checkpoint.CriuService.EnvironmentVariable;

    public string ProcRoot { get; init; } = "/proc";
    public SubordinateIdDatabase SubordinateIds { get; init; } = new();
    /// <summary>Directories searched for newuidmap, newgidmap and criu (default: $PATH, then the sbin/bin directories).</summary>
    public IReadOnlyList<string> SearchPath { get; init; } = DefaultSearchPath();

    private const string Kernel = "Kernel", Cgroups = "Cgroups", Filesystems = "Filesystems", Security = "Security", Ids = "IdMapping", Tools = "Tools";

    private bool IsLiveProc => Path.GetFullPath(ProcRoot) == "/proc";

    /// <summary>Runs every check for <paramref name="user"/> (default: the user running this process).</summary>
    public IReadOnlyList<HostCheckFinding> Run(UserAccount? user = null)
    {
        user ??= UserAccounts.Current();
        var findings = new List<HostCheckFinding>();
        findings.AddRange(Namespaces());
        findings.AddRange(UserNamespaceSysctls(user));
        findings.AddRange(CgroupChecks(user));
        findings.Add(Overlay());
        findings.Add(Seccomp());
        findings.Add(IdMapTool("newuidmap", FileCapabilities.CapSetuid, "cap_setuid", user));
        findings.Add(IdMapTool("newgidmap", FileCapabilities.CapSetgid, "cap_setgid", user));
        findings.AddRange(SubordinateRanges(user));
        findings.Add(NativeHelper());
        findings.Add(UserNicHelper(user));
        findings.Add(Busybox());
        findings.Add(Criu());
        findings.Add(UnprivilegedDefault(findings, user));
        return findings.Select(f => f with { User = user.Name }).ToList();
    }

    // ---- kernel ----------------------------------------------------------------------------------

    private static readonly (string Name, string Config, bool Required)[] NamespaceKinds =
    {
        ("user", "CONFIG_USER_NS", true), ("mnt", "CONFIG_NAMESPACES", true), ("pid", "CONFIG_PID_NS", true),
        ("net", "CONFIG_NET_NS", true), ("uts", "CONFIG_UTS_NS", true), ("ipc", "CONFIG_IPC_NS", true),
        ("cgroup", "CONFIG_CGROUPS", false), ("time", "CONFIG_TIME_NS", false),
    };

    private IEnumerable<HostCheckFinding> Namespaces()
    {
        foreach (var (name, config, required) in NamespaceKinds)
        {
            var file = Path.Combine(ProcRoot, "self", "ns", name);
            if (Path.Exists(file))
                yield return new($"{name} namespace", Kernel, HostCheckStatus.Pass, $"{file} exists", null);
            else
                yield return new($"{name} namespace", Kernel, required ? HostCheckStatus.Fail : HostCheckStatus.Warn,
                    $"{file} is missing: the kernel has no {name} namespaces" + (required ? "" : $" (containers start without one{(name == "time" ? "; kernels before 5.6 lack it" : "")})"),
                    $"Boot a kernel built with {config}=y.");
        }
    }

    private IEnumerable<HostCheckFinding> UserNamespaceSysctls(UserAccount user)
    {
        var unprivilegedSeverity = user.Uid == 0 ? HostCheckStatus.Warn : HostCheckStatus.Fail;
        var max = ReadProc("sys/user/max_user_namespaces");
        if (max is null)
            yield return new("user.max_user_namespaces", Kernel, HostCheckStatus.Warn, "sysctl user.max_user_namespaces is not readable", "Check that /proc/sys is mounted.");
        else if (long.TryParse(max, out var n) && n == 0)
            yield return new("user.max_user_namespaces", Kernel, HostCheckStatus.Fail, "user.max_user_namespaces = 0: nobody may create user namespaces",
                "sysctl -w user.max_user_namespaces=15000, and persist it in /etc/sysctl.d/.");
        else
            yield return new("user.max_user_namespaces", Kernel, HostCheckStatus.Pass, $"user.max_user_namespaces = {max}", null);

        // A Debian/Ubuntu kernel patch; absent upstream, where unprivileged user namespaces are always on.
        if (ReadProc("sys/kernel/unprivileged_userns_clone") is { } clone)
            yield return clone == "0"
                ? new("kernel.unprivileged_userns_clone", Kernel, unprivilegedSeverity, "kernel.unprivileged_userns_clone = 0: only root may create user namespaces",
                    "sysctl -w kernel.unprivileged_userns_clone=1, and persist it in /etc/sysctl.d/.")
                : new("kernel.unprivileged_userns_clone", Kernel, HostCheckStatus.Pass, $"kernel.unprivileged_userns_clone = {clone}", null);

        // Ubuntu 23.10+: AppArmor denies unprivileged user namespaces to unconfined programs.
        if (ReadProc("sys/kernel/apparmor_restrict_unprivileged_userns") is "1")
            yield return new("kernel.apparmor_restrict_unprivileged_userns", Kernel, unprivilegedSeverity,
                "AppArmor restricts unprivileged user namespaces",
                "Give pwsh an AppArmor profile with 'userns,' or sysctl -w kernel.apparmor_restrict_unprivileged_userns=0.");
    }

    // ---- cgroups ---------------------------------------------------------------------------------

    private IEnumerable<HostCheckFinding> CgroupChecks(UserAccount user)
    {
        CgroupLayout? layout = null;
        string? problem = null;
        try { layout = CgroupLayout.Detect(Path.Combine(ProcRoot, "self", "mountinfo")); }
        catch (Exception ex) when (ex is ContainerException or IOException) { problem = ex.Message; }
        if (layout is null)
        {
            yield return new("cgroup layout", Cgroups, HostCheckStatus.Fail, problem!, "Mount cgroup2: mount -t cgroup2 none /sys/fs/cgroup.");
            yield break;
        }
        var v1 = layout.V1Mounts.Keys.Order(StringComparer.Ordinal).ToList();
        var v2 = layout.UnifiedMount is { } u && File.Exists(Path.Combine(u, "cgroup.controllers"))
            ? File.ReadAllText(Path.Combine(u, "cgroup.controllers")).Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList()
            : new List<string>();
        var detail = layout.Kind switch
        {
            CgroupLayoutKind.Unified => $"cgroup v2 at {layout.UnifiedMount}",
            CgroupLayoutKind.Hybrid => $"hybrid: v1 controllers {string.Join(",", v1)}; cgroup2 at {layout.UnifiedMount}",
            _ => $"cgroup v1 only: {string.Join(",", v1)}",
        };
        yield return new("cgroup layout", Cgroups, HostCheckStatus.Pass, detail, null);

        var available = v1.Concat(v2).ToHashSet();
        var missing = new[] { "memory", "pids", "cpu" }.Where(c => !available.Contains(c)).ToList();
        yield return missing.Count == 0
            ? new("cgroup controllers", Cgroups, HostCheckStatus.Pass, $"v1: {(v1.Count == 0 ? "-" : string.Join(",", v1))}; v2: {(v2.Count == 0 ? "-" : string.Join(",", v2))}", null)
            : new("cgroup controllers", Cgroups, HostCheckStatus.Warn, $"no {string.Join(", ", missing)} controller: those limits cannot be set",
                "Enable the controllers (kernel CONFIG_MEMCG, CONFIG_CGROUP_PIDS, CONFIG_CGROUP_SCHED; on cgroup v2 list them in the root's cgroup.subtree_control).");

        yield return Delegation(layout, user);
    }

    private HostCheckFinding Delegation(CgroupLayout layout, UserAccount user)
    {
        const string name = "cgroup delegation";
        if (user.Uid == 0) return new(name, Cgroups, HostCheckStatus.Pass, "root creates cgroups anywhere", null);
        if (layout.UnifiedMount is not { } root)
            return new(name, Cgroups, HostCheckStatus.Warn, "cgroup v1 only: no cgroup can be delegated safely to an unprivileged user; its containers run without limits",
                "Boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1).");
        var candidates = new List<string>();
        if (user.Uid == UserAccounts.Current().Uid && OwnCgroup() is { } own) candidates.Add(Path.Combine(root, own.TrimStart('/')));
        candidates.Add(Path.Combine(root, "user.slice", $"user-{user.Uid}.slice", $"user@{user.Uid}.service"));
        foreach (var dir in candidates)
            if (Directory.Exists(dir) && Filesystem.FsNative.OwnerOf(Path.Combine(dir, "cgroup.procs")) == user.Uid)
                return new(name, Cgroups, HostCheckStatus.Pass, $"{dir} is delegated to {user.Name}", null);
        return new(name, Cgroups, HostCheckStatus.Warn,
            $"no cgroup v2 subtree is delegated to {user.Name} (looked at {string.Join(", ", candidates)}): its containers run without resource limits",
            $"systemd delegates user@{user.Uid}.service to a logged-in user; 'loginctl enable-linger {user.Name}' keeps it without a login. " +
            $"Or as root: mkdir {root}/psc-{user.Name} && chown -R {user.Name} {root}/psc-{user.Name}.");
    }

    private string? OwnCgroup()
    {
        var file = Path.Combine(ProcRoot, "self", "cgroup");
        if (!File.Exists(file)) return null;
        return File.ReadLines(file).FirstOrDefault(l => l.StartsWith("0::", StringComparison.Ordinal))?[3..];
    }

    // ---- filesystems and security ----------------------------------------------------------------

    private HostCheckFinding Overlay()
    {
        var file = Path.Combine(ProcRoot, "filesystems");
        var present = File.Exists(file) && File.ReadLines(file).Any(l => l.Split('\t').LastOrDefault()?.Trim() == "overlay");
        return present
            ? new("overlay filesystem", Filesystems, HostCheckStatus.Pass, "overlay is in /proc/filesystems", null)
            : new("overlay filesystem", Filesystems, HostCheckStatus.Warn, "overlay is not in /proc/filesystems: -Backend overlay and overlay snapshots are unavailable (dir and btrfs work)",
                "modprobe overlay (kernel CONFIG_OVERLAY_FS).");
    }

    private const int SECCOMP_GET_ACTION_AVAIL = 2;
    private const uint SECCOMP_RET_ERRNO = 0x00050000;

    private HostCheckFinding Seccomp()
    {
        const string name = "seccomp";
        var status = Path.Combine(ProcRoot, "self", "status");
        var mode = File.Exists(status) ? File.ReadLines(status).FirstOrDefault(l => l.StartsWith("Seccomp:", StringComparison.Ordinal))?[8..].Trim() : null;
        var config = KernelConfig();
        bool? filter = config is not null ? config.Contains("CONFIG_SECCOMP_FILTER=y") : IsLiveProc ? FilterAvailableNow() : null;
        if (mode is null && filter != true)
            return new(name, Security, HostCheckStatus.Fail, "the kernel has no seccomp (no Seccomp field in /proc/self/status)",
                "Boot a kernel built with CONFIG_SECCOMP=y and CONFIG_SECCOMP_FILTER=y: the default system-call filter of containers needs it.");
        if (filter == false)
            return new(name, Security, HostCheckStatus.Fail, "seccomp filters are not available (CONFIG_SECCOMP_FILTER)",
                "Boot a kernel built with CONFIG_SECCOMP_FILTER=y: the default system-call filter of containers needs it.");
        var source = config is not null ? "CONFIG_SECCOMP_FILTER=y in /proc/config.gz" : filter == true ? "seccomp(SECCOMP_GET_ACTION_AVAIL) answers" : "filter support not verifiable";
        return new(name, Security, filter == true ? HostCheckStatus.Pass : HostCheckStatus.Warn,
            $"seccomp filters available ({source}); this process runs in seccomp mode {mode ?? "?"}",
            filter == true ? null : "Check that the kernel has CONFIG_SECCOMP_FILTER=y.");
    }

    private static bool FilterAvailableNow()
    {
        int nr = RuntimeInformation.OSArchitecture switch { Architecture.Arm64 => 277, Architecture.X64 => 317, _ => -1 };
        if (nr < 0) return false;
        uint action = SECCOMP_RET_ERRNO;
        return (long)Tmds.Linux.LibC.syscall(nr, SECCOMP_GET_ACTION_AVAIL, 0, &action) == 0;
    }

    /// <summary>The kernel's build configuration from /proc/config.gz, when the kernel exposes it.</summary>
    private string? KernelConfig()
    {
        var file = Path.Combine(ProcRoot, "config.gz");
        if (!File.Exists(file)) return null;
        try
        {
            using var gz = new GZipStream(File.OpenRead(file), CompressionMode.Decompress);
            using var reader = new StreamReader(gz);
            return reader.ReadToEnd();
        }
        catch (Exception ex) when (ex is IOException or InvalidDataException) { return null; }
    }

    private HostCheckFinding IdMapTool(string tool, int capability, string capName, UserAccount user)
    {
        var severity = user.Uid == 0 ? HostCheckStatus.Warn : HostCheckStatus.Fail;
        var path = Find(tool);
        if (path is null)
            return new(tool, Ids, severity, $"{tool} is not installed: user namespaces can map only the caller's own id",
                "apt-get install uidmap (shadow-utils' newuidmap and newgidmap).");
        var info = new FileInfo(File.ResolveLinkTarget(path, true)?.FullName ?? path);
        if ((info.UnixFileMode & UnixFileMode.SetUser) != 0 && Filesystem.FsNative.OwnerOf(info.FullName) == 0)
            return new(tool, Ids, HostCheckStatus.Pass, $"{path} is setuid root", null);
        var caps = FileCapabilities.Read(path);
        if (caps is not null && caps.Grants(capability))
            return new(tool, Ids, HostCheckStatus.Pass, $"{path} has the file capability {capName}=ep{(caps.RootUid is { } r && r != 0 ? $" (for the user namespace of uid {r})" : "")}", null);
        return new(tool, Ids, severity,
            $"{path} is neither setuid root nor has {capName} in its permitted and effective file capabilities{(caps is null ? "" : $" (it has permitted 0x{caps.Permitted:x}, effective {caps.Effective})")}",
            $"setcap {capName}+ep {info.FullName} (or chmod u+s {info.FullName}, as Debian ships it).");
    }

    // ---- subordinate ids -------------------------------------------------------------------------

    private IEnumerable<HostCheckFinding> SubordinateRanges(UserAccount user)
    {
        foreach (var kind in SubordinateIdDatabase.BothKinds)
        {
            var file = SubordinateIds.Paths.Of(kind);
            var name = kind == SubordinateIdKind.Uid ? "subuid range" : "subgid range";
            var flag = kind == SubordinateIdKind.Uid ? "--add-subuids" : "--add-subgids";
            IReadOnlyList<SubordinateIdRange>? ranges = null;
            string? problem = null;
            try { ranges = SubordinateIds.GetRanges(user, kind); }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { problem = ex.Message; }
            if (ranges is null)
            {
                yield return new(name, Ids, HostCheckStatus.Fail, $"{file} cannot be read: {problem}", $"Make {file} readable (mode 0644, owned by root).");
                continue;
            }
            var total = ranges.Sum(r => (long)r.Count);
            var listed = string.Join(", ", ranges.Select(r => $"{r.Start}-{r.End}"));
            var remedy = $"Add-SubordinateIdRange -User {user.Name} -Kind {kind} (or: usermod {flag} 100000-165535 {user.Name}).";
            if (ranges.Count == 0 && user.Uid == 0)
            {
                // Root's first unprivileged container allocates its range (DefaultIdMap): fine while one is free.
                var defaults = SubordinateIds.Defaults;
                uint? free = null;
                try { free = SubordinateIdFile.FindFree(SubordinateIds.GetRanges(kind), defaults.Min(kind), defaults.Max(kind), 65536); }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
                yield return free is { } f
                    ? new(name, Ids, HostCheckStatus.Pass,
                        $"root has no range in {file} yet: its first unprivileged container (the default) allocates {f}-{f + 65535L} there", null)
                    : new(name, Ids, HostCheckStatus.Fail,
                        $"root has no range in {file} and no 65536 free ids are left between {defaults.Min(kind)} and {defaults.Max(kind)} (login.defs): new containers, unprivileged by default, cannot get ids",
                        $"Free ids in {file}, raise SUB_{(kind == SubordinateIdKind.Uid ? "UID" : "GID")}_MAX in /etc/login.defs, or add a range by hand: Add-SubordinateIdRange -User root -Start <id>. Meanwhile New-Container -Privileged still works.");
            }
            else if (ranges.Count == 0)
                yield return new(name, Ids, HostCheckStatus.Fail,
                    $"{user.Name} has no range in {file}: unprivileged containers cannot map ids 0-65535", remedy);
            else if (total < 65536)
                yield return new(name, Ids, HostCheckStatus.Warn, $"{user.Name} has {total} ids in {file} ({listed}): fewer than the 65536 a container maps (ids 0-65535)", remedy);
            else
                yield return new(name, Ids, HostCheckStatus.Pass, $"{user.Name} has {total} ids in {file}: {listed}", null);
        }
        var problems = SubordinateIds.Problems();
        if (problems.Count > 0)
            yield return new("subordinate id files", Ids, HostCheckStatus.Warn,
                string.Join("; ", problems.Select(p => $"{p.Path}:{p.Line}: '{p.Text}' ({p.Problem})")) + " - ignored, as shadow-utils ignores them",
                "Fix or remove those lines (vipw-like: edit the file as root).");
    }

    // ---- the default mode ------------------------------------------------------------------------

    /// <summary>
    /// Whether New-Container's default (an unprivileged, user-namespaced container) can be met for
    /// the user, from the findings that decide it; what is missing, each with its own finding above.
    /// </summary>
    private static HostCheckFinding UnprivilegedDefault(IReadOnlyList<HostCheckFinding> findings, UserAccount user)
    {
        const string name = "unprivileged default";
        var root = user.Uid == 0;
        // Root writes its maps itself (no newuidmap) and may create user namespaces whatever the
        // Debian/AppArmor switches say; a non-root user needs those too.
        bool Decides(HostCheckFinding f) => f.Name is "user namespace" or "user.max_user_namespaces" or "subuid range" or "subgid range"
            || (!root && f.Name is "newuidmap" or "newgidmap" or "kernel.unprivileged_userns_clone" or "kernel.apparmor_restrict_unprivileged_userns");
        var missing = findings.Where(f => Decides(f) && f.Status == HostCheckStatus.Fail).ToList();
        if (missing.Count == 0)
            return new(name, Ids, HostCheckStatus.Pass,
                $"New-Container makes {user.Name}'s containers user-namespaced by default, and this host can: user namespaces, subordinate ids{(root ? "" : ", newuidmap/newgidmap")}", null);
        return new(name, Ids, HostCheckStatus.Fail,
            $"New-Container's default (an unprivileged, user-namespaced container) cannot be met for {user.Name}: {string.Join("; ", missing.Select(f => $"{f.Name}: {f.Detail}"))}",
            string.Join(" ", missing.Select(f => f.Remedy).Where(r => r is not null).Distinct()) +
            (root ? " Until then, New-Container -Privileged makes a privileged container." : ""));
    }

    // ---- tools -----------------------------------------------------------------------------------

    private static HostCheckFinding NativeHelper()
    {
        try
        {
            var path = PscHelper.Path;
            return (File.GetUnixFileMode(path) & UnixFileMode.UserExecute) != 0
                ? new("psc-helper", Tools, HostCheckStatus.Pass, path, null)
                : new("psc-helper", Tools, HostCheckStatus.Fail, $"{path} is not executable", $"chmod 0755 {path}");
        }
        catch (ContainerException ex)
        {
            return new("psc-helper", Tools, HostCheckStatus.Fail, "the native helper was not found: no container can start", ex.Message);
        }
    }

    /// <summary>psc-usernic installed privileged, and the veths usernet grants the user (optional: pasta needs neither).</summary>
    private static HostCheckFinding UserNicHelper(UserAccount user)
    {
        const string name = "psc-usernic";
        var path = Network.UserNic.InstalledPath;
        string grants;
        try
        {
            var quota = UsernetQuota.Load();
            var granted = quota.Entries.Select(e => e.Bridge).Distinct().Select(b => (Bridge: b, Count: quota.AllowedVeths(user, b))).Where(g => g.Count > 0).ToList();
            grants = granted.Count == 0 ? $"{quota.Path} grants {user.Name} no veths"
                : $"{quota.Path} grants {user.Name}: " + string.Join(", ", granted.Select(g => $"{g.Count} on {g.Bridge}"));
        }
        catch (ContainerException ex) { return new(name, Tools, HostCheckStatus.Warn, ex.Message, "Fix the line named (as root): until then psc-usernic grants no veths."); }
        return Network.UserNic.InstallationProblem(path) is { } problem
            ? new(name, Tools, HostCheckStatus.Warn, $"non-root users' veths on bridges are unavailable: {problem}; {grants}",
                "As root: Install-ContainerUserNic, and grant veths in /etc/pscontainers/usernet ('user veth bridge count'). Not needed for pasta networking.")
            : new(name, Tools, HostCheckStatus.Pass, $"{path}; {grants}", null);
    }

    private static HostCheckFinding Busybox()
    {
        try { return new("busybox", Tools, HostCheckStatus.Pass, $"{BusyboxTemplate.FindBusybox()} (static)", null); }
        catch (ContainerException ex)
        {
            return new("busybox", Tools, HostCheckStatus.Warn, "no static busybox: the busybox template (the default) is unavailable; -Template debootstrap still works", ex.Message);
        }
    }

    private HostCheckFinding Criu()
    {
        var env = Environment.GetEnvironmentVariable(CriuEnvironmentVariable);
        var path = !string.IsNullOrEmpty(env) ? (File.Exists(env) ? env : null) : Find("criu");
        if (path is null)
            return new("criu", Tools, HostCheckStatus.Warn,
                string.IsNullOrEmpty(env) ? "criu is not on PATH: containers cannot be checkpointed or restored" : $"${CriuEnvironmentVariable} points at {env}, which does not exist",
                $"Install CRIU (criu.org; packaged by many distributions) or set ${CriuEnvironmentVariable} to the criu binary.");
        var version = CriuVersion(path);
        if (version is null)
            return new("criu", Tools, HostCheckStatus.Warn, $"{path} did not report a version (criu --version)", "Reinstall CRIU; 'criu check' says what the kernel lacks.");
        // The same minimum Checkpoint-Container enforces: a pass here means checkpointing can use it.
        if (Version.TryParse(version.Split('-')[0], out var parsed) && parsed < Checkpoint.CriuService.MinimumVersion)
            return new("criu", Tools, HostCheckStatus.Warn, $"criu {version} at {path} is older than {Checkpoint.CriuService.MinimumVersion}: Checkpoint-Container refuses it",
                Checkpoint.CriuService.InstallHint);
        return new("criu", Tools, HostCheckStatus.Pass, $"criu {version} at {path}", null);
    }

    private static string? CriuVersion(string path)
    {
        try
        {
            var result = Processes.ProcessRunner.Run(new Processes.ProgramStart { Program = path, Arguments = new[] { "--version" }, Timeout = TimeSpan.FromSeconds(10) });
            return result.Output.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("Version:", StringComparison.Ordinal))?[8..].Trim();
        }
        catch (ContainerException ex) when (ex.Kind is ContainerErrorKind.NotInstalled or ContainerErrorKind.OperationTimeout) { return null; }
    }

    // ---- helpers ---------------------------------------------------------------------------------

    private string? ReadProc(string relative)
    {
        var file = Path.Combine(ProcRoot, relative);
        try { return File.Exists(file) ? File.ReadAllText(file).Trim() : null; }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return null; }
    }

    private string? Find(string program) =>
        SearchPath.Select(d => Path.Combine(d, program)).FirstOrDefault(File.Exists);

    private static IReadOnlyList<string> DefaultSearchPath() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Concat(new[] { "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin" }).Distinct().ToList();
}
