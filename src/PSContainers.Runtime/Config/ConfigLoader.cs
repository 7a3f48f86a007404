using System.Globalization;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace PSContainers.Runtime.Config;

/// <summary>
/// Reads and writes config.yaml. The YAML is read into a small node tree straight from YamlDotNet's
/// parser events (rather than deserialized into objects) so that every error — unknown key, duplicate
/// key, wrong type, bad value — can point at the exact line and column of the offending node.
/// A key with an empty value (<c>hostname:</c>) or an empty section means "use the default".
/// </summary>
public static partial class ConfigLoader
{
    public const string ErrorId = "InvalidConfig";

    public static ContainerConfig Load(string path)
    {
        string text;
        try
        {
            text = ReadBounded(path);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ContainerException("ConfigNotFound", ContainerErrorKind.ObjectNotFound,
                $"Config file '{path}' does not exist.", path, ex);
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new ContainerException("ConfigAccessDenied", ContainerErrorKind.PermissionDenied,
                $"Cannot read config file '{path}': {ex.Message}", path, ex);
        }
        catch (IOException ex)
        {
            throw new ContainerException("ConfigReadFailed", ContainerErrorKind.DeviceError,
                $"Cannot read config file '{path}': {ex.Message}", path, ex);
        }
        return Parse(text, path);
    }

    // ---- limits -----------------------------------------------------------------------------------
    // Enforced while the YAML is read, so that a hostile file (deep nesting, "billion laughs" aliases,
    // a huge list) is refused after reading at most these amounts, never materialised or recursed into.

    /// <summary>Largest config.yaml (or seccomp profile, defaults file) read: 1 MiB.</summary>
    public const int MaxFileBytes = 1 << 20;
    /// <summary>Deepest nesting of lists and mappings (a config needs 5 levels).</summary>
    public const int MaxDepth = 64;
    /// <summary>Most YAML nodes in a document, every alias counted as the nodes it stands for.</summary>
    public const int MaxNodes = 20_000;
    /// <summary>Most scalar text in a document, every alias counted as the text it stands for.</summary>
    public const int MaxExpandedBytes = 2 << 20;

