using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Devices;
using PSContainers.Runtime.Network;
using PSContainers.Runtime.State;
using YamlDotNet.RepresentationModel;

namespace PSContainers.Runtime.Manifests;

/// <summary>What converging a property takes.</summary>
public enum ManifestAction { Create, Adopt, Set, Start, Stop, Restart, Remove }

/// <summary>
/// One difference between a manifest and the machine (Test-ContainerManifest's output, one step of
/// Invoke-ContainerManifest's plan). <see cref="Step"/> is the step as a person reads it.
/// </summary>
public sealed class ManifestDrift
{
    public string Manifest { get; init; } = "";
    /// <summary>The resource id: container/web, bridge/br0, namespace/ns1.</summary>
    public string Resource { get; init; } = "";
    public ManifestResourceKind Kind { get; init; }
    public string Name { get; init; } = "";
    /// <summary>The setting that differs (limits.memory, init.command, state, addresses, managedBy), or the resource itself for a create or remove.</summary>
    public string Property { get; init; } = "";
    public string? Desired { get; init; }
    public string? Actual { get; init; }
    public ManifestAction Action { get; init; }
    /// <summary>Converging it restarts a running container (applied only with -AllowRestart).</summary>
    public bool RequiresRestart { get; init; }
    /// <summary>Converged on the running container without a restart (cgroup limits, config-only keys).</summary>
    public bool Live { get; init; }
    public string Step { get; init; } = "";
    /// <summary>Position in the plan (dependency order).</summary>
    public int Order { get; set; }

    public override string ToString() => Step;
}

/// <summary>
/// Compares a manifest with the store and the host, read-only: the drift of each resource, in
/// dependency order. The executor calls the same per-resource diff again right before it acts, so
/// what it does is decided on the state as it is then (after the resources it depends on converged).
/// </summary>
public sealed class ManifestPlanner(ContainerManager manager, Manifest manifest)
{
    public Manifest Manifest => manifest;
    public ContainerManager Manager => manager;

    /// <summary>The whole plan: (with <paramref name="prune"/>) the owned containers, bridges and namespaces dropped from the manifest, then every resource's drift in dependency order.</summary>
    public IReadOnlyList<ManifestDrift> Plan(bool prune, bool adopt)
    {
        var plan = new List<ManifestDrift>();
        if (prune) plan.AddRange(PruneDrift());
        foreach (var r in manifest.Resources)
        {
            try { plan.AddRange(Diff(r, adopt)); }
            catch (ContainerException ex)
            {
                plan.Add(Drift(r, "(error)", null, ex.Message, ManifestAction.Set, false, false, $"cannot read {r.Id}: {ex.Message}"));
            }
        }
        for (int i = 0; i < plan.Count; i++) plan[i].Order = i + 1;
        return plan;
    }

    /// <summary>Containers this manifest made that it no longer declares.</summary>
    public IReadOnlyList<string> Dropped() =>
        manager.Names().Where(n => manifest.Find(ManifestResource.IdOf(ManifestResourceKind.Container, n)) is null
            && ManifestOwnership.OwnerOf(manager.Store, n) == manifest.Id).Order(StringComparer.Ordinal).ToList();

    /// <summary>
    /// Bridges this manifest made (they carry its mark) that it no longer declares where they are: on
    /// the host and in every named network namespace. Namespace null is the host.
    /// </summary>
    public IReadOnlyList<(string Name, string? Namespace)> DroppedBridges()
    {
        var result = new List<(string, string?)>();
        foreach (var ns in new string?[] { null }.Concat(NetNamespaces.Names()))
        {
            List<NetworkLink> links;
            try
            {
                using var client = new NetworkClient(ns is null ? NetworkLocation.Host : NetworkLocation.ForNamespace(ns));
                links = client.GetLinks();
            }
            catch (ContainerException) when (ns is not null) { continue; } // removed meanwhile, or a stale file
            foreach (var link in links.Where(l => l.Kind == "bridge" && ManifestOwnership.Owns(l, manifest.Id)).OrderBy(l => l.Name, StringComparer.Ordinal))
                if (!manifest.Resources.OfType<ManifestBridge>().Any(b => b.Name == link.Name && b.Namespace == ns))
                    result.Add((link.Name, ns));
        }
        return result;
    }

