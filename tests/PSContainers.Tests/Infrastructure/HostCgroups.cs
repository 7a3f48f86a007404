using PSContainers.Runtime.Cgroups;

namespace PSContainers.Tests.Infrastructure;

/// <summary>
/// What the host's cgroup layout is, for tests that check kernel files directly: they follow the
/// layout they run on (hybrid: v1 controllers plus a cgroup2 tree; pure v2: one tree) instead of
/// assuming this development host's.
/// </summary>
public static class HostCgroups
{
    public static CgroupManager Host => CgroupManager.ForHost();

    /// <summary>Pure cgroup v2: every controller in the one tree, /proc/PID/cgroup has only the "0::" line.</summary>
    public static bool IsUnified => Host.Layout == CgroupLayoutKind.Unified;

    /// <summary>The cgroup2 mount: /sys/fs/cgroup on a pure v2 host, /sys/fs/cgroup/unified on a hybrid one.</summary>
    public static string V2Mount => Host.V2?.MountPoint ?? throw new InvalidOperationException("this host has no cgroup2 hierarchy");

    /// <summary>"v1" or "v2": the hierarchy the host's limits of <paramref name="controller"/> go through.</summary>
    public static string? VersionOf(string controller) => Host.ControllerVersions().GetValueOrDefault(controller);

    /// <summary>A control file of <paramref name="controller"/> for cgroup <paramref name="path"/>, in the hierarchy that owns it.</summary>
    public static string ControllerFile(string path, string controller, string file) =>
        VersionOf(controller) == "v1" ? Path.Combine(Host.V1!.Mounts[controller], path, file) : Path.Combine(V2Mount, path, file);

    /// <summary>The controllers the cgroup2 root offers (pure v2: all the kernel has; hybrid: those not bound to v1).</summary>
    public static IReadOnlySet<string> V2RootControllers =>
        (File.Exists(Path.Combine(V2Mount, "cgroup.controllers")) ? File.ReadAllText(Path.Combine(V2Mount, "cgroup.controllers")) : "")
            .Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet();
}

/// <summary>A test of the cgroup v1 hierarchies: skipped (reported as such) on a host that has none, as a pure v2 host.</summary>
public sealed class CgroupV1FactAttribute : FactAttribute
{
    public CgroupV1FactAttribute()
    {
        if (CgroupLayout.Detect().V1Mounts.Count == 0) Skip = "this host has no cgroup v1 hierarchies (pure cgroup v2)";
    }
}

/// <summary>A test that needs <paramref name="controllers"/> in the host's cgroup2 tree: skipped, saying which are missing, where the kernel or layout lacks them.</summary>
public sealed class CgroupV2ControllerFactAttribute : FactAttribute
{
    public CgroupV2ControllerFactAttribute(params string[] controllers)
    {
        var layout = CgroupLayout.Detect();
        if (layout.UnifiedMount is null) { Skip = "this host has no cgroup2 hierarchy"; return; }
        var file = Path.Combine(layout.UnifiedMount, "cgroup.controllers");
        var have = (File.Exists(file) ? File.ReadAllText(file) : "").Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var missing = controllers.Except(have).ToArray();
        if (missing.Length > 0) Skip = $"the cgroup2 tree at {layout.UnifiedMount} has no {string.Join(", ", missing)} controller on this host";
    }
}
