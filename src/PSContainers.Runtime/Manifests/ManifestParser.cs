using System.Globalization;
using System.Text.RegularExpressions;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Network;
using PSContainers.Runtime.State;
using PSContainers.Runtime.Templates;
using YamlDotNet.Core;
using static PSContainers.Runtime.Config.ConfigLoader;

namespace PSContainers.Runtime.Manifests;

/// <summary>
/// Reads manifest files into a <see cref="Manifest"/>. The YAML is read by ConfigLoader's reader (same
/// size, depth and alias limits) and a container's body is bound by ConfigLoader's binder, so it is
/// validated exactly as a config.yaml is, keys added there included; every error names
/// file:line:column. Files compose: a resource declared in two files is an error naming both.
/// </summary>
public static class ManifestParser
{
    public const string ErrorId = "InvalidManifest";
    public const string CycleErrorId = "ManifestDependencyCycle";

    /// <summary>The keys of a container's body that are the manifest's own; every other key is config.yaml's.</summary>
    public static readonly string[] ContainerKeys = { "state", "dependsOn", "readiness", "archive", "templateOptions" };

    /// <summary>
    /// Reads <paramref name="paths"/>: files, or folders whose *.yaml and *.yml files (not recursive,
    /// in name order) are read. <paramref name="baseDirectory"/> resolves relative paths.
    /// </summary>
    public static Manifest Load(IEnumerable<string> paths)
    {
        var files = new List<string>();
        foreach (var p in paths)
        {
            var full = System.IO.Path.GetFullPath(p);
            if (Directory.Exists(full))
            {
                var found = Directory.EnumerateFiles(full).Where(f => f.EndsWith(".yaml", StringComparison.Ordinal) || f.EndsWith(".yml", StringComparison.Ordinal))
                    .Order(StringComparer.Ordinal).ToList();
                if (found.Count == 0)
                    throw new ContainerException("ManifestNotFound", ContainerErrorKind.ObjectNotFound,
                        $"The folder '{full}' holds no manifest (*.yaml or *.yml files). Give -Path a manifest file or a folder of them.", full);
                files.AddRange(found);
            }
            else if (File.Exists(full)) files.Add(full);
            else
                throw new ContainerException("ManifestNotFound", ContainerErrorKind.ObjectNotFound,
                    $"The manifest '{full}' does not exist. Give -Path an existing YAML file or a folder of them.", full);
        }
        var texts = new List<(string File, string Text)>();
        foreach (var f in files.Distinct(StringComparer.Ordinal))
        {
            try { texts.Add((f, ConfigLoader.ReadBounded(f))); }
            catch (ContainerException ex) when (ex.ErrorId == ConfigLoader.ErrorId)
            {
                throw new ContainerException(ErrorId, ContainerErrorKind.ParserError, ex.Message, f, ex);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new ContainerException("ManifestReadFailed", ContainerErrorKind.DeviceError,
                    $"Cannot read the manifest '{f}': {ex.Message}", f, ex);
            }
        }
        return Parse(texts);
    }

