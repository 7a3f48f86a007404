using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using PSContainers.Runtime.Filesystem;

namespace PSContainers.Runtime.Oci;

/// <summary>One layer of an image: where its bytes are, what they must hash to, and how they are packed.</summary>
internal sealed record OciLayer(string Name, string MediaType, string Digest, long? Size, bool DigestOfUncompressed)
{
    /// <summary>The sha256 of the uncompressed tar (the config's rootfs.diff_ids): what a shared layer is named by.</summary>
    public string DiffId { get; set; } = DigestOfUncompressed ? Digest : "";
}

/// <summary>
/// An image read from an OCI image layout (a directory, or a tar of one) or a <c>docker save</c>
/// archive, offline. Every JSON blob is checked against its descriptor's sha256 digest and size
/// before it is parsed; layers are checked by <see cref="OpenLayer"/> before they are applied.
/// </summary>
internal sealed partial class OciImage : IDisposable
{
    const long MaxJson = 4 << 20;
    const string RefName = "org.opencontainers.image.ref.name";
    readonly IBlobSource _source;

    public string Path { get; }
    /// <summary>The manifest's digest (OCI), or the config's (docker save, which has no manifest blob).</summary>
    public string Digest { get; private set; } = "";
    public string? Tag { get; private set; }
    public List<OciLayer> Layers { get; } = new();
    public List<string> Entrypoint { get; } = new();
    public List<string> Cmd { get; } = new();
    public List<string> Env { get; } = new();
    public string? WorkingDir { get; private set; }
    public string? User { get; private set; }
    public List<string> ExposedPorts { get; } = new();

    OciImage(string path, IBlobSource source) { Path = path; _source = source; }

    static ContainerException Invalid(string path, string why) =>
        new("OciImageInvalid", ContainerErrorKind.InvalidData,
            $"'{path}' is not a usable OCI image: {why}. Give -ImagePath an OCI image layout directory (oci-layout, index.json, blobs/), a tar of one, or a 'docker save' archive.", path);

    /// <summary>Opens the image at <paramref name="path"/>; <paramref name="tag"/> picks one of several.</summary>
    public static OciImage Open(string path, string? tag)
    {
        var full = System.IO.Path.GetFullPath(path);
        IBlobSource source;
        if (Directory.Exists(full)) source = new DirectorySource(full);
        else if (File.Exists(full)) source = TarSource.Index(full);
        else
            throw new ContainerException("OciImageNotFound", ContainerErrorKind.ObjectNotFound,
                $"The image '{full}' does not exist. Give -ImagePath an OCI image layout directory or an OCI / 'docker save' archive.", full);
        var image = new OciImage(full, source);
        try
        {
            if (source.Exists("oci-layout") && source.Exists("index.json")) image.ReadLayout(tag);
            else if (source.Exists("manifest.json")) image.ReadDockerArchive(tag);
            else throw Invalid(full, "it has neither oci-layout + index.json nor a docker manifest.json");
            return image;
        }
        catch
        {
            image.Dispose();
            throw;
        }
    }

    public void Dispose() => _source.Dispose();

    // ---- OCI image layout ------------------------------------------------------------------------

    void ReadLayout(string? tag)
    {
        using (var layout = Json(_source.ReadAll("oci-layout", MaxJson, Path)))
            if (!layout.RootElement.TryGetProperty("imageLayoutVersion", out var v) || v.GetString() != "1.0.0")
                throw Invalid(Path, "its oci-layout is not imageLayoutVersion 1.0.0");
        using var index = Json(_source.ReadAll("index.json", MaxJson, Path));
        var candidates = Manifests(index.RootElement, "index.json").ToList();
        var chosen = Choose(candidates.Select(c => (c.Tag, c.Descriptor)).ToList(), tag);
        var manifestBytes = VerifiedJson(chosen.Descriptor, "manifest");
        using var manifest = Json(manifestBytes);
        var m = manifest.RootElement;
        if (m.TryGetProperty("mediaType", out var mt) && mt.GetString() is { } mts && mts != "application/vnd.oci.image.manifest.v1+json" && mts != "application/vnd.docker.distribution.manifest.v2+json")
            throw Unsupported(mts, "manifest");
        Digest = Str(chosen.Descriptor, "digest", "manifest descriptor");
        Tag = chosen.Tag;
        var configBytes = VerifiedJson(Obj(m, "config", "manifest"), "config");
        if (!m.TryGetProperty("layers", out var layers) || layers.ValueKind != JsonValueKind.Array)
            throw Invalid(Path, "its manifest has no layers list");
        foreach (var layer in layers.EnumerateArray())
        {
            var media = Str(layer, "mediaType", "layer descriptor");
            var digest = Str(layer, "digest", "layer descriptor");
            CheckLayerMediaType(media);
            Layers.Add(new OciLayer(BlobName(digest), media, digest, Size(layer), false));
        }
        var diffIds = DiffIds(configBytes);
        if (diffIds.Count != Layers.Count)
            throw Invalid(Path, $"its manifest lists {Layers.Count} layers but the config's rootfs.diff_ids has {diffIds.Count}");
        for (int i = 0; i < Layers.Count; i++)
        {
            BlobName(diffIds[i]);
            Layers[i].DiffId = diffIds[i];
        }
        ReadConfig(configBytes);
    }

