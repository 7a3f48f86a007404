using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Network;
using PSContainers.Runtime.NetworkHooks;
using PSContainers.Runtime.State;

namespace PSContainers.Runtime.Devices;

/// <summary>A NIC given to a container (Add-ContainerNetworkInterface) or taken from it (Remove-ContainerNetworkInterface).</summary>
public sealed record ContainerNetworkInterface
{
    public required string Container { get; init; }
    /// <summary>Its name inside the container.</summary>
    public required string InterfaceName { get; init; }
    /// <summary>veth, macvlan, vlan, ipvlan, phys.</summary>
    public required string Type { get; init; }
    /// <summary>veth: the bridge; macvlan/vlan/ipvlan: the parent; phys: the host interface.</summary>
    public string? Link { get; init; }
    public string? LinkNamespace { get; init; }
    /// <summary>veth: the host end.</summary>
    public string? HostName { get; init; }
    public string? MacAddress { get; init; }
    public int? Mtu { get; init; }
    public string[] Addresses { get; init; } = Array.Empty<string>();
    public string? IPv4Gateway { get; init; }
    public string? IPv6Gateway { get; init; }
    /// <summary>Changed in the running container now.</summary>
    public bool Live { get; init; }
    /// <summary>Recorded in config.yaml's network list, so every start has it (or, for a removal, no longer has it).</summary>
    public bool Persisted { get; init; }
}

/// <summary>
/// NICs into and out of containers (lxc-device add/del with an interface): live in a running
/// container through <see cref="NicPlumbing"/>, the class its start makes its NICs with (so a NIC
/// plugged live is made, configured and later undone exactly as a configured one), and recorded in
/// config.yaml's network list with -Persist (under the container's lock, atomically). A live change
/// is recorded in the container's NIC ledger, which its stop undoes.
/// </summary>
public sealed class ContainerNetworkInterfaces(IContainerLifecycle manager)
{
    private readonly NicPlumbing _nics = new(manager.Store);

    private static bool IsRunning(ContainerInfo info) =>
        info.State is ContainerStatus.Running or ContainerStatus.Frozen && info.Pid is not null;

    private static ContainerException NotRunning(string name, string verb) =>
        new("ContainerNotRunning", ContainerErrorKind.InvalidOperation,
            $"Cannot {verb} container '{name}': it is not running. Use -Persist to record the change in its config.yaml for the next start.", name);

    private static ContainerException NotHotpluggable(string name, string problem) =>
        new("NicNotHotpluggable", ContainerErrorKind.InvalidOperation,
            $"Cannot change the network of running container '{name}' live: {problem}. Stop it, make the change with -Persist, and start it again.", name);

    /// <summary>The running container's NICs: its ledger, or (started before there was one) its config's.</summary>
    private List<PlumbedNic> Ledger(string name, ContainerConfig config) => _nics.Load(name) ?? _nics.FromConfig(name, config);

