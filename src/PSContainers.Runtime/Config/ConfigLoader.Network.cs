using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace PSContainers.Runtime.Config;

/// <summary>The <c>network:</c> list of config.yaml (one mapping per NIC, like LXC's lxc.net.N.* keys).</summary>
public static partial class ConfigLoader
{
    public static string[] NicTypes => ConfigRules.NicTypes;

    private static void SerializeNetwork(IEmitter e, List<NicConfig>? network)
    {
        network ??= new List<NicConfig>();
        Key(e, "network");
        e.Emit(new SequenceStart(null, null, true, network.Count == 0 ? SequenceStyle.Flow : SequenceStyle.Block));
        foreach (var n in network)
        {
            e.Emit(new MappingStart(null, null, true, MappingStyle.Block));
            Pair(e, "type", n.Type);
            void Opt(string key, string? value) { if (value is not null) Pair(e, key, value); }
            void List(string key, List<string>? values)
            {
                if (values is null || values.Count == 0) return;
                Key(e, key);
                e.Emit(new SequenceStart(null, null, true, SequenceStyle.Flow));
                foreach (var v in values) Str(e, v);
                e.Emit(new SequenceEnd());
            }
            Opt("name", n.Name);
            Opt("link", n.Link);
            Opt("linkNamespace", n.LinkNamespace);
            Opt("hostName", n.HostName);
            Opt("hwAddress", n.HwAddress);
            if (n.Mtu is { } mtu) { Key(e, "mtu"); Plain(e, mtu.ToString(CultureInfo.InvariantCulture)); }
            if (!n.Up) { Key(e, "up"); Plain(e, "false"); }
            List("ipv4", n.IPv4);
            List("ipv6", n.IPv6);
            Opt("ipv4Gateway", n.IPv4Gateway);
            Opt("ipv6Gateway", n.IPv6Gateway);
            Opt("macvlanMode", n.MacvlanMode);
            if (n.VlanId is { } id) { Key(e, "vlanId"); Plain(e, id.ToString(CultureInfo.InvariantCulture)); }
            Opt("ipvlanMode", n.IpvlanMode);
            List("ports", n.Ports);
            List("hostPorts", n.HostPorts);
            e.Emit(new MappingEnd());
        }
        e.Emit(new SequenceEnd());
    }

    /// <summary>NICs given as key/value dictionaries (New-Container -Network @{type='veth'; link='br0'}), read with the file's rules.</summary>
    public static List<NicConfig> ParseNetwork(IEnumerable<IReadOnlyDictionary<string, object?>> nics)
    {
        var sb = new StringBuilder("network:\n");
        foreach (var nic in nics)
        {
            var first = true;
            foreach (var (key, value) in nic)
            {
                sb.Append(first ? "- " : "  ").Append(Quote(key)).Append(": ");
                sb.Append(value switch
                {
                    null => "",
                    string s => Quote(s),
                    bool b => b ? "true" : "false",
                    System.Collections.IEnumerable list => "[" + string.Join(", ", list.Cast<object?>().Select(o => Quote(Convert.ToString(o, CultureInfo.InvariantCulture) ?? ""))) + "]",
                    _ => Quote(Convert.ToString(value, CultureInfo.InvariantCulture) ?? ""),
                }).Append('\n');
                first = false;
            }
            if (first) sb.Append("- {}\n");
        }
        try { return Parse(sb.ToString(), "-Network").Network; }
        catch (ContainerException ex) when (ex.ErrorId == ErrorId)
        {
            throw new ContainerException("InvalidArgument", ContainerErrorKind.InvalidArgument,
                Regex.Replace(ex.Message, @"^-Network:\d+:\d+: ", "-Network: "), null, ex);
        }
    }

