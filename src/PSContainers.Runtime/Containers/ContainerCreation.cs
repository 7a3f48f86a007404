using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.State;
using PSContainers.Runtime.Templates;
using PSContainers.Runtime.UserNamespaces;
using PSContainers.Runtime.Launcher;
using PSContainers.Runtime.Events;

namespace PSContainers.Runtime.Containers;

/// <summary>How to make a new container (New-Container).</summary>
public sealed class CreateOptions
{
    /// <summary>busybox, debootstrap; null with <see cref="RootfsPath"/>.</summary>
    public string? Template { get; set; }
    public TemplateOptions TemplateOptions { get; set; } = new();
    /// <summary>Use this existing root directory instead of building one (it is never deleted by us).</summary>
    public string? RootfsPath { get; set; }
    /// <summary>A config.yaml to start from.</summary>
    public string? ConfigPath { get; set; }
    public IReadOnlyList<string>? Command { get; set; }
    public IDictionary<string, string>? Environment { get; set; }
    public string? Hostname { get; set; }
    public long? MemoryLimit { get; set; }
    /// <summary>Network interfaces (replaces the config file's network list).</summary>
    public IReadOnlyList<NicConfig>? Network { get; set; }
    /// <summary>Storage backend: dir, overlay, btrfs; null: the config's, else btrfs on a btrfs store, else dir.</summary>
    public string? Backend { get; set; }
    /// <summary>
    /// The default, said explicitly: the container runs in a user namespace on the caller's
    /// subordinate ids (the config's idMap, else the caller's default map). Kept for callers that say so.
    /// </summary>
    public bool Unprivileged { get; set; }
    /// <summary>Root: no user namespace (today's privileged container; config.yaml <c>privileged: true</c> asks the same).</summary>
    public bool Privileged { get; set; }
}

/// <summary>
/// New-Container: the config, the mode (user-namespaced unless privileged), the storage backend and
/// the rootfs (a template, an image, or an existing directory), built in the store's .tmp and
/// renamed into place, so that a failure or a killed pwsh leaves no half-made container.
/// </summary>
internal sealed class ContainerCreation : ContainerOperation
{
    public ContainerCreation(ContainerManager manager) : base(manager) { }

    private void CleanStaleTemp() => Manager.CleanStaleTemp();
    private void CollectLayers() => Manager.Removal.CollectLayers();

    public ContainerInfo Create(string name, CreateOptions options, IProgress<TemplateProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        // What a failed create must give back (an isolated id block it allocated).
        var undo = new List<Action>();
        try { return Create(name, options, progress, undo, cancellationToken); }
        catch
        {
            foreach (var u in undo) u();
            throw;
        }
    }

