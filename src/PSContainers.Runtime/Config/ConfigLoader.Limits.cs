using System.Globalization;
using PSContainers.Runtime.Cgroups;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace PSContainers.Runtime.Config;

/// <summary>
/// The <c>limits:</c> section of config.yaml:
/// <code>
/// limits:
///   memory: 512M          # memory.max / memory.limit_in_bytes
///   memoryHigh: 400M      # v2 only
///   memorySwap: 1G        # swap on top of memory
///   memoryLow: 128M       # reservation (v1 soft limit)
///   cpuWeight: 100        # 1..10000 (v1 shares = weight*1024/100)
///   cpus: 1.5             # quota in CPUs, or cpuQuota: 150000 (microseconds per period)
///   cpuPeriod: 100000
///   cpusetCpus: 0-1
///   cpusetMems: 0
///   pids: 200
///   ioWeight: 100
///   io: [{ device: /dev/vda, readBps: 10M, writeIops: 100 }]
///   hugetlb: { 2MB: 0 }
///   devices: [deny a, allow c 1:3 rwm]
///   netClassId: 0x100001  # v1 net_cls
///   netPrio: { eth0: 5 }  # v1 net_prio
/// </code>
/// Sizes and counts also take <c>max</c> for "no limit".
/// </summary>
public static partial class ConfigLoader
{
    private static void SerializeLimits(IEmitter e, LimitsConfig l)
    {
        Key(e, "limits");
        e.Emit(new MappingStart(null, null, true, l.IsEmpty && l.Prlimit.Count == 0 ? MappingStyle.Flow : MappingStyle.Block));
        void Scalar(string key, string? value)
        {
            if (value is null) return;
            Key(e, key);
            Plain(e, value);
        }
        static string Count(long v) => v == CgroupLimits.Unlimited ? "max" : v.ToString(CultureInfo.InvariantCulture);
        Scalar("memory", l.MemoryMax is { } m ? CgroupLimits.FormatSize(m) : null);
        Scalar("memoryHigh", l.MemoryHigh is { } h ? CgroupLimits.FormatSize(h) : null);
        Scalar("memorySwap", l.MemorySwapMax is { } s ? CgroupLimits.FormatSize(s) : null);
        Scalar("memoryLow", l.MemoryLow is { } lo ? CgroupLimits.FormatSize(lo) : null);
        Scalar("cpuWeight", l.CpuWeight?.ToString(CultureInfo.InvariantCulture));
        Scalar("cpuQuota", l.CpuQuota is { } q ? Count(q) : null);
        Scalar("cpuPeriod", l.CpuPeriod?.ToString(CultureInfo.InvariantCulture));
        if (l.CpusetCpus is not null) Pair(e, "cpusetCpus", l.CpusetCpus);
        if (l.CpusetMems is not null) Pair(e, "cpusetMems", l.CpusetMems);
        Scalar("pids", l.PidsMax is { } p ? Count(p) : null);
        Scalar("ioWeight", l.IoWeight?.ToString(CultureInfo.InvariantCulture));
        if (l.IoDeviceLimits.Count > 0)
        {
            Key(e, "io");
            e.Emit(new SequenceStart(null, null, true, SequenceStyle.Block));
            foreach (var io in l.IoDeviceLimits)
            {
                e.Emit(new MappingStart(null, null, true, MappingStyle.Flow));
                Pair(e, "device", io.Device);
                Scalar("readBps", io.ReadBps is { } a ? CgroupLimits.FormatSize(a) : null);
                Scalar("writeBps", io.WriteBps is { } b ? CgroupLimits.FormatSize(b) : null);
                Scalar("readIops", io.ReadIops is { } c ? Count(c) : null);
                Scalar("writeIops", io.WriteIops is { } d ? Count(d) : null);
                e.Emit(new MappingEnd());
            }
            e.Emit(new SequenceEnd());
        }
        if (l.HugetlbMax.Count > 0)
        {
            Key(e, "hugetlb");
            e.Emit(new MappingStart(null, null, true, MappingStyle.Block));
            foreach (var kv in l.HugetlbMax) Scalar(kv.Key, CgroupLimits.FormatSize(kv.Value));
            e.Emit(new MappingEnd());
        }
        if (l.Devices.Count > 0)
        {
            Key(e, "devices");
            e.Emit(new SequenceStart(null, null, true, SequenceStyle.Block));
            foreach (var rule in l.Devices) Str(e, rule.ToString());
            e.Emit(new SequenceEnd());
        }
        Scalar("netClassId", l.NetClassId is { } id ? "0x" + id.ToString("x", CultureInfo.InvariantCulture) : null);
        if (l.NetPrioIfPrioMap.Count > 0)
        {
            Key(e, "netPrio");
            e.Emit(new MappingStart(null, null, true, MappingStyle.Block));
            foreach (var kv in l.NetPrioIfPrioMap)
            {
                Str(e, kv.Key);
                Plain(e, kv.Value.ToString(CultureInfo.InvariantCulture));
            }
            e.Emit(new MappingEnd());
        }
        if (l.Prlimit.Count > 0)
        {
            Key(e, "prlimit");
            // Flow style: it may sit in a limits mapping that is itself flow style (no cgroup limits).
            e.Emit(new MappingStart(null, null, true, MappingStyle.Flow));
            foreach (var kv in l.Prlimit) Pair(e, kv.Key, kv.Value);
            e.Emit(new MappingEnd());
        }
        e.Emit(new MappingEnd());
    }

