using PSContainers.Runtime.Storage;
using PSContainers.Runtime.Templates;

namespace PSContainers.Runtime.Oci;

/// <summary>Applies an image's layers, bottom first, onto a rootfs.</summary>
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
            var warnings = new List<string>();
            try
            {
                ContainerArchive.ApplyLayer(rootfs, tar, warnings, ct);
            }
            catch (ContainerException ex) when (ex.ErrorId is "ArchiveEntryUnsafe" or "ArchiveCorrupt")
            {
                throw new ContainerException("OciLayerUnsafe", ContainerErrorKind.InvalidData,
                    $"Layer {i + 1} ({layer.Digest}, '{layer.Name}') of '{image.Path}' was refused: {ex.Message.Replace("The archive may be hostile; nothing was imported.", "")}".TrimEnd() +
                    " The image may be hostile; no container was created.", ex.Target ?? layer.Digest, ex);
            }
        }
        progress?.Report(new TemplateProgress(activity, "Done", 100));
    }
}