    /// <summary>
    /// Gives <paramref name="nic"/> to container <paramref name="name"/>: made and configured in it
    /// when it runs, appended to its config.yaml with <paramref name="persist"/> (required when it is
    /// stopped). A failure leaves nothing made and nothing recorded.
    /// </summary>
    public ContainerNetworkInterface Add(string name, NicConfig nic, bool persist)
    {
        ContainerNames.Validate(name);
        using var _ = manager.Store.Lock(name);
        var info = manager.Get(name);
        var running = IsRunning(info);
        if (!running && !persist) throw NotRunning(name, "add a network interface to");
        var configPath = manager.Store.ConfigPath(name);
        var config = ConfigLoader.Load(configPath);
        var original = ConfigLoader.Serialize(config);
        if (running)
        {
            if (NetworkPlan.SharesHostNetwork(config))
                throw NotHotpluggable(name, "it shares the host's network namespace (network type none), so it has no namespace of its own to plug an interface into");
            if (NicPlumbing.HotplugProblem(nic) is { } problem) throw NotHotpluggable(name, problem);
        }
        var ledger = running ? Ledger(name, config) : new List<PlumbedNic>();
        // Generated names, MACs and leases derive from the position: the one it takes in config.yaml,
        // past any NIC plugged live without -Persist (whose generated names must not collide).
        var index = Math.Max(config.Network.Count, ledger.Count == 0 ? 0 : ledger.Max(p => p.Index) + 1);
        config.Network.Add(nic);
        var positional = NetworkPlan.Interfaces(config).LastOrDefault(x => x.Index == config.Network.Count - 1).Name;
        var interfaceName = nic.Name ?? positional;
        if (nic.Name is null && interfaceName is not null && ledger.Any(p => p.Name == interfaceName))
        {
            // ethN is taken by one plugged live: the next free one, recorded by name so a start gives the same.
            var n = int.Parse(interfaceName[3..], System.Globalization.CultureInfo.InvariantCulture);
            while (ledger.Any(p => p.Name == $"eth{n}")) n++;
            interfaceName = $"eth{n}";
            nic.Name = interfaceName;
        }
        ConfigLoader.Validate(config);
        var yaml = persist ? ConfigLoader.Serialize(config) : null;
        PlumbedNic? made = null;
        if (running)
        {
            made = _nics.Attach(name, info.Pid!.Value, nic, index, interfaceName!, InitStartTime(name, info));
            try
            {
                _nics.Save(name, ledger.Append(made).ToList());
                if (yaml is not null) AtomicFile.WriteAllText(configPath, yaml);
            }
            catch
            {
                try { _nics.DetachAll(name, new[] { made }, Inside(name, info)); } catch (ContainerException) { }
                try { _nics.Save(name, ledger); } catch (IOException) { }
                try { AtomicFile.WriteAllText(configPath, original); } catch (IOException) { }
                throw;
            }
        }
        else if (yaml is not null) AtomicFile.WriteAllText(configPath, yaml);
        var result = Result(name, nic, interfaceName ?? "", made, running, persist);
        manager.Emit(name, ContainerEventKind.NetworkInterfaceAdded, Details(result));
        return result;
    }

    /// <summary>
    /// The running init's recorded start time: a non-root user's hot-plugged veth is brought up by a
    /// helper that acts only on that very process (see <see cref="NicPlumbing.Attach"/>; root's
    /// plumbing reaches the namespace itself and needs none).
    /// </summary>
    private ulong? InitStartTime(string name, ContainerInfo info) =>
        manager.Host.IsRoot ? null
        : manager.Inspect(name).State is { InitStartTime: { } started } state && state.InitPid == info.Pid ? started
            : throw new ContainerException("ContainerNotRunning", ContainerErrorKind.InvalidOperation,
                $"Cannot change the network of container '{name}' live: its init changed while the change was being made (it stopped or was restarted). Try again.", name);

    private static NetworkLocation Inside(string name, ContainerInfo info) => NetworkLocation.ForPid(info.Pid!.Value, "container:" + name);

