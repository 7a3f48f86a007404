using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Network;
using PSContainers.Runtime.State;

namespace PSContainers.Runtime.NetworkHooks;

/// <summary>
/// Container NICs (LXC's lxc.net.*): made while the new init waits in its fresh network namespace,
/// before it runs; undone after it stopped. Each NIC is made by <see cref="NicPlumbing"/> (the same
/// class a hot-plug uses); what was made is recorded in the container's directory, and the stop
/// undoes that record, so NICs plugged or unplugged while it ran are undone as they are.
/// </summary>
public sealed class NetworkHook : IContainerHook
{
    private readonly ContainerStore _store;
    private readonly NicPlumbing _nics;
    private readonly HashSet<string> _abandoned = new();

    public NetworkHook(ContainerStore store)
    {
        _store = store;
        _nics = new NicPlumbing(store);
    }

    /// <summary>The generated host-side veth name: stable per store, container and NIC (so a stop in another process finds it).</summary>
    public string HostEndName(string container, int index) => _nics.HostEndName(container, index);

    /// <summary>The host end of a veth NIC (LXC_NET_PEER of its net hooks), or null for the other kinds.</summary>
    public string? PeerName(string container, int index, NicConfig nic) =>
        nic.Type != "veth" ? null
        : !Host.HostContext.Current.IsRoot ? UserHostEndName(container, index)
        : nic.HostName ?? HostEndName(container, index);

    /// <summary>Fills the 'x' digits of a MAC template from a hash of the container and NIC (stable across restarts).</summary>
    public string FillMac(string template, string container, int index) => _nics.FillMac(template, container, index);

    /// <summary>A non-root user's host end (see <see cref="NicPlumbing.UserHostEndName"/>).</summary>
    public string UserHostEndName(string container, int index) => _nics.UserHostEndName(container, index);

    public void Starting(ContainerStartContext context)
    {
        var config = context.Config;
        if (NetworkPlan.SharesHostNetwork(config)) return;
        var root = Host.HostContext.Current.IsRoot;
        var target = NetworkLocation.ForPid(context.InitPid, "container:" + context.Name);
        var made = new List<PlumbedNic>();
        try
        {
            if (root)
            {
                using (var inside = new NetworkClient(target)) inside.SetLink("lo", new LinkChanges { Up = true });
                // A pin left by a run whose stop never came points at a dead namespace.
                NicPlumbing.Unpin(_nics.PinPath(context.Name));
            }
            foreach (var (nic, index, name) in NetworkPlan.Interfaces(config))
                made.Add(_nics.Attach(context.Name, context.InitPid, nic, index, name, initStartTime: null)); // init brings a non-root user's links up itself
            _nics.Save(context.Name, made);
        }
        catch
        {
            // Undo exactly what this call made; the Stopped that follows must not touch links that
            // were not ours (a host-side name that already existed, for example).
            lock (_abandoned) _abandoned.Add(context.Name);
            try { _nics.DetachAll(context.Name, made, root ? target : null); } catch (ContainerException) { }
            if (root) NicPlumbing.Unpin(_nics.PinPath(context.Name));
            try { _nics.Forget(context.Name); } catch (IOException) { }
            throw;
        }
    }

    public void Stopped(string name, ContainerConfig config)
    {
        lock (_abandoned) if (_abandoned.Remove(name)) return;
        var recorded = _nics.Load(name);
        if (recorded is null && NetworkPlan.SharesHostNetwork(config)) return;
        // The kernel deletes a veth pair with the container's namespace, but only once its cleanup
        // ran (asynchronously): deleting the host ends now frees their names (and a non-root user's
        // quota) when the stop returns. Phys interfaces come back out through the pinned namespace.
        var plumbed = recorded ?? _nics.FromConfig(name, config);
        var pin = _nics.PinPath(name);
        try
        {
            _nics.DetachAll(name, plumbed, Host.HostContext.Current.IsRoot && File.Exists(pin) ? NetworkLocation.ForPath(pin, "container:" + name) : null);
        }
        finally
        {
            if (Host.HostContext.Current.IsRoot) NicPlumbing.Unpin(pin);
            _nics.Forget(name);
        }
    }

    /// <summary>
    /// A removed container's addresses on the default bridge are free at once (else held until the
    /// next allocation reclaims them).
    /// </summary>
    public void Removed(string name) => DefaultBridge.For(_store).Release(name);

    /// <summary>Keeps a container's network namespace alive after its init is gone (a bind mount of its nsfs file).</summary>
    internal static void Pin(int pid, string path) => NicPlumbing.Pin(pid, path);

    internal static void Unpin(string path) => NicPlumbing.Unpin(path);
}
