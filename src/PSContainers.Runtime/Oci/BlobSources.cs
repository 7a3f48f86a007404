using PSContainers.Runtime.Filesystem;

namespace PSContainers.Runtime.Oci;

/// <summary>The files of an image (index.json, blobs/sha256/..., manifest.json, layer tars) by their relative name.</summary>
internal interface IBlobSource : IDisposable
{
    bool Exists(string name);
    byte[] ReadAll(string name, long max, string image);
    Stream Open(string name, string image);
}

internal static class BlobNames
{
    /// <summary>A name inside the image: relative, no '..', no empty parts (names come from the image's own JSON).</summary>
    public static string Check(string name, string image)
    {
        var parts = name.Split('/').Where(p => p is not ("" or ".")).ToArray();
        if (name.StartsWith('/') || name.Contains('\0') || parts.Length == 0 || parts.Contains(".."))
            throw new ContainerException("OciImageInvalid", ContainerErrorKind.InvalidData,
                $"The image '{image}' names a file '{name}' that is not a plain relative path inside it; the image may be hostile.", name);
        return string.Join('/', parts);
    }

    public static ContainerException Missing(string name, string image) =>
        new("OciImageInvalid", ContainerErrorKind.InvalidData,
            $"The image '{image}' lacks '{name}', which it refers to. Copy the image again (skopeo copy ... oci:DIR:TAG).", name);

    public static byte[] ReadAll(Stream s, long max, string name, string image)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[65536];
        int n;
        while ((n = s.Read(chunk, 0, chunk.Length)) > 0)
        {
            buffer.Write(chunk, 0, n);
            if (buffer.Length > max)
                throw new ContainerException("OciImageInvalid", ContainerErrorKind.InvalidData,
                    $"The file '{name}' of the image '{image}' is larger than {max} bytes, far more than an image's JSON needs.", name);
        }
        return buffer.ToArray();
    }
}

/// <summary>An image layout directory: files opened without following a symlink at the last step.</summary>
internal sealed class DirectorySource(string root) : IBlobSource
{
    string Full(string name, string image) => System.IO.Path.Combine(root, BlobNames.Check(name, image));

    public bool Exists(string name) => File.Exists(System.IO.Path.Combine(root, name));

    public Stream Open(string name, string image)
    {
        var path = Full(name, image);
        if (!File.Exists(path)) throw BlobNames.Missing(name, image);
        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
    }

    public byte[] ReadAll(string name, long max, string image)
    {
        using var s = Open(name, image);
        return BlobNames.ReadAll(s, max, name, image);
    }

    public void Dispose() { }
}

/// <summary>
/// An uncompressed tar (an OCI layout archived, or docker save): indexed once (name -> offset and
/// size of its data), then each blob is read in place, so nothing is unpacked to disk first.
/// </summary>
internal sealed class TarSource : IBlobSource
{
    readonly string _path;
    readonly Dictionary<string, (long Offset, long Size)> _members = new(StringComparer.Ordinal);

    TarSource(string path) => _path = path;

    public static TarSource Index(string path)
    {
        var source = new TarSource(path);
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        var magic = new byte[4];
        file.ReadAtLeast(magic, 4, throwOnEndOfStream: false);
        if (magic[0] == 0x1f && magic[1] == 0x8b || magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd)
            throw new ContainerException("OciImageInvalid", ContainerErrorKind.InvalidData,
                $"'{path}' is a compressed archive; an image archive is read in place and must be a plain tar (what 'docker save' and 'skopeo copy ... oci-archive:' write). Decompress it first (gunzip / unzstd).", path);
        file.Position = 0;
        var reader = new PaxTarReader(file);
        while (reader.Next() is var (entry, data))
        {
            if (entry.Type != TarEntryType.Regular) continue;
            // Where the data starts: the reader has consumed the header(s), not the data yet.
            var name = string.Join('/', entry.Path.Split('/').Where(p => p is not ("" or ".")));
            source._members[name] = (reader.Position, entry.Size);
        }
        return source;
    }

    public bool Exists(string name) => _members.ContainsKey(name);

    public Stream Open(string name, string image)
    {
        if (!_members.TryGetValue(BlobNames.Check(name, image), out var m)) throw BlobNames.Missing(name, image);
        var file = new FileStream(_path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        file.Position = m.Offset;
        return new Filesystem.ExactLengthStream(file, m.Size, ownsInner: true, truncated: () =>
            new ContainerException("OciImageInvalid", ContainerErrorKind.InvalidData, "The image archive ends in the middle of a file; it is truncated."));
    }

    public byte[] ReadAll(string name, long max, string image)
    {
        using var s = Open(name, image);
        return BlobNames.ReadAll(s, max, name, image);
    }

    public void Dispose() { }
}
