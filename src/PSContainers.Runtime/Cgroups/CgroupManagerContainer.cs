namespace PSContainers.Runtime.Cgroups;

/// <summary>
/// A container's cgroups, LXC's lxc.cgroup.dir.container.inner layout: the limits, device rules,
/// freeze and kill are on the outer cgroup (&lt;parent&gt;/&lt;name&gt;); the container's processes
/// live in the inner one (&lt;parent&gt;/&lt;name&gt;/ns), which is the root of their cgroup
/// namespace. A container that mounts a hierarchy sees only the inner cgroup and below, so whatever
/// it writes there can only narrow what the outer cgroup allows (the kernel checks each level: a
/// v1 child cannot allow a device its parent denies, memory/pids/cpu limits are hierarchical, and a
/// v2 device program attached without BPF_F_ALLOW_OVERRIDE/MULTI cannot be overridden below). On
/// v2 the outer cgroup never holds a process ("no internal processes") and enables the controllers
/// for the inner one. A container started before this layout (its processes in the outer cgroup, no
/// inner one) is still joined, stopped and removed through the same calls.
/// </summary>
public sealed partial class CgroupManager
{
    /// <summary>The inner cgroup's name, below the outer one.</summary>
    public const string InnerName = "ns";

    /// <summary>The controllers every container's cgroups get on v2 (where delegated), limits or not: what Measure-Container reports.</summary>
    public static readonly IReadOnlyList<string> AccountingControllers = new[] { "memory", "pids", "cpu", "io" };

    /// <summary>The inner cgroup of a container whose outer cgroup is <paramref name="outer"/>.</summary>
    public static string InnerOf(string outer) => $"{outer}/{InnerName}";

    /// <summary>The cgroup a process joining the container goes into: the inner one, or the outer one of a container started before the inner layout.</summary>
    public string JoinPathOf(string outer) => Exists(InnerOf(outer)) ? InnerOf(outer) : outer;

    /// <summary>
    /// Creates a container's outer cgroup with <paramref name="limits"/> (device rules included),
    /// then the inner one, which inherits them (a v1 devices cgroup copies its parent's list when it
    /// is made, and the parent cannot reset its list with "a" once it has a child). All or nothing.
    /// </summary>
    public void CreateContainer(string outer, CgroupLimits limits)
    {
        var controllers = limits.Controllers();
        Create(outer, controllers);
        try
        {
            // Usage is charged to the cgroup that has the controller when it happens: enabled only
            // with a limit, what init used before would count for the parent (Measure-Container 0).
            if (V2 is not null)
                V2.EnableWhereAvailable(InnerOf(outer), AccountingControllers.Where(c => !(V1?.Controllers.Contains(c) ?? false)).ToArray());
            if (!limits.IsEmpty) ApplyLimits(outer, limits);
            // On v2 this enables the controllers in the outer cgroup's subtree_control, for the inner one.
            Create(InnerOf(outer), controllers);
        }
        catch
        {
            RemoveContainer(outer);
            throw;
        }
    }

    /// <summary>
    /// Live limits on a running container: applied to the outer cgroup, where they hold; then what the
    /// kernel does not carry down by itself is mirrored to the inner cgroup (v1 cpuset lists, which a
    /// child must stay within; v1 device allows, which are not propagated; v2 controllers to enable).
    /// </summary>
    public IReadOnlyList<CgroupWrite> ApplyContainerLimits(string outer, CgroupLimits limits)
    {
        var inner = InnerOf(outer);
        if (!Exists(inner)) return ApplyLimits(outer, limits);
        limits.Validate();
        var plan = PlanLimits(outer, limits);
        var v1Outer = V1?.Directories(outer) ?? Array.Empty<string>();
        string? Mirror(CgroupWrite w)
        {
            var dir = Path.GetDirectoryName(w.File);
            return w.DeviceProgram is null && dir is not null && v1Outer.Contains(dir) ? Path.Combine(dir, InnerName, Path.GetFileName(w.File)) : null;
        }
        foreach (var w in plan)
            if (w.Controller == "devices" && w.DeviceProgram is null && w.Value.TrimStart().StartsWith('a'))
                throw new ContainerException("DeviceRuleNeedsRestart", ContainerErrorKind.InvalidOperation,
                    $"The device rule '{(w.File.EndsWith("allow", StringComparison.Ordinal) ? "allow" : "deny")} a' resets the whole device list, which the kernel refuses for a running container's cgroup (cgroup v1 keeps the container's processes in a child cgroup). " +
                    "Use -Persist to save it in config.yaml and restart the container, or give single rules (like 'c 1:3 rwm').", outer);
        // A narrower cpuset must reach the inner cgroup first (a child may not hold more than its parent).
        foreach (var w in plan.Where(w => w.File.EndsWith("cpuset.cpus", StringComparison.Ordinal) || w.File.EndsWith("cpuset.mems", StringComparison.Ordinal)))
            if (Mirror(w) is { } file)
                try { CgroupFiles.Write(file, w.Value); } catch (ContainerException) { /* wider than the outer one now: written after */ }
        var applied = ApplyLimits(outer, limits);
        foreach (var w in plan)
        {
            if (Mirror(w) is not { } file) continue;
            var name = Path.GetFileName(file);
            if (name is "cpuset.cpus" or "cpuset.mems" || name == "devices.allow") CgroupFiles.Write(file, w.Value);
        }
        if (V2 is not null)
        {
            var onV2 = limits.Controllers().Where(c => DriverFor(c) == V2).ToArray();
            if (onV2.Length > 0) V2.EnableFor(inner, onV2);
        }
        return applied;
    }

    /// <summary>Every process in the cgroup or any cgroup below it.</summary>
    public IReadOnlyList<int> AllPids(string path)
    {
        var driver = V2 as ICgroupDriver ?? V1!;
        var dir = V2 is not null ? V2.Directories(path)[0] : V1!.PidsDirectory(path);
        return driver.Exists(path) ? CgroupFiles.ReadPidsTree(dir) : Array.Empty<int>();
    }

    /// <summary>
    /// Removes a container's cgroups: whatever the container made below its inner cgroup, the inner
    /// one, the outer one (in every hierarchy), and the parent when it became empty. True if all are gone.
    /// </summary>
    public bool RemoveContainer(string outer)
    {
        var ok = true;
        foreach (var dir in Directories(outer))
        {
            if (!Directory.Exists(dir)) continue;
            IEnumerable<string> below;
            try { below = Directory.EnumerateDirectories(dir, "*", SearchOption.AllDirectories).OrderByDescending(d => d.Length).ToList(); }
            catch (DirectoryNotFoundException) { continue; }
            foreach (var sub in below) ok &= CgroupFiles.RemoveDirectory(sub, TimeSpan.FromSeconds(2));
        }
        return Remove(outer) && ok;
    }
}
