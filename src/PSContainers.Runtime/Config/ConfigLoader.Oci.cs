using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace PSContainers.Runtime.Config;

/// <summary>
/// The <c>oci:</c> section of config.yaml, written by New-Container -Template oci:
/// <code>
/// oci:
///   image: /srv/images/web      # layout directory or archive
///   tag: "1.0"
///   digest: sha256:...
///   user: "1000:1000"           # the image's User
///   exposedPorts: [80/tcp]
/// </code>
/// </summary>
public static partial class ConfigLoader
{
    private static void SerializeOci(IEmitter e, OciConfig? oci)
    {
        if (oci is null) return;
        Key(e, "oci");
        e.Emit(new MappingStart(null, null, true, MappingStyle.Block));
        if (oci.Image is not null) Pair(e, "image", oci.Image);
        if (oci.Tag is not null) Pair(e, "tag", oci.Tag);
        if (oci.Digest is not null) Pair(e, "digest", oci.Digest);
        if (oci.User is not null) Pair(e, "user", oci.User);
        Key(e, "exposedPorts");
        e.Emit(new SequenceStart(null, null, true, SequenceStyle.Flow));
        foreach (var p in oci.ExposedPorts ?? new List<string>()) Str(e, p);
        e.Emit(new SequenceEnd());
        e.Emit(new MappingEnd());
    }

    private sealed partial class Binder
    {
        private OciConfig Oci(Node node)
        {
            var oci = new OciConfig();
            Section(node, "oci", new()
            {
                ["image"] = s => oci.Image = String(s, "oci.image"),
                ["tag"] = s => oci.Tag = String(s, "oci.tag"),
                ["digest"] = s => oci.Digest = String(s, "oci.digest"),
                ["user"] = s => oci.User = String(s, "oci.user"),
                ["exposedPorts"] = s => oci.ExposedPorts = ExposedPorts(s),
            });
            return oci;
        }

        /// <summary>storage.layers: a list of absolute paths (the shared layers of an overlay from an image).</summary>
        private List<string> Layers(Node node)
        {
            var result = new List<string>();
            if (node is ScalarNode { IsNull: true }) return result;
            if (node is not SequenceNode seq)
                throw Fail(node, $"expected a list of absolute paths for storage.layers, got {node.Kind}");
            for (int i = 0; i < seq.Items.Count; i++)
                result.Add(AbsolutePath(seq.Items[i], $"storage.layers[{i}]", allowDotDot: false)
                    ?? throw Fail(seq.Items[i], $"storage.layers[{i}] is empty; give an absolute path"));
            return result;
        }

        private List<string> ExposedPorts(Node node)
        {
            var result = new List<string>();
            if (node is ScalarNode { IsNull: true }) return result;
            if (node is not SequenceNode seq)
                throw Fail(node, $"expected a list of ports for oci.exposedPorts (e.g. [80/tcp, 53/udp]), got {node.Kind}");
            for (int i = 0; i < seq.Items.Count; i++)
            {
                var item = seq.Items[i];
                var port = String(item, $"oci.exposedPorts[{i}]") ?? "";
                Check(item, ConfigRules.ExposedPort(port, $"oci.exposedPorts[{i}]"));
                result.Add(port);
            }
            return result;
        }
    }
}