    /// <summary>Network namespaces this manifest made (its mark on their loopback) that it no longer declares.</summary>
    public IReadOnlyList<string> DroppedNamespaces() =>
        NetNamespaces.Names().Where(n => manifest.Find(ManifestResource.IdOf(ManifestResourceKind.Namespace, n)) is null
            && ManifestOwnership.OwnsNamespace(n, manifest.Id)).ToList();

    public static string BridgeStep(string name, string? ns) =>
        $"remove bridge {name}{(ns is null ? "" : $" in namespace {ns}")} (dropped from the manifest)";

    public IEnumerable<ManifestDrift> PruneDrift() =>
        Dropped().Select(n => PruneStep(ManifestResourceKind.Container, n, $"remove container {n} (dropped from the manifest)"))
            .Concat(DroppedBridges().Select(b => PruneStep(ManifestResourceKind.Bridge, b.Name, BridgeStep(b.Name, b.Namespace))))
            .Concat(DroppedNamespaces().Select(n => PruneStep(ManifestResourceKind.Namespace, n, $"remove network namespace {n} (dropped from the manifest)")))
            .ToList();

    private ManifestDrift PruneStep(ManifestResourceKind kind, string name, string step) => new()
    {
        Manifest = manifest.Id, Resource = ManifestResource.IdOf(kind, name), Kind = kind, Name = name,
        Property = "state", Desired = "Absent", Actual = "Present", Action = ManifestAction.Remove, Step = step,
    };

    public IReadOnlyList<ManifestDrift> Diff(ManifestResource r, bool adopt) => r switch
    {
        ManifestContainer c => DiffContainer(c, adopt),
        ManifestBridge b => DiffBridge(b),
        ManifestNamespace n => DiffNamespace(n),
        _ => throw new ArgumentOutOfRangeException(nameof(r)),
    };

    private ManifestDrift Drift(ManifestResource r, string property, string? desired, string? actual, ManifestAction action, bool restart, bool live, string step) => new()
    {
        Manifest = manifest.Id, Resource = r.Id, Kind = r.Kind, Name = r.Name, Property = property, Desired = desired, Actual = actual,
        Action = action, RequiresRestart = restart, Live = live, Step = step,
    };

    // ---- containers -------------------------------------------------------------------------------

    /// <summary>Config keys a running container takes without a restart: limits go to its cgroup, the others are read from config.yaml when used.</summary>
    public static bool IsLive(string path) =>
        path == "limits" || path.StartsWith("limits.", StringComparison.Ordinal)
        || path == "autostart" || path.StartsWith("autostart.", StringComparison.Ordinal)
        || path == "stop" || path.StartsWith("stop.", StringComparison.Ordinal)
        || path == "template";

    private static bool IsRunning(ContainerStatus s) => s is ContainerStatus.Running or ContainerStatus.Frozen;

    private List<ManifestDrift> DiffContainer(ManifestContainer c, bool adopt)
    {
        var drift = new List<ManifestDrift>();
        bool exists = manager.Exists(c.Name);
        string? owner = exists ? ManifestOwnership.OwnerOf(manager.Store, c.Name) : null;
        bool owned = owner == manifest.Id;
        if (c.State == ManifestState.Absent)
        {
            if (exists)
                drift.Add(Drift(c, "state", "Absent", "Present", ManifestAction.Remove, false, false,
                    owned || adopt ? $"remove container {c.Name}" : $"remove container {c.Name} (refused without -Adopt: {NotOwnedReason(owner)})"));
            return drift;
        }
        if (!exists)
        {
            drift.Add(Drift(c, "state", c.State.ToString(), "Absent", ManifestAction.Create, false, false, $"create container {c.Name} ({c.Origin})"));
            if (c.State == ManifestState.Running)
                drift.Add(Drift(c, "state", "Running", "Stopped", ManifestAction.Start, false, false,
                    $"start container {c.Name}" + (c.Readiness is not null ? " and wait for its readiness probe" : "")));
            return drift;
        }
        if (!owned)
            drift.Add(Drift(c, "managedBy", manifest.Id, owner ?? "(none)", ManifestAction.Adopt, false, false,
                adopt ? $"adopt container {c.Name} ({NotOwnedReason(owner)})" : $"adopt container {c.Name} (refused without -Adopt: {NotOwnedReason(owner)})"));

        var info = manager.Get(c.Name);
        bool running = IsRunning(info.State);
        var restartFor = new List<string>();
        foreach (var d in ConfigDrift(c, running))
        {
            drift.Add(d);
            if (d.RequiresRestart) restartFor.Add(d.Property);
        }
        if (c.State == ManifestState.Running && !running)
            drift.Add(Drift(c, "state", "Running", info.State.ToString(), ManifestAction.Start, false, false,
                $"start container {c.Name}" + (c.Readiness is not null ? " and wait for its readiness probe" : "")));
        else if (c.State == ManifestState.Stopped && running)
            drift.Add(Drift(c, "state", "Stopped", info.State.ToString(), ManifestAction.Stop, false, false, $"stop container {c.Name}"));
        else if (restartFor.Count > 0 && c.State == ManifestState.Running)
            drift.Add(Drift(c, "state", "Running", "Running", ManifestAction.Restart, true, false,
                $"restart {c.Name} (needs restart: {string.Join(", ", restartFor)} changed; only with -AllowRestart)"));
        return drift;
    }