    /// <summary>
    /// Reads at most <see cref="MaxFileBytes"/> of a YAML file; a larger one is InvalidConfig at the
    /// line and column where the limit is crossed (the rest is never read).
    /// </summary>
    internal static string ReadBounded(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 16);
        var buffer = new byte[MaxFileBytes + 1];
        int total = 0, n;
        while (total < buffer.Length && (n = stream.Read(buffer, total, buffer.Length - total)) > 0) total += n;
        var text = new System.Text.UTF8Encoding(false, false).GetString(buffer, 0, Math.Min(total, MaxFileBytes));
        if (text.Length > 0 && text[0] == '\uFEFF') text = text[1..];
        if (total > MaxFileBytes) throw TooLarge(path, text);
        return text;
    }

    private static ContainerException TooLarge(string sourceName, string prefix)
    {
        int line = 1, column = 1;
        foreach (var c in prefix)
        {
            if (c == '\n') { line++; column = 1; } else column++;
        }
        return Error(sourceName, new Mark(prefix.Length, line, column),
            $"the file is larger than {Sizes.Format(MaxFileBytes)}, the most a config file may hold; it was not read past this point");
    }

    public static ContainerConfig Parse(string yaml, string sourceName)
    {
        ArgumentNullException.ThrowIfNull(yaml);
        if (yaml.Length > MaxFileBytes || (yaml.Length > MaxFileBytes / 4 && System.Text.Encoding.UTF8.GetByteCount(yaml) > MaxFileBytes))
            throw TooLarge(sourceName, Utf8Prefix(yaml, MaxFileBytes));
        var reader = new Reader(sourceName);
        Node? root = reader.ReadDocument(yaml);
        return new Binder(sourceName).Bind(root);
    }

    /// <summary>
    /// Reads a YAML document into the node tree, with this loader's limits and errors (Manifests/
    /// reads its files this way, so a container's body embedded there is checked by <see cref="BindTree"/>).
    /// </summary>
    internal static Node? ReadTree(string yaml, string sourceName) => new Reader(sourceName).ReadDocument(yaml);

    /// <summary>Binds a mapping of config.yaml keys (a subtree of a larger document) with every rule of <see cref="Parse"/>.</summary>
    internal static ContainerConfig BindTree(Node? node, string sourceName) => new Binder(sourceName).Bind(node);

    /// <summary>
    /// Writes the config as YAML that <see cref="Parse"/> reads back to an equal config. Sizes are
    /// written with the largest exact unit (256M); null values are left out.
    /// </summary>
    public static string Serialize(ContainerConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var sw = new StringWriter(CultureInfo.InvariantCulture) { NewLine = "\n" };
        var e = new Emitter(sw);
        e.Emit(new StreamStart());
        e.Emit(new DocumentStart(null, null, isImplicit: true));
        e.Emit(new MappingStart(null, null, true, MappingStyle.Block));

        if (config.Template is not null)
            Pair(e, "template", config.Template);
        if (config.Hostname is not null)
            Pair(e, "hostname", config.Hostname);
        if (config.Rootfs is not null)
            Pair(e, "rootfs", config.Rootfs);

        var init = config.Init ?? new InitConfig();
        Key(e, "init");
        e.Emit(new MappingStart(null, null, true, MappingStyle.Block));
        Key(e, "command");
        e.Emit(new SequenceStart(null, null, true, SequenceStyle.Flow));
        foreach (var arg in init.Command ?? new List<string>())
            Str(e, arg);
        e.Emit(new SequenceEnd());
        Key(e, "environment");
        e.Emit(new MappingStart(null, null, true, (init.Environment?.Count ?? 0) == 0 ? MappingStyle.Flow : MappingStyle.Block));
        foreach (var kv in init.Environment ?? new Dictionary<string, string>())
            Pair(e, kv.Key, kv.Value);
        e.Emit(new MappingEnd());
        Pair(e, "workingDirectory", init.WorkingDirectory);
        if (init.User is { } uid) { Key(e, "user"); Plain(e, uid.ToString(System.Globalization.CultureInfo.InvariantCulture)); }
        if (init.Group is { } gid) { Key(e, "group"); Plain(e, gid.ToString(System.Globalization.CultureInfo.InvariantCulture)); }
        e.Emit(new MappingEnd());

        var mounts = config.Mounts ?? new List<MountConfig>();
        Key(e, "mounts");
        e.Emit(new SequenceStart(null, null, true, mounts.Count == 0 ? SequenceStyle.Flow : SequenceStyle.Block));
        foreach (var m in mounts)
        {
            e.Emit(new MappingStart(null, null, true, MappingStyle.Block));
            Pair(e, "source", m.Source);
            Pair(e, "target", m.Target);
            Key(e, "readOnly");
            Plain(e, m.ReadOnly ? "true" : "false");
            if (m.Type is not null) Pair(e, "type", m.Type);
            if (m.Options is not null) Pair(e, "options", m.Options);
            e.Emit(new MappingEnd());
        }
        e.Emit(new SequenceEnd());

        var stop = config.Stop ?? new StopConfig();
        Key(e, "stop");
        e.Emit(new MappingStart(null, null, true, MappingStyle.Block));
        if (stop.Signal is not null)
            Pair(e, "signal", stop.Signal);
        Key(e, "timeout");
        Plain(e, stop.Timeout.ToString(CultureInfo.InvariantCulture));
        e.Emit(new MappingEnd());

        if (config.Restart is { IsDefault: false } restart)
        {
            Key(e, "restart");
            e.Emit(new MappingStart(null, null, true, MappingStyle.Block));
            Pair(e, "policy", restart.Policy switch { RestartPolicy.OnFailure => "on-failure", RestartPolicy.Always => "always", _ => "no" });
            Key(e, "maxRetries");
            Plain(e, restart.MaxRetries.ToString(CultureInfo.InvariantCulture));
            Pair(e, "backoff", ConfigRules.FormatDuration(restart.Backoff));
            e.Emit(new MappingEnd());
        }

        SerializeLimits(e, config.Limits ?? new LimitsConfig());

        var console = config.Console ?? new ConsoleConfig();
        Key(e, "console");
        e.Emit(new MappingStart(null, null, true, MappingStyle.Block));
        Key(e, "logMaxBytes");
        Plain(e, Sizes.Format(console.LogMaxBytes));
        e.Emit(new MappingEnd());
        SerializeNetwork(e, config.Network);

        var storage = config.Storage ?? new StorageConfig();
        if (storage.Backend is not null || storage.Lower is not null || storage.Layers is { Count: > 0 } || storage.Origin is not null || storage.Ephemeral || storage.Ids is not null)
        {
            Key(e, "storage");
            e.Emit(new MappingStart(null, null, true, MappingStyle.Block));
            if (storage.Backend is not null) Pair(e, "backend", storage.Backend);
            if (storage.Lower is not null) Pair(e, "lower", storage.Lower);
            if (storage.Layers is { Count: > 0 } layers)
            {
                Key(e, "layers");
                e.Emit(new SequenceStart(null, null, true, SequenceStyle.Block));
                foreach (var layer in layers) Str(e, layer);
                e.Emit(new SequenceEnd());
            }
            if (storage.Origin is not null) Pair(e, "origin", storage.Origin);
            if (storage.Ephemeral) { Key(e, "ephemeral"); Plain(e, "true"); }
            if (storage.Ids is not null) Pair(e, "ids", storage.Ids);
            e.Emit(new MappingEnd());
        }
        SerializeSecurity(e, config.Security ?? new SecurityConfig());

        if (config.Privileged is { } privileged) { Key(e, "privileged"); Plain(e, privileged ? "true" : "false"); }
        SerializeIdMap(e, config.IdMap);
        if (config.IdMapIsolated) { Key(e, "idMapIsolated"); Plain(e, "true"); }
        SerializeAutostart(e, config.Autostart ?? new AutostartConfig());
        SerializeKernel(e, config);
        SerializeOci(e, config.Oci);
        SerializeHooks(e, config.Hooks ?? new HooksConfig());
        e.Emit(new MappingEnd());
        e.Emit(new DocumentEnd(isImplicit: true));
        e.Emit(new StreamEnd());
        return sw.ToString();
    }

    private static void Key(IEmitter e, string key) => Plain(e, key);

    private static void Pair(IEmitter e, string key, string? value)
    {
        Str(e, key);
        Str(e, value ?? "");
    }

    private static void Plain(IEmitter e, string value) =>
        e.Emit(new Scalar(null, null, value, ScalarStyle.Plain, true, false));

    // Strings that a reader would take for null, a boolean or a number are quoted so that they stay
    // strings for any YAML tool, not just for this loader (which reads string fields as text anyway).
    private static void Str(IEmitter e, string value)
    {
        var style = LooksTyped(value) ? ScalarStyle.DoubleQuoted : ScalarStyle.Any;
        e.Emit(new Scalar(null, null, value, style, true, true));
    }

    private static readonly Regex TypedLooking = new(
        @"^(|~|null|true|false|yes|no|on|off|y|n|[-+]?(\.?[0-9].*|\.inf|\.nan))$",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);

    private static bool LooksTyped(string value) => TypedLooking.IsMatch(value);

    // ---- node tree --------------------------------------------------------------------------------

    internal abstract class Node
    {
        public Mark Start;
        public abstract string Kind { get; }
        /// <summary>Nodes in this subtree and their scalar text, aliases expanded (the weight of an alias to it).</summary>
        public long Count = 1, Bytes;
    }

    internal sealed class ScalarNode : Node
    {
        public string Value = "";
        public ScalarStyle Style;
        public bool HasTag;
        // YAML 1.2 core schema nulls; only unquoted, untagged scalars can be null.
        public bool IsNull => Style == ScalarStyle.Plain && !HasTag && Value is "" or "~" or "null" or "Null" or "NULL";
        public override string Kind => IsNull ? "null" : "a scalar";
    }

    internal sealed class SequenceNode : Node
    {
        public readonly List<Node> Items = new();
        public override string Kind => "a list";
    }

    internal sealed class MappingNode : Node
    {
        public readonly List<(ScalarNode Key, Node Value)> Entries = new();
        public override string Kind => "a mapping";
    }

    private static string Utf8Prefix(string text, int maxBytes)
    {
        int bytes = 0, i = 0;
        for (; i < text.Length; i++)
        {
            bytes += char.IsSurrogate(text[i]) ? 2 : text[i] < 0x80 ? 1 : text[i] < 0x800 ? 2 : 3;
            if (bytes > maxBytes) break;
        }
        return text[..i];
    }

    internal static ContainerException Error(string sourceName, Mark at, string message) =>
        new(ErrorId, ContainerErrorKind.ParserError,
            $"{sourceName}:{at.Line}:{at.Column}: {message}", sourceName);

    /// <summary>
    /// Builds the node tree, rejecting duplicate keys, non-scalar keys and extra documents, and
    /// enforcing the limits (<see cref="MaxDepth"/>, <see cref="MaxNodes"/>, <see cref="MaxExpandedBytes"/>)
    /// event by event: an alias is shared, not copied, and costs what it stands for.
    /// </summary>
    private sealed class Reader
    {
        private readonly string _source;
        private readonly Dictionary<string, Node> _anchors = new(StringComparer.Ordinal);
        private int _depth;
        private long _nodes, _bytes;

        public Reader(string source) => _source = source;

        /// <summary>Reads a file through <see cref="ReadBounded"/> (errors are the caller's to map).</summary>
        public Node? ReadFile(string path) => ReadDocument(ReadBounded(path));

        private void Charge(Mark at, long nodes, long bytes, string what)
        {
            _nodes += nodes;
            _bytes += bytes;
            if (_nodes > MaxNodes)
                throw Error(_source, at, $"{what} takes the document past {MaxNodes} YAML nodes (aliases counted as what they stand for), more than any config needs");
            if (_bytes > MaxExpandedBytes)
                throw Error(_source, at, $"{what} takes the document past {Sizes.Format(MaxExpandedBytes)} of text (aliases counted as what they stand for), more than any config needs");
        }

        public Node? ReadDocument(string yaml)
        {
            if (yaml.Length > MaxFileBytes)
                throw TooLarge(_source, Utf8Prefix(yaml, MaxFileBytes));
            var parser = new Parser(new StringReader(yaml));
            try
            {
                parser.Consume<StreamStart>();
                if (parser.TryConsume<StreamEnd>(out _))
                    return null;
                parser.Consume<DocumentStart>();
                Node root = ReadNode(parser);
                parser.Consume<DocumentEnd>();
                if (parser.Accept<DocumentStart>(out var second))
                    throw Error(_source, second.Start, "a config file holds a single YAML document; remove the second '---'");
                parser.Consume<StreamEnd>();
                return root;
            }
            catch (YamlException ex)
            {
                throw Error(_source, ex.Start, "YAML syntax error: " + StripMarks(ex.Message));
            }
            catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or IndexOutOfRangeException)
            {
                // YamlDotNet's scanner occasionally fails this way instead of with a YamlException (for
                // example on an unclosed '[' followed by a block mapping); the last good node is the best position.
                throw new ContainerException(ErrorId, ContainerErrorKind.ParserError,
                    $"{_source}:{_last.Line}:{_last.Column}: YAML syntax error after this point (check for an unclosed bracket, brace or quote)",
                    _source, ex);
            }
        }

        private Mark _last = new(0, 1, 1);

        private T Track<T>(T ev) where T : ParsingEvent
        {
            _last = ev.End;
            return ev;
        }

        private Node ReadNode(IParser parser)
        {
            if (parser.TryConsume<AnchorAlias>(out var alias))
            {
                Track(alias);
                if (!_anchors.TryGetValue(alias.Value.Value, out var target))
                    throw Error(_source, alias.Start, $"alias '*{alias.Value.Value}' refers to no earlier anchor");
                Charge(alias.Start, target.Count, target.Bytes, $"alias '*{alias.Value.Value}'");
                return target;
            }

            Node node;
            if (parser.TryConsume<Scalar>(out var scalar))
            {
                Track(scalar);
                Charge(scalar.Start, 1, scalar.Value.Length, "this value");
                node = new ScalarNode { Start = scalar.Start, Value = scalar.Value, Style = scalar.Style, HasTag = !scalar.Tag.IsEmpty, Bytes = scalar.Value.Length };
            }
            else if (parser.TryConsume<SequenceStart>(out var seqStart))
            {
                var seq = new SequenceNode { Start = Track(seqStart).Start };
                Enter(seqStart.Start);
                Charge(seqStart.Start, 1, 0, "this list");
                while (!parser.TryConsume<SequenceEnd>(out _))
                {
                    var item = ReadNode(parser);
                    seq.Items.Add(item);
                    seq.Count += item.Count;
                    seq.Bytes += item.Bytes;
                }
                _depth--;
                node = seq;
                Remember(seqStart.Anchor, node);
                return node;
            }
            else if (parser.TryConsume<MappingStart>(out var mapStart))
            {
                var map = new MappingNode { Start = Track(mapStart).Start };
                Enter(mapStart.Start);
                Charge(mapStart.Start, 1, 0, "this mapping");
                var seen = new Dictionary<string, ScalarNode>(StringComparer.Ordinal);
                while (!parser.TryConsume<MappingEnd>(out _))
                {
                    Node key = ReadNode(parser);
                    if (key is not ScalarNode keyScalar)
                        throw Error(_source, key.Start, $"a key must be a plain name, not {key.Kind}");
                    if (seen.TryGetValue(keyScalar.Value, out var first))
                        throw Error(_source, key.Start, $"duplicate key '{keyScalar.Value}' (first defined at line {first.Start.Line})");
                    seen.Add(keyScalar.Value, keyScalar);
                    var value = ReadNode(parser);
                    map.Entries.Add((keyScalar, value));
                    map.Count += key.Count + value.Count;
                    map.Bytes += key.Bytes + value.Bytes;
                }
                _depth--;
                node = map;
                Remember(mapStart.Anchor, node);
                return node;
            }
            else
            {
                var ev = parser.Current;
                throw Error(_source, ev?.Start ?? Mark.Empty, $"unexpected YAML element {ev?.GetType().Name}");
            }
            Remember(scalar.Anchor, node);
            return node;
        }

        private void Enter(Mark at)
        {
            if (++_depth > MaxDepth)
                throw Error(_source, at, $"lists and mappings are nested more than {MaxDepth} levels deep, more than any config needs");
        }

        private void Remember(AnchorName anchor, Node node)
        {
            if (!anchor.IsEmpty)
                _anchors[anchor.Value] = node;
        }

        // YamlException messages start with "(Line: 1, Col: 2, Idx: 1) - (Line: ...): "; we print our own.
        private static string StripMarks(string message) =>
            Regex.Replace(message, @"^\(Line: \d+, Col: \d+, Idx: \d+\) - \(Line: \d+, Col: \d+, Idx: \d+\): ", "");
    }

    /// <summary>Maps the node tree onto <see cref="ContainerConfig"/>, validating as it goes.</summary>
    private sealed partial class Binder
    {
        private readonly string _source;

        public Binder(string source) => _source = source;

        private ContainerException Fail(Node at, string message) => Error(_source, at.Start, message);

        public ContainerConfig Bind(Node? root)
        {
            var config = new ContainerConfig();
            if (root is null || root is ScalarNode { IsNull: true })
                return config;
            if (root is not MappingNode)
                throw Fail(root, $"expected a mapping of settings (template, hostname, init, ...) at the top level, got {root.Kind}");

            Section(root, "", new()
            {
                ["template"] = v => config.Template = String(v, "template"),
                ["hostname"] = v => config.Hostname = Hostname(v),
                ["rootfs"] = v => config.Rootfs = AbsolutePath(v, "rootfs", allowDotDot: false),
                ["init"] = v => Section(v, "init", new()
                {
                    ["command"] = c => config.Init.Command = Command(c),
                    ["environment"] = c => config.Init.Environment = Environment(c),
                    ["workingDirectory"] = c => config.Init.WorkingDirectory =
                        AbsolutePath(c, "init.workingDirectory", allowDotDot: true) ?? "/",
                    ["user"] = c => config.Init.User = Integer(c, "init.user", 0, int.MaxValue - 1, ConfigRules.InitIdExpected),
                    ["group"] = c => config.Init.Group = Integer(c, "init.group", 0, int.MaxValue - 1, ConfigRules.InitIdExpected),
                }),
                ["mounts"] = v => config.Mounts = Mounts(v),
                ["stop"] = v => Section(v, "stop", new()
                {
                    ["signal"] = s => config.Stop.Signal = Signal(s),
                    ["timeout"] = s => config.Stop.Timeout = Integer(s, "stop.timeout", 0, 86400, ConfigRules.StopTimeoutExpected) ?? 10,
                }),
                ["restart"] = v => Section(v, "restart", new()
                {
                    ["policy"] = s => config.Restart.Policy = RestartPolicyOf(s),
                    ["maxRetries"] = s => config.Restart.MaxRetries = Integer(s, "restart.maxRetries", 0, 1000000, ConfigRules.RestartMaxRetriesExpected) ?? 0,
                    ["backoff"] = s => config.Restart.Backoff = DurationOf(s, "restart.backoff") ?? TimeSpan.FromSeconds(1),
                }),
                ["limits"] = v => Limits(v, config.Limits),
                ["console"] = v => Section(v, "console", new()
                {
                    ["logMaxBytes"] = s => config.Console.LogMaxBytes = Size(s, "console.logMaxBytes", 0, long.MaxValue) ?? 1024 * 1024,
                }),
                ["network"] = v => config.Network = Network(v),
                ["storage"] = v => Section(v, "storage", new()
                {
                    ["backend"] = s => config.Storage.Backend = Backend(s),
                    ["lower"] = s => config.Storage.Lower = AbsolutePath(s, "storage.lower", allowDotDot: false),
                    ["layers"] = s => config.Storage.Layers = Layers(s),
                    ["origin"] = s => config.Storage.Origin = String(s, "storage.origin"),
                    ["ephemeral"] = s => config.Storage.Ephemeral = Boolean(s, "storage.ephemeral") ?? false,
                    ["ids"] = s => config.Storage.Ids = StorageIds(s),
                }),
                ["security"] = v => Security(v, config.Security),
                ["idMap"] = v => config.IdMap = IdMap(v),
                ["idMapIsolated"] = v => config.IdMapIsolated = Boolean(v, "idMapIsolated") ?? false,
                ["privileged"] = v => config.Privileged = Boolean(v, "privileged"),
                ["autostart"] = v => Autostart(v, config.Autostart),
                ["sysctl"] = v => config.Sysctl = Sysctl(v),
                ["oomScoreAdj"] = v => config.OomScoreAdj = Integer(v, "oomScoreAdj", -1000, 1000, ConfigRules.OomScoreAdjExpected),
                ["oci"] = v => config.Oci = Oci(v),
                ["hooks"] = v => Hooks(v, config.Hooks),
            });
            if (config.Privileged == true && config.IdMap is not null)
                throw Fail(root, ConfigRules.PrivilegedWithIdMap(config.IdMap.ToString()));
            return config;
        }

        /// <summary>Dispatches each key of a mapping to its handler; null means "all defaults".</summary>
        private void Section(Node node, string path, OrderedHandlers handlers)
        {
            if (node is ScalarNode { IsNull: true })
                return;
            if (node is not MappingNode map)
                throw Fail(node, $"expected a mapping for {path}, got {node.Kind}");
            foreach (var (key, value) in map.Entries)
            {
                if (!handlers.TryGetValue(key.Value, out var handler))
                {
                    string where = path.Length == 0 ? "" : $" under '{path}'";
                    throw Fail(key, $"unknown key '{key.Value}'{where} (expected one of: {string.Join(", ", handlers.Keys)})");
                }
                handler(value);
            }
        }

        private string? String(Node node, string path)
        {
            if (node is ScalarNode s)
                return s.IsNull ? null : s.Value;
            throw Fail(node, $"expected a string for {path}, got {node.Kind}");
        }

        private string? Hostname(Node node)
        {
            string? name = String(node, "hostname");
            if (name is not null && ConfigRules.Hostname(name) is { } problem)
                throw Fail(node, problem);
            return name;
        }

        /// <summary>Throws at <paramref name="at"/> when a rule found a problem.</summary>
        private void Check(Node at, string? problem)
        {
            if (problem is not null)
                throw Fail(at, problem);
        }

        private List<string> Command(Node node)
        {
            if (node is ScalarNode { IsNull: true })
                return new List<string>();
            if (node is not SequenceNode seq)
                throw Fail(node, $"expected a list for init.command (e.g. [/bin/sh, -c, \"echo hi\"]), got {node.Kind}");
            var result = new List<string>(seq.Items.Count);
            for (int i = 0; i < seq.Items.Count; i++)
            {
                Node item = seq.Items[i];
                string path = $"init.command[{i}]";
                string? arg = String(item, path);
                Check(item, ConfigRules.CommandArgument(arg, i));
                Check(item, _exec.Charge(path, arg!));
                result.Add(arg!);
            }
            return result;
        }

        private Dictionary<string, string> Environment(Node node)
        {
            var result = new Dictionary<string, string>(StringComparer.Ordinal);
            if (node is ScalarNode { IsNull: true })
                return result;
            if (node is not MappingNode map)
                throw Fail(node, $"expected a mapping of NAME: value for init.environment, got {node.Kind}");
            foreach (var (key, value) in map.Entries)
            {
                string name = key.Value;
                Check(key, ConfigRules.EnvironmentName(name));
                // "FOO:" sets FOO to the empty string, which is what a shell's FOO= does.
                string text = String(value, $"init.environment.{name}") ?? "";
                Check(value, ConfigRules.EnvironmentValue(name, text));
                Check(value, _exec.Charge($"init.environment.{name}", name + "=" + text));
                result[name] = text;
            }
            return result;
        }

        private readonly ConfigRules.ExecBudget _exec = new();

        private List<MountConfig> Mounts(Node node)
        {
            var result = new List<MountConfig>();
            if (node is ScalarNode { IsNull: true })
                return result;
            if (node is not SequenceNode seq)
                throw Fail(node, $"expected a list for mounts (e.g. - {{ source: /srv/data, target: /data }}), got {node.Kind}");
            for (int i = 0; i < seq.Items.Count; i++)
            {
                Node item = seq.Items[i];
                string path = $"mounts[{i}]";
                if (item is not MappingNode)
                    throw Fail(item, $"expected a mapping with source and target for {path}, got {item.Kind}");
                var mount = new MountConfig();
                bool hasTarget = false;
                Node? sourceNode = null;
                Section(item, path, new()
                {
                    ["source"] = v => { mount.Source = String(v, path + ".source") ?? ""; sourceNode = v; },
                    ["target"] = v => { mount.Target = AbsolutePath(v, path + ".target", allowDotDot: false) ?? ""; hasTarget = mount.Target.Length > 0; },
                    ["readOnly"] = v => mount.ReadOnly = Boolean(v, path + ".readOnly") ?? false,
                    ["type"] = v => { mount.Type = String(v, path + ".type"); Check(v, ConfigRules.MountType(mount.Type, path)); },
                    ["options"] = v => { mount.Options = String(v, path + ".options"); Check(v, ConfigRules.MountOptions(mount.Options, mount.IsBind, path, out _, out _)); },
                });
                // A bind mount's source is a host path; a typed mount's is the filesystem's (tmpfs when absent).
                if (mount.IsBind)
                {
                    if (mount.Source.Length == 0)
                        throw Fail(item, ConfigRules.MountSourceMissing(path));
                    Check(sourceNode!, ConfigRules.AbsolutePath(mount.Source, path + ".source", allowDotDot: true));
                }
                if (mount.Options is not null)
                    Check(item, ConfigRules.MountOptions(mount.Options, mount.IsBind, path, out _, out _));
                if (!hasTarget)
                    throw Fail(item, ConfigRules.MountTargetMissing(path));
                result.Add(mount);
            }
            return result;
        }

        private string? AbsolutePath(Node node, string path, bool allowDotDot)
        {
            string? value = String(node, path);
            if (value is not null)
                Check(node, ConfigRules.AbsolutePath(value, path, allowDotDot));
            return value;
        }

        private string? Signal(Node node)
        {
            string? text = String(node, "stop.signal");
            if (text is not null)
                Check(node, ConfigRules.Signal(text));
            return text;
        }

        private string? Backend(Node node)
        {
            string? text = String(node, "storage.backend");
            if (text is not null)
                Check(node, ConfigRules.Backend(text));
            return text;
        }

        private string? StorageIds(Node node)
        {
            string? text = String(node, "storage.ids");
            if (text is not null && text is not (StorageConfig.IdsIdmapped or StorageConfig.IdsShifted))
                Check(node, $"storage.ids must be {StorageConfig.IdsIdmapped} or {StorageConfig.IdsShifted}, not '{text}'");
            return text;
        }

        private int? Integer(Node node, string path, int min, int max, string expected)
        {
            string? text = String(node, path);
            if (text is null)
                return null;
            if (!long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long value))
                throw Fail(node, ConfigRules.InvalidValue(path, text, expected));
            Check(node, ConfigRules.Integer(value, text, path, min, max, expected));
            return (int)value;
        }

        private RestartPolicy RestartPolicyOf(Node node)
        {
            var text = String(node, "restart.policy");
            if (text is null) return RestartPolicy.No;
            Check(node, ConfigRules.RestartPolicy(text, out var policy));
            return policy;
        }

        private TimeSpan? DurationOf(Node node, string path)
        {
            var text = String(node, path);
            if (text is null) return null;
            Check(node, ConfigRules.Duration(text, path, out var value));
            return value;
        }

        private bool? Boolean(Node node, string path)
        {
            string? text = String(node, path);
            if (text is null)
                return null;
            if (string.Equals(text, "true", StringComparison.OrdinalIgnoreCase))
                return true;
            if (string.Equals(text, "false", StringComparison.OrdinalIgnoreCase))
                return false;
            throw Fail(node, $"invalid value '{text}' for {path} (expected true or false)");
        }

        private long? Size(Node node, string path, long min, long max)
        {
            string? text = String(node, path);
            if (text is null)
                return null;
            if (!Sizes.TryParse(text, out long bytes))
                throw Fail(node, $"invalid size '{text}' for {path} ({Sizes.SyntaxHelp})");
            Check(node, ConfigRules.Size(bytes, text, path, min, max));
            return bytes;
        }
    }

    /// <summary>Key -> handler, enumerated in declaration order so "expected one of" reads like the docs.</summary>
    private sealed class OrderedHandlers
    {
        private readonly List<(string Key, Action<Node> Handler)> _items = new();

        public Action<Node> this[string key]
        {
            set => _items.Add((key, value));
        }

        public IEnumerable<string> Keys => _items.Select(i => i.Key);

        public bool TryGetValue(string key, out Action<Node> handler)
        {
            foreach (var item in _items)
            {
                if (item.Key == key)
                {
                    handler = item.Handler;
                    return true;
                }
            }
            handler = null!;
            return false;
        }
    }
}
