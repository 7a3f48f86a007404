using System.Globalization;

namespace PSContainers.Runtime.Cgroups;

/// <summary>A cgroup as lscgroup shows it: its path and the hierarchies (controllers) it exists in.</summary>
public sealed class CgroupInfo
{
    public string Path { get; init; } = "";
    public IReadOnlyList<string> Controllers { get; init; } = Array.Empty<string>();
    public IReadOnlyList<int> Pids { get; init; } = Array.Empty<int>();
    public bool Frozen { get; init; }
    public IReadOnlyList<string> Directories { get; init; } = Array.Empty<string>();
}

public sealed partial class CgroupManager
{
    /// <summary>Limit-bearing controllers, by their logical (v2) names.</summary>
    public static readonly IReadOnlyList<string> LimitControllers = new[] { "memory", "cpu", "cpuset", "pids", "io", "hugetlb", "devices", "net_cls", "net_prio" };

    /// <summary>Normalizes a user-given cgroup path ("/a/b", "a/b") to "a/b"; rejects the root and "..".</summary>
    public static string NormalizePath(string path)
    {
        var parts = (path ?? "").Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0 || parts.Any(p => p is "." or ".." || p.Contains('\0')))
            throw new ContainerException("InvalidCgroupPath", ContainerErrorKind.InvalidArgument,
                $"Invalid cgroup path '{path}': give a path below the hierarchy roots like 'mygroup' or 'parent/child', without '.' or '..'.", path);
        return string.Join('/', parts);
    }

    /// <summary>Which hierarchy ("v1"/"v2") applies each controller's limits on this host; unavailable ones are left out.</summary>
    public IReadOnlyDictionary<string, string> ControllerVersions() =>
        LimitControllers.Where(HasController).ToDictionary(c => c, c => DriverFor(c).Version);

    /// <summary>
    /// The exact writes applying <paramref name="limits"/> to <paramref name="path"/>, each through the
    /// hierarchy owning its controller, device rules last. Validates first; a controller this host
    /// lacks is an error naming it.
    /// </summary>
    public IReadOnlyList<CgroupWrite> PlanLimits(string path, CgroupLimits limits)
    {
        limits.Validate();
        var writes = new List<CgroupWrite>();
        foreach (var group in limits.Controllers().GroupBy(DriverFor))
            writes.AddRange(group.Key.PlanLimits(path, limits.Only(group.ToArray())));
        return writes.OrderBy(w => w.Controller == "devices" ? 1 : 0).ToList();
    }

    /// <summary>Applies limits to an existing cgroup, all or nothing: on a failure every earlier write is undone.</summary>
    public IReadOnlyList<CgroupWrite> ApplyLimits(string path, CgroupLimits limits)
    {
        if (!Exists(path))
            throw new ContainerException("CgroupNotFound", ContainerErrorKind.ObjectNotFound,
                $"The cgroup '{path}' does not exist. New-Cgroup creates one; Get-Cgroup lists them.", path);
        limits.Validate();
        // On v2, a limit needs its controller enabled in every ancestor's cgroup.subtree_control.
        if (V2 is not null)
        {
            var onV2 = limits.Controllers().Where(c => DriverFor(c) == V2).ToArray();
            if (onV2.Length > 0) V2.EnableFor(path, onV2);
        }
        var plan = PlanLimits(path, limits);
        Execute(plan);
        return plan;
    }

    /// <summary>Runs the writes in order; if one fails, undoes the done ones in reverse order and rethrows.</summary>
    public static void Execute(IReadOnlyList<CgroupWrite> plan)
    {
        var done = new List<CgroupWrite>();
        try
        {
            foreach (var w in plan)
            {
                if (w.DeviceProgram is { } rules) CgroupDeviceProgram.Attach(w.File, rules);
                else CgroupFiles.Write(w.File, w.Value);
                done.Add(w);
            }
        }
        catch
        {
            for (var i = done.Count - 1; i >= 0; i--)
                foreach (var (file, value) in done[i].Undo)
                    foreach (var line in value.Split('\n', StringSplitOptions.RemoveEmptyEntries))
                        try { CgroupFiles.Write(file, line); }
                        catch (ContainerException) { /* best effort: the original error is what matters */ }
            throw;
        }
    }

    /// <summary>The limits in force, read back from the kernel's files (and device program).</summary>
    public CgroupLimitReport ReadLimits(string path, string? name = null)
    {
        if (!Exists(path))
            throw new ContainerException("CgroupNotFound", ContainerErrorKind.ObjectNotFound, $"The cgroup '{path}' does not exist.", path);
        var report = new CgroupLimitReport { Name = name, CgroupPath = path, ControllerVersions = new Dictionary<string, string>() };
        foreach (var group in LimitControllers.Where(HasController).GroupBy(DriverFor))
            group.Key.ReadLimits(path, report, group.ToArray());
        return report;
    }

    /// <summary>Usage counters: memory, CPU time and throttling, pids, I/O per device, OOM kills.</summary>
    public CgroupUsage Measure(string path, string? name = null)
    {
        using var reader = OpenUsage(path, name);
        return reader.Read();
    }

    /// <summary>
    /// The usage counters of <paramref name="path"/>, their files opened once: <see cref="CgroupUsageReader.Read"/>
    /// samples them again and again (Measure-Container -Wait).
    /// </summary>
    public CgroupUsageReader OpenUsage(string path, string? name = null)
    {
        if (!Exists(path))
            throw new ContainerException("CgroupNotFound", ContainerErrorKind.ObjectNotFound, $"The cgroup '{path}' does not exist.", path);
        var reader = new CgroupUsageReader(path, name);
        var byDriver = new[] { "memory", "cpu", "pids", "io" }.Where(HasController)
            .GroupBy(DriverFor).ToDictionary(g => g.Key, g => g.ToList());
        // CPU time: v1 cpuacct, else the v2 core file cpu.stat (there even without the cpu controller).
        ICgroupDriver? accounting = V1 is not null && V1.Owns("cpuacct") ? V1 : V2;
        if (accounting is not null)
        {
            if (!byDriver.TryGetValue(accounting, out var list)) byDriver[accounting] = list = new List<string>();
            list.Add("cpuacct");
        }
        foreach (var (driver, controllers) in byDriver)
            if (driver.Exists(path)) driver.UsageCounters(path, reader, controllers);
        return reader;
    }

    /// <summary>Cgroups at or below <paramref name="under"/> (null: everything), merged across hierarchies.</summary>
    public IReadOnlyList<CgroupInfo> List(string? under = null, bool recurse = true)
    {
        var found = new SortedDictionary<string, (List<string> Controllers, List<string> Dirs)>(StringComparer.Ordinal);
        var roots = new List<(string Root, string Label)>();
        if (V1 is not null)
            foreach (var g in V1.Mounts.GroupBy(kv => kv.Value))
                roots.Add((g.Key, string.Join(",", g.Select(kv => kv.Key).Order())));
        if (V2 is not null) roots.Add((V2.MountPoint, "unified"));
        foreach (var (root, label) in roots)
        {
            var start = under is null ? root : Path.Combine(root, under);
            if (!Directory.Exists(start)) continue;
            var dirs = new List<string> { start };
            if (recurse)
                try { dirs.AddRange(Directory.EnumerateDirectories(start, "*", new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true })); }
                catch (IOException) { }
            foreach (var dir in dirs)
            {
                var rel = Path.GetRelativePath(root, dir);
                rel = rel == "." ? "/" : "/" + rel;
                if (!found.TryGetValue(rel, out var entry)) found[rel] = entry = (new List<string>(), new List<string>());
                entry.Controllers.Add(label);
                entry.Dirs.Add(dir);
            }
        }
        return found.Select(kv =>
        {
            var rel = kv.Key.TrimStart('/');
            var pids = rel.Length == 0 ? Array.Empty<int>() : SafePids(rel);
            return new CgroupInfo
            {
                Path = kv.Key,
                Controllers = kv.Value.Controllers,
                Directories = kv.Value.Dirs,
                Pids = pids,
                Frozen = rel.Length > 0 && SafeFrozen(rel),
            };
        }).ToList();
    }

    private IReadOnlyList<int> SafePids(string path)
    {
        try { return Pids(path); }
        catch (Exception ex) when (ex is ContainerException or IOException or FormatException) { return Array.Empty<int>(); }
    }

    private bool SafeFrozen(string path)
    {
        try { return IsFrozen(path); }
        catch (ContainerException) { return false; }
    }

    /// <summary>Moves a process (all its threads) into the cgroup in every hierarchy (cgexec -g / cgclassify).</summary>
    public void AddProcess(string path, int pid)
    {
        if (!Exists(path))
            throw new ContainerException("CgroupNotFound", ContainerErrorKind.ObjectNotFound, $"The cgroup '{path}' does not exist. Create it with New-Cgroup.", path);
        if (!Directory.Exists($"/proc/{pid}"))
            throw new ContainerException("ProcessNotFound", ContainerErrorKind.ObjectNotFound, $"No process with id {pid} exists.", pid);
        foreach (var procs in ProcsFiles(path))
            if (File.Exists(procs)) CgroupFiles.Write(procs, pid.ToString(CultureInfo.InvariantCulture));
    }
}