    /// <summary>Parses manifest documents (file name, YAML text) and composes them.</summary>
    public static Manifest Parse(IReadOnlyList<(string File, string Text)> documents)
    {
        var resources = new List<ManifestResource>();
        var refs = new Dictionary<ManifestResource, List<(string Reference, ScalarNode At, string File)>>();
        string? id = null;
        (string File, Mark At)? idFrom = null;
        foreach (var (file, text) in documents)
        {
            var parsed = new FileParser(file, Path.GetDirectoryName(file) ?? "/");
            parsed.Run(text, resources, refs);
            if (parsed.Id is { } fileId)
            {
                if (id is not null && id != fileId.Value)
                    throw Fail(file, fileId.At, $"the manifest id '{fileId.Value}' differs from '{id}' declared in {idFrom!.Value.File}:{idFrom.Value.At.Line}; files that compose one manifest share one id");
                id ??= fileId.Value;
                idFrom ??= (file, fileId.At);
            }
        }
        // Without an id, the manifest is named after where it lives: one file's path, or its folder.
        id ??= documents.Count == 1 ? documents[0].File
            : documents.Select(d => Path.GetDirectoryName(d.File)).Distinct().Count() == 1 ? Path.GetDirectoryName(documents[0].File)! : string.Join(";", documents.Select(d => d.File));

        // Dependencies: "web" is a container, "bridge/br0" and "namespace/ns" name the others.
        foreach (var r in resources)
        {
            foreach (var (reference, at, file) in refs[r])
            {
                string target = reference.Contains('/') ? reference : ManifestResource.IdOf(ManifestResourceKind.Container, reference);
                if (!resources.Any(x => x.Id == target))
                    throw Fail(file, at.Start, $"{r.Id} depends on '{reference}', which this manifest does not declare (declared: {string.Join(", ", resources.Select(x => x.Id))})");
                if (target == r.Id)
                    throw new ContainerException("ManifestDependencyCycle", ContainerErrorKind.InvalidData, $"{file}:{at.Start.Line}:{at.Start.Column}: dependency cycle: {r.Id} -> {r.Id}", r.Id);
                if (!r.DependsOn.Contains(target)) r.DependsOn.Add(target);
            }
            // A NIC on a bridge or in a namespace this manifest declares needs it first: implied, not repeated by hand.
            if (r is ManifestContainer c)
                foreach (var nic in c.Config.Network)
                {
                    if (nic.Link is { } link && nic.Type is "veth" && resources.OfType<ManifestBridge>().Any(b => b.Name == link && b.Namespace == nic.LinkNamespace))
                        AddImplied(r, ManifestResource.IdOf(ManifestResourceKind.Bridge, link));
                    if (nic.LinkNamespace is { } ns && resources.Any(x => x.Id == ManifestResource.IdOf(ManifestResourceKind.Namespace, ns)))
                        AddImplied(r, ManifestResource.IdOf(ManifestResourceKind.Namespace, ns));
                }
            if (r is ManifestBridge { Namespace: { } bridgeNs } && resources.Any(x => x.Id == ManifestResource.IdOf(ManifestResourceKind.Namespace, bridgeNs)))
                AddImplied(r, ManifestResource.IdOf(ManifestResourceKind.Namespace, bridgeNs));
        }
        return new Manifest { Id = id, Files = documents.Select(d => d.File).ToList(), Resources = Sort(resources, refs) };
    }

    private static void AddImplied(ManifestResource r, string target)
    {
        if (!r.DependsOn.Contains(target)) r.DependsOn.Add(target);
    }

    /// <summary>Kahn's order, stable by declaration; a cycle is found by walking the dependencies left over.</summary>
    private static List<ManifestResource> Sort(List<ManifestResource> resources, Dictionary<ManifestResource, List<(string Reference, ScalarNode At, string File)>> refs)
    {
        var byId = resources.ToDictionary(r => r.Id);
        var done = new HashSet<string>();
        var order = new List<ManifestResource>();
        while (order.Count < resources.Count)
        {
            var next = resources.FirstOrDefault(r => !done.Contains(r.Id) && r.DependsOn.All(done.Contains));
            if (next is null)
            {
                // Every resource left waits on another left: follow first unmet dependencies until one repeats.
                var path = new List<string>();
                var current = resources.First(r => !done.Contains(r.Id));
                while (!path.Contains(current.Id))
                {
                    path.Add(current.Id);
                    current = byId[current.DependsOn.First(d => !done.Contains(d))];
                }
                var cycle = path.Skip(path.IndexOf(current.Id)).Append(current.Id).ToList();
                var first = byId[cycle[0]];
                throw new ContainerException("ManifestDependencyCycle", ContainerErrorKind.InvalidData,
                    $"{first.Source}: dependency cycle: {string.Join(" -> ", cycle)}. Remove one of these dependsOn entries (or the NIC that implies it).", first.Id);
            }
            done.Add(next.Id);
            order.Add(next);
        }
        return order;
    }

    private static ContainerException Fail(string file, Mark at, string message) =>
        new(ErrorId, ContainerErrorKind.ParserError, $"{file}:{at.Line}:{at.Column}: {message}", file);

    private static readonly Regex DurationPattern = new(@"^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?$", RegexOptions.CultureInvariant);

    /// <summary>"500ms", "30s", "2m", "1h", or a number of seconds.</summary>
    public static bool TryParseDuration(string text, out TimeSpan value)
    {
        value = default;
        var m = DurationPattern.Match(text.Trim());
        if (!m.Success || !double.TryParse(m.Groups[1].Value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var n)) return false;
        double ms = m.Groups[2].Value switch { "ms" => n, "m" => n * 60_000, "h" => n * 3_600_000, _ => n * 1000 };
        if (ms > TimeSpan.FromDays(1).TotalMilliseconds) return false;
        value = TimeSpan.FromMilliseconds(ms);
        return true;
    }

