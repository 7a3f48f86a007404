using System.Collections;
using System.Globalization;
using System.Reflection;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace PSContainers.Runtime.Config;

/// <summary>One change to a config.yaml: a dotted key (limits.memory, network[0].bridge) set to a value, or removed.</summary>
public sealed record ConfigEdit(string Key, object? Value, bool Remove = false);

/// <summary>
/// Edits config.yaml by key, generically: the YAML tree is changed (a dotted key names nested
/// mappings, [n] an item of a list) and the whole result is then validated by
/// <see cref="ConfigLoader.Parse"/>, the same rules as a hand-written file. So any key the loader
/// knows can be set, new keys included, without code here; an unknown key or a bad value is the
/// loader's error, naming the key and what is allowed.
/// </summary>
public static partial class ConfigEditor
{
    [GeneratedRegex(@"^(?<name>[A-Za-z_][A-Za-z0-9_-]*)(\[(?<index>\d{1,4})\])?$")]
    private static partial Regex Segment();

    /// <summary>The key's parts: (mapping key, list index or null).</summary>
    public static IReadOnlyList<(string Name, int? Index)> ParseKey(string key)
    {
        var parts = new List<(string, int?)>();
        foreach (var part in (key ?? "").Split('.'))
        {
            var m = Segment().Match(part);
            if (!m.Success)
                throw new ContainerException("ConfigKeyInvalid", ContainerErrorKind.InvalidArgument,
                    $"'{key}' is not a config key: write the keys of config.yaml joined by dots, with [n] for a list item (e.g. limits.memory, init.command, network[0].bridge).", key);
            parts.Add((m.Groups["name"].Value, m.Groups["index"].Success ? int.Parse(m.Groups["index"].Value, CultureInfo.InvariantCulture) : null));
        }
        return parts;
    }

    /// <summary>Applies the edits to <paramref name="yaml"/> and returns the new text, validated by the loader (with its config).</summary>
    public static (string Yaml, ContainerConfig Config) Apply(string yaml, IEnumerable<ConfigEdit> edits, string sourceName)
    {
        // The file as it is passes the loader first: its limits (aliases, depth, size) hold before
        // the tree is built, and a file broken by hand is reported as such, not as this edit's fault.
        ConfigLoader.Parse(yaml, sourceName);
        var root = Load(yaml);
        foreach (var edit in edits)
        {
            var parts = ParseKey(edit.Key);
            if (edit.Remove) RemoveAt(root, parts);
            else SetAt(root, parts, ToNode(edit.Value, edit.Key), edit.Key);
        }
        var text = Save(root);
        ContainerConfig config;
        try
        {
            config = ConfigLoader.Parse(text, sourceName);
            ConfigLoader.Validate(config);
        }
        catch (ContainerException ex) when (ex.ErrorId == ConfigLoader.ErrorId)
        {
            var keys = string.Join(", ", edits.Select(e => e.Key));
            throw new ContainerException(ConfigLoader.ErrorId, ContainerErrorKind.InvalidArgument,
                $"The config was not changed: with {keys} as given, {ex.Message}", sourceName, ex);
        }
        return (text, config);
    }

    /// <summary>The value at <paramref name="key"/> as written in the YAML (strings, ordered hashtables, lists); found false when it is not there.</summary>
    public static object? Get(string yaml, string key, out bool found)
    {
        YamlNode? node = Load(yaml);
        foreach (var (name, index) in ParseKey(key))
        {
            if (node is not YamlMappingNode map || !map.Children.TryGetValue(new YamlScalarNode(name), out node)) { found = false; return null; }
            if (index is { } i)
            {
                if (node is not YamlSequenceNode seq || i >= seq.Children.Count) { found = false; return null; }
                node = seq.Children[i];
            }
        }
        found = true;
        return ToObject(node);
    }

    /// <summary>The typed model's value at a key (its default when the file leaves it out), by property names.</summary>
    public static object? GetTyped(ContainerConfig config, string key, out bool found)
    {
        object? current = config;
        foreach (var (name, index) in ParseKey(key))
        {
            var property = current?.GetType().GetProperty(name, BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
            if (property is null || property.GetIndexParameters().Length > 0) { found = false; return null; }
            current = property.GetValue(current);
            if (index is { } i)
            {
                if (current is not IList list || i >= list.Count) { found = false; return null; }
                current = list[i];
            }
        }
        found = true;
        return current;
    }

    private static YamlMappingNode Load(string yaml)
    {
        var stream = new YamlStream();
        try { stream.Load(new StringReader(yaml)); }
        catch (YamlException ex)
        {
            throw new ContainerException(ConfigLoader.ErrorId, ContainerErrorKind.ParserError,
                $"The config.yaml cannot be edited by key: it is not valid YAML ({ex.Message}). Fix it by hand first.", null, ex);
        }
        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is YamlScalarNode { Value: null or "" }) return new YamlMappingNode();
        return stream.Documents[0].RootNode as YamlMappingNode
            ?? throw new ContainerException(ConfigLoader.ErrorId, ContainerErrorKind.ParserError,
                "The config.yaml's top level is not a mapping of settings; fix it by hand first.");
    }

