using PSContainers.Runtime.Native;

namespace PSContainers.Runtime.Cgroups;

/// <summary>
/// The unified hierarchy (cgroup v2): one tree, controllers enabled per level through
/// cgroup.subtree_control, core files cgroup.freeze/cgroup.events/cgroup.kill. Works on a real
/// cgroup2 mount or on a plain directory tree that mimics one (tests).
/// </summary>
public sealed partial class CgroupV2Driver : ICgroupDriver
{
    public string MountPoint { get; }
    public string Version => "v2";
    public IReadOnlySet<string> Controllers { get; }
    public bool CanFreeze => true; // cgroup.freeze is a core file of every non-root cgroup (Linux 5.2+)
    public bool CanKill => true;

    public CgroupV2Driver(string mountPoint)
    {
        MountPoint = mountPoint;
        var text = CgroupFiles.TryRead(Path.Combine(mountPoint, "cgroup.controllers")) ?? "";
        Controllers = text.Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet();
    }

    private string Dir(string path) => Path.Combine(MountPoint, path);

    public void Create(string path, IReadOnlyCollection<string> controllers)
    {
        var current = MountPoint;
        // Devices are an eBPF program on v2, not a controller to enable.
        controllers = controllers.Where(c => c != "devices").ToArray();
        foreach (var part in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (controllers.Count > 0) EnableControllers(current, controllers);
            current = Path.Combine(current, part);
            Directory.CreateDirectory(current);
        }
    }

    /// <summary>
    /// Enables, in every ancestor of <paramref name="path"/> (the mount root to its parent), those of
    /// <paramref name="controllers"/> the level has: for accounting, not limits, so a controller this
    /// subtree was not given (not delegated, or refused) is left off rather than an error; the levels
    /// below then do not have it either. It stops at a level that holds processes (a non-root
    /// caller's own delegated cgroup): the kernel refuses memory and io there, and would take cpu and
    /// pids, but that makes the level a thread root, under which no new cgroup can hold a process
    /// (clone into it: EOPNOTSUPP).
    /// </summary>
    public void EnableWhereAvailable(string path, IReadOnlyCollection<string> controllers)
    {
        var current = MountPoint;
        foreach (var part in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            // The root cgroup (no cgroup.type) may hold processes and enable anything.
            if (File.Exists(Path.Combine(current, "cgroup.type")) && CgroupFiles.ReadPids(Path.Combine(current, "cgroup.procs")).Count > 0) return;
            var available = (CgroupFiles.TryRead(Path.Combine(current, "cgroup.controllers")) ?? "")
                .Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet();
            var enabled = (CgroupFiles.TryRead(Path.Combine(current, "cgroup.subtree_control")) ?? "")
                .Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet();
            var toEnable = controllers.Where(c => available.Contains(c) && !enabled.Contains(c)).ToArray();
            var file = Path.Combine(current, "cgroup.subtree_control");
            if (toEnable.Length > 0)
                try { CgroupFiles.Write(file, string.Join(' ', toEnable.Select(c => "+" + c))); }
                catch (ContainerException)
                {
                    // The kernel takes all or none of one write: one at a time, so a refused one keeps the others.
                    foreach (var c in toEnable)
                        try { CgroupFiles.Write(file, "+" + c); } catch (ContainerException) { }
                }
            current = Path.Combine(current, part);
        }
    }

    /// <summary>
    /// Enables controllers for the children of <paramref name="dir"/>. A controller missing from its
    /// cgroup.controllers is not delegated to this subtree: that is an error naming the controller,
    /// never a silently skipped limit.
    /// </summary>
    private static void EnableControllers(string dir, IReadOnlyCollection<string> controllers)
    {
        var available = (CgroupFiles.TryRead(Path.Combine(dir, "cgroup.controllers")) ?? "")
            .Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet();
        var missing = controllers.Where(c => !available.Contains(c)).ToArray();
        if (missing.Length > 0)
            throw new ContainerException("CgroupControllerUnavailable", ContainerErrorKind.NotInstalled,
                $"The cgroup v2 controller(s) {string.Join(", ", missing)} are not available in {dir} " +
                $"(its cgroup.controllers lists: {(available.Count == 0 ? "none" : string.Join(" ", available))}). " +
                "Enable them in the parent's cgroup.subtree_control, or ask the service manager to delegate them " +
                "(systemd: Delegate=yes); on a hybrid host they may be bound to cgroup v1 instead.", dir);
        var enabled = (CgroupFiles.TryRead(Path.Combine(dir, "cgroup.subtree_control")) ?? "")
            .Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet();
        var toEnable = controllers.Where(c => !enabled.Contains(c)).ToArray();
        if (toEnable.Length > 0)
            CgroupFiles.Write(Path.Combine(dir, "cgroup.subtree_control"), string.Join(' ', toEnable.Select(c => "+" + c)));
    }

