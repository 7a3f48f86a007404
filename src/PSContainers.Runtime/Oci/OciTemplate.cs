using PSContainers.Runtime.Config;
using PSContainers.Runtime.Templates;

namespace PSContainers.Runtime.Oci;

/// <summary>
/// New-Container -Template oci -ImagePath: a rootfs from an OCI image (layout directory, a tar of
/// one, or docker save), offline, like LXC's lxc-oci without the download. Layers are applied in
/// order onto the one rootfs the backend gives (dir: the rootfs; btrfs: its subvolume; overlay:
/// the container's own lower layer) with the import's hostile-archive checks and OCI's whiteouts.
/// </summary>
public sealed class OciTemplate : IImageTemplate
{
    OciImage? _image;

    public string Name => "oci";
    /// <summary>Never used: an image without Entrypoint or Cmd is refused unless -Command is given.</summary>
    public IReadOnlyList<string> DefaultInitCommand { get; } = Array.Empty<string>();
    /// <summary>docker stop's signal; an image's StopSignal is not part of the OCI config we map.</summary>
    public string DefaultStopSignal => "SIGTERM";

    public void CheckPrerequisites(TemplateOptions options) => ImagePathOf(options);

    static string ImagePathOf(TemplateOptions options) =>
        string.IsNullOrWhiteSpace(options.ImagePath)
            ? throw new ContainerException("OciImagePathRequired", ContainerErrorKind.InvalidArgument,
                "The oci template makes a container from an image on this machine: give -ImagePath (an OCI image layout directory, or an OCI / 'docker save' archive).")
            : options.ImagePath;

    OciImage Image(TemplateOptions options) => _image ??= OciImage.Open(ImagePathOf(options), options.ImageTag);

    public void Configure(ContainerConfig config, TemplateOptions options, IReadOnlyList<string>? command)
    {
        var image = Image(options);
        // docker run IMAGE ARGS: ARGS replace Cmd, the Entrypoint stays.
        var args = command is { Count: > 0 } ? command.ToList() : image.Cmd;
        if (config.Init.Command.Count == 0 || command is { Count: > 0 })
            config.Init.Command = image.Entrypoint.Concat(args).ToList();
        if (config.Init.Command.Count == 0)
            throw new ContainerException("OciImageNoCommand", ContainerErrorKind.InvalidArgument,
                $"The image '{image.Path}' has neither Entrypoint nor Cmd, so there is nothing to run as init. Give -Command.", image.Path);
        // The image's environment is the base; the config file's and -Environment's values win.
        foreach (var pair in image.Env)
        {
            var eq = pair.IndexOf('=');
            var key = eq < 0 ? pair : pair[..eq];
            if (key.Length > 0 && !config.Init.Environment.ContainsKey(key)) config.Init.Environment[key] = eq < 0 ? "" : pair[(eq + 1)..];
        }
        if (image.WorkingDir is { } wd && config.Init.WorkingDirectory == "/") config.Init.WorkingDirectory = wd;
        config.Oci = new OciConfig
        {
            Image = image.Path,
            Tag = image.Tag,
            Digest = image.Digest,
            User = image.User,
            ExposedPorts = image.ExposedPorts.ToList(),
        };
    }

    public void Build(string rootfsDirectory, TemplateOptions options, IProgress<TemplateProgress>? progress, CancellationToken cancellationToken)
    {
        var image = Image(options);
        try
        {
            OciLayers.Apply(image, rootfsDirectory, progress, cancellationToken);
        }
        finally
        {
            image.Dispose();
            _image = null;
        }
    }
}
