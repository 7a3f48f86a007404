using System.Globalization;

namespace PSContainers.Runtime.Cgroups;

/// <summary>cgroup v2 limits: memory.*, cpu.weight, cpu.max, cpuset.*, pids.max, io.*, hugetlb.*, devices through eBPF.</summary>
public sealed partial class CgroupV2Driver
{
    /// <summary>Where online cpus and memory nodes are listed (overridable for tests of other machines).</summary>
    public string CpusOnlineFile { get; init; } = "/sys/devices/system/cpu/online";
    public string NodesOnlineFile { get; init; } = "/sys/devices/system/node/online";
    /// <summary>Where the kernel lists its huge page sizes, and block devices' numbers (overridable for tests).</summary>
    public string HugePagesDir { get; init; } = HugePageSizes.DefaultRoot;
    public string SysClassBlockDir { get; init; } = DeviceNumbers.DefaultSysClassBlock;
    public string DevDir { get; init; } = DeviceNumbers.DefaultDev;

    private static string Num(long v) => v == CgroupLimits.Unlimited ? "max" : v.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// Makes sure every ancestor of <paramref name="path"/> delegates <paramref name="controllers"/>
    /// (devices need none: they are an eBPF program). Errors name the missing controller.
    /// </summary>
    public void EnableFor(string path, IReadOnlyCollection<string> controllers)
    {
        var needed = controllers.Where(c => c != "devices").ToArray();
        if (needed.Length == 0) return;
        var current = MountPoint;
        foreach (var part in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            EnableControllers(current, needed);
            current = Path.Combine(current, part);
        }
    }

    public IReadOnlyList<CgroupWrite> PlanLimits(string path, CgroupLimits l)
    {
        var dir = Dir(path);
        var writes = new List<CgroupWrite>();
        void Add(string controller, string file, string value)
        {
            var full = Path.Combine(dir, file);
            var before = CgroupFiles.TryRead(full);
            writes.Add(new CgroupWrite(controller, full, value) { Undo = before is null ? Array.Empty<(string, string)>() : new[] { (full, before) } });
        }

        if (l.MemoryLow is { } low) Add("memory", "memory.low", Num(low));
        if (l.MemoryHigh is { } high) Add("memory", "memory.high", Num(high));
        if (l.MemoryMax is { } max) Add("memory", "memory.max", Num(max));
        if (l.MemorySwapMax is { } swap) Add("memory", "memory.swap.max", Num(swap));

        if (l.CpuWeight is { } weight) Add("cpu", "cpu.weight", weight.ToString(CultureInfo.InvariantCulture));
        if (l.CpuQuota is not null || l.CpuPeriod is not null)
        {
            // cpu.max is "QUOTA PERIOD": keep the half that is not being changed.
            var currentText = CgroupFiles.TryRead(Path.Combine(dir, "cpu.max"));
            var current = (string.IsNullOrEmpty(currentText) ? "max 100000" : currentText).Split(' ');
            var quota = l.CpuQuota is { } q ? Num(q) : current[0];
            var period = l.CpuPeriod ?? (current.Length > 1 ? long.Parse(current[1], CultureInfo.InvariantCulture) : CgroupLimits.DefaultCpuPeriod);
            Add("cpu", "cpu.max", $"{quota} {period}");
        }

        if (l.CpusetCpus is { } cpus)
        {
            CpuList.RequireOnline(cpus, "CpusetCpus", CpusOnlineFile, "cpu(s)");
            Add("cpuset", "cpuset.cpus", cpus);
        }
        if (l.CpusetMems is { } mems)
        {
            CpuList.RequireOnline(mems, "CpusetMems", NodesOnlineFile, "memory node(s)");
            Add("cpuset", "cpuset.mems", mems);
        }

        if (l.PidsMax is { } pids) Add("pids", "pids.max", Num(pids));

        if (l.IoWeight is { } ioWeight) Add("io", "io.weight", $"default {ioWeight}");
        if (l.IoDeviceLimits.Count > 0)
        {
            var file = Path.Combine(dir, "io.max");
            var before = (CgroupFiles.TryRead(file) ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries);
            foreach (var io in l.IoDeviceLimits)
            {
                var dev = DeviceNumbers.ResolveBlock(io.Device, SysClassBlockDir, DevDir);
                var parts = new List<string> { dev };
                if (io.ReadBps is { } a) parts.Add("rbps=" + Num(a));
                if (io.WriteBps is { } b) parts.Add("wbps=" + Num(b));
                if (io.ReadIops is { } c) parts.Add("riops=" + Num(c));
                if (io.WriteIops is { } d) parts.Add("wiops=" + Num(d));
                var old = before.FirstOrDefault(x => x.StartsWith(dev + " ", StringComparison.Ordinal)) ?? $"{dev} rbps=max wbps=max riops=max wiops=max";
                writes.Add(new CgroupWrite("io", file, string.Join(' ', parts)) { Undo = new[] { (file, old) } });
            }
        }

        foreach (var (size, bytes) in HugePageSizes.Resolve(l.HugetlbMax, HugePagesDir))
            Add("hugetlb", $"hugetlb.{size}.max", Num(bytes));

        if (l.NetClassId is not null || l.NetPrioIfPrioMap.Count > 0)
            throw new ContainerException("CgroupControllerUnavailable", ContainerErrorKind.NotInstalled,
                $"{(l.NetClassId is not null ? "net_cls" : "net_prio")} is a cgroup v1 controller with no v2 counterpart, and it is not mounted as v1 on this host. " +
                "On cgroup v2, classify traffic by cgroup path instead (nftables: meta cgroup / socket cgroupv2).", path);

        if (l.Devices.Count > 0)
        {
            // The program replaces the one attached before: it enforces the earlier rules followed by the new ones.
            var rules = CgroupDeviceProgram.ReadRules(dir)?.ToList() ?? new List<DeviceRule>();
            rules.AddRange(l.Devices);
            writes.Add(new CgroupWrite("devices", dir, string.Join(", ", rules)) { DeviceProgram = rules });
        }
        return writes;
    }