    private readonly System.Collections.Concurrent.ConcurrentDictionary<ManifestContainer, YamlMappingNode> _desired = new();

    /// <summary>The container's declared config as config.yaml writes it (made once per apply; read, never changed).</summary>
    internal YamlMappingNode DesiredYaml(ManifestContainer c) => _desired.GetOrAdd(c, x => ConfigYaml.Of(x.Config));

    private static string NotOwnedReason(string? owner) =>
        owner is null ? "it was not made by this manifest" : $"it belongs to manifest '{owner}'";

    /// <summary>The declared config keys whose value differs from the container's config.yaml, or (limits of a running container) from its cgroup.</summary>
    private List<ManifestDrift> ConfigDrift(ManifestContainer c, bool running)
    {
        var drift = new List<ManifestDrift>();
        var actualConfig = ConfigLoader.Load(manager.Store.ConfigPath(c.Name));
        var desired = DesiredYaml(c);
        var actual = ConfigYaml.Of(actualConfig);
        var paths = ComparedPaths(c, desired);
        foreach (var path in paths)
        {
            var want = ConfigYaml.Text(ConfigYaml.At(desired, path));
            var have = ConfigYaml.Text(ConfigYaml.At(actual, path));
            if (want == have) continue;
            if (path == "network" && running && NetworkLiveStep(actualConfig, c) is { } networkStep)
            {
                // NICs plugged and unplugged in the running container (ContainerNetworkInterfaces.ApplyNetwork).
                drift.Add(Drift(c, path, want, have, ManifestAction.Set, false, true, $"set network {want ?? "(none)"} on {c.Name} (live: {networkStep})"));
                continue;
            }
            bool live = IsLive(path);
            drift.Add(Drift(c, path, want, have, ManifestAction.Set, running && !live, running && live, SetStep(c.Name, path, want, running, live)));
        }
        // A limit changed on the running container only (Set-ContainerLimit without -Persist) is drift too.
        var limitPaths = paths.Where(p => p.StartsWith("limits.", StringComparison.Ordinal) && !drift.Any(d => d.Property == p)).ToList();
        if (running && limitPaths.Count > 0)
        {
            YamlMappingNode? liveYaml = null;
            try
            {
                var report = new ContainerLimits(manager).GetLimits(c.Name);
                var asConfig = new ContainerConfig();
                asConfig.Limits.MergeFrom(report);
                liveYaml = ConfigYaml.Of(asConfig);
            }
            catch (ContainerException ex) when (ex.ErrorId == "ContainerNotRunning") { }
            if (liveYaml is not null)
                foreach (var path in limitPaths)
                {
                    var want = ConfigYaml.Text(ConfigYaml.At(desired, path));
                    var have = ConfigYaml.At(liveYaml, path);
                    // A limit this host cannot read back is not claimed to differ.
                    if (have is null || want == ConfigYaml.Text(have)) continue;
                    drift.Add(Drift(c, path, want, ConfigYaml.Text(have) + " (in the cgroup)", ManifestAction.Set, false, true, SetStep(c.Name, path, want, true, true)));
                }
        }
        return drift;
    }

