using PSContainers.Runtime.Config;
using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.State;

namespace PSContainers.Runtime.Containers;

/// <summary>When a config change takes effect.</summary>
public enum ConfigAppliesAt
{
    /// <summary>Already in effect: written to the running container (cgroup limits) or read when next used (stop settings).</summary>
    Now,
    /// <summary>At the container's next start.</summary>
    NextStart,
}

/// <summary>One changed key, as Set-ContainerConfig reports it.</summary>
public sealed record ConfigChange(string Name, string Key, object? OldValue, object? NewValue, bool Removed, ConfigAppliesAt AppliesAt);

/// <summary>
/// Get-ContainerConfig / Set-ContainerConfig (incus config get/set/unset): a container's config.yaml
/// read whole or by key, and changed by key under the container's lock, validated whole by the
/// loader (<see cref="ConfigEditor"/>) and written atomically. Cgroup limits of a running container
/// are applied live through the limit code path (<see cref="ContainerLimits"/>); the stop settings
/// are read at each stop; everything else takes effect at the next start, and each change says which.
/// </summary>
public sealed class ContainerConfigs(IContainerLifecycle lifecycle)
{
    public ContainerConfig Get(string name)
    {
        ContainerNames.Validate(name);
        RequireExists(name);
        return ConfigLoader.Load(lifecycle.Store.ConfigPath(name));
    }

    /// <summary>The value at a key: as written in config.yaml, else the model's default; <paramref name="found"/> false when the key names nothing.</summary>
    public object? Get(string name, string key, out bool found)
    {
        ContainerNames.Validate(name);
        RequireExists(name);
        var path = lifecycle.Store.ConfigPath(name);
        var text = ConfigLoader.ReadBounded(path);
        var config = ConfigLoader.Parse(text, path);
        var value = ConfigEditor.Get(text, key, out found);
        return found ? value : ConfigEditor.GetTyped(config, key, out found);
    }

    /// <summary>
    /// Applies <paramref name="edits"/> (nothing is written when <paramref name="whatIf"/>); all or
    /// nothing: an invalid result, or a live limit the kernel refuses, leaves config.yaml as it was.
    /// </summary>
    public IReadOnlyList<ConfigChange> Set(string name, IReadOnlyList<ConfigEdit> edits, bool whatIf = false)
    {
        ContainerNames.Validate(name);
        if (edits.Count == 0) return Array.Empty<ConfigChange>();
        var store = lifecycle.Store;
        using var held = store.Lock(name);
        RequireExists(name);
        lifecycle.RecoverLocked(name);
        var path = store.ConfigPath(name);
        var before = ConfigLoader.ReadBounded(path);
        var (after, config) = ConfigEditor.Apply(before, edits, path + " (as edited)");
        var running = lifecycle.Inspect(name).Status is ContainerStatus.Running or ContainerStatus.Frozen;
        var changes = edits.Select(e => new ConfigChange(name, e.Key, ConfigEditor.Get(before, e.Key, out _), e.Remove ? null : ConfigEditor.Get(after, e.Key, out _),
            e.Remove, AppliesAt(e, running))).ToList();
        if (whatIf) return changes;
        // Live limits first: a value the kernel refuses leaves the file as it was.
        if (changes.Any(c => c.AppliesAt == ConfigAppliesAt.Now && c.Key.StartsWith("limits", StringComparison.Ordinal)))
            new ContainerLimits(lifecycle).SetLimits(name, config.Limits, persist: false);
        AtomicFile.WriteAllText(path, after);
        return changes;
    }

    /// <summary>
    /// Cgroup limits set on a running container are written to its cgroup now (a removed limit is
    /// not reset live: the kernel's value stays until the next start); stop settings are read by
    /// each stop; the rest is read when the container starts.
    /// </summary>
    private static ConfigAppliesAt AppliesAt(ConfigEdit edit, bool running)
    {
        if (!running) return ConfigAppliesAt.NextStart;
        var first = ConfigEditor.ParseKey(edit.Key)[0].Name;
        if (first == "stop") return ConfigAppliesAt.Now;
        if (first == "limits" && !edit.Remove) return ConfigAppliesAt.Now;
        return ConfigAppliesAt.NextStart;
    }

    private void RequireExists(string name)
    {
        if (!lifecycle.Store.Exists(name))
            throw new ContainerException("ContainerNotFound", ContainerErrorKind.ObjectNotFound,
                $"No container named '{name}' exists. Get-Container lists the containers of this store.", name);
    }
}