    public void ReadLimits(string path, CgroupLimitReport r, IReadOnlyCollection<string> controllers)
    {
        var dir = Dir(path);
        string? Read(string f) => CgroupFiles.TryRead(Path.Combine(dir, f));
        long? Value(string f) => Read(f) is { Length: > 0 } t ? (t == "max" ? CgroupLimits.Unlimited : long.Parse(t, CultureInfo.InvariantCulture)) : null;
        var versions = (Dictionary<string, string>)r.ControllerVersions;
        if (controllers.Contains("memory") && Read("memory.max") is not null)
        {
            versions["memory"] = Version;
            r.MemoryMax = Value("memory.max");
            r.MemoryHigh = Value("memory.high");
            r.MemorySwapMax = Value("memory.swap.max");
            r.MemoryLow = Value("memory.low");
        }
        if (controllers.Contains("cpu") && Read("cpu.max") is { Length: > 0 } cpuMax)
        {
            versions["cpu"] = Version;
            r.CpuWeight = Read("cpu.weight") is { Length: > 0 } w ? int.Parse(w, CultureInfo.InvariantCulture) : null;
            var parts = cpuMax.Split(' ');
            r.CpuQuota = parts[0] == "max" ? CgroupLimits.Unlimited : long.Parse(parts[0], CultureInfo.InvariantCulture);
            r.CpuPeriod = long.Parse(parts[1], CultureInfo.InvariantCulture);
        }
        if (controllers.Contains("cpuset") && Read("cpuset.cpus") is { } cpus)
        {
            versions["cpuset"] = Version;
            // An empty cpuset.cpus means "inherited": report what is effective.
            r.CpusetCpus = cpus.Length > 0 ? cpus : Read("cpuset.cpus.effective");
            var mems = Read("cpuset.mems");
            r.CpusetMems = string.IsNullOrEmpty(mems) ? Read("cpuset.mems.effective") : mems;
        }
        if (controllers.Contains("pids") && Read("pids.max") is not null)
        {
            versions["pids"] = Version;
            r.PidsMax = Value("pids.max");
        }
        if (controllers.Contains("io") && Read("io.max") is { } ioMax)
        {
            versions["io"] = Version;
            var weight = Read("io.weight");
            var def = weight?.Split('\n').FirstOrDefault(x => x.StartsWith("default ", StringComparison.Ordinal));
            r.IoWeight = def is null ? null : int.Parse(def[8..], CultureInfo.InvariantCulture);
            foreach (var line in ioMax.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var parts = line.Split(' ');
                var io = new IoDeviceLimit { Device = parts[0] };
                foreach (var kv in parts.Skip(1))
                {
                    var eq = kv.IndexOf('=');
                    long v = kv[(eq + 1)..] == "max" ? CgroupLimits.Unlimited : long.Parse(kv[(eq + 1)..], CultureInfo.InvariantCulture);
                    switch (kv[..eq])
                    {
                        case "rbps": io.ReadBps = v; break;
                        case "wbps": io.WriteBps = v; break;
                        case "riops": io.ReadIops = v; break;
                        case "wiops": io.WriteIops = v; break;
                    }
                }
                r.IoDeviceLimits.Add(io);
            }
        }
        if (controllers.Contains("hugetlb"))
            foreach (var size in HugePageSizes.Available(HugePagesDir))
                if (Value($"hugetlb.{size}.max") is { } h)
                {
                    versions["hugetlb"] = Version;
                    r.HugetlbMax[size] = h;
                }
        if (controllers.Contains("devices") && CgroupDeviceProgram.ReadRules(dir) is { } rules)
        {
            versions["devices"] = Version;
            r.Devices.AddRange(rules);
        }
    }

