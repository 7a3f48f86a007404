using System.Security.Cryptography;
using PSContainers.Runtime.Backends;
using PSContainers.Runtime.Storage;
using PSContainers.Runtime.Templates;

namespace PSContainers.Runtime.Oci;

/// <summary>Applies an image's layers, bottom first, onto a rootfs, or extracts them as the store's shared overlay layers.</summary>
internal static class OciLayers
{
    public static void Apply(OciImage image, string rootfs, IProgress<TemplateProgress>? progress, CancellationToken ct)
    {
        const string activity = "Unpacking OCI image";
        for (int i = 0; i < image.Layers.Count; i++)
        {
            var layer = image.Layers[i];
            progress?.Report(new TemplateProgress(activity, $"Layer {i + 1} of {image.Layers.Count} ({layer.Digest})", 5 + 90 * i / Math.Max(1, image.Layers.Count)));
            using var tar = image.OpenLayer(layer, ct);
            Apply(image, i, rootfs, tar, overlayWhiteouts: false, ct);
        }
        progress?.Report(new TemplateProgress(activity, "Done", 100));
    }

    static void Apply(OciImage image, int index, string target, Stream tar, bool overlayWhiteouts, CancellationToken ct)
    {
        var layer = image.Layers[index];
        var warnings = new List<string>();
        try
        {
            ContainerArchive.ApplyLayer(target, tar, warnings, ct, overlayWhiteouts);
        }
        catch (ContainerException ex) when (ex.ErrorId is "ArchiveEntryUnsafe" or "ArchiveCorrupt")
        {
            throw new ContainerException("OciLayerUnsafe", ContainerErrorKind.InvalidData,
                $"Layer {index + 1} ({layer.Digest}, '{layer.Name}') of '{image.Path}' was refused: {ex.Message.Replace("The archive may be hostile; nothing was imported.", "")}".TrimEnd() +
                " The image may be hostile; no container was created.", ex.Target ?? layer.Digest, ex);
        }
    }

    /// <summary>
    /// The image's layers as the store's shared overlay layers, topmost first: those the store has
    /// are used as they are (named by their diff_id, checked when they were extracted), the others
    /// extracted alone with overlayfs's whiteouts, their uncompressed tar hashed on the way and kept
    /// only when it is the diff_id the (digest-checked) config gives.
    /// </summary>
    public static IReadOnlyList<string> Share(OciImage image, LayerStore store, IProgress<TemplateProgress>? progress, CancellationToken ct)
    {
        const string activity = "Unpacking OCI image layers";
        var result = new List<string>();
        for (int i = 0; i < image.Layers.Count; i++)
        {
            var layer = image.Layers[i];
            var index = i;
            progress?.Report(new TemplateProgress(activity, $"Layer {i + 1} of {image.Layers.Count} ({layer.DiffId})", 5 + 90 * i / Math.Max(1, image.Layers.Count)));
            result.Add(store.Ensure(layer.DiffId, dir =>
            {
                using var tar = image.OpenLayer(layer, ct);
                using var hashed = new HashingStream(tar);
                Apply(image, index, dir, hashed, overlayWhiteouts: true, ct);
                return hashed.Finish();
            }));
        }
        progress?.Report(new TemplateProgress(activity, "Done", 100));
        result.Reverse();
        return result;
    }

    /// <summary>A read-through sha256 of everything read, up to the end (what the extractor left unread is read at <see cref="Finish"/>).</summary>
    private sealed class HashingStream(Stream inner) : Stream
    {
        readonly IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count)
        {
            int n = inner.Read(buffer, offset, count);
            if (n > 0) _sha.AppendData(buffer, offset, n);
            return n;
        }
        public string Finish()
        {
            var rest = new byte[1 << 16];
            while (Read(rest, 0, rest.Length) > 0) { }
            return "sha256:" + Convert.ToHexString(_sha.GetHashAndReset()).ToLowerInvariant();
        }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        protected override void Dispose(bool disposing)
        {
            if (disposing) _sha.Dispose();
            base.Dispose(disposing);
        }
    }
}
