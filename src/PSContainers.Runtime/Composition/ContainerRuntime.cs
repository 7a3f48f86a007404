using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Checkpoint;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Hooks;
using PSContainers.Runtime.NetworkHooks;
using PSContainers.Runtime.State;

namespace PSContainers.Runtime.Composition;

/// <summary>
/// The composition root: a store's <see cref="ContainerManager"/> with what runs on top of the
/// lifecycle plugged in (the network hooks of a start, checkpoint support for saved containers).
/// The lifecycle itself knows only the contracts (<see cref="IContainerHook"/>, <see cref="ICheckpointSupport"/>).
/// </summary>
public static class ContainerRuntime
{
    /// <summary>The store at <paramref name="storePath"/> (null: the caller's default store).</summary>
    public static ContainerManager Open(string? storePath = null) => Compose(new ContainerManager(new ContainerStore(storePath)));

    public static ContainerManager Open(ContainerStore store, CgroupManager? cgroups = null) => Compose(new ContainerManager(store, cgroups));

    /// <summary>
    /// Templates that live above Templates/ join the registry when the runtime assembly loads, so
    /// -Template completion and every ContainerManager (however it was opened) know them.
    /// </summary>
    [System.Runtime.CompilerServices.ModuleInitializer]
    internal static void RegisterTemplates() => Templates.TemplateRegistry.Register("oci", () => new Oci.OciTemplate());

    private static ContainerManager Compose(ContainerManager manager)
    {
        var network = new NetworkHook(manager.Store);
        manager.Hooks.Add(network);
        manager.Hooks.Add(new PastaHook(manager.Store));
        manager.Hooks.Add(new InitSettingsHook());
        // Last: its net up hooks run once every NIC's host side is set up, its pre-start before the others' work.
        manager.Hooks.Add(new LxcHooks(manager, network.PeerName));
        manager.Checkpoints = new CheckpointSupport();
        return manager;
    }
}
