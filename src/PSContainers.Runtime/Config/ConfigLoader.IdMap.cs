using PSContainers.Runtime.UserNamespaces;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace PSContainers.Runtime.Config;

/// <summary>
/// <c>idMap:</c> of config.yaml, LXC's lxc.idmap lines as a list:
/// <c>idMap: [u 0 100000 65536, g 0 100000 65536]</c>. Present = the container runs in its own user namespace.
/// </summary>
public static partial class ConfigLoader
{
    private static void SerializeIdMap(IEmitter e, IdMap? map)
    {
        if (map is null) return;
        Key(e, "idMap");
        e.Emit(new SequenceStart(null, null, true, SequenceStyle.Flow));
        foreach (var entry in map.Entries) Str(e, entry.ToString());
        e.Emit(new SequenceEnd());
    }

    private sealed partial class Binder
    {
        private IdMap? IdMap(Node node)
        {
            if (node is ScalarNode { IsNull: true }) return null;
            if (node is not SequenceNode seq)
                throw Fail(node, $"expected a list for idMap (e.g. [u 0 100000 65536, g 0 100000 65536]), got {node.Kind}");
            var entries = new List<IdMapEntry>();
            for (var i = 0; i < seq.Items.Count; i++)
            {
                var text = String(seq.Items[i], $"idMap[{i}]") ?? "";
                entries.Add(UserNamespaces.IdMap.ParseEntry(text, out var problem) ?? throw Fail(seq.Items[i], $"invalid idMap[{i}] '{text}': {problem}"));
            }
            Check(node, ConfigRules.IdMap(entries));
            return new IdMap(entries);
        }
    }
}
