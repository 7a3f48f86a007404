using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.Network;
using PSContainers.Runtime.State;

namespace PSContainers.Runtime.Manifests;

/// <summary>
/// Which manifest made a container: a small file in the container's directory naming the manifest
/// and that directory's inode. The inode binds the mark to this very container: a copy, an import of
/// an export, or a container made by hand under the name of a removed one carries no valid mark, so
/// a manifest never adopts (or prunes) a container it did not create, unless told to (-Adopt).
/// Bridges and network namespaces the manifest creates carry their mark in the kernel: the bridge's
/// alias, and the alias of the namespace's loopback. Such a mark lives and dies with the object, so a
/// bridge or namespace made again by hand under the same name carries none and is never pruned.
/// </summary>
public static class ManifestOwnership
{
    public const string FileName = "managed-by.json";

    private sealed record Label(string Manifest, ulong Directory);

    /// <summary>The id of the manifest that owns <paramref name="name"/>, or null (not marked, or a mark copied from elsewhere).</summary>
    public static string? OwnerOf(ContainerStore store, string name)
    {
        var dir = store.ContainerDirectory(name);
        try
        {
            var text = File.ReadAllText(Path.Combine(dir, FileName));
            if (text.Length > 4096) return null;
            var mark = JsonSerializer.Deserialize<Label>(text);
            return mark is not null && mark.Directory == InodeOf(dir) ? mark.Manifest : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException)
        {
            return null;
        }
    }

    private static ulong InodeOf(string dir) =>
        FsNative.TryLstat(dir, out var st) ? (ulong)st.st_ino : throw new IOException($"Cannot stat '{dir}'.");

    /// <summary>Marks <paramref name="name"/> as made by <paramref name="manifestId"/> (under the container's lock).</summary>
    public static void Mark(ContainerStore store, string name, string manifestId)
    {
        using var _ = store.Lock(name);
        var dir = store.ContainerDirectory(name);
        if (!store.Exists(name))
            throw new ContainerException("ContainerNotFound", ContainerErrorKind.ObjectNotFound, $"No container named '{name}' exists in {store.Root}.", name);
        AtomicFile.WriteAllText(Path.Combine(dir, FileName), JsonSerializer.Serialize(new Label(manifestId, InodeOf(dir))));
    }

    private const string LinkMarkPrefix = "psc-manifest:";

    /// <summary>
    /// The alias that marks a link as made by <paramref name="manifestId"/>: a digest of the id, since
    /// an id may be a long path and the kernel keeps at most 255 bytes of alias.
    /// </summary>
    public static string LinkMark(string manifestId) =>
        LinkMarkPrefix + System.Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(manifestId)))[..32].ToLowerInvariant();

    /// <summary>Whether <paramref name="link"/> carries <paramref name="manifestId"/>'s mark.</summary>
    public static bool Owns(NetworkLink link, string manifestId) => link.Alias == LinkMark(manifestId);

    /// <summary>Marks the bridge <paramref name="name"/> (just made by the manifest) as its own.</summary>
    public static void MarkLink(NetworkClient client, string name, string manifestId) =>
        client.SetLink(name, new LinkChanges { Alias = LinkMark(manifestId) });

    /// <summary>Marks the network namespace <paramref name="name"/> (just made by the manifest) on its loopback.</summary>
    public static void MarkNamespace(string name, string manifestId)
    {
        using var client = new NetworkClient(NetworkLocation.ForNamespace(name));
        MarkLink(client, "lo", manifestId);
    }

    /// <summary>Whether the network namespace <paramref name="name"/> exists and carries <paramref name="manifestId"/>'s mark.</summary>
    public static bool OwnsNamespace(string name, string manifestId)
    {
        if (!NetNamespaces.Exists(name)) return false;
        try
        {
            using var client = new NetworkClient(NetworkLocation.ForNamespace(name));
            return Owns(client.GetLink("lo", withAddresses: false), manifestId);
        }
        catch (ContainerException) { return false; }
    }
}
