namespace PSContainers.Runtime.Templates;

/// <summary>Progress a template reports while it builds a rootfs (debootstrap takes minutes).</summary>
public sealed record TemplateProgress(string Activity, string Status, int PercentComplete);

/// <summary>Options a template understands; each template ignores what it does not need.</summary>
public sealed class TemplateOptions
{
    /// <summary>debootstrap: the Debian release (bookworm, trixie, ...).</summary>
    public string? Release { get; set; }
    /// <summary>debootstrap: mirror URL; default http://deb.debian.org/debian.</summary>
    public string? Mirror { get; set; }
    /// <summary>debootstrap: variant (minbase by default).</summary>
    public string? Variant { get; set; }
    /// <summary>Where templates may cache (e.g. debootstrap's per-release rootfs). The store's .cache.</summary>
    public string CacheDirectory { get; set; } = "";
    /// <summary>oci: an OCI image layout directory, or a tar of one, or a <c>docker save</c> archive.</summary>
    public string? ImagePath { get; set; }
    /// <summary>oci: which image of the layout or archive (its ref name or repo tag); null: the only one.</summary>
    public string? ImageTag { get; set; }
    /// <summary>
    /// debootstrap: the init system of the tree: "none" (the default: a shell that waits, an
    /// application container) or "systemd" (systemd-sysv is installed and boots as pid 1: a system container).
    /// </summary>
    public string? Init { get; set; }
    /// <summary>Container name, written to /etc/hostname.</summary>
    public string ContainerName { get; set; } = "";
}

/// <summary>
/// Builds a container root filesystem into an empty directory. Implementations must leave nothing
/// half-made: on failure the caller deletes the directory; caches are only ever completed atomically.
/// </summary>
public interface IRootfsTemplate
{
    string Name { get; }
    /// <summary>Checks the template's dependencies (busybox binary, debootstrap) up front.</summary>
    void CheckPrerequisites(TemplateOptions options);
    void Build(string rootfsDirectory, TemplateOptions options, IProgress<TemplateProgress>? progress, CancellationToken cancellationToken);
    /// <summary>The init command this template's rootfs expects, and a default stop signal.</summary>
    IReadOnlyList<string> DefaultInitCommand { get; }
    string DefaultStopSignal { get; }
    /// <summary>The init a tree built with these options expects (a template whose trees differ by option overrides this).</summary>
    TemplateInit InitFor(TemplateOptions options) => new(DefaultInitCommand, DefaultStopSignal, new Dictionary<string, string>());
}

/// <summary>
/// A template that brings its own configuration (an OCI image's Entrypoint, Cmd, Env, WorkingDir):
/// asked before the config is validated, so what it sets is checked like any config.yaml.
/// </summary>
public interface IImageTemplate : IRootfsTemplate
{
    /// <summary>
    /// Fills <paramref name="config"/> from the image where the config does not say otherwise.
    /// <paramref name="command"/> (New-Container -Command) replaces the image's Cmd and keeps its
    /// Entrypoint, as <c>docker run IMAGE ARGS</c> does.
    /// </summary>
    void Configure(Config.ContainerConfig config, TemplateOptions options, IReadOnlyList<string>? command);

    /// <summary>
    /// After the rootfs is built (<paramref name="rootfs"/>: the tree, or a read-only view of the
    /// layers): what the image says that needs its files, such as its User looked up in its own
    /// /etc/passwd. Never writes to <paramref name="rootfs"/>.
    /// </summary>
    void ConfigureFromRootfs(Config.ContainerConfig config, string rootfs);
}

/// <summary>
/// A template whose rootfs is a stack of layers (an OCI image): on the overlay backend each layer
/// is one of the store's shared lower layers (<see cref="Backends.LayerStore"/>) instead of being
/// applied into a rootfs of the container's own.
/// </summary>
public interface ILayeredTemplate : IRootfsTemplate
{
    /// <summary>
    /// Makes sure every layer is in <paramref name="layers"/> (extracting those it lacks) and returns
    /// their directories topmost first (storage.layers). They are pinned against
    /// <see cref="Backends.LayerStore.Collect"/> until <paramref name="lease"/> is disposed, which the
    /// caller does once the container's config.yaml naming them is in the store (or the create failed).
    /// </summary>
    IReadOnlyList<string> BuildLayers(Backends.LayerStore layers, string containerDir, TemplateOptions options, IProgress<TemplateProgress>? progress, CancellationToken cancellationToken, out IDisposable lease);
}
/// <summary>What a new container's config gets from its template: pid 1, its stop signal and its environment.</summary>
public sealed record TemplateInit(IReadOnlyList<string> Command, string StopSignal, IReadOnlyDictionary<string, string> Environment);
