using System.Globalization;

namespace PSContainers.Runtime.Cgroups;

/// <summary>
/// cgroup v1 limits: memory.limit_in_bytes / soft_limit / memsw, cpu.shares / cfs_*, cpuset.*, pids.max,
/// blkio.weight / blkio.throttle.*, hugetlb.*.limit_in_bytes, devices.allow/deny, net_cls, net_prio.
/// </summary>
public sealed partial class CgroupV1Driver
{
    public string CpusOnlineFile { get; init; } = "/sys/devices/system/cpu/online";
    public string NodesOnlineFile { get; init; } = "/sys/devices/system/node/online";
    /// <summary>Where the kernel lists its huge page sizes, and block devices' numbers (overridable for tests).</summary>
    public string HugePagesDir { get; init; } = HugePageSizes.DefaultRoot;
    public string SysClassBlockDir { get; init; } = DeviceNumbers.DefaultSysClassBlock;
    public string DevDir { get; init; } = DeviceNumbers.DefaultDev;

    /// <summary>Mount key of a logical controller name (v2's io is v1's blkio).</summary>
    private static string MountKey(string controller) => controller == "io" ? "blkio" : controller;

    public bool Owns(string controller) => Mounts.ContainsKey(MountKey(controller));

    private string ControllerDir(string controller, string path)
    {
        if (!Mounts.TryGetValue(MountKey(controller), out var root))
            throw new ContainerException("CgroupControllerUnavailable", ContainerErrorKind.NotInstalled,
                $"The cgroup v1 controller '{MountKey(controller)}' is not mounted on this host (mounted: {string.Join(", ", Mounts.Keys.Order())}).", controller);
        return Path.Combine(root, path);
    }

    private static string Num(long v) => v == CgroupLimits.Unlimited ? "-1" : v.ToString(CultureInfo.InvariantCulture);

    private static long? ParseV1(string? text)
    {
        if (string.IsNullOrEmpty(text)) return null;
        var v = long.Parse(text, CultureInfo.InvariantCulture);
        // v1 reports "no limit" as -1 or the largest page-aligned long.
        return v < 0 || v >= 0x7FFFFFFFFFFFF000 ? CgroupLimits.Unlimited : v;
    }

    private static ContainerException NoV1(string limit, string instead) =>
        new("CgroupLimitUnsupported", ContainerErrorKind.InvalidArgument,
            $"{limit} has no cgroup v1 equivalent on this host (its controller is mounted as v1). {instead}", limit);

