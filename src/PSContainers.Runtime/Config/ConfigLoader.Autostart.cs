using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace PSContainers.Runtime.Config;

/// <summary>
/// The <c>autostart:</c> section of config.yaml (LXC's lxc.start.auto, lxc.start.delay,
/// lxc.start.order and lxc.group):
/// <code>
/// autostart:
///   enabled: true       # started by Start-ContainerAutostart and at boot
///   delay: 5            # seconds to wait after starting it before the next container
///   order: 10           # higher starts first (and stops last); ties go by name
///   groups: [web, db]   # none = the NULL group
/// </code>
/// </summary>
public static partial class ConfigLoader
{
    private static void SerializeAutostart(IEmitter e, AutostartConfig a)
    {
        // Left out when nothing is set, so configs of containers that never use it stay as they were.
        if (a.IsDefault) return;
        Key(e, "autostart");
        e.Emit(new MappingStart(null, null, true, MappingStyle.Block));
        Key(e, "enabled");
        Plain(e, a.Enabled ? "true" : "false");
        Key(e, "delay");
        Plain(e, a.Delay.ToString(CultureInfo.InvariantCulture));
        Key(e, "order");
        Plain(e, a.Order.ToString(CultureInfo.InvariantCulture));
        Key(e, "groups");
        e.Emit(new SequenceStart(null, null, true, SequenceStyle.Flow));
        foreach (var g in a.Groups) Str(e, g);
        e.Emit(new SequenceEnd());
        e.Emit(new MappingEnd());
    }

    private sealed partial class Binder
    {
        private void Autostart(Node node, AutostartConfig a) => Section(node, "autostart", new()
        {
            ["enabled"] = s => a.Enabled = Boolean(s, "autostart.enabled") ?? false,
            ["delay"] = s => a.Delay = Integer(s, "autostart.delay", 0, 86400, ConfigRules.AutostartDelayExpected) ?? 0,
            ["order"] = s => a.Order = Integer(s, "autostart.order", int.MinValue, int.MaxValue, ConfigRules.AutostartOrderExpected) ?? 0,
            ["groups"] = s => a.Groups = Groups(s),
        });

        private List<string> Groups(Node node)
        {
            var result = new List<string>();
            if (node is ScalarNode { IsNull: true }) return result;
            if (node is not SequenceNode seq)
                throw Fail(node, $"expected a list of group names for autostart.groups (e.g. [web, db]), got {node.Kind}");
            if (seq.Items.Count > ConfigRules.MaxGroups)
                throw Fail(node, $"autostart.groups has {seq.Items.Count} groups; at most {ConfigRules.MaxGroups} are allowed");
            for (int i = 0; i < seq.Items.Count; i++)
            {
                var item = seq.Items[i];
                string path = $"autostart.groups[{i}]";
                string? name = String(item, path);
                Check(item, ConfigRules.GroupName(name, path));
                if (result.Contains(name!)) throw Fail(item, ConfigRules.DuplicateGroup(name!, i));
                result.Add(name!);
            }
            return result;
        }
    }
}