    /// <summary>
    /// Takes the interface <paramref name="interfaceName"/> out of container <paramref name="name"/>:
    /// a veth's pair deleted, a macvlan/vlan/ipvlan deleted, a phys interface moved back to where it
    /// came from under its own name (when it runs); with <paramref name="persist"/> also out of config.yaml.
    /// </summary>
    public ContainerNetworkInterface Remove(string name, string interfaceName, bool persist)
    {
        ContainerNames.Validate(name);
        NetworkClient.ValidateLinkName(interfaceName);
        using var _ = manager.Store.Lock(name);
        var info = manager.Get(name);
        var running = IsRunning(info);
        if (!running && !persist) throw NotRunning(name, "remove a network interface from");
        var configPath = manager.Store.ConfigPath(name);
        var config = ConfigLoader.Load(configPath);
        var original = ConfigLoader.Serialize(config);
        var entries = NetworkPlan.Interfaces(config).ToList();
        var configured = entries.FirstOrDefault(e => e.Name == interfaceName);
        var ledger = running ? Ledger(name, config) : new List<PlumbedNic>();
        var live = ledger.FirstOrDefault(p => p.Name == interfaceName);
        if (live is null && (!persist || configured.Nic is null))
            throw new ContainerException("NicNotInContainer", ContainerErrorKind.ObjectNotFound,
                running && !persist
                    ? $"Container '{name}' has no interface '{interfaceName}' that its start or Add-ContainerNetworkInterface made (interfaces it made itself inside are its own business). Get-NetworkLink -Namespace container:{name} lists what it has."
                    : $"Container '{name}' has no interface '{interfaceName}' in its config.yaml (network:). Get-ContainerConfig -Name {name} shows them.", interfaceName);
        var nic = live?.Nic ?? configured.Nic!;
        string? yaml = null;
        if (persist && configured.Nic is not null)
        {
            config.Network.RemoveAt(configured.Index);
            // The NICs after it that are named by position keep the names they have now.
            foreach (var e in entries.Where(e => e.Index > configured.Index && e.Nic.Name is null)) e.Nic.Name = e.Name;
            ConfigLoader.Validate(config);
            yaml = ConfigLoader.Serialize(config);
            AtomicFile.WriteAllText(configPath, yaml);
        }
        if (live is not null)
        {
            try
            {
                _nics.DetachAll(name, new[] { live }, Inside(name, info));
                _nics.Save(name, ledger.Where(p => p != live).ToList());
            }
            catch
            {
                if (yaml is not null) try { AtomicFile.WriteAllText(configPath, original); } catch (IOException) { }
                throw;
            }
            _nics.ReleaseLeases(name, new[] { live }, ledger.Where(p => p != live));
        }
        var result = Result(name, nic, interfaceName, live, live is not null, yaml is not null);
        manager.Emit(name, ContainerEventKind.NetworkInterfaceRemoved, Details(result));
        return result;
    }

    /// <summary>
    /// What turns <paramref name="current"/> into <paramref name="desired"/> on a running container
    /// without a restart: the NICs after the longest common prefix come out and the desired ones go
    /// in, in their positions (so every NIC kept keeps its generated names, MAC and lease). Null when
    /// that cannot be done live (a NIC type decided at start, or a container in the host's namespace).
    /// </summary>
    public static (int Keep, List<NicConfig> Removed, List<NicConfig> Added)? LiveChange(IReadOnlyList<NicConfig> current, IReadOnlyList<NicConfig> desired)
    {
        if (current.Any(n => n.Type == "none") || desired.Any(n => n.Type == "none")) return null;
        var keep = 0;
        while (keep < current.Count && keep < desired.Count && Same(current[keep], desired[keep])) keep++;
        var removed = current.Skip(keep).ToList();
        var added = desired.Skip(keep).ToList();
        if (removed.Concat(added).Any(n => NicPlumbing.HotplugProblem(n) is not null)) return null;
        return (keep, removed, added);
    }

    private static bool Same(NicConfig a, NicConfig b) =>
        ConfigLoader.Serialize(new ContainerConfig { Network = { a } }) == ConfigLoader.Serialize(new ContainerConfig { Network = { b } });