    private sealed partial class Binder
    {
        private void Limits(Node node, LimitsConfig l)
        {
            double? cpus = null;
            Node? cpusNode = null;
            Section(node, "limits", new()
            {
                ["memory"] = s => l.Memory = SizeOrMax(s, "limits.memory", ConfigRules.MinMemory),
                ["memoryHigh"] = s => l.MemoryHigh = SizeOrMax(s, "limits.memoryHigh", 0),
                ["memorySwap"] = s => l.MemorySwapMax = SizeOrMax(s, "limits.memorySwap", 0),
                ["memoryLow"] = s => l.MemoryLow = SizeOrMax(s, "limits.memoryLow", 0),
                ["cpuWeight"] = s => l.CpuWeight = Integer(s, "limits.cpuWeight", 1, 10000, ConfigRules.WeightExpected),
                ["cpus"] = s => { cpus = Cpus(s); cpusNode = s; },
                ["cpuQuota"] = s => l.CpuQuota = CountOrMax(s, "limits.cpuQuota", 1000, ConfigRules.CpuQuotaExpected),
                ["cpuPeriod"] = s => l.CpuPeriod = Integer(s, "limits.cpuPeriod", 1000, 1_000_000, ConfigRules.CpuPeriodExpected),
                ["cpusetCpus"] = s => l.CpusetCpus = List(s, "limits.cpusetCpus"),
                ["cpusetMems"] = s => l.CpusetMems = List(s, "limits.cpusetMems"),
                ["pids"] = s => l.PidsMax = CountOrMax(s, "limits.pids", 1, ConfigRules.PidsExpected),
                ["ioWeight"] = s => l.IoWeight = Integer(s, "limits.ioWeight", 1, 10000, ConfigRules.WeightExpected),
                ["io"] = s => l.IoDeviceLimits = Io(s),
                ["hugetlb"] = s => l.HugetlbMax = Hugetlb(s),
                ["devices"] = s => l.Devices = Devices(s),
                ["netClassId"] = s => l.NetClassId = ClassId(s),
                ["netPrio"] = s => l.NetPrioIfPrioMap = NetPrio(s),
                ["prlimit"] = s => l.Prlimit = Prlimit(s),
            });
            if (cpus is { } c)
            {
                if (l.CpuQuota is not null) throw Fail(cpusNode!, ConfigRules.BothCpusAndQuota);
                try { l.CpuQuota = CgroupLimits.CpusToQuota(c, l.CpuPeriod ?? CgroupLimits.DefaultCpuPeriod); }
                catch (ContainerException ex) { throw Fail(cpusNode!, ex.Message); }
            }
        }

        private long? SizeOrMax(Node node, string path, long min)
        {
            string? text = String(node, path);
            if (text is null) return null;
            if (CgroupLimits.IsMax(text)) return CgroupLimits.Unlimited;
            return Size(node, path, min, ConfigRules.MaxMemory);
        }

