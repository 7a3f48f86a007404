namespace PSContainers.Runtime.Templates;

/// <summary>The rootfs templates by name (case-insensitive), for New-Container -Template.</summary>
public static class TemplateRegistry
{
    static readonly object Gate = new();
    static readonly Dictionary<string, Func<IRootfsTemplate>> Factories = new(StringComparer.OrdinalIgnoreCase)
    {
        ["busybox"] = () => new BusyboxTemplate(),
        ["debootstrap"] = () => new DebootstrapTemplate(),
    };

    public static IReadOnlyList<string> Names
    {
        get { lock (Gate) return Factories.Keys.Order(StringComparer.Ordinal).ToArray(); }
    }

    /// <summary>
    /// Adds a template that lives above this layer (oci, which applies layers with the import's
    /// checks in Storage): registered by the composition root (Composition/ContainerRuntime) when the assembly loads.
    /// </summary>
    public static void Register(string name, Func<IRootfsTemplate> factory)
    {
        lock (Gate) Factories[name] = factory;
    }

    public static IRootfsTemplate Get(string name)
    {
        Func<IRootfsTemplate>? factory = null;
        if (!string.IsNullOrWhiteSpace(name))
            lock (Gate) Factories.TryGetValue(name.Trim(), out factory);
        if (factory is not null) return factory();
        throw new ContainerException("UnknownTemplate", ContainerErrorKind.InvalidArgument,
            $"unknown template '{name}'; available: {string.Join(", ", Names)}", name);
    }
}