    public IReadOnlyList<CgroupWrite> PlanLimits(string path, CgroupLimits l)
    {
        var writes = new List<CgroupWrite>();
        void Add(string controller, string file, string value)
        {
            var full = Path.Combine(ControllerDir(controller, path), file);
            if (!File.Exists(full))
                throw new ContainerException("CgroupFileMissing", ContainerErrorKind.NotInstalled,
                    $"{full} does not exist: this kernel's v1 {MountKey(controller)} controller lacks that feature, so the limit cannot be applied.", full);
            var before = CgroupFiles.TryRead(full);
            writes.Add(new CgroupWrite(controller, full, value) { Undo = before is null ? Array.Empty<(string, string)>() : new[] { (full, before) } });
        }

        if (l.MemoryHigh is not null) throw NoV1("MemoryHigh (memory.high)", "Use MemoryMax, or MemoryLow for a soft limit.");
        if (l.MemoryLow is { } low) Add("memory", "memory.soft_limit_in_bytes", Num(low));
        if (l.MemoryMax is not null || l.MemorySwapMax is not null)
        {
            var dir = ControllerDir("memory", path);
            var currentLimit = ParseV1(CgroupFiles.TryRead(Path.Combine(dir, "memory.limit_in_bytes"))) ?? CgroupLimits.Unlimited;
            var limit = l.MemoryMax ?? currentLimit;
            if (l.MemorySwapMax is { } swap)
            {
                // v1 limits memory+swap together: memsw = max + swap.
                if (swap != CgroupLimits.Unlimited && limit == CgroupLimits.Unlimited)
                    throw new ContainerException("SwapNeedsMemoryMax", ContainerErrorKind.InvalidArgument,
                        "On cgroup v1 the swap limit is memory.memsw.limit_in_bytes (memory + swap): set MemoryMax as well as MemorySwapMax.", path);
                var memsw = swap == CgroupLimits.Unlimited || limit == CgroupLimits.Unlimited ? CgroupLimits.Unlimited : checked(limit + swap);
                var currentMemsw = ParseV1(CgroupFiles.TryRead(Path.Combine(dir, "memory.memsw.limit_in_bytes"))) ?? CgroupLimits.Unlimited;
                // The kernel keeps limit <= memsw at every step: pick the order that never breaks it.
                if (l.MemoryMax is not null && limit <= currentMemsw)
                {
                    Add("memory", "memory.limit_in_bytes", Num(limit));
                    Add("memory", "memory.memsw.limit_in_bytes", Num(memsw));
                }
                else
                {
                    Add("memory", "memory.memsw.limit_in_bytes", Num(memsw));
                    if (l.MemoryMax is not null) Add("memory", "memory.limit_in_bytes", Num(limit));
                }
            }
            else Add("memory", "memory.limit_in_bytes", Num(limit));
        }

        if (l.CpuWeight is { } weight) Add("cpu", "cpu.shares", Math.Max(2, weight * 1024L / 100).ToString(CultureInfo.InvariantCulture));
        if (l.CpuPeriod is { } period) Add("cpu", "cpu.cfs_period_us", period.ToString(CultureInfo.InvariantCulture));
        if (l.CpuQuota is { } quota) Add("cpu", "cpu.cfs_quota_us", Num(quota));

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

        if (l.PidsMax is { } pids) Add("pids", "pids.max", pids == CgroupLimits.Unlimited ? "max" : pids.ToString(CultureInfo.InvariantCulture));

        if (l.IoWeight is { } ioWeight)
        {
            var blkio = ControllerDir("io", path);
            // CFQ's blkio.weight on old kernels, BFQ's blkio.bfq.weight on current ones; both take 1..1000.
            var file = File.Exists(Path.Combine(blkio, "blkio.weight")) ? "blkio.weight" : "blkio.bfq.weight";
            if (ioWeight > 1000)
                throw CgroupLimits.Invalid("IoWeight", ioWeight.ToString(CultureInfo.InvariantCulture), $"at most 1000 for the v1 {file} of this host");
            Add("io", file, ioWeight.ToString(CultureInfo.InvariantCulture));
        }
        foreach (var io in l.IoDeviceLimits)
        {
            var dev = DeviceNumbers.ResolveBlock(io.Device, SysClassBlockDir, DevDir);
            foreach (var (value, file) in new[] { (io.ReadBps, "read_bps_device"), (io.WriteBps, "write_bps_device"), (io.ReadIops, "read_iops_device"), (io.WriteIops, "write_iops_device") })
            {
                if (value is not { } v) continue;
                var full = Path.Combine(ControllerDir("io", path), "blkio.throttle." + file);
                var old = (CgroupFiles.TryRead(full) ?? "").Split('\n').FirstOrDefault(x => x.StartsWith(dev + " ", StringComparison.Ordinal)) ?? $"{dev} 0";
                // 0 removes the device's rule: that is v1's "max".
                writes.Add(new CgroupWrite("io", full, $"{dev} {(v == CgroupLimits.Unlimited ? 0 : v)}") { Undo = new[] { (full, old) } });
            }
        }

        foreach (var (size, bytes) in HugePageSizes.Resolve(l.HugetlbMax, HugePagesDir))
            Add("hugetlb", $"hugetlb.{size}.limit_in_bytes", Num(bytes));

        if (l.NetClassId is { } classId) Add("net_cls", "net_cls.classid", classId.ToString(CultureInfo.InvariantCulture));
        foreach (var kv in l.NetPrioIfPrioMap) Add("net_prio", "net_prio.ifpriomap", $"{kv.Key} {kv.Value}");

        if (l.Devices.Count > 0)
        {
            var dir = ControllerDir("devices", path);
            // Undo (run last when rolling back): back to the list in force now.
            var list = (CgroupFiles.TryRead(Path.Combine(dir, "devices.list")) ?? "a *:* rwm").Split('\n', StringSplitOptions.RemoveEmptyEntries);
            var undo = list.Contains("a *:* rwm")
                ? new[] { (Path.Combine(dir, "devices.allow"), "a") }
                : new[] { (Path.Combine(dir, "devices.deny"), "a") }.Concat(list.Select(x => (Path.Combine(dir, "devices.allow"), x))).ToArray();
            foreach (var rule in l.Devices)
            {
                writes.Add(new CgroupWrite("devices", Path.Combine(dir, rule.Allow ? "devices.allow" : "devices.deny"), rule.Spec) { Undo = undo });
                undo = Array.Empty<(string, string)>();
            }
        }
        return writes;
    }

