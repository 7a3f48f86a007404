using PSContainers.Runtime.Native;

namespace PSContainers.Runtime.Config;

/// <summary>
/// A non-root user's defaults for new containers (LXC's ~/.config/lxc/default.conf):
/// <c>$XDG_CONFIG_HOME/pscontainers/config.yaml</c> (default <c>~/.config/pscontainers/config.yaml</c>),
/// a config.yaml whose top-level keys every new container starts from; New-Container -ConfigPath
/// keys replace them key by key. Its <c>idMap:</c> is the user's id map.
/// </summary>
public static partial class ConfigLoader
{
    /// <summary>The defaults file of the calling user; null for root (whose containers start from nothing).</summary>
    public static string? UserDefaultsPath
    {
        get
        {
            if (Host.HostContext.Current.IsRoot) return null;
            var configHome = System.Environment.GetEnvironmentVariable("XDG_CONFIG_HOME");
            if (string.IsNullOrEmpty(configHome) || !Path.IsPathRooted(configHome))
                configHome = Path.Combine(System.Environment.GetFolderPath(System.Environment.SpecialFolder.UserProfile), ".config");
            return Path.Combine(configHome, "pscontainers", "config.yaml");
        }
    }

    /// <summary>
    /// The config a new container starts from: the user's defaults (if the file exists) with the
    /// top-level keys of <paramref name="path"/> (if given) replacing theirs. Each file is validated
    /// on its own, so an error names the file it is in.
    /// </summary>
    public static ContainerConfig LoadForNewContainer(string? path)
    {
        var defaultsPath = UserDefaultsPath;
        if (defaultsPath is null || !File.Exists(defaultsPath)) return path is null ? new ContainerConfig() : Load(path);
        var defaults = Load(defaultsPath);
        if (path is null) return defaults;
        Load(path);
        var baseNode = new Reader(defaultsPath).ReadFile(defaultsPath) as MappingNode;
        var overNode = new Reader(path).ReadFile(path) as MappingNode;
        if (baseNode is null) return Load(path);
        if (overNode is null) return defaults;
        var merged = new MappingNode { Start = overNode.Start };
        var replaced = overNode.Entries.Select(e => e.Key.Value).ToHashSet(StringComparer.Ordinal);
        merged.Entries.AddRange(baseNode.Entries.Where(e => !replaced.Contains(e.Key.Value)));
        merged.Entries.AddRange(overNode.Entries);
        return new Binder($"{path} (over {defaultsPath})").Bind(merged);
    }
}