        private long? CountOrMax(Node node, string path, long min, string expected)
        {
            string? text = String(node, path);
            if (text is null) return null;
            if (CgroupLimits.IsMax(text)) return CgroupLimits.Unlimited;
            if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long v))
                throw Fail(node, ConfigRules.InvalidValue(path, text, expected));
            Check(node, ConfigRules.CountOrMax(v, text, path, min, expected));
            return v;
        }

        private double? Cpus(Node node)
        {
            string? text = String(node, "limits.cpus");
            if (text is null) return null;
            if (!double.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double v) || v <= 0)
                throw Fail(node, $"invalid value '{text}' for limits.cpus (expected a positive number of CPUs, e.g. 1.5 or 0.25)");
            return v;
        }

        private string? List(Node node, string path)
        {
            string? text = String(node, path);
            if (text is null) return null;
            Check(node, ConfigRules.CpuList(text, path));
            return text.Trim();
        }

        private List<IoDeviceLimit> Io(Node node)
        {
            var result = new List<IoDeviceLimit>();
            if (node is ScalarNode { IsNull: true }) return result;
            if (node is not SequenceNode seq)
                throw Fail(node, $"expected a list for limits.io (e.g. - {{ device: /dev/vda, readBps: 10M }}), got {node.Kind}");
            for (int i = 0; i < seq.Items.Count; i++)
            {
                Node item = seq.Items[i];
                string path = $"limits.io[{i}]";
                if (item is not MappingNode) throw Fail(item, $"expected a mapping with device and limits for {path}, got {item.Kind}");
                var io = new IoDeviceLimit();
                Section(item, path, new()
                {
                    ["device"] = v => io.Device = String(v, path + ".device") ?? "",
                    ["readBps"] = v => io.ReadBps = SizeOrMax(v, path + ".readBps", 1),
                    ["writeBps"] = v => io.WriteBps = SizeOrMax(v, path + ".writeBps", 1),
                    ["readIops"] = v => io.ReadIops = CountOrMax(v, path + ".readIops", 1, ConfigRules.IopsExpected),
                    ["writeIops"] = v => io.WriteIops = CountOrMax(v, path + ".writeIops", 1, ConfigRules.IopsExpected),
                });
                Check(item, ConfigRules.IoDevice(io));
                result.Add(io);
            }
            return result;
        }

        private Dictionary<string, CgroupLimitValue> Hugetlb(Node node)
        {
            var result = new Dictionary<string, CgroupLimitValue>(StringComparer.OrdinalIgnoreCase);
            if (node is ScalarNode { IsNull: true }) return result;
            if (node is not MappingNode map) throw Fail(node, $"expected a mapping of page size: limit for limits.hugetlb (e.g. 2MB: 1G), got {node.Kind}");
            foreach (var (key, value) in map.Entries)
            {
                Check(key, ConfigRules.HugePageSize(key.Value, out string size));
                result[size] = SizeOrMax(value, $"limits.hugetlb.{key.Value}", 0) ?? throw Fail(value, $"limits.hugetlb.{key.Value} needs a size or max");
            }
            return result;
        }

        private List<DeviceRule> Devices(Node node)
        {
            var result = new List<DeviceRule>();
            if (node is ScalarNode { IsNull: true }) return result;
            if (node is not SequenceNode seq) throw Fail(node, $"expected a list for limits.devices (e.g. [deny a, allow c 1:3 rwm]), got {node.Kind}");
            for (int i = 0; i < seq.Items.Count; i++)
            {
                string? text = String(seq.Items[i], $"limits.devices[{i}]");
                Check(seq.Items[i], ConfigRules.DeviceRuleText(text, i, out var rule));
                result.Add(rule!);
            }
            return result;
        }

        private uint? ClassId(Node node)
        {
            string? text = String(node, "limits.netClassId");
            if (text is null) return null;
            bool ok = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
                ? uint.TryParse(text[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out uint v)
                : uint.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out v);
            if (!ok) throw Fail(node, $"invalid value '{text}' for limits.netClassId (expected a tc class handle as a number, e.g. 0x100001 for 10:1)");
            return v;
        }

        private Dictionary<string, uint> NetPrio(Node node)
        {
            var result = new Dictionary<string, uint>(StringComparer.Ordinal);
            if (node is ScalarNode { IsNull: true }) return result;
            if (node is not MappingNode map) throw Fail(node, $"expected a mapping of interface: priority for limits.netPrio, got {node.Kind}");
            foreach (var (key, value) in map.Entries)
            {
                var prio = Integer(value, $"limits.netPrio.{key.Value}", 0, int.MaxValue, ConfigRules.NetPrioExpected)
                    ?? throw Fail(value, $"limits.netPrio.{key.Value} needs a priority");
                Check(key, ConfigRules.NetPrioInterface(key.Value));
                result[key.Value] = (uint)prio;
            }
            return result;
        }
    }
}