    /// <summary>One file: its top level, its resources and their dependency references.</summary>
    private sealed class FileParser(string file, string directory)
    {
        public (string Value, Mark At)? Id;

        private ContainerException Fail(Node at, string message) => ManifestParser.Fail(file, at.Start, message);

        public void Run(string text, List<ManifestResource> resources, Dictionary<ManifestResource, List<(string, ScalarNode, string)>> refs)
        {
            Node? root;
            try { root = ReadTree(text, file); }
            catch (ContainerException ex) when (ex.ErrorId == ConfigLoader.ErrorId)
            {
                throw new ContainerException(ErrorId, ContainerErrorKind.ParserError, ex.Message, file, ex);
            }
            if (root is null || root is ScalarNode { IsNull: true }) return;
            var top = Mapping(root, "the top level (id, containers, bridges, namespaces)");
            foreach (var (key, value) in top.Entries)
            {
                switch (key.Value)
                {
                    case "id":
                        var s = Scalar(value, "id");
                        if (s.Length is 0 or > 200 || s.Any(char.IsControl))
                            throw Fail(value, "the manifest id must be 1 to 200 printable characters");
                        Id = (s, value.Start);
                        break;
                    case "containers":
                        foreach (var (name, body) in Resources(value, "containers"))
                            Add(resources, refs, Container(name, body, refs));
                        break;
                    case "bridges":
                        foreach (var (name, body) in Resources(value, "bridges"))
                            Add(resources, refs, Bridge(name, body, refs));
                        break;
                    case "namespaces":
                        foreach (var (name, body) in Resources(value, "namespaces"))
                            Add(resources, refs, Namespace(name, body, refs));
                        break;
                    default:
                        throw Fail(key, $"unknown key '{key.Value}' (expected one of: id, containers, bridges, namespaces)");
                }
            }
        }

        private List<(string, ScalarNode, string)>? _pending;

        private void Add(List<ManifestResource> resources, Dictionary<ManifestResource, List<(string, ScalarNode, string)>> refs, ManifestResource r)
        {
            if (resources.FirstOrDefault(x => x.Id == r.Id) is { } other)
                throw new ContainerException(ErrorId, ContainerErrorKind.ParserError,
                    $"{r.Source}: {r.Id} is declared twice: here and at {other.Source}. A resource is declared in one place; rename or remove one of them.", r.Id);
            resources.Add(r);
            refs[r] = _pending ?? new();
            _pending = null;
        }

        private MappingNode Mapping(Node node, string what) =>
            node as MappingNode ?? throw Fail(node, $"expected a mapping for {what}, got {node.Kind}");

        private string Scalar(Node node, string what)
        {
            if (node is ScalarNode { IsNull: false } s) return s.Value;
            throw Fail(node, $"expected a value for {what}, got {node.Kind}");
        }

        private IEnumerable<(ScalarNode Name, Node Body)> Resources(Node node, string section)
        {
            if (node is ScalarNode { IsNull: true }) yield break;
            foreach (var entry in Mapping(node, $"{section} (a mapping of name: settings)").Entries)
                yield return entry;
        }

        private ManifestState State(Node node, string path, ManifestState[] allowed)
        {
            var text = Scalar(node, path);
            foreach (var s in allowed)
                if (s.ToString().Equals(text, StringComparison.OrdinalIgnoreCase)) return s;
            throw Fail(node, $"invalid value '{text}' for {path} (expected one of: {string.Join(", ", allowed)})");
        }

        private void DependsOn(Node node, string path)
        {
            _pending ??= new();
            if (node is ScalarNode { IsNull: true }) return;
            var items = node is SequenceNode seq ? seq.Items : node is ScalarNode ? new List<Node> { node } : throw Fail(node, $"expected a list of resources for {path} (e.g. [db, bridge/br0]), got {node.Kind}");
            foreach (var item in items)
            {
                var text = Scalar(item, path);
                var slash = text.IndexOf('/');
                if (slash >= 0 && text[..slash] is not ("container" or "bridge" or "namespace"))
                    throw Fail(item, $"invalid reference '{text}' in {path}: write a container's name, or container/NAME, bridge/NAME, namespace/NAME");
                _pending.Add((text, (ScalarNode)item, file));
            }
        }

