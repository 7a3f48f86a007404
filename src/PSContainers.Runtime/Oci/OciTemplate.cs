using PSContainers.Runtime.Backends;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.Templates;

namespace PSContainers.Runtime.Oci;

/// <summary>
/// New-Container -Template oci -ImagePath: a rootfs from an OCI image (layout directory, a tar of
/// one, or docker save), offline, like LXC's lxc-oci without the download. Layers are applied in
/// order onto the one rootfs the backend gives (dir: the rootfs; btrfs: its subvolume) with the
/// import's hostile-archive checks and OCI's whiteouts; on overlay each layer is one of the store's
/// shared lower layers (<see cref="LayerStore"/>), extracted once for every container of every
/// image that has it.
/// </summary>
public sealed class OciTemplate : IImageTemplate, ILayeredTemplate
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

    /// <summary>
    /// The image's User ("name", "uid", "name:group", "uid:gid"...) resolved in the image's own
    /// /etc/passwd and /etc/group (read inside <paramref name="rootfs"/>, links resolved within it)
    /// into init.user / init.group, as docker run does. Root (0:0) leaves them unset.
    /// </summary>
    public void ConfigureFromRootfs(ContainerConfig config, string rootfs)
    {
        if (config.Oci?.User is not { Length: > 0 } user) return;
        var colon = user.IndexOf(':');
        var name = colon < 0 ? user : user[..colon];
        var group = colon < 0 ? null : user[(colon + 1)..];
        using var root = InRoot.Open(rootfs, $"image '{config.Oci.Image}'");
        ExecIdentity identity;
        try
        {
            identity = ExecIdentities.Resolve(root, config.Oci.Image ?? "image", name.Length > 0 ? name : null, group is { Length: > 0 } ? group : null);
        }
        catch (ContainerException ex) when (ex.ErrorId is "ContainerUserNotFound" or "ContainerGroupNotFound" or "ContainerAccountInvalid")
        {
            throw new ContainerException("OciUserNotFound", ContainerErrorKind.InvalidData,
                $"The image '{config.Oci.Image}' runs as User '{user}', which its own /etc/passwd and /etc/group do not resolve: {ex.Message} " +
                "Give a -ConfigPath file with init.user and init.group (numeric), or fix the image.", user, ex);
        }
        if (identity.Uid is { } uid && uid != 0) config.Init.User = checked((int)uid);
        if (identity.Gid is { } gid && (gid != 0 || config.Init.User is not null)) config.Init.Group = checked((int)gid);
    }

    public IReadOnlyList<string> BuildLayers(LayerStore layers, string containerDir, TemplateOptions options, IProgress<TemplateProgress>? progress, CancellationToken cancellationToken, out IDisposable lease)
    {
        var image = Image(options);
        try
        {
            OverlayBackend.CheckStack(image.Layers.Select(l => layers.PathOf(l.DiffId)).ToList(), containerDir, $"The image '{image.Path}'");
            lease = layers.Pin(image.Layers.Select(l => l.DiffId));
            try
            {
                return OciLayers.Share(image, layers, progress, cancellationToken);
            }
            catch
            {
                lease.Dispose();
                throw;
            }
        }
        finally
        {
            image.Dispose();
            _image = null;
        }
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