    private ContainerInfo Create(string name, CreateOptions options, IProgress<TemplateProgress>? progress, List<Action> undo, CancellationToken cancellationToken)
    {
        ContainerNames.Validate(name);
        var config = ConfigLoader.LoadForNewContainer(options.ConfigPath);
        IRootfsTemplate? template = null;
        string? externalRootfs = null;
        // -RootfsPath, or a config file's rootfs: key, means an existing root directory: no template.
        if ((options.RootfsPath ?? (options.Template is null ? config.Rootfs : null)) is { } rootfsPath)
        {
            externalRootfs = System.IO.Path.GetFullPath(rootfsPath);
            if (!Directory.Exists(externalRootfs))
                throw new ContainerException("RootfsNotFound", ContainerErrorKind.ObjectNotFound,
                    $"The root directory '{externalRootfs}' does not exist. Give -RootfsPath an existing directory holding a Linux root filesystem.", externalRootfs);
            config.Rootfs = externalRootfs;
            config.Template ??= "none";
        }
        else
        {
            template = TemplateRegistry.Get(options.Template ?? config.Template ?? "busybox");
            config.Template = template.Name;
        }

        // An image brings its own command, environment and directory (-Command replaces its Cmd).
        if (template is IImageTemplate image) image.Configure(config, options.TemplateOptions, options.Command);
        else if (options.Command is { Count: > 0 }) config.Init.Command = options.Command.ToList();
        if (options.Environment is not null)
            foreach (var (k, v) in options.Environment) config.Init.Environment[k] = v;
        if (options.Hostname is not null) config.Hostname = options.Hostname;
        if (options.MemoryLimit is not null) config.Limits.Memory = options.MemoryLimit;
        if (options.Network is not null) config.Network = options.Network.ToList();
        if (template?.InitFor(options.TemplateOptions) is { } init)
        {
            if (config.Init.Command.Count == 0) config.Init.Command = init.Command.ToList();
            config.Stop.Signal ??= init.StopSignal;
            foreach (var (k, v) in init.Environment) config.Init.Environment.TryAdd(k, v);
        }
        ConfigLoader.Validate(config);
        // The mode (see ContainerModes): user-namespaced unless privileged is asked for; recorded in
        // config.yaml either way, so an existing container never changes mode under its rootfs.
        var privileged = ContainerModes.Decide(config, options.Privileged, options.Unprivileged, Host.IsRoot, name);
        var userNamespaced = !privileged;
        if (config.IdMapIsolated)
        {
            if (privileged)
                throw new ContainerException("ConflictingParameters", ContainerErrorKind.InvalidArgument,
                    $"The config of '{name}' has idMapIsolated: true, but the container is privileged (no user namespace, so no id block). Drop one of them.", name);
            if (config.IdMap is not null)
                throw new ContainerException("InvalidIdMap", ContainerErrorKind.InvalidArgument,
                    $"The config of '{name}' has both idMapIsolated: true and an idMap ({config.IdMap}); an isolated container's map is allocated for it. Remove one of them.", name);
            config.IdMap = IsolatedIdRanges.Allocate(name, out var isNew).Map;
            if (isNew) undo.Add(() => IsolatedIdRanges.Free(name));
        }
        // An id-mapped rootfs is kept with the container's own ids and idmapped at start where the
        // store's filesystem allows (RootfsIds); every backend works then. Shifted (chowned into the
        // host range), it is a plain directory. Whether the filesystem can be idmapped does not depend
        // on the map: the default map (taken below, after every check) is not needed to ask.
        var idmappable = userNamespaced && externalRootfs is null &&
            UserNamespaces.RootfsIds.CanIdmap(Store.Root, config.IdMap ?? IdMap.ForRanges(IdMap.DefaultCount, IdMap.DefaultCount), out string? _);
        var backend = Backends.StorageBackends.Get(options.Backend ?? config.Storage.Backend ?? (externalRootfs is null && (!userNamespaced || idmappable) ? Backends.StorageBackends.DefaultFor(Store.Root) : "dir"));
        if (userNamespaced && backend.Name != "dir" && !idmappable)
            throw new ContainerException("BackendUnavailable", ContainerErrorKind.InvalidArgument,
                $"A user-namespaced container (the default) whose rootfs cannot be idmapped here ({(Host.IsRoot ? "the store's filesystem does not support idmapped mounts" : "only root may idmap mounts")}) uses the dir backend; {backend.Name} needs an idmapped rootfs. Use -Backend dir{(Host.IsRoot ? $", or -Privileged for a privileged container on {backend.Name}" : "")}.", name);
        if (externalRootfs is not null && backend.Name != "dir")
        {
            // An existing root directory can be the read-only lower layer of an overlay; nothing else.
            if (backend.Name != "overlay")
                throw new ContainerException("BackendUnavailable", ContainerErrorKind.InvalidArgument,
                    $"-RootfsPath uses the directory in place; only -Backend overlay (that directory as the read-only lower layer) can be combined with it.", name);
            config.Storage.Lower = externalRootfs;
            config.Rootfs = null;
        }
        if (template is not null || backend.Name != "dir") config.Storage.Backend = backend.Name;

        var templateOptions = options.TemplateOptions;
        templateOptions.ContainerName = name;
        if (string.IsNullOrEmpty(templateOptions.CacheDirectory)) templateOptions.CacheDirectory = Store.CacheDirectory;
        template?.CheckPrerequisites(templateOptions);

        EnsureStoreSecure();
        Store.EnsureRoot();
        if (templateOptions.CacheDirectory == Store.CacheDirectory) ContainerStore.CreatePrivateDirectory(Store.CacheDirectory);
        Backends.StorageBackends.CheckUsable(backend.Name, Store.Root);
        using var _ = Store.Lock(name);
        if (Store.Exists(name) || Directory.Exists(Store.ContainerDirectory(name)))
            throw new ContainerException("ContainerExists", ContainerErrorKind.ResourceExists,
                $"A container named '{name}' already exists in {Store.Root}. Choose another name, or remove it first with Remove-Container.", name);

        // Build everything in .tmp and rename it into place: a failure or a killed pwsh leaves no
        // half-made container under the store, only a .tmp entry that is cleaned on the next create.
        ContainerStore.CreatePrivateDirectory(Store.TempDirectory);
        CleanStaleTemp();
        var temp = Store.NewTempDirectory(name);
        DefaultIdMap.Allocation? allocation = null;
        IDisposable? layerLease = null;
        try
        {
            // Taken last, after every check: a range allocated for root goes again if the create fails.
            if (userNamespaced && config.IdMap is null) config.IdMap = (allocation = DefaultIdMap.Allocate(SubordinateIds)).Map;
            if (template is ILayeredTemplate layered && backend.Name == "overlay")
            {
                // An image on overlay: its layers are the store's shared lower layers (never shifted:
                // a user-namespaced overlay container is always idmapped, checked above), pinned until
                // this config.yaml naming them is in the store.
                Backends.OverlayBackend.CreateLayers(temp);
                config.Storage.Layers = layered.BuildLayers(new Backends.LayerStore(Store), temp, templateOptions, progress, cancellationToken, out var lease).ToList();
                layerLease = lease;
                if (template is IImageTemplate fromImage)
                    using (var view = Backends.OverlayBackend.MountView(config.Storage.Layers, Store.TempDirectory))
                        fromImage.ConfigureFromRootfs(config, view.Path);
                if (config.IdMap is not null) config.Storage.Ids = StorageConfig.IdsIdmapped;
            }
            else if (template is not null)
            {
                var rootfs = backend.CreateRootfs(temp, Store.ContainerDirectory(name), config.Storage);
                template.Build(rootfs, templateOptions, progress, cancellationToken);
                if (template is IImageTemplate fromImage) fromImage.ConfigureFromRootfs(config, rootfs);
                // Built as the caller: kept so and idmapped at start, or handed over to the mapped ids.
                if (config.IdMap is { } map)
                    config.Storage.Ids = UserNamespaces.RootfsIds.Give(rootfs, map, m => Warning?.Invoke(m)) ? StorageConfig.IdsIdmapped : StorageConfig.IdsShifted;
            }
            else if (backend.Name == "overlay") Backends.OverlayBackend.CreateLayers(temp);
            // An empty rootfs (filled by the caller, or an overlay of a given directory) is idmapped when it can be.
            if (config.IdMap is not null && config.Storage.Ids is null && config.Rootfs is null)
                config.Storage.Ids = idmappable ? StorageConfig.IdsIdmapped : StorageConfig.IdsShifted;
            File.WriteAllText(System.IO.Path.Combine(temp, "config.yaml"), ConfigLoader.Serialize(config));
            new PersistedState { Created = DateTimeOffset.Now }.Save(System.IO.Path.Combine(temp, "state.json"));
            cancellationToken.ThrowIfCancellationRequested();
            Directory.Move(temp, Store.ContainerDirectory(name));
            layerLease?.Dispose();
        }
        catch
        {
            try { DeleteContainerTree(temp, config); }
            finally
            {
                DefaultIdMap.Release(SubordinateIds, allocation);
                // Layers this failed create extracted (all or some) and nobody else uses go again.
                if (template is ILayeredTemplate && backend.Name == "overlay") { layerLease?.Dispose(); CollectLayers(); }
            }
            throw;
        }
        if (allocation?.Notice is { } notice) Warning?.Invoke(notice);
        Emit(name, ContainerEventKind.Created);
        return Describe(name);
    }

}
