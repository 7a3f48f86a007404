namespace PSContainers.Runtime.Cgroups;

/// <summary>
/// The one cgroup interface the rest of the runtime uses, whatever the host layout. On a hybrid
/// host it combines both: resource controllers through v1, freeze and kill through the v2 core
/// files (cgroup.freeze/cgroup.kill need no controller and never leave a task FREEZING).
/// </summary>
public sealed partial class CgroupManager
{
    private static readonly Lazy<CgroupManager> HostManager = new(() => new CgroupManager(CgroupLayout.Detect()));

    public static CgroupManager ForHost() => HostManager.Value;

    public CgroupLayoutKind Layout { get; }
    public CgroupV2Driver? V2 { get; }
    public CgroupV1Driver? V1 { get; }

    public IEnumerable<ICgroupDriver> Drivers => new ICgroupDriver?[] { V1, V2 }.Where(d => d is not null)!;

    public CgroupManager(CgroupLayout layout)
    {
        Layout = layout.Kind;
        if (layout.UnifiedMount is not null) V2 = new CgroupV2Driver(layout.UnifiedMount);
        if (layout.V1Mounts.Count > 0) V1 = new CgroupV1Driver(layout.V1Mounts);
    }

    public CgroupManager(CgroupV1Driver? v1, CgroupV2Driver? v2)
    {
        V1 = v1;
        V2 = v2;
        Layout = v1 is null ? CgroupLayoutKind.Unified : v2 is null ? CgroupLayoutKind.Legacy : CgroupLayoutKind.Hybrid;
    }

    /// <summary>The driver a controller's limits go through: v1 where the controller is bound there.</summary>
    private ICgroupDriver DriverFor(string controller)
    {
        if (V1 is not null && V1.Controllers.Contains(controller)) return V1;
        if (V2 is not null && (Layout == CgroupLayoutKind.Unified || V2.Controllers.Contains(controller) || controller == "devices")) return V2;
        throw new ContainerException("CgroupControllerUnavailable", ContainerErrorKind.NotInstalled,
            $"The '{controller}' cgroup controller is not available on this host ({Layout} layout), so its limits cannot be applied.", controller);
    }

    private ICgroupDriver Freezer => V2 as ICgroupDriver ?? (V1 is { CanFreeze: true } ? V1 : null)
        ?? throw new ContainerException("FreezerUnavailable", ContainerErrorKind.NotInstalled,
            "This host has neither a cgroup v2 tree nor the v1 freezer controller, so containers cannot be frozen.");

    /// <summary>
    /// Creates the cgroup in every hierarchy. <paramref name="controllers"/> are the ones limits will
    /// be set through (on v2 they must be enabled in every ancestor). All or nothing.
    /// </summary>
    public void Create(string path, IReadOnlyCollection<string> controllers)
    {
        var created = new List<ICgroupDriver>();
        try
        {
            foreach (var driver in Drivers)
            {
                var mine = controllers.Where(c => DriverFor(c) == driver).ToArray();
                driver.Create(path, mine);
                created.Add(driver);
            }
        }
        catch
        {
            foreach (var d in created) d.Remove(path);
            throw;
        }
    }

    /// <summary>Removes the cgroup from every hierarchy, and the parent too when it became empty.</summary>
    public bool Remove(string path)
    {
        var ok = true;
        foreach (var d in Drivers) ok &= d.Remove(path);
        var parent = Path.GetDirectoryName(path);
        if (!string.IsNullOrEmpty(parent))
            foreach (var dir in Drivers.SelectMany(d => d.Directories(parent)))
                // Fails harmlessly while other containers still live under it.
                try { if (Directory.Exists(dir) && !Directory.EnumerateDirectories(dir).Any()) Directory.Delete(dir); }
                catch (IOException) { }
        return ok;
    }

    public bool Exists(string path) => Drivers.Any(d => d.Exists(path));
    /// <summary>The directory of the memory controller for <paramref name="path"/> (v1 memory hierarchy, else cgroup2), or null without one.</summary>
    public string? MemoryDirectory(string path) =>
        V1 is not null && V1.Mounts.TryGetValue("memory", out var mount) ? Path.Combine(mount, path)
        : V2 is not null && (Layout == CgroupLayoutKind.Unified || V2.Controllers.Contains("memory")) ? V2.Directories(path)[0] : null;

    public IReadOnlyList<string> Directories(string path) => Drivers.SelectMany(d => d.Directories(path)).ToArray();
    public IReadOnlyList<string> ProcsFiles(string path) => Drivers.SelectMany(d => d.ProcsFiles(path)).ToArray();
    public IReadOnlyList<int> Pids(string path) => (V2 as ICgroupDriver ?? V1!).Pids(path);

    public void Freeze(string path, TimeSpan timeout) => Freezer.Freeze(path, timeout);
    public void Thaw(string path) => Freezer.Thaw(path);
    public bool IsFrozen(string path) => Freezer.IsFrozen(path);
    public void KillAll(string path) => (V2 as ICgroupDriver ?? V1!).KillAll(path);

    public void SetMemoryMax(string path, long? bytes) => DriverFor("memory").SetMemoryMax(path, bytes);
    public long? GetMemoryMax(string path) => DriverFor("memory").GetMemoryMax(path);
    public bool HasController(string controller)
    {
        try { DriverFor(controller); return true; }
        catch (ContainerException) { return false; }
    }
}
