using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace PSContainers.Runtime.Config;

/// <summary>
/// Kernel settings of a container's init (LXC's lxc.prlimit.*, lxc.sysctl.*, lxc.proc.oom_score_adj):
/// <code>
/// limits:
///   prlimit: { nofile: "1024:4096", core: unlimited, memlock: 64M }   # soft:hard, or one value for both
/// sysctl:
///   net.ipv4.ip_forward: "1"          # namespaced names only (net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*)
/// oomScoreAdj: 500                    # -1000..1000
/// </code>
/// </summary>
public static partial class ConfigLoader
{
    private static void SerializeKernel(IEmitter e, ContainerConfig c)
    {
        if (c.Sysctl is { Count: > 0 } sysctl)
        {
            Key(e, "sysctl");
            e.Emit(new MappingStart(null, null, true, MappingStyle.Block));
            foreach (var kv in sysctl) Pair(e, kv.Key, kv.Value);
            e.Emit(new MappingEnd());
        }
        if (c.OomScoreAdj is { } adj) { Key(e, "oomScoreAdj"); Plain(e, adj.ToString(CultureInfo.InvariantCulture)); }
    }

    private static string? KernelProblem(ContainerConfig c)
    {
        foreach (var (name, value) in c.Limits?.Prlimit ?? new Dictionary<string, string>())
            if (ConfigRules.Prlimit(name, value ?? "", out _, out _) is { } bad) return bad;
        foreach (var (name, value) in c.Sysctl ?? new Dictionary<string, string>())
            if ((ConfigRules.SysctlName(name) ?? ConfigRules.SysctlValue(name, value ?? "")) is { } bad) return bad;
        return c.OomScoreAdj is { } adj
            ? ConfigRules.Integer(adj, ConfigRules.Text(adj), "oomScoreAdj", -1000, 1000, ConfigRules.OomScoreAdjExpected)
            : null;
    }

    private sealed partial class Binder
    {
        private Dictionary<string, string> Prlimit(Node node)
        {
            var result = new Dictionary<string, string>(StringComparer.Ordinal);
            if (node is ScalarNode { IsNull: true }) return result;
            if (node is not MappingNode map)
                throw Fail(node, $"expected a mapping of resource: \"soft:hard\" for limits.prlimit (e.g. {{ nofile: \"1024:4096\" }}), got {node.Kind}");
            foreach (var (key, value) in map.Entries)
            {
                string text = String(value, $"limits.prlimit.{key.Value}") ?? "";
                Check(key.Value.Length == 0 ? key : value, ConfigRules.Prlimit(key.Value, text, out _, out _));
                result[key.Value] = text;
            }
            return result;
        }

        private Dictionary<string, string> Sysctl(Node node)
        {
            var result = new Dictionary<string, string>(StringComparer.Ordinal);
            if (node is ScalarNode { IsNull: true }) return result;
            if (node is not MappingNode map)
                throw Fail(node, $"expected a mapping of name: value for sysctl (e.g. net.ipv4.ip_forward: \"1\"), got {node.Kind}");
            foreach (var (key, value) in map.Entries)
            {
                Check(key, ConfigRules.SysctlName(key.Value));
                string text = String(value, $"sysctl.{key.Value}") ?? "";
                Check(value, ConfigRules.SysctlValue(key.Value, text));
                result[key.Value] = text;
            }
            return result;
        }
    }
}
