using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.State;

namespace PSContainers.Runtime.Autostart;

/// <summary>The changes Set-ContainerAutostart makes: a value left null keeps what config.yaml has.</summary>
public sealed record AutostartChange(bool? Enabled = null, int? Delay = null, int? Order = null, IReadOnlyList<string>? Groups = null);

/// <summary>
/// Reads and changes a container's <c>autostart:</c> settings in its config.yaml: loaded, changed
/// and validated under the container's lock, written atomically (a reader sees the old or the new
/// file). The settings take effect at the next Start-ContainerAutostart; the running container is untouched.
/// </summary>
public static class AutostartSettings
{
    public static AutostartConfig Get(IContainerLifecycle lifecycle, string name)
    {
        RequireExists(lifecycle, name);
        return ConfigLoader.Load(lifecycle.Store.ConfigPath(name)).Autostart;
    }

    /// <summary>The settings after <paramref name="change"/>, without writing them (for -WhatIf).</summary>
    public static AutostartConfig Preview(IContainerLifecycle lifecycle, string name, AutostartChange change)
    {
        var config = ConfigLoader.Load(lifecycle.Store.ConfigPath(name));
        Apply(config.Autostart, change);
        ConfigLoader.Validate(config);
        return config.Autostart;
    }

    /// <summary>Applies the change; returns whether config.yaml changed (an unchanged file is not rewritten).</summary>
    public static bool Set(IContainerLifecycle lifecycle, string name, AutostartChange change, out AutostartConfig result)
    {
        RequireExists(lifecycle, name);
        using var _ = lifecycle.Store.Lock(name);
        RequireExists(lifecycle, name);
        var path = lifecycle.Store.ConfigPath(name);
        var config = ConfigLoader.Load(path);
        var before = ConfigLoader.Serialize(config);
        Apply(config.Autostart, change);
        ConfigLoader.Validate(config);
        result = config.Autostart;
        var after = ConfigLoader.Serialize(config);
        if (after == before) return false;
        AtomicFile.WriteAllText(path, after);
        return true;
    }

    private static void Apply(AutostartConfig a, AutostartChange change)
    {
        if (change.Enabled is { } enabled) a.Enabled = enabled;
        if (change.Delay is { } delay) a.Delay = delay;
        if (change.Order is { } order) a.Order = order;
        if (change.Groups is { } groups) a.Groups = groups.ToList();
    }

    private static void RequireExists(IContainerLifecycle lifecycle, string name)
    {
        ContainerNames.Validate(name);
        if (!lifecycle.Exists(name))
            throw new ContainerException("ContainerNotFound", ContainerErrorKind.ObjectNotFound,
                $"No container named '{name}' exists in {lifecycle.Store.Root}. Get-Container lists the containers of this store.", name);
    }
}