    /// <summary>
    /// How a running container's NICs become the declared ones without a restart ("unplug eth1, plug
    /// eth1 (veth on br0)"); null when the change needs a restart (a network decided at start).
    /// </summary>
    internal static string? NetworkLiveStep(ContainerConfig actual, ManifestContainer c)
    {
        if (ContainerNetworkInterfaces.LiveChange(actual.Network, c.Config.Network) is not { } change) return null;
        var names = NetworkPlan.Interfaces(actual).Where(e => e.Index >= change.Keep).Select(e => $"unplug {e.Name}");
        var plugs = NetworkPlan.Interfaces(new ContainerConfig { Network = c.Config.Network.ToList() })
            .Where(e => e.Index >= change.Keep).Select(e => $"plug {e.Name} ({ContainerNetworkInterfaces.Describe(e.Nic)})");
        return string.Join(", ", names.Concat(plugs));
    }

    private static string SetStep(string name, string path, string? value, bool running, bool live)
    {
        string what = path.StartsWith("limits.", StringComparison.Ordinal) ? $"limit {path["limits.".Length..]} {value ?? "(none)"}" : $"{path} {value ?? "(none)"}";
        string how = !running ? "(config.yaml; the next start uses it)" : live ? "(live)" : $"(needs restart: {path} changed)";
        return $"set {what} on {name} {how}";
    }

    /// <summary>
    /// The config paths compared: the declared ones, as config.yaml writes them. A declared key that
    /// config.yaml spells differently (limits.cpus is written as cpuQuota and cpuPeriod) makes the whole
    /// section's written keys compared instead.
    /// </summary>
    public static IReadOnlyList<string> ComparedPaths(ManifestContainer c, YamlMappingNode desired)
    {
        var result = new List<string>();
        foreach (var group in c.DeclaredKeys.GroupBy(k => k.Split('.')[0]))
        {
            var children = group.Where(k => k.Contains('.')).ToList();
            if (children.Count == 0) { result.Add(group.Key); continue; }
            var written = ConfigYaml.At(desired, group.Key) is YamlMappingNode m
                ? m.Children.Keys.OfType<YamlScalarNode>().Select(k => $"{group.Key}.{k.Value}").ToList()
                : new List<string>();
            if (children.All(written.Contains)) result.AddRange(children);
            else result.AddRange(written);
        }
        return result;
    }

    // ---- bridges and namespaces --------------------------------------------------------------------

    private List<ManifestDrift> DiffBridge(ManifestBridge b)
    {
        var drift = new List<ManifestDrift>();
        string where = b.Namespace is null ? "" : $" in namespace {b.Namespace}";
        if (b.Namespace is not null && !NetNamespaces.Exists(b.Namespace))
        {
            if (b.State != ManifestState.Absent)
                drift.Add(Drift(b, "state", "Present", "Absent", ManifestAction.Create, false, true,
                    $"create bridge {b.Name}{where}" + (b.Addresses.Count > 0 ? $" with {string.Join(", ", b.Addresses)}" : "")));
            return drift;
        }
        using var client = ClientFor(b);
        bool exists = client.LinkExists(b.Name);
        if (b.State == ManifestState.Absent)
        {
            if (exists) drift.Add(Drift(b, "state", "Absent", "Present", ManifestAction.Remove, false, true, $"remove bridge {b.Name}{where}"));
            return drift;
        }
        if (!exists)
        {
            drift.Add(Drift(b, "state", "Present", "Absent", ManifestAction.Create, false, true,
                $"create bridge {b.Name}{where}" + (b.Addresses.Count > 0 ? $" with {string.Join(", ", b.Addresses)}" : "")));
            return drift;
        }
        var link = client.GetLink(b.Name);
        if (link.Kind != "bridge")
        {
            drift.Add(Drift(b, "kind", "bridge", link.Kind ?? "device", ManifestAction.Set, false, false, $"{b.Name} exists but is a {link.Kind ?? "plain device"}, not a bridge: remove or rename it by hand"));
            return drift;
        }
        var have = link.Addresses.Where(a => !a.StartsWith("fe80:", StringComparison.OrdinalIgnoreCase)).ToList();
        foreach (var a in b.Addresses.Where(a => !have.Contains(a)))
            drift.Add(Drift(b, "addresses", a, string.Join(", ", have), ManifestAction.Set, false, true, $"add address {a} to bridge {b.Name} (live)"));
        foreach (var a in have.Where(a => !b.Addresses.Contains(a)))
            drift.Add(Drift(b, "addresses", "(none)", a, ManifestAction.Set, false, true, $"remove address {a} from bridge {b.Name} (live)"));
        if (b.Mtu is { } mtu && link.Mtu != mtu)
            drift.Add(Drift(b, "mtu", mtu.ToString(System.Globalization.CultureInfo.InvariantCulture), link.Mtu.ToString(System.Globalization.CultureInfo.InvariantCulture), ManifestAction.Set, false, true, $"set mtu {mtu} on bridge {b.Name} (live)"));
        if (!link.IsUp)
            drift.Add(Drift(b, "up", "true", "false", ManifestAction.Set, false, true, $"bring bridge {b.Name} up (live)"));
        return drift;
    }