    public void ReadLimits(string path, CgroupLimitReport r, IReadOnlyCollection<string> controllers)
    {
        var versions = (Dictionary<string, string>)r.ControllerVersions;
        string? Read(string controller, string file) =>
            Owns(controller) ? CgroupFiles.TryRead(Path.Combine(ControllerDir(controller, path), file)) : null;
        if (controllers.Contains("memory") && Read("memory", "memory.limit_in_bytes") is { } limit)
        {
            versions["memory"] = Version;
            r.MemoryMax = ParseV1(limit);
            r.MemoryLow = ParseV1(Read("memory", "memory.soft_limit_in_bytes"));
            if (ParseV1(Read("memory", "memory.memsw.limit_in_bytes")) is { } memsw)
                r.MemorySwapMax = memsw == CgroupLimits.Unlimited || r.MemoryMax == CgroupLimits.Unlimited ? CgroupLimits.Unlimited : memsw - r.MemoryMax;
        }
        if (controllers.Contains("cpu") && Read("cpu", "cpu.shares") is { } shares)
        {
            versions["cpu"] = Version;
            r.CpuWeight = (int)Math.Clamp(Math.Round(long.Parse(shares, CultureInfo.InvariantCulture) * 100 / 1024.0), 1, 10000);
            r.CpuQuota = ParseV1(Read("cpu", "cpu.cfs_quota_us"));
            r.CpuPeriod = Read("cpu", "cpu.cfs_period_us") is { } p ? long.Parse(p, CultureInfo.InvariantCulture) : null;
        }
        if (controllers.Contains("cpuset") && Read("cpuset", "cpuset.cpus") is { } cpus)
        {
            versions["cpuset"] = Version;
            r.CpusetCpus = cpus;
            r.CpusetMems = Read("cpuset", "cpuset.mems");
        }
        if (controllers.Contains("pids") && Read("pids", "pids.max") is { } pids)
        {
            versions["pids"] = Version;
            r.PidsMax = pids == "max" ? CgroupLimits.Unlimited : long.Parse(pids, CultureInfo.InvariantCulture);
        }
        if (controllers.Contains("io") && Owns("io"))
        {
            versions["io"] = Version;
            var weight = Read("io", "blkio.weight") ?? Read("io", "blkio.bfq.weight");
            var def = weight?.Split('\n')[0];
            if (def is not null && def.StartsWith("default ", StringComparison.Ordinal)) def = def[8..];
            r.IoWeight = def is not null && int.TryParse(def, CultureInfo.InvariantCulture, out var w) ? w : null;
            var byDevice = new Dictionary<string, IoDeviceLimit>();
            foreach (var file in new[] { "read_bps_device", "write_bps_device", "read_iops_device", "write_iops_device" })
                foreach (var line in (Read("io", "blkio.throttle." + file) ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries))
                {
                    var parts = line.Split(' ');
                    if (!byDevice.TryGetValue(parts[0], out var io)) byDevice[parts[0]] = io = new IoDeviceLimit { Device = parts[0] };
                    var v = long.Parse(parts[1], CultureInfo.InvariantCulture);
                    switch (file)
                    {
                        case "read_bps_device": io.ReadBps = v; break;
                        case "write_bps_device": io.WriteBps = v; break;
                        case "read_iops_device": io.ReadIops = v; break;
                        default: io.WriteIops = v; break;
                    }
                }
            r.IoDeviceLimits.AddRange(byDevice.Values);
        }
        if (controllers.Contains("hugetlb") && Owns("hugetlb"))
        {
            versions["hugetlb"] = Version;
            foreach (var size in HugePageSizes.Available(HugePagesDir))
                if (ParseV1(Read("hugetlb", $"hugetlb.{size}.limit_in_bytes")) is { } h) r.HugetlbMax[size] = h;
        }
        if (controllers.Contains("devices") && Read("devices", "devices.list") is { } list)
        {
            versions["devices"] = Version;
            // devices.list shows what is allowed: "a *:* rwm" when everything is.
            foreach (var line in list.Split('\n', StringSplitOptions.RemoveEmptyEntries))
                r.Devices.Add(line == "a *:* rwm" ? new DeviceRule(true, 'a', null, null, DeviceAccess.All) : DeviceRule.Parse(line, allow: true));
        }
        if (controllers.Contains("net_cls") && Read("net_cls", "net_cls.classid") is { } classId)
        {
            versions["net_cls"] = Version;
            r.NetClassId = uint.Parse(classId, CultureInfo.InvariantCulture);
        }
        if (controllers.Contains("net_prio") && Read("net_prio", "net_prio.ifpriomap") is { } map)
        {
            versions["net_prio"] = Version;
            foreach (var line in map.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var parts = line.Split(' ');
                r.NetPrioIfPrioMap[parts[0]] = uint.Parse(parts[1], CultureInfo.InvariantCulture);
            }
        }
    }