    public void UsageCounters(string path, CgroupUsageReader r, IReadOnlyCollection<string> controllers)
    {
        var dir = Dir(path);
        void Add(string f, Action<CgroupUsage, string?> apply) => r.Add(Path.Combine(dir, f), apply);
        static long? Value(string? t) => t is { Length: > 0 } ? (t == "max" ? CgroupLimits.Unlimited : long.Parse(t, CultureInfo.InvariantCulture)) : null;
        if (controllers.Contains("memory"))
        {
            Add("memory.current", (u, t) => u.MemoryCurrent = Value(t));
            Add("memory.peak", (u, t) => u.MemoryPeak = Value(t));
            Add("memory.max", (u, t) => u.MemoryMax = Value(t));
            Add("memory.swap.current", (u, t) => u.SwapCurrent = Value(t));
            Add("memory.events", (u, t) =>
            {
                var events = CgroupStats.KeyValues(t);
                u.MemoryLimitHits = events.GetValueOrDefault("max");
                u.OomKills = events.GetValueOrDefault("oom_kill");
            });
        }
        if (controllers.Contains("cpu") || controllers.Contains("cpuacct"))
        {
            var throttling = controllers.Contains("cpu");
            // cpu.stat is a core file: usage is there even without the cpu controller.
            Add("cpu.stat", (u, t) =>
            {
                var stat = CgroupStats.KeyValues(t);
                if (stat.TryGetValue("usage_usec", out var usage)) u.CpuUsage = TimeSpan.FromTicks(usage * 10);
                if (stat.TryGetValue("user_usec", out var user)) u.CpuUser = TimeSpan.FromTicks(user * 10);
                if (stat.TryGetValue("system_usec", out var sys)) u.CpuSystem = TimeSpan.FromTicks(sys * 10);
                if (!throttling) return;
                if (stat.TryGetValue("nr_periods", out var p)) u.CpuPeriods = p;
                if (stat.TryGetValue("nr_throttled", out var n)) u.CpuThrottledPeriods = n;
                if (stat.TryGetValue("throttled_usec", out var tu)) u.CpuThrottledTime = TimeSpan.FromTicks(tu * 10);
            });
        }
        if (controllers.Contains("pids"))
        {
            Add("pids.current", (u, t) => u.PidsCurrent = Value(t));
            Add("pids.max", (u, t) => u.PidsMax = Value(t));
            // Before Linux 6.13 (no pids.events.local) a refused fork is counted in the forking
            // process's cgroup, not up the tree: the container's processes are below this one.
            static void Hits(CgroupUsage u, string?[] texts) => u.PidsLimitHits = texts.Sum(t => CgroupStats.KeyValues(t).GetValueOrDefault("max"));
            if (File.Exists(Path.Combine(dir, "pids.events.local"))) r.Add(Path.Combine(dir, "pids.events"), (u, t) => Hits(u, new[] { t }));
            else r.AddTree(dir, "pids.events", Hits);
        }
        if (controllers.Contains("io"))
            Add("io.stat", (u, t) =>
            {
                foreach (var line in (t ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries))
                {
                    var parts = line.Split(' ');
                    var kv = parts.Skip(1).Select(p => p.Split('=')).Where(p => p.Length == 2)
                        .ToDictionary(p => p[0], p => long.Parse(p[1], CultureInfo.InvariantCulture));
                    u.Io.Add(new IoDeviceUsage(parts[0], kv.GetValueOrDefault("rbytes"), kv.GetValueOrDefault("wbytes"),
                        kv.GetValueOrDefault("rios"), kv.GetValueOrDefault("wios")));
                }
            });
    }
}

internal static class CgroupStats
{
    /// <summary>"key value" lines (memory.events, cpu.stat, memory.oom_control) into a dictionary.</summary>
    public static Dictionary<string, long> KeyValues(string? text)
    {
        var d = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var line in (text ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var sp = line.IndexOf(' ');
            if (sp > 0 && long.TryParse(line[(sp + 1)..].Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v)) d[line[..sp]] = v;
        }
        return d;
    }
}