        private ManifestContainer Container(ScalarNode name, Node body, Dictionary<ManifestResource, List<(string, ScalarNode, string)>> refs)
        {
            if (!ContainerNames.IsValid(name.Value, out var reason))
                throw Fail(name, $"invalid container name '{name.Value}': {reason}");
            string path = $"containers.{name.Value}";
            var state = ManifestState.Running;
            string? archive = null;
            ReadinessProbe? readiness = null;
            var templateOptions = new TemplateOptions();
            _pending = new();
            // The manifest's keys are taken out; the rest is a config.yaml body, bound by ConfigLoader.
            var config = new MappingNode { Start = body.Start };
            var declared = new List<string>();
            if (body is not (MappingNode or ScalarNode { IsNull: true }))
                throw Fail(body, $"expected a mapping of settings for {path} (template, state, limits, network, ...), got {body.Kind}");
            foreach (var (key, value) in (body as MappingNode)?.Entries ?? new())
            {
                switch (key.Value)
                {
                    case "state": state = State(value, path + ".state", new[] { ManifestState.Running, ManifestState.Stopped, ManifestState.Absent }); break;
                    case "dependsOn": DependsOn(value, path + ".dependsOn"); break;
                    case "archive":
                        archive = Path.GetFullPath(Scalar(value, path + ".archive"), directory);
                        break;
                    case "readiness": readiness = Readiness(value, path + ".readiness"); break;
                    case "templateOptions":
                        foreach (var (k, v) in Mapping(value, path + ".templateOptions").Entries)
                        {
                            switch (k.Value)
                            {
                                case "release": templateOptions.Release = Scalar(v, $"{path}.templateOptions.release"); break;
                                case "mirror": templateOptions.Mirror = Scalar(v, $"{path}.templateOptions.mirror"); break;
                                case "variant": templateOptions.Variant = Scalar(v, $"{path}.templateOptions.variant"); break;
                                default: throw Fail(k, $"unknown key '{k.Value}' under '{path}.templateOptions' (expected one of: release, mirror, variant)");
                            }
                        }
                        break;
                    default:
                        config.Entries.Add((key, value));
                        if (value is MappingNode { Entries.Count: > 0 } sub)
                            declared.AddRange(sub.Entries.Select(e => $"{key.Value}.{e.Key.Value}"));
                        else declared.Add(key.Value);
                        break;
                }
            }
            ContainerConfig bound;
            try { bound = BindTree(config, file); }
            catch (ContainerException ex) when (ex.ErrorId == ConfigLoader.ErrorId)
            {
                // The binder knows config.yaml's keys; a misspelt key may have meant one of the manifest's.
                var message = ex.Message.Contains("unknown key '", StringComparison.Ordinal) && !ex.Message.Contains(" under '", StringComparison.Ordinal)
                    ? ex.Message.TrimEnd(')') + $"; or a manifest key: {string.Join(", ", ContainerKeys)})"
                    : ex.Message;
                throw new ContainerException(ErrorId, ContainerErrorKind.ParserError, message, file, ex);
            }
            Node At(string key) => config.Entries.FirstOrDefault(e => e.Key.Value == key).Value ?? body;
            if (archive is not null && (bound.Template is not null || bound.Rootfs is not null))
                throw Fail(At(bound.Template is not null ? "template" : "rootfs"), $"{path} gives archive together with {(bound.Template is not null ? "template" : "rootfs")}: a container is made from one of template, rootfs or archive");
            if (bound.Template is not null && bound.Template != "none" && TemplateRegistry.Names.All(n => !n.Equals(bound.Template, StringComparison.OrdinalIgnoreCase)))
                throw Fail(At("template"), $"unknown template '{bound.Template}' for {path} (known: {string.Join(", ", TemplateRegistry.Names)})");
            return new ManifestContainer
            {
                Name = name.Value, State = state, Config = bound, DeclaredKeys = declared, Archive = archive,
                TemplateOptions = templateOptions, Readiness = readiness, Source = new ManifestSource(file, (int)name.Start.Line, (int)name.Start.Column),
            };
        }

        private ReadinessProbe Readiness(Node node, string path)
        {
            var command = new List<string>();
            TimeSpan timeout = TimeSpan.FromSeconds(30), interval = TimeSpan.FromSeconds(1);
            foreach (var (key, value) in Mapping(node, path + " (command, timeout, interval)").Entries)
            {
                switch (key.Value)
                {
                    case "command":
                        if (value is not SequenceNode seq || seq.Items.Count == 0)
                            throw Fail(value, $"expected a non-empty list for {path}.command (e.g. [/bin/sh, -c, \"test -e /run/ready\"]), got {value.Kind}");
                        foreach (var item in seq.Items) command.Add(Scalar(item, path + ".command"));
                        break;
                    case "timeout": timeout = Duration(value, path + ".timeout"); break;
                    case "interval": interval = Duration(value, path + ".interval"); break;
                    default: throw Fail(key, $"unknown key '{key.Value}' under '{path}' (expected one of: command, timeout, interval)");
                }
            }
            if (command.Count == 0) throw Fail(node, $"{path} needs a command (the probe that must succeed inside the container)");
            if (interval <= TimeSpan.Zero || interval > timeout)
                throw Fail(node, $"{path}.interval must be more than 0 and at most the timeout ({timeout.TotalSeconds:0.###}s)");
            return new ReadinessProbe { Command = command, Timeout = timeout, Interval = interval };
        }

