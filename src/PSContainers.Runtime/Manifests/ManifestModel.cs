using PSContainers.Runtime.Config;
using PSContainers.Runtime.Templates;

namespace PSContainers.Runtime.Manifests;

/// <summary>The kinds of resource a manifest declares; a resource's id is "kind/name" (container/web).</summary>
public enum ManifestResourceKind { Container, Bridge, Namespace }

/// <summary>What a manifest wants of a container (Running, Stopped, Absent) or of a bridge or namespace (Present, Absent).</summary>
public enum ManifestState { Running, Stopped, Present, Absent }

/// <summary>Where a declaration was read: the file and the position of its name, for messages.</summary>
public sealed record ManifestSource(string File, int Line, int Column)
{
    public override string ToString() => $"{File}:{Line}:{Column}";
}

/// <summary>One declared resource. Dependencies are resource ids, resolved and checked by the parser.</summary>
public abstract class ManifestResource
{
    public required string Name { get; init; }
    public abstract ManifestResourceKind Kind { get; }
    public ManifestState State { get; init; }
    public List<string> DependsOn { get; } = new();
    public required ManifestSource Source { get; init; }
    public string Id => IdOf(Kind, Name);

    public static string IdOf(ManifestResourceKind kind, string name) => $"{KindName(kind)}/{name}";
    public static string KindName(ManifestResourceKind kind) => kind.ToString().ToLowerInvariant();
    public override string ToString() => Id;
}

/// <summary>A command run inside a started container until it succeeds: its dependents start after that.</summary>
public sealed class ReadinessProbe
{
    public List<string> Command { get; init; } = new();
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);
    public TimeSpan Interval { get; init; } = TimeSpan.FromSeconds(1);
}

public sealed class ManifestContainer : ManifestResource
{
    public override ManifestResourceKind Kind => ManifestResourceKind.Container;
    /// <summary>The body as config.yaml would hold it, bound by ConfigLoader (same rules, same errors).</summary>
    public required ContainerConfig Config { get; init; }
    /// <summary>
    /// The config keys the manifest sets, as paths of at most two levels (limits.memory, init.command,
    /// network): only these are compared and converged, so a value the manifest leaves out (a default
    /// the template filled in, a key set by hand) is never reported as drift nor overwritten.
    /// </summary>
    public required IReadOnlyList<string> DeclaredKeys { get; init; }
    /// <summary>A container archive (Export-Container, LXC/Incus tar) to import instead of a template.</summary>
    public string? Archive { get; init; }
    public TemplateOptions TemplateOptions { get; init; } = new();
    public ReadinessProbe? Readiness { get; init; }

    /// <summary>How it is made, for the plan: "template busybox", "rootfs /srv/r", "archive /x.tar".</summary>
    public string Origin => Archive is not null ? $"archive {Archive}"
        : Config.Rootfs is not null && Config.Template is null ? $"rootfs {Config.Rootfs}"
        : $"template {Config.Template ?? "busybox"}";
}

/// <summary>A Linux bridge on the host (New-NetworkBridge) with the addresses it must hold.</summary>
public sealed class ManifestBridge : ManifestResource
{
    public override ManifestResourceKind Kind => ManifestResourceKind.Bridge;
    public List<string> Addresses { get; init; } = new();
    public int? Mtu { get; init; }
    /// <summary>The named network namespace the bridge lives in (a NIC reaches it with linkNamespace); null = the host.</summary>
    public string? Namespace { get; init; }
}

/// <summary>A named network namespace (ip netns add).</summary>
public sealed class ManifestNamespace : ManifestResource
{
    public override ManifestResourceKind Kind => ManifestResourceKind.Namespace;
}

/// <summary>The composed manifest: every file's resources, in dependency order.</summary>
public sealed class Manifest
{
    /// <summary>Marks the containers it creates (see <see cref="ManifestOwnership"/>), so -Prune finds them.</summary>
    public required string Id { get; init; }
    public required IReadOnlyList<string> Files { get; init; }
    /// <summary>Topologically sorted: every resource after those it depends on (declaration order otherwise).</summary>
    public required IReadOnlyList<ManifestResource> Resources { get; init; }

    public ManifestResource? Find(string id) => Resources.FirstOrDefault(r => r.Id == id);

    /// <summary>The resources that depend on <paramref name="id"/>, directly.</summary>
    public IEnumerable<ManifestResource> DependentsOf(string id) => Resources.Where(r => r.DependsOn.Contains(id));
}