    private static string Quote(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";

    private sealed partial class Binder
    {
        private List<NicConfig> Network(Node node)
        {
            var result = new List<NicConfig>();
            if (node is ScalarNode { IsNull: true }) return result;
            if (node is not SequenceNode seq)
                throw Fail(node, $"expected a list for network (e.g. - {{ type: veth, link: br0, ipv4: [10.0.0.2/24] }}), got {node.Kind}");
            var names = new Dictionary<string, int>(StringComparer.Ordinal);
            for (var i = 0; i < seq.Items.Count; i++)
            {
                var item = seq.Items[i];
                var path = $"network[{i}]";
                if (item is not MappingNode map) throw Fail(item, $"expected a mapping for {path} (type, name, link, ...), got {item.Kind}");
                var nic = new NicConfig();
                var given = new Dictionary<string, Node>(StringComparer.Ordinal);
                Section(item, path, new()
                {
                    ["type"] = v => { given["type"] = v; nic.Type = OneOf(v, $"{path}.type", NicTypes) ?? "veth"; },
                    ["name"] = v => { given["name"] = v; nic.Name = LinkName(v, $"{path}.name"); },
                    ["link"] = v => { given["link"] = v; nic.Link = LinkName(v, $"{path}.link"); },
                    ["linkNamespace"] = v => { given["linkNamespace"] = v; nic.LinkNamespace = NamespaceName(v, $"{path}.linkNamespace"); },
                    ["hostName"] = v => { given["hostName"] = v; nic.HostName = LinkName(v, $"{path}.hostName"); },
                    ["hwAddress"] = v => { given["hwAddress"] = v; nic.HwAddress = Mac(v, $"{path}.hwAddress"); },
                    ["mtu"] = v => { given["mtu"] = v; nic.Mtu = Integer(v, $"{path}.mtu", 68, 65535, ConfigRules.MtuExpected); },
                    ["up"] = v => { given["up"] = v; nic.Up = Boolean(v, $"{path}.up") ?? true; },
                    ["ipv4"] = v => { given["ipv4"] = v; nic.IPv4 = Addresses(v, $"{path}.ipv4", AddressFamily.InterNetwork); },
                    ["ipv6"] = v => { given["ipv6"] = v; nic.IPv6 = Addresses(v, $"{path}.ipv6", AddressFamily.InterNetworkV6); },
                    ["ipv4Gateway"] = v => { given["ipv4Gateway"] = v; nic.IPv4Gateway = Gateway(v, $"{path}.ipv4Gateway", AddressFamily.InterNetwork); },
                    ["ipv6Gateway"] = v => { given["ipv6Gateway"] = v; nic.IPv6Gateway = Gateway(v, $"{path}.ipv6Gateway", AddressFamily.InterNetworkV6); },
                    ["macvlanMode"] = v => { given["macvlanMode"] = v; nic.MacvlanMode = OneOf(v, $"{path}.macvlanMode", ConfigRules.MacvlanModes); },
                    ["vlanId"] = v => { given["vlanId"] = v; nic.VlanId = Integer(v, $"{path}.vlanId", 0, 4094, ConfigRules.VlanIdExpected); },
                    ["ipvlanMode"] = v => { given["ipvlanMode"] = v; nic.IpvlanMode = OneOf(v, $"{path}.ipvlanMode", ConfigRules.IpvlanModes); },
                    ["ports"] = v => { given["ports"] = v; nic.Ports = Ports(v, $"{path}.ports"); },
                    ["hostPorts"] = v => { given["hostPorts"] = v; nic.HostPorts = Ports(v, $"{path}.hostPorts"); },
                });
                // Keys that mean nothing for this type are mistakes worth reporting.
                foreach (var (key, at) in given)
                    Check(at, ConfigRules.NicKey(nic.Type, key, path));
                Check(item, ConfigRules.NicInList(nic, path, i, seq.Items.Count, result, names));
                result.Add(nic);
            }
            return result;
        }

        /// <summary>pasta port forwards: "PORT" or "OUTER:INNER" (1-65535), TCP.</summary>
        private List<string> Ports(Node node, string path)
        {
            var items = node switch
            {
                ScalarNode { IsNull: true } => new List<Node>(),
                ScalarNode s => new List<Node> { s },
                SequenceNode seq => seq.Items,
                _ => throw Fail(node, $"expected a port or a list of ports for {path}, got {node.Kind}"),
            };
            var result = new List<string>();
            foreach (var item in items)
            {
                var text = String(item, path)!;
                Check(item, ConfigRules.Port(text, path, out var port));
                result.Add(port);
            }
            return result;
        }

        private string? OneOf(Node node, string path, string[] values)
        {
            var text = String(node, path);
            if (text is null) return null;
            Check(node, ConfigRules.OneOf(text, path, values));
            return ConfigRules.Match(text, values);
        }

        private string? LinkName(Node node, string path)
        {
            var name = String(node, path);
            if (name is not null) Check(node, ConfigRules.LinkName(name, path));
            return name;
        }

        private string? NamespaceName(Node node, string path)
        {
            var name = String(node, path);
            if (name is not null) Check(node, ConfigRules.NamespaceName(name, path));
            return name;
        }

        private string? Mac(Node node, string path)
        {
            var text = String(node, path);
            if (text is null) return null;
            Check(node, ConfigRules.Mac(text, path));
            return text.ToLowerInvariant();
        }

        private List<string> Addresses(Node node, string path, AddressFamily family)
        {
            var items = node switch
            {
                ScalarNode { IsNull: true } => new List<Node>(),
                ScalarNode s => new List<Node> { s },
                SequenceNode seq => seq.Items,
                _ => throw Fail(node, $"expected an address or a list of addresses for {path}, got {node.Kind}"),
            };
            var result = new List<string>();
            foreach (var item in items)
            {
                var text = String(item, path)!;
                Check(item, ConfigRules.Address(text, path, family, out var address));
                result.Add(address);
            }
            return result;
        }

        private string? Gateway(Node node, string path, AddressFamily family)
        {
            var text = String(node, path);
            if (text is null) return null;
            Check(node, ConfigRules.Gateway(text, path, family, out var gateway));
            return gateway;
        }
    }
}