    /// <summary>
    /// Hands a cgroup to a user namespace's root (cgroups(7), "delegation"): the directory and the
    /// files a delegatee writes (cgroup.procs, cgroup.threads, cgroup.subtree_control) become theirs,
    /// so an init system inside (systemd) can make its own cgroups below it and move its processes
    /// between them. Limits stay out of reach: memory.max and the like keep their owner (host root).
    /// </summary>
    public void Delegate(string path, uint uid, uint gid)
    {
        var dir = Dir(path);
        foreach (var target in new[] { dir, Path.Combine(dir, "cgroup.procs"), Path.Combine(dir, "cgroup.threads"), Path.Combine(dir, "cgroup.subtree_control") })
            Chown(target, uid, gid);
    }

    private static unsafe void Chown(string path, uint uid, uint gid)
    {
        fixed (byte* p = System.Text.Encoding.UTF8.GetBytes(path + "\0"))
            if (Tmds.Linux.LibC.lchown(p, uid, gid) != 0)
                throw new ContainerException("CgroupDelegationFailed", ContainerErrorKind.PermissionDenied,
                    $"Cannot hand the cgroup {path} to the container's root (uid {uid}): errno {Tmds.Linux.LibC.errno}. Check that the cgroup2 hierarchy is writable by root.", path);
    }

    public bool Remove(string path) => CgroupFiles.RemoveDirectory(Dir(path), TimeSpan.FromSeconds(2));
    public bool Exists(string path) => Directory.Exists(Dir(path));
    public IReadOnlyList<string> Directories(string path) => new[] { Dir(path) };
    public IReadOnlyList<string> ProcsFiles(string path) => new[] { Path.Combine(Dir(path), "cgroup.procs") };
    public IReadOnlyList<int> Pids(string path) => CgroupFiles.ReadPids(Path.Combine(Dir(path), "cgroup.procs"));

    public void Freeze(string path, TimeSpan timeout)
    {
        CgroupFiles.Write(Path.Combine(Dir(path), "cgroup.freeze"), "1");
        if (!CgroupFiles.WaitUntil(() => IsFrozen(path), timeout))
        {
            // Never leave a container half-frozen: undo and report.
            CgroupFiles.Write(Path.Combine(Dir(path), "cgroup.freeze"), "0");
            throw new ContainerException("FreezeTimeout", ContainerErrorKind.OperationTimeout,
                $"The cgroup {Dir(path)} did not report frozen within {timeout.TotalSeconds:0.#} s; it was thawed again. " +
                "A process may be stuck in uninterruptible sleep (D state); try again later.", path);
        }
    }

    public void Thaw(string path) => CgroupFiles.Write(Path.Combine(Dir(path), "cgroup.freeze"), "0");

    public bool IsFrozen(string path)
    {
        var events = CgroupFiles.TryRead(Path.Combine(Dir(path), "cgroup.events"));
        if (events is null) return false;
        foreach (var line in events.Split('\n'))
            if (line.StartsWith("frozen ", StringComparison.Ordinal)) return line.EndsWith('1');
        return false;
    }

    public void KillAll(string path)
    {
        var kill = Path.Combine(Dir(path), "cgroup.kill");
        if (File.Exists(kill)) { CgroupFiles.Write(kill, "1"); return; }
        // Kernels before 5.14: freeze so nothing forks while we kill, then kill each process.
        CgroupFiles.Write(Path.Combine(Dir(path), "cgroup.freeze"), "1");
        try
        {
            for (var round = 0; round < 100; round++)
            {
                var pids = CgroupFiles.ReadPidsTree(Dir(path));
                if (pids.Count == 0) break;
                foreach (var pid in pids) Sys.Kill(pid, 9);
                Thread.Sleep(2);
            }
        }
        finally { CgroupFiles.Write(Path.Combine(Dir(path), "cgroup.freeze"), "0"); }
    }

    public void SetMemoryMax(string path, long? bytes) =>
        CgroupFiles.Write(Path.Combine(Dir(path), "memory.max"), bytes?.ToString() ?? "max");

    public long? GetMemoryMax(string path)
    {
        var text = CgroupFiles.TryRead(Path.Combine(Dir(path), "memory.max"));
        return text is null or "max" ? null : long.Parse(text);
    }
}
