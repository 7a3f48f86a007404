using PSContainers.Runtime.Native;

namespace PSContainers.Runtime.Cgroups;

/// <summary>
/// Legacy cgroup v1: one hierarchy per controller (or per co-mounted group, like cpu,cpuacct).
/// A container's cgroup is created in every hierarchy so that each controller sees it.
/// </summary>
public sealed partial class CgroupV1Driver : ICgroupDriver
{
    /// <summary>controller name -> mount point of its hierarchy.</summary>
    public IReadOnlyDictionary<string, string> Mounts { get; }
    public string Version => "v1";
    public IReadOnlySet<string> Controllers { get; }
    public bool CanFreeze => Mounts.ContainsKey("freezer");
    public bool CanKill => true;

    public CgroupV1Driver(IReadOnlyDictionary<string, string> mounts)
    {
        Mounts = mounts;
        // Logical (v2) names too: limits say "io" for what v1 calls blkio.
        Controllers = mounts.Keys.Concat(mounts.ContainsKey("blkio") ? new[] { "io" } : Array.Empty<string>()).ToHashSet();
    }

    private IEnumerable<string> Hierarchies => Mounts.Values.Distinct();

    private string Dir(string controller, string path) => Path.Combine(Mounts[controller], path);

    public void Create(string path, IReadOnlyCollection<string> controllers)
    {
        var missing = controllers.Where(c => !Owns(c)).ToArray();
        if (missing.Length > 0)
            throw new ContainerException("CgroupControllerUnavailable", ContainerErrorKind.NotInstalled,
                $"The cgroup v1 controller(s) {string.Join(", ", missing)} are not mounted on this host " +
                $"(mounted: {string.Join(", ", Mounts.Keys.Order())}).", path);
        foreach (var root in Hierarchies)
        {
            var current = root;
            var isCpuset = Mounts.TryGetValue("cpuset", out var cpusetRoot) && cpusetRoot == root;
            foreach (var part in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
            {
                var parent = current;
                current = Path.Combine(current, part);
                Directory.CreateDirectory(current);
                // A new v1 cpuset has no cpus or mems and refuses tasks: inherit the parent's.
                if (isCpuset)
                    foreach (var file in new[] { "cpuset.cpus", "cpuset.mems" })
                        if (string.IsNullOrEmpty(CgroupFiles.TryRead(Path.Combine(current, file))))
                            CgroupFiles.Write(Path.Combine(current, file), CgroupFiles.Read(Path.Combine(parent, file)));
            }
        }
    }

    public bool Remove(string path)
    {
        var ok = true;
        foreach (var root in Hierarchies)
            ok &= CgroupFiles.RemoveDirectory(Path.Combine(root, path), TimeSpan.FromSeconds(2));
        return ok;
    }

    public bool Exists(string path) => Hierarchies.Any(root => Directory.Exists(Path.Combine(root, path)));
    public IReadOnlyList<string> Directories(string path) => Hierarchies.Select(root => Path.Combine(root, path)).ToArray();
    public IReadOnlyList<string> ProcsFiles(string path) => Hierarchies.Select(root => Path.Combine(root, path, "cgroup.procs")).ToArray();

    public IReadOnlyList<int> Pids(string path) => CgroupFiles.ReadPids(Path.Combine(PidsDirectory(path), "cgroup.procs"));

    /// <summary>The directory whose cgroup.procs lists the cgroup's processes (the freezer hierarchy's, where there is one).</summary>
    public string PidsDirectory(string path) => Path.Combine(Mounts.TryGetValue("freezer", out var f) ? f : Hierarchies.First(), path);

    public void Freeze(string path, TimeSpan timeout)
    {
        var state = Path.Combine(Dir("freezer", path), "freezer.state");
        CgroupFiles.Write(state, "FROZEN");
        // FREEZING means some task has not stopped yet; rewriting FROZEN retries the freeze.
        if (!CgroupFiles.WaitUntil(() => { var s = CgroupFiles.TryRead(state); if (s == "FREEZING") CgroupFiles.Write(state, "FROZEN"); return s == "FROZEN"; }, timeout))
        {
            CgroupFiles.Write(state, "THAWED");
            throw new ContainerException("FreezeTimeout", ContainerErrorKind.OperationTimeout,
                $"{state} stayed FREEZING for {timeout.TotalSeconds:0.#} s; the container was thawed again. " +
                "A process may be stuck in uninterruptible sleep (D state); try again later.", path);
        }
    }

    public void Thaw(string path)
    {
        var state = Path.Combine(Dir("freezer", path), "freezer.state");
        CgroupFiles.Write(state, "THAWED");
        CgroupFiles.WaitUntil(() => CgroupFiles.TryRead(state) == "THAWED", TimeSpan.FromSeconds(5));
    }

    public bool IsFrozen(string path) =>
        CanFreeze && CgroupFiles.TryRead(Path.Combine(Dir("freezer", path), "freezer.state")) == "FROZEN";

    public void KillAll(string path)
    {
        // v1 has no cgroup.kill: freeze so nothing can fork, SIGKILL everyone, thaw so the kills land.
        var frozen = false;
        if (CanFreeze)
        {
            try { Freeze(path, TimeSpan.FromSeconds(2)); frozen = true; }
            catch (ContainerException) { }
        }
        // The cgroups below it too (a container's inner cgroup and whatever it made there).
        IReadOnlyList<int> All() => CgroupFiles.ReadPidsTree(PidsDirectory(path));
        foreach (var pid in All()) Sys.Kill(pid, 9);
        if (frozen) Thaw(path);
        CgroupFiles.WaitUntil(() => { foreach (var pid in All()) Sys.Kill(pid, 9); return All().Count == 0; }, TimeSpan.FromSeconds(5));
    }

    public void SetMemoryMax(string path, long? bytes)
    {
        if (!Mounts.ContainsKey("memory"))
            throw new ContainerException("CgroupControllerUnavailable", ContainerErrorKind.NotInstalled,
                "The memory controller is not mounted on this host, so a memory limit cannot be applied.", path);
        CgroupFiles.Write(Path.Combine(Dir("memory", path), "memory.limit_in_bytes"), bytes?.ToString() ?? "-1");
    }

    public long? GetMemoryMax(string path)
    {
        if (!Mounts.ContainsKey("memory")) return null;
        var text = CgroupFiles.TryRead(Path.Combine(Dir("memory", path), "memory.limit_in_bytes"));
        // v1 reports "no limit" as the largest page-aligned long.
        return text is null || long.Parse(text) >= 0x7FFFFFFFFFFFF000 ? null : long.Parse(text);
    }
}