    /// <summary>The image manifests of an index, following nested indexes (multi-platform images) to this machine's platform.</summary>
    IEnumerable<(string? Tag, JsonElement Descriptor)> Manifests(JsonElement index, string where)
    {
        if (!index.TryGetProperty("manifests", out var list) || list.ValueKind != JsonValueKind.Array)
            throw Invalid(Path, $"its {where} has no manifests list");
        foreach (var d in list.EnumerateArray())
        {
            string? tag = d.TryGetProperty("annotations", out var a) && a.ValueKind == JsonValueKind.Object && a.TryGetProperty(RefName, out var r) ? r.GetString() : null;
            var media = d.TryGetProperty("mediaType", out var mt) ? mt.GetString() : null;
            if (media is "application/vnd.oci.image.index.v1+json" or "application/vnd.docker.distribution.manifest.list.v2+json")
            {
                var nestedBytes = VerifiedJson(d, "index");
                using var nested = Json(nestedBytes);
                var forUs = Manifests(nested.RootElement, "nested index").Select(x => x.Descriptor.Clone())
                    .Where(x => !x.TryGetProperty("platform", out var p) || IsOurPlatform(p)).ToList();
                if (forUs.Count > 0) yield return (tag, forUs[0]);
                continue;
            }
            yield return (tag, d.Clone());
        }
    }

    static bool IsOurPlatform(JsonElement platform)
    {
        var arch = System.Runtime.InteropServices.RuntimeInformation.OSArchitecture switch
        {
            System.Runtime.InteropServices.Architecture.X64 => "amd64",
            System.Runtime.InteropServices.Architecture.Arm64 => "arm64",
            System.Runtime.InteropServices.Architecture.X86 => "386",
            var other => other.ToString().ToLowerInvariant(),
        };
        return (!platform.TryGetProperty("os", out var os) || os.GetString() == "linux") &&
               (!platform.TryGetProperty("architecture", out var a) || a.GetString() == arch);
    }

    (string? Tag, T Descriptor) Choose<T>(List<(string? Tag, T Descriptor)> candidates, string? tag)
    {
        if (candidates.Count == 0) throw Invalid(Path, "it holds no image for linux on this machine's architecture");
        if (tag is null)
        {
            if (candidates.Count == 1) return candidates[0];
            throw new ContainerException("OciImageAmbiguous", ContainerErrorKind.InvalidArgument,
                $"'{Path}' holds {candidates.Count} images ({string.Join(", ", candidates.Select(c => c.Tag ?? "(untagged)"))}). Say which one with -ImageTag.", Path);
        }
        // The full name, the name without its registry (docker.io/library/x:t as x:t or library/x:t), or the bare tag.
        var hits = candidates.Where(c => c.Tag is { } t && (t == tag || t.EndsWith("/" + tag, StringComparison.Ordinal) ||
            (!tag.Contains(':') && t.LastIndexOf(':') is var i and > 0 && t[(i + 1)..] == tag))).ToList();
        if (hits.Count == 1) return hits[0];
        throw new ContainerException("OciImageTagNotFound", ContainerErrorKind.ObjectNotFound,
            hits.Count == 0
                ? $"'{Path}' holds no image tagged '{tag}'; it has: {string.Join(", ", candidates.Select(c => c.Tag ?? "(untagged)"))}."
                : $"'{Path}' holds {hits.Count} images tagged '{tag}'; give the full name ({string.Join(", ", hits.Select(h => h.Tag))}).", Path);
    }

    // ---- docker save -----------------------------------------------------------------------------