    /// <summary>
    /// Makes a running container's NICs and config.yaml's network list <paramref name="desired"/>
    /// without a restart (a manifest's network change): the changed tail unplugged, the new one
    /// plugged, then recorded. On a failure the NICs plugged are taken out again, the ones unplugged
    /// plugged back, and config.yaml is left as it was. Returns the steps taken.
    /// </summary>
    public List<string> ApplyNetwork(string name, IReadOnlyList<NicConfig> desired)
    {
        ContainerNames.Validate(name);
        using var _ = manager.Store.Lock(name);
        var info = manager.Get(name);
        if (!IsRunning(info)) throw NotRunning(name, "change the network of");
        var configPath = manager.Store.ConfigPath(name);
        var config = ConfigLoader.Load(configPath);
        var change = LiveChange(config.Network, desired)
            ?? throw NotHotpluggable(name, "the change touches a network decided at start (none, empty or pasta)");
        var after = new ContainerConfig { Network = desired.ToList() };
        ConfigLoader.Validate(after);
        var ledger = Ledger(name, config);
        var outgoing = NetworkPlan.Interfaces(config).Where(e => e.Index >= change.Keep).Select(e => e.Name).ToHashSet();
        var unplugged = ledger.Where(p => outgoing.Contains(p.Name)).ToList();
        var inside = Inside(name, info);
        var started = InitStartTime(name, info);
        var steps = new List<string>();
        _nics.DetachAll(name, unplugged, inside);
        var kept = ledger.Except(unplugged).ToList();
        steps.AddRange(unplugged.Select(p => $"unplug {p.Name} ({p.Nic.Type})"));
        var plugged = new List<PlumbedNic>();
        try
        {
            foreach (var (nic, index, nicName) in NetworkPlan.Interfaces(after).Where(e => e.Index >= change.Keep))
                plugged.Add(_nics.Attach(name, info.Pid!.Value, nic, index, nicName, started));
            _nics.Save(name, kept.Concat(plugged).ToList());
            config.Network = desired.ToList();
            AtomicFile.WriteAllText(configPath, ConfigLoader.Serialize(config));
        }
        catch
        {
            try { _nics.DetachAll(name, plugged, inside); } catch (ContainerException) { }
            var back = new List<PlumbedNic>();
            foreach (var p in unplugged)
                try { back.Add(_nics.Attach(name, info.Pid!.Value, p.Nic, p.Index, p.Name, started)); } catch (ContainerException) { }
            try { _nics.Save(name, kept.Concat(back).ToList()); } catch (IOException) { }
            throw;
        }
        _nics.ReleaseLeases(name, unplugged, kept.Concat(plugged));
        foreach (var p in unplugged) manager.Emit(name, ContainerEventKind.NetworkInterfaceRemoved, Details(Result(name, p.Nic, p.Name, p, true, true)));
        foreach (var p in plugged) manager.Emit(name, ContainerEventKind.NetworkInterfaceAdded, Details(Result(name, p.Nic, p.Name, p, true, true)));
        steps.AddRange(plugged.Select(p => $"plug {p.Name} ({Describe(p.Nic)})"));
        return steps;
    }

    /// <summary>"veth on br0", "macvlan on eth0", "phys eth3".</summary>
    public static string Describe(NicConfig nic) => nic.Type switch
    {
        "phys" => $"phys {nic.Link}",
        _ when nic.Link is not null => $"{nic.Type} on {nic.Link}" + (nic.LinkNamespace is null ? "" : $" in {nic.LinkNamespace}"),
        _ => nic.Type,
    };

    private static ContainerNetworkInterface Result(string name, NicConfig nic, string interfaceName, PlumbedNic? made, bool live, bool persisted) => new()
    {
        Container = name, InterfaceName = interfaceName, Type = nic.Type, Link = nic.Link, LinkNamespace = nic.LinkNamespace,
        HostName = made?.HostEnd ?? nic.HostName, MacAddress = made?.MacAddress ?? nic.HwAddress, Mtu = nic.Mtu,
        Addresses = (made?.Addresses ?? nic.IPv4.Concat(nic.IPv6).ToList()).ToArray(),
        IPv4Gateway = made?.IPv4Gateway ?? nic.IPv4Gateway, IPv6Gateway = nic.IPv6Gateway, Live = live, Persisted = persisted,
    };

    /// <summary>The event's details: the interface, what it is, and whether it was live and recorded.</summary>
    private static (string, string)[] Details(ContainerNetworkInterface n)
    {
        var d = new List<(string, string)> { ("interface", n.InterfaceName), ("type", n.Type) };
        if (n.Link is not null) d.Add(("link", n.Link));
        if (n.HostName is not null) d.Add(("hostName", n.HostName));
        d.Add(("live", n.Live ? "true" : "false"));
        d.Add(("persisted", n.Persisted ? "true" : "false"));
        return d.ToArray();
    }
}