    /// <summary>A netlink client where the bridge lives.</summary>
    public static NetworkClient ClientFor(ManifestBridge b) =>
        new(b.Namespace is null ? NetworkLocation.Host : NetworkLocation.ForNamespace(b.Namespace));

    private List<ManifestDrift> DiffNamespace(ManifestNamespace n)
    {
        bool exists = NetNamespaces.Exists(n.Name);
        if (n.State == ManifestState.Absent && exists)
            return new() { Drift(n, "state", "Absent", "Present", ManifestAction.Remove, false, false, $"remove network namespace {n.Name}") };
        if (n.State == ManifestState.Present && !exists)
            return new() { Drift(n, "state", "Present", "Absent", ManifestAction.Create, false, false, $"create network namespace {n.Name}") };
        return new();
    }
}

/// <summary>A config as config.yaml writes it, read back as a YAML tree: the common ground to compare and merge configs key by key.</summary>
internal static class ConfigYaml
{
    public static YamlMappingNode Of(ContainerConfig config)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(ConfigLoader.Serialize(config)));
        return stream.Documents.Count > 0 && stream.Documents[0].RootNode is YamlMappingNode m ? m : new YamlMappingNode();
    }

    public static YamlNode? At(YamlMappingNode root, string path)
    {
        YamlNode? node = root;
        foreach (var part in path.Split('.'))
        {
            if (node is not YamlMappingNode m || !m.Children.TryGetValue(new YamlScalarNode(part), out node)) return null;
        }
        return node;
    }

    /// <summary>Sets (or, with null, removes) the value at a path of at most two levels.</summary>
    public static void Set(YamlMappingNode root, string path, YamlNode? value)
    {
        var parts = path.Split('.');
        var parent = root;
        for (int i = 0; i < parts.Length - 1; i++)
        {
            var key = new YamlScalarNode(parts[i]);
            if (!parent.Children.TryGetValue(key, out var child) || child is not YamlMappingNode m)
            {
                if (value is null) return;
                m = new YamlMappingNode();
                parent.Children[key] = m;
            }
            parent = m;
        }
        var leaf = new YamlScalarNode(parts[^1]);
        if (value is null) parent.Children.Remove(leaf);
        else parent.Children[leaf] = value;
    }

    /// <summary>A one-line canonical text of a node (null when absent), for comparing and for showing.</summary>
    public static string? Text(YamlNode? node) => node switch
    {
        null => null,
        YamlScalarNode s => s.Value ?? "",
        YamlSequenceNode q => "[" + string.Join(", ", q.Children.Select(Text)) + "]",
        YamlMappingNode m => "{" + string.Join(", ", m.Children.Select(kv => $"{Text(kv.Key)}: {Text(kv.Value)}")) + "}",
        _ => node.ToString(),
    };

    public static string Write(YamlMappingNode root)
    {
        var sw = new StringWriter { NewLine = "\n" };
        new YamlStream(new YamlDocument(root)).Save(sw, assignAnchors: false);
        return sw.ToString();
    }
}
