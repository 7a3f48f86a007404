namespace PSContainers.Runtime.Templates;

/// <summary>The rootfs templates by name (case-insensitive), for New-Container -Template.</summary>
public static class TemplateRegistry
{
    static readonly Dictionary<string, Func<IRootfsTemplate>> Factories = new(StringComparer.OrdinalIgnoreCase)
    {
        ["busybox"] = () => new BusyboxTemplate(),
        ["debootstrap"] = () => new DebootstrapTemplate(),
    };

    public static IReadOnlyList<string> Names { get; } = Factories.Keys.Order(StringComparer.Ordinal).ToArray();

    public static IRootfsTemplate Get(string name)
    {
        if (!string.IsNullOrWhiteSpace(name) && Factories.TryGetValue(name.Trim(), out var factory))
            return factory();
        throw new ContainerException("UnknownTemplate", ContainerErrorKind.InvalidArgument,
            $"unknown template '{name}'; available: {string.Join(", ", Names)}", name);
    }
}