    void ReadDockerArchive(string? tag)
    {
        using var manifest = Json(_source.ReadAll("manifest.json", MaxJson, Path));
        if (manifest.RootElement.ValueKind != JsonValueKind.Array) throw Invalid(Path, "its manifest.json is not a list");
        var candidates = new List<(string? Tag, JsonElement Descriptor)>();
        foreach (var e in manifest.RootElement.EnumerateArray())
        {
            var tags = e.TryGetProperty("RepoTags", out var rt) && rt.ValueKind == JsonValueKind.Array ? rt.EnumerateArray().Select(t => t.GetString()).ToList() : new List<string?>();
            if (tags.Count == 0) candidates.Add((null, e.Clone()));
            foreach (var t in tags) candidates.Add((t, e.Clone()));
        }
        var chosen = Choose(candidates, tag);
        Tag = chosen.Tag;
        var configName = Str(chosen.Descriptor, "Config", "manifest.json entry");
        // The config is named by its own digest (HEX.json or blobs/sha256/HEX): that is what we check.
        var hex = HexName().Match(configName);
        if (!hex.Success) throw Invalid(Path, $"its config '{configName}' is not named by its sha256 digest");
        Digest = "sha256:" + hex.Groups[1].Value;
        var configBytes = _source.ReadAll(configName, MaxJson, Path);
        CheckDigest(configBytes, Digest, configBytes.Length, configName);
        // docker save's layers are named, not digested: each must hash to the config's diff_id.
        var diffIds = DiffIds(configBytes);
        if (!chosen.Descriptor.TryGetProperty("Layers", out var layers) || layers.ValueKind != JsonValueKind.Array)
            throw Invalid(Path, "its manifest.json entry has no Layers list");
        var names = layers.EnumerateArray().Select(l => l.GetString() ?? "").ToList();
        if (names.Count != diffIds.Count)
            throw Invalid(Path, $"its manifest.json lists {names.Count} layers but the config's rootfs.diff_ids has {diffIds.Count}");
        for (int i = 0; i < names.Count; i++)
        {
            if (!_source.Exists(names[i])) throw Invalid(Path, $"its layer '{names[i]}' is missing");
            Layers.Add(new OciLayer(names[i], "application/vnd.docker.image.rootfs.diff.tar", diffIds[i], null, true));
        }
        ReadConfig(configBytes);
    }

    static List<string> DiffIds(byte[] configBytes)
    {
        using var config = Json(configBytes);
        return config.RootElement.ValueKind == JsonValueKind.Object && config.RootElement.TryGetProperty("rootfs", out var rootfs) && rootfs.ValueKind == JsonValueKind.Object &&
               rootfs.TryGetProperty("diff_ids", out var d) && d.ValueKind == JsonValueKind.Array
            ? d.EnumerateArray().Select(x => x.ValueKind == JsonValueKind.String ? x.GetString() ?? "" : "").ToList() : new List<string>();
    }

    [GeneratedRegex(@"(?:^|/)([0-9a-f]{64})(?:\.json)?$")]
    private static partial Regex HexName();

    // ---- config ----------------------------------------------------------------------------------

    void ReadConfig(byte[] bytes)
    {
        using var doc = Json(bytes);
        var root = doc.RootElement;
        if (root.TryGetProperty("os", out var os) && os.GetString() is { } o && o != "linux")
            throw Invalid(Path, $"the image is for '{o}', not linux");
        if (!root.TryGetProperty("config", out var c) || c.ValueKind != JsonValueKind.Object) return;
        Strings(c, "Entrypoint", Entrypoint);
        Strings(c, "Cmd", Cmd);
        Strings(c, "Env", Env);
        if (c.TryGetProperty("WorkingDir", out var w) && w.ValueKind == JsonValueKind.String && w.GetString() is { Length: > 0 } wd) WorkingDir = wd;
        if (c.TryGetProperty("User", out var u) && u.ValueKind == JsonValueKind.String && u.GetString() is { Length: > 0 } user) User = user;
        if (c.TryGetProperty("ExposedPorts", out var p) && p.ValueKind == JsonValueKind.Object)
            ExposedPorts.AddRange(p.EnumerateObject().Select(x => x.Name).Order(StringComparer.Ordinal));
    }

