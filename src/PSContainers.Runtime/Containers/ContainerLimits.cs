using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.State;
using PSContainers.Runtime.Filesystem;

namespace PSContainers.Runtime.Containers;

/// <summary>Live resource limits and usage of containers (lxc-cgroup), on top of <see cref="CgroupManager"/> and the lifecycle.</summary>
public sealed class ContainerLimits(IContainerLifecycle manager)
{
    private string RunningCgroup(string name, string verb)
    {
        var info = manager.Get(name);
        if (info.CgroupPath is null)
            throw new ContainerException("ContainerNotRunning", ContainerErrorKind.InvalidOperation,
                $"Cannot {verb} of container '{name}': it is not running" +
                (verb.StartsWith("set", StringComparison.Ordinal) ? ". Use -Persist to save the limits in its config.yaml for the next start." : "."), name);
        return info.CgroupPath;
    }

    /// <summary>
    /// Runs <paramref name="action"/> on a running container's cgroup. The container can stop (its
    /// supervisor removes the cgroup) or be removed at any moment, even under its lock: a cgroup error
    /// after that is the truth about the container (ContainerNotRunning / ContainerNotFound), not a
    /// claim about missing cgroup files or kernel features.
    /// </summary>
    private T OnCgroup<T>(string name, string cgroupPath, string verb, Func<T> action)
    {
        try { return action(); }
        catch (ContainerException ex) when (ex.ErrorId is not ("ContainerNotRunning" or "ContainerNotFound")
            && (!manager.Store.Exists(name) || !manager.Cgroups.Exists(cgroupPath) || manager.Get(name).CgroupPath != cgroupPath))
        {
            if (!manager.Store.Exists(name))
                throw new ContainerException("ContainerNotFound", ContainerErrorKind.ObjectNotFound,
                    $"No container named '{name}' exists (it was removed while this ran). Get-Container lists the containers of this store.", name, ex);
            throw new ContainerException("ContainerNotRunning", ContainerErrorKind.InvalidOperation,
                $"Cannot {verb} of container '{name}': it stopped while this ran.", name, ex);
        }
    }

    /// <summary>The writes <see cref="SetLimits"/> would make now (empty when the container is stopped); planned under the container's lock.</summary>
    public IReadOnlyList<CgroupWrite> PlanLimits(string name, CgroupLimits limits)
    {
        ContainerNames.Validate(name);
        limits.Validate();
        using var _ = manager.Store.Lock(name);
        var path = manager.Get(name).CgroupPath;
        return path is null ? Array.Empty<CgroupWrite>() : OnCgroup(name, path, "plan the limits", () => manager.Cgroups.PlanLimits(path, limits));
    }

    /// <summary>
    /// Applies limits to a running container and, with <paramref name="persist"/>, merges them into its
    /// config.yaml (under the container lock). A stopped container needs <paramref name="persist"/>.
    /// Nothing is changed when the merged config or any write is invalid.
    /// </summary>
    public IReadOnlyList<CgroupWrite> SetLimits(string name, CgroupLimits limits, bool persist)
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
        else if (info.CgroupPath is null) RunningCgroup(name, "set the limits");
        IReadOnlyList<CgroupWrite> plan = Array.Empty<CgroupWrite>();
        if (info.CgroupPath is { } cgroupPath) plan = OnCgroup(name, cgroupPath, "set the limits", () => manager.Cgroups.ApplyContainerLimits(cgroupPath, limits));
        if (yaml is not null) AtomicFile.WriteAllText(manager.Store.ConfigPath(name), yaml);
        var changed = plan.Select(w => (Path.GetFileName(w.File), w.Value)).ToList();
        if (persist) changed.Add(("persisted", "true"));
        manager.Emit(name, ContainerEventKind.LimitsChanged, changed.ToArray());
        return plan;
    }

    public CgroupLimitReport GetLimits(string name)
    {
        var path = RunningCgroup(name, "read the limits");
        return OnCgroup(name, path, "read the limits", () => manager.Cgroups.ReadLimits(path, name));
    }

    public CgroupUsage Measure(string name)
    {
        var path = RunningCgroup(name, "measure the usage");
        return OnCgroup(name, path, "measure the usage", () => manager.Cgroups.Measure(path, name));
    }
}
