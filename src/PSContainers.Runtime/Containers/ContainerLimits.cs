using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.State;

namespace PSContainers.Runtime.Containers;

/// <summary>Live resource limits and usage of containers (lxc-cgroup), on top of <see cref="CgroupManager"/>.</summary>
public static class ContainerLimits
{
    private static string RunningCgroup(ContainerManager manager, string name, string verb)
    {
        var info = manager.Get(name);
        if (info.CgroupPath is null)
            throw new ContainerException("ContainerNotRunning", ContainerErrorKind.InvalidOperation,
                $"Cannot {verb} of container '{name}': it is not running" +
                (verb.StartsWith("set", StringComparison.Ordinal) ? ". Use -Persist to save the limits in its config.yaml for the next start." : "."), name);
        return info.CgroupPath;
    }

    /// <summary>The writes <see cref="SetLimits"/> would make now (empty when the container is stopped).</summary>
    public static IReadOnlyList<CgroupWrite> PlanLimits(this ContainerManager manager, string name, CgroupLimits limits)
    {
        limits.Validate();
        var path = manager.Get(name).CgroupPath;
        return path is null ? Array.Empty<CgroupWrite>() : manager.Cgroups.PlanLimits(path, limits);
    }

    /// <summary>
    /// Applies limits to a running container and, with <paramref name="persist"/>, merges them into its
    /// config.yaml (under the container lock). A stopped container needs <paramref name="persist"/>.
    /// Nothing is changed when the merged config or any write is invalid.
    /// </summary>
    public static IReadOnlyList<CgroupWrite> SetLimits(this ContainerManager manager, string name, CgroupLimits limits, bool persist)
    {
        ContainerNames.Validate(name);
        limits.Validate();
        using var _ = manager.Store.Lock(name);
        var info = manager.Get(name);
        string? yaml = null;
        if (persist)
        {
            var config = ConfigLoader.Load(manager.Store.ConfigPath(name));
            config.Limits.MergeFrom(limits);
            ConfigLoader.Validate(config);
            yaml = ConfigLoader.Serialize(config);
        }
        else if (info.CgroupPath is null) RunningCgroup(manager, name, "set the limits");
        IReadOnlyList<CgroupWrite> plan = Array.Empty<CgroupWrite>();
        if (info.CgroupPath is not null) plan = manager.Cgroups.ApplyContainerLimits(info.CgroupPath, limits);
        if (yaml is not null) AtomicFile.WriteAllText(manager.Store.ConfigPath(name), yaml);
        return plan;
    }

    public static CgroupLimitReport GetLimits(this ContainerManager manager, string name) =>
        manager.Cgroups.ReadLimits(RunningCgroup(manager, name, "read the limits"), name);

    public static CgroupUsage Measure(this ContainerManager manager, string name) =>
        manager.Cgroups.Measure(RunningCgroup(manager, name, "measure the usage"), name);
}