    void Strings(JsonElement parent, string name, List<string> into)
    {
        if (!parent.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return;
        if (v.ValueKind != JsonValueKind.Array || v.EnumerateArray().Any(x => x.ValueKind != JsonValueKind.String))
            throw Invalid(Path, $"the config's {name} is not a list of strings");
        into.AddRange(v.EnumerateArray().Select(x => x.GetString()!));
    }

    // ---- blobs -----------------------------------------------------------------------------------

    static readonly Regex LayerMediaType = new(@"^application/vnd\.(oci\.image\.layer\.v1\.tar(\+gzip|\+zstd)?|docker\.image\.rootfs\.diff\.tar(\.gzip)?)$", RegexOptions.CultureInvariant);

    static void CheckLayerMediaType(string media)
    {
        if (!LayerMediaType.IsMatch(media)) throw Unsupported(media, "layer");
    }

    static ContainerException Unsupported(string media, string what) =>
        new("OciMediaTypeUnsupported", ContainerErrorKind.InvalidData,
            $"The image has a {what} of media type '{media}'. Supported: OCI / docker manifests, and layers as plain, gzip or zstd tars; " +
            "foreign (URL) layers need a registry and encrypted layers a key, so they are refused. Copy the image with 'skopeo copy' to an oci: layout first.", media);

    static string BlobName(string digest)
    {
        var i = digest.IndexOf(':');
        var alg = i > 0 ? digest[..i] : "";
        var hex = i > 0 ? digest[(i + 1)..] : "";
        if (alg != "sha256" || hex.Length != 64 || !hex.All(ch => ch is >= '0' and <= '9' or >= 'a' and <= 'f'))
            throw new ContainerException("OciImageInvalid", ContainerErrorKind.InvalidData,
                $"The image names a blob by '{digest}'; only sha256 digests (64 lowercase hex digits) are accepted.", digest);
        return $"blobs/sha256/{hex}";
    }

    static long? Size(JsonElement descriptor) =>
        descriptor.TryGetProperty("size", out var s) && s.ValueKind == JsonValueKind.Number && s.TryGetInt64(out var n) && n >= 0 ? n : null;

    byte[] VerifiedJson(JsonElement descriptor, string what)
    {
        var digest = Str(descriptor, "digest", what + " descriptor");
        var size = Size(descriptor) ?? throw Invalid(Path, $"the {what} descriptor has no size");
        if (size > MaxJson) throw Invalid(Path, $"its {what} is {size} bytes, more than JSON of an image needs");
        var name = BlobName(digest);
        var bytes = _source.ReadAll(name, MaxJson, Path);
        CheckDigest(bytes, digest, size, name);
        return bytes;
    }

    void CheckDigest(byte[] bytes, string digest, long size, string name)
    {
        var actual = "sha256:" + Convert.ToHexString(SHA256.HashData(bytes)).ToLowerInvariant();
        if (bytes.LongLength != size || actual != digest) throw Mismatch(name, digest, size, actual, bytes.LongLength);
    }

    ContainerException Mismatch(string name, string digest, long? size, string actual, long actualSize) =>
        new("OciDigestMismatch", ContainerErrorKind.InvalidData,
            $"The blob '{name}' of '{Path}' is not what the image says: expected {digest}{(size is null ? "" : $" ({size} bytes)")}, found {actual} ({actualSize} bytes). " +
            "The image is damaged or was tampered with; nothing was created. Copy it again.", name);

    /// <summary>
    /// The layer's tar, decompressed, after its bytes were checked in full against the digest (and
    /// size) the image gives for it: nothing of an unverified layer is ever applied.
    /// </summary>
    public Stream OpenLayer(OciLayer layer, CancellationToken ct)
    {
        var stream = _source.Open(layer.Name, Path);
        try
        {
            // docker save's diff_ids are digests of the uncompressed tar; OCI digests are of the blob.
            var hashed = layer.DigestOfUncompressed ? TarCompression.Decompress(stream) : stream;
            using (var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
            {
                var buffer = new byte[1 << 20];
                long total = 0;
                int n;
                while ((n = hashed.Read(buffer, 0, buffer.Length)) > 0)
                {
                    ct.ThrowIfCancellationRequested();
                    sha.AppendData(buffer, 0, n);
                    total += n;
                }
                var actual = "sha256:" + Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
                if (actual != layer.Digest || (layer.Size is { } size && size != total))
                    throw Mismatch(layer.Name, layer.Digest, layer.Size, actual, total);
            }
            hashed.Dispose();
        }
        catch
        {
            stream.Dispose();
            throw;
        }
        return TarCompression.Decompress(_source.Open(layer.Name, Path));
    }

    static JsonDocument Json(byte[] bytes)
    {
        try { return JsonDocument.Parse(bytes); }
        catch (JsonException ex)
        {
            throw new ContainerException("OciImageInvalid", ContainerErrorKind.InvalidData, $"The image has a JSON file that does not parse: {ex.Message}", null, ex);
        }
    }

    JsonElement Obj(JsonElement e, string name, string where) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Object ? v : throw Invalid(Path, $"its {where} has no '{name}'");

    string Str(JsonElement e, string name, string where) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String && v.GetString() is { Length: > 0 } s ? s : throw Invalid(Path, $"its {where} has no '{name}'");
}