        private TimeSpan Duration(Node node, string path)
        {
            var text = Scalar(node, path);
            if (!TryParseDuration(text, out var d) || d <= TimeSpan.Zero)
                throw Fail(node, $"invalid duration '{text}' for {path} (expected e.g. 500ms, 30s, 2m; more than 0 and at most a day)");
            return d;
        }

        private ManifestBridge Bridge(ScalarNode name, Node body, Dictionary<ManifestResource, List<(string, ScalarNode, string)>> refs)
        {
            string path = $"bridges.{name.Value}";
            try { NetworkClient.ValidateLinkName(name.Value, "bridge"); }
            catch (ContainerException ex) { throw Fail(name, ex.Message); }
            var state = ManifestState.Present;
            var addresses = new List<string>();
            int? mtu = null;
            string? ns = null;
            _pending = new();
            if (body is not ScalarNode { IsNull: true })
                foreach (var (key, value) in Mapping(body, path + " (addresses, mtu, namespace, state, dependsOn)").Entries)
                {
                    switch (key.Value)
                    {
                        case "state": state = State(value, path + ".state", new[] { ManifestState.Present, ManifestState.Absent }); break;
                        case "dependsOn": DependsOn(value, path + ".dependsOn"); break;
                        case "namespace":
                            ns = Scalar(value, path + ".namespace");
                            try { NetNamespaces.ValidateName(ns); }
                            catch (ContainerException ex) { throw Fail(value, ex.Message); }
                            break;
                        case "mtu":
                            var t = Scalar(value, path + ".mtu");
                            if (!int.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out var m) || m < 68 || m > 65535)
                                throw Fail(value, $"invalid value '{t}' for {path}.mtu (expected 68 to 65535)");
                            mtu = m;
                            break;
                        case "addresses":
                            var items = value is SequenceNode seq ? seq.Items : value is ScalarNode { IsNull: true } ? new List<Node>() : throw Fail(value, $"expected a list of addresses for {path}.addresses (e.g. [10.0.3.1/24]), got {value.Kind}");
                            foreach (var item in items)
                            {
                                var cidr = Scalar(item, path + ".addresses");
                                try
                                {
                                    var (address, prefix) = NetworkClient.ParseCidr(cidr);
                                    addresses.Add($"{address}/{prefix}");
                                }
                                catch (ContainerException ex) { throw Fail(item, ex.Message); }
                            }
                            break;
                        default: throw Fail(key, $"unknown key '{key.Value}' under '{path}' (expected one of: addresses, mtu, namespace, state, dependsOn)");
                    }
                }
            _pending ??= new();
            return new ManifestBridge { Name = name.Value, State = state, Addresses = addresses, Mtu = mtu, Namespace = ns, Source = new ManifestSource(file, (int)name.Start.Line, (int)name.Start.Column) };
        }

        private ManifestNamespace Namespace(ScalarNode name, Node body, Dictionary<ManifestResource, List<(string, ScalarNode, string)>> refs)
        {
            string path = $"namespaces.{name.Value}";
            try { NetNamespaces.ValidateName(name.Value); }
            catch (ContainerException ex) { throw Fail(name, ex.Message); }
            var state = ManifestState.Present;
            _pending = new();
            if (body is not ScalarNode { IsNull: true })
                foreach (var (key, value) in Mapping(body, path + " (state, dependsOn)").Entries)
                {
                    switch (key.Value)
                    {
                        case "state": state = State(value, path + ".state", new[] { ManifestState.Present, ManifestState.Absent }); break;
                        case "dependsOn": DependsOn(value, path + ".dependsOn"); break;
                        default: throw Fail(key, $"unknown key '{key.Value}' under '{path}' (expected one of: state, dependsOn)");
                    }
                }
            return new ManifestNamespace { Name = name.Value, State = state, Source = new ManifestSource(file, (int)name.Start.Line, (int)name.Start.Column) };
        }
    }
}
