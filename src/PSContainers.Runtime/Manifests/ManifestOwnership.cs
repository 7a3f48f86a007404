using System.Text.Json;
using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.State;

namespace PSContainers.Runtime.Manifests;

/// <summary>
/// Which manifest made a container: a small file in the container's directory naming the manifest
/// and that directory's inode. The inode binds the mark to this very container: a copy, an import of
/// an export, or a container made by hand under the name of a removed one carries no valid mark, so
/// a manifest never adopts (or prunes) a container it did not create, unless told to (-Adopt).
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
}