    public void UsageCounters(string path, CgroupUsageReader r, IReadOnlyCollection<string> controllers)
    {
        void Add(string controller, string file, Action<CgroupUsage, string?> apply)
        {
            if (Owns(controller)) r.Add(Path.Combine(ControllerDir(controller, path), file), apply);
        }
        // v1 counts these events in the cgroup of the process they hit, not up the tree: a
        // container's processes are in cgroups below this one (its inner cgroup), so add them up.
        void SumBelow(string controller, string file, string key, Action<CgroupUsage, long> apply)
        {
            if (!Owns(controller)) return;
            r.AddTree(ControllerDir(controller, path), file, (u, texts) =>
                apply(u, texts.Sum(t => CgroupStats.KeyValues(t).GetValueOrDefault(key))));
        }
        if (controllers.Contains("memory"))
        {
            Add("memory", "memory.usage_in_bytes", (u, t) => u.MemoryCurrent = ParseV1(t));
            Add("memory", "memory.max_usage_in_bytes", (u, t) => u.MemoryPeak = ParseV1(t));
            Add("memory", "memory.limit_in_bytes", (u, t) => u.MemoryMax = ParseV1(t));
            Add("memory", "memory.memsw.usage_in_bytes", (u, t) =>
            {
                if (ParseV1(t) is { } memsw && u.MemoryCurrent is { } cur) u.SwapCurrent = Math.Max(0, memsw - cur);
            });
            Add("memory", "memory.failcnt", (u, t) => u.MemoryLimitHits = ParseV1(t));
            SumBelow("memory", "memory.oom_control", "oom_kill", (u, v) => u.OomKills = v);
        }
        if (controllers.Contains("cpuacct"))
        {
            Add("cpuacct", "cpuacct.usage", (u, t) =>
            {
                if (long.TryParse(t, NumberStyles.Integer, CultureInfo.InvariantCulture, out var ns)) u.CpuUsage = TimeSpan.FromTicks(ns / 100);
            });
            // cpuacct.stat counts USER_HZ (100 per second) ticks.
            Add("cpuacct", "cpuacct.stat", (u, t) =>
            {
                if (u.CpuUsage is null) return;
                var stat = CgroupStats.KeyValues(t);
                if (stat.TryGetValue("user", out var user)) u.CpuUser = TimeSpan.FromMilliseconds(user * 10);
                if (stat.TryGetValue("system", out var sys)) u.CpuSystem = TimeSpan.FromMilliseconds(sys * 10);
            });
        }
        if (controllers.Contains("cpu"))
            Add("cpu", "cpu.stat", (u, t) =>
            {
                var stat = CgroupStats.KeyValues(t);
                if (stat.TryGetValue("nr_periods", out var p)) u.CpuPeriods = p;
                if (stat.TryGetValue("nr_throttled", out var n)) u.CpuThrottledPeriods = n;
                if (stat.TryGetValue("throttled_time", out var tt)) u.CpuThrottledTime = TimeSpan.FromTicks(tt / 100);
            });
        if (controllers.Contains("pids"))
        {
            Add("pids", "pids.current", (u, t) => u.PidsCurrent = string.IsNullOrEmpty(t) ? null : long.Parse(t, CultureInfo.InvariantCulture));
            Add("pids", "pids.max", (u, t) => u.PidsMax = string.IsNullOrEmpty(t) ? null : t == "max" ? CgroupLimits.Unlimited : long.Parse(t, CultureInfo.InvariantCulture));
            SumBelow("pids", "pids.events", "max", (u, v) => u.PidsLimitHits = v);
        }
        if (controllers.Contains("io") && Owns("io"))
        {
            var devices = new SortedDictionary<string, long[]>(StringComparer.Ordinal);
            void Parse(string? text, int offset)
            {
                foreach (var line in (text ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries))
                {
                    var parts = line.Split(' ');
                    if (parts.Length != 3 || parts[1] is not ("Read" or "Write")) continue;
                    if (!devices.TryGetValue(parts[0], out var v)) devices[parts[0]] = v = new long[4];
                    v[offset + (parts[1] == "Read" ? 0 : 1)] = long.Parse(parts[2], CultureInfo.InvariantCulture);
                }
            }
            Add("io", "blkio.throttle.io_service_bytes_recursive", (u, t) => { devices.Clear(); Parse(t, 0); });
            Add("io", "blkio.throttle.io_serviced_recursive", (u, t) =>
            {
                Parse(t, 2);
                foreach (var kv in devices) u.Io.Add(new IoDeviceUsage(kv.Key, kv.Value[0], kv.Value[1], kv.Value[2], kv.Value[3]));
            });
        }
    }
}