    private static string Save(YamlMappingNode root)
    {
        var writer = new StringWriter(CultureInfo.InvariantCulture) { NewLine = "\n" };
        new YamlStream(new YamlDocument(root)).Save(writer, assignAnchors: false);
        var text = writer.ToString();
        // YamlDotNet ends a document with "...": not needed for a single document.
        return text.EndsWith("...\n", StringComparison.Ordinal) ? text[..^4] : text;
    }

    private static void SetAt(YamlMappingNode root, IReadOnlyList<(string Name, int? Index)> parts, YamlNode value, string key)
    {
        YamlMappingNode map = root;
        for (int p = 0; p < parts.Count; p++)
        {
            var (name, index) = parts[p];
            bool last = p == parts.Count - 1;
            var k = new YamlScalarNode(name);
            if (index is null)
            {
                if (last) { map.Children[k] = value; return; }
                map = Mapping(map, k, key);
                continue;
            }
            if (!map.Children.TryGetValue(k, out var existing) || existing is not YamlSequenceNode seq || index >= seq.Children.Count)
                throw new ContainerException("ConfigKeyNotFound", ContainerErrorKind.ObjectNotFound,
                    $"'{key}': {name} has no item [{index}]. Set the whole list (-Key {string.Join('.', parts.Take(p).Select(x => x.Name).Append(name))} -Value @(...)), or use an index that exists.", key);
            if (last) { seq.Children[index.Value] = value; return; }
            map = seq.Children[index.Value] as YamlMappingNode
                ?? throw new ContainerException("ConfigKeyNotFound", ContainerErrorKind.ObjectNotFound, $"'{key}': {name}[{index}] is not a mapping of keys.", key);
        }
    }

    private static YamlMappingNode Mapping(YamlMappingNode parent, YamlScalarNode key, string fullKey)
    {
        if (parent.Children.TryGetValue(key, out var node))
        {
            if (node is YamlMappingNode m) return m;
            // An empty section ("limits:") means the defaults: it becomes a mapping.
            if (node is not YamlScalarNode { Value: null or "" or "~" or "null" })
                throw new ContainerException("ConfigKeyNotFound", ContainerErrorKind.ObjectNotFound,
                    $"'{fullKey}': {key.Value} is not a section of keys in this config, so it has no sub-key. Set {key.Value} itself.", fullKey);
        }
        var created = new YamlMappingNode();
        parent.Children[key] = created;
        return created;
    }

    private static void RemoveAt(YamlMappingNode root, IReadOnlyList<(string Name, int? Index)> parts)
    {
        YamlNode? node = root;
        for (int p = 0; p < parts.Count; p++)
        {
            var (name, index) = parts[p];
            bool last = p == parts.Count - 1;
            if (node is not YamlMappingNode map || !map.Children.TryGetValue(new YamlScalarNode(name), out var child)) return; // not there: nothing to remove
            if (index is null)
            {
                if (last) { map.Children.Remove(new YamlScalarNode(name)); return; }
                node = child;
                continue;
            }
            if (child is not YamlSequenceNode seq || index >= seq.Children.Count) return;
            if (last) { seq.Children.RemoveAt(index.Value); return; }
            node = seq.Children[index.Value];
        }
    }

    /// <summary>A PowerShell-side value as YAML: dictionaries as mappings, lists as sequences, the rest as text.</summary>
    internal static YamlNode ToNode(object? value, string key, int depth = 0)
    {
        if (depth > ConfigLoader.MaxDepth)
            throw new ContainerException("ConfigValueInvalid", ContainerErrorKind.InvalidArgument, $"The value for '{key}' is nested too deeply.", key);
        switch (value)
        {
            case null:
                return new YamlScalarNode(null) { Style = ScalarStyle.Plain };
            case string s:
                return new YamlScalarNode(s);
            case bool b:
                return new YamlScalarNode(b ? "true" : "false") { Style = ScalarStyle.Plain };
            case IDictionary d:
                var map = new YamlMappingNode();
                foreach (DictionaryEntry e in d)
                    map.Children[new YamlScalarNode(Convert.ToString(e.Key, CultureInfo.InvariantCulture) ?? "")] = ToNode(e.Value, key, depth + 1);
                return map;
            case IEnumerable list:
                var seq = new YamlSequenceNode();
                foreach (var item in list) seq.Children.Add(ToNode(item, key, depth + 1));
                return seq;
            case IFormattable f:
                return new YamlScalarNode(f.ToString(null, CultureInfo.InvariantCulture)) { Style = ScalarStyle.Plain };
            default:
                return new YamlScalarNode(value.ToString());
        }
    }

    private static object? ToObject(YamlNode node) => node switch
    {
        YamlScalarNode s => s.Style == ScalarStyle.Plain && s.Value is "" or "~" or "null" or null ? null : s.Value,
        YamlSequenceNode seq => seq.Children.Select(ToObject).ToArray(),
        YamlMappingNode map => map.Children.Aggregate(new System.Collections.Specialized.OrderedDictionary(StringComparer.Ordinal), (d, kv) =>
        {
            d[((YamlScalarNode)kv.Key).Value ?? ""] = ToObject(kv.Value);
            return d;
        }),
        _ => null,
    };
}
