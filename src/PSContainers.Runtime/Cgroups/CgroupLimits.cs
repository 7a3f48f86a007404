using System.Globalization;
using System.Text.RegularExpressions;
using PSContainers.Runtime.Config;

namespace PSContainers.Runtime.Cgroups;

/// <summary>
/// Resource limits of one cgroup, whatever the cgroup version. Null means "leave as is" (not set);
/// <see cref="Unlimited"/> means "no limit" (v2 "max", v1 -1). Values use cgroup v2 units (cpu.weight
/// 1..10000, io.weight 1..10000, quota in microseconds per period); the v1 driver converts.
/// Everything that can be checked without the machine is checked by <see cref="Validate"/>; the
/// machine-dependent checks (cpus online, devices present, hugepage sizes) happen when a driver plans
/// the writes.
/// </summary>
public class CgroupLimits
{
    /// <summary>"No limit": written as "max" on v2 and -1 on v1.</summary>
    public const long Unlimited = long.MaxValue;
    public const long DefaultCpuPeriod = 100_000;

    /// <summary>Hard memory limit in bytes (v2 memory.max, v1 memory.limit_in_bytes).</summary>
    public CgroupLimitValue? MemoryMax { get; set; }
    /// <summary>Throttling threshold in bytes (v2 memory.high; no v1 equivalent).</summary>
    public CgroupLimitValue? MemoryHigh { get; set; }
    /// <summary>Swap the cgroup may use, in bytes (v2 memory.swap.max; v1 memory.memsw = max + swap).</summary>
    public CgroupLimitValue? MemorySwapMax { get; set; }
    /// <summary>Protected memory / reservation in bytes (v2 memory.low, v1 memory.soft_limit_in_bytes).</summary>
    public CgroupLimitValue? MemoryLow { get; set; }
    /// <summary>Relative CPU weight 1..10000, default 100 (v2 cpu.weight; v1 cpu.shares = weight*1024/100).</summary>
    public int? CpuWeight { get; set; }
    /// <summary>CPU time in microseconds per <see cref="CpuPeriod"/>; <see cref="Unlimited"/> = no quota.</summary>
    public CgroupLimitValue? CpuQuota { get; set; }
    /// <summary>Quota period in microseconds, 1000..1000000 (default 100000).</summary>
    public long? CpuPeriod { get; set; }
    /// <summary>CPUs the cgroup may run on, kernel list syntax (0-1,3).</summary>
    public string? CpusetCpus { get; set; }
    /// <summary>Memory nodes the cgroup may allocate from, kernel list syntax.</summary>
    public string? CpusetMems { get; set; }
    /// <summary>Maximum number of tasks (processes and threads); <see cref="Unlimited"/> = max.</summary>
    public CgroupLimitValue? PidsMax { get; set; }
    /// <summary>Relative I/O weight 1..10000 (v2 io.weight; v1 blkio.weight / blkio.bfq.weight take 1..1000).</summary>
    public int? IoWeight { get; set; }
    /// <summary>Per-device I/O throttling.</summary>
    public List<IoDeviceLimit> IoDeviceLimits { get; set; } = new();
    /// <summary>hugetlb limit in bytes per page size ("2MB", "1GB").</summary>
    public Dictionary<string, CgroupLimitValue> HugetlbMax { get; set; } = new(StringComparer.OrdinalIgnoreCase);
    /// <summary>Device access rules, applied in order (the last matching rule decides).</summary>
    public List<DeviceRule> Devices { get; set; } = new();
    /// <summary>v1 net_cls.classid (a tc class handle, e.g. 0x100001 for 10:1).</summary>
    public uint? NetClassId { get; set; }
    /// <summary>v1 net_prio.ifpriomap: interface name -> priority.</summary>
    public Dictionary<string, uint> NetPrioIfPrioMap { get; set; } = new(StringComparer.Ordinal);

    /// <summary>True when no limit at all is set.</summary>
    public bool IsEmpty => Controllers().Count == 0;

    /// <summary>The controllers these limits are applied through (logical v2 names: io, not blkio).</summary>
    public IReadOnlyCollection<string> Controllers()
    {
        var c = new List<string>();
        if (MemoryMax is not null || MemoryHigh is not null || MemorySwapMax is not null || MemoryLow is not null) c.Add("memory");
        if (CpuWeight is not null || CpuQuota is not null || CpuPeriod is not null) c.Add("cpu");
        if (CpusetCpus is not null || CpusetMems is not null) c.Add("cpuset");
        if (PidsMax is not null) c.Add("pids");
        if (IoWeight is not null || IoDeviceLimits.Count > 0) c.Add("io");
        if (HugetlbMax.Count > 0) c.Add("hugetlb");
        if (Devices.Count > 0) c.Add("devices");
        if (NetClassId is not null) c.Add("net_cls");
        if (NetPrioIfPrioMap.Count > 0) c.Add("net_prio");
        return c;
    }

    /// <summary>A copy holding only the limits of <paramref name="controllers"/>.</summary>
    public CgroupLimits Only(IReadOnlyCollection<string> controllers)
    {
        bool has(string c) => controllers.Contains(c);
        return new CgroupLimits
        {
            MemoryMax = has("memory") ? MemoryMax : null,
            MemoryHigh = has("memory") ? MemoryHigh : null,
            MemorySwapMax = has("memory") ? MemorySwapMax : null,
            MemoryLow = has("memory") ? MemoryLow : null,
            CpuWeight = has("cpu") ? CpuWeight : null,
            CpuQuota = has("cpu") ? CpuQuota : null,
            CpuPeriod = has("cpu") ? CpuPeriod : null,
            CpusetCpus = has("cpuset") ? CpusetCpus : null,
            CpusetMems = has("cpuset") ? CpusetMems : null,
            PidsMax = has("pids") ? PidsMax : null,
            IoWeight = has("io") ? IoWeight : null,
            IoDeviceLimits = has("io") ? IoDeviceLimits.ToList() : new(),
            HugetlbMax = has("hugetlb") ? new(HugetlbMax, StringComparer.OrdinalIgnoreCase) : new(StringComparer.OrdinalIgnoreCase),
            Devices = has("devices") ? Devices.ToList() : new(),
            NetClassId = has("net_cls") ? NetClassId : null,
            NetPrioIfPrioMap = has("net_prio") ? new(NetPrioIfPrioMap) : new(),
        };
    }

    /// <summary>
    /// Overlays <paramref name="other"/>: its set values replace ours, its device rules are appended
    /// (rules are cumulative, as with devices.allow/deny), io limits replace those of the same device.
    /// </summary>
    public void MergeFrom(CgroupLimits other)
    {
        MemoryMax = other.MemoryMax ?? MemoryMax;
        MemoryHigh = other.MemoryHigh ?? MemoryHigh;
        MemorySwapMax = other.MemorySwapMax ?? MemorySwapMax;
        MemoryLow = other.MemoryLow ?? MemoryLow;
        CpuWeight = other.CpuWeight ?? CpuWeight;
        CpuQuota = other.CpuQuota ?? CpuQuota;
        CpuPeriod = other.CpuPeriod ?? CpuPeriod;
        CpusetCpus = other.CpusetCpus ?? CpusetCpus;
        CpusetMems = other.CpusetMems ?? CpusetMems;
        PidsMax = other.PidsMax ?? PidsMax;
        IoWeight = other.IoWeight ?? IoWeight;
        foreach (var io in other.IoDeviceLimits)
        {
            IoDeviceLimits.RemoveAll(x => x.Device == io.Device);
            IoDeviceLimits.Add(io);
        }
        foreach (var kv in other.HugetlbMax) HugetlbMax[kv.Key] = kv.Value;
        Devices.AddRange(other.Devices);
        NetClassId = other.NetClassId ?? NetClassId;
        foreach (var kv in other.NetPrioIfPrioMap) NetPrioIfPrioMap[kv.Key] = kv.Value;
    }

    /// <summary>Checks every value that does not depend on the machine; the message names the limit.</summary>
    public void Validate()
    {
        Range(MemoryMax, "MemoryMax", 0, MaxSize);
        Range(MemoryHigh, "MemoryHigh", 0, MaxSize);
        Range(MemorySwapMax, "MemorySwapMax", 0, MaxSize);
        Range(MemoryLow, "MemoryLow", 0, MaxSize);
        if (CpuWeight is { } w && (w < 1 || w > 10000)) throw Invalid("CpuWeight", w.ToString(CultureInfo.InvariantCulture), "a weight from 1 to 10000 (default 100)");
        if (CpuPeriod is { } p && (p < 1000 || p > 1_000_000)) throw Invalid("CpuPeriod", p.ToString(CultureInfo.InvariantCulture), "microseconds from 1000 to 1000000");
        if (CpuQuota is { } q && q != Unlimited && q < 1000) throw Invalid("CpuQuota", q.ToString(CultureInfo.InvariantCulture), "at least 1000 microseconds per period (0.01 CPU at the default period), or max");
        if (CpusetCpus is not null) CpuList.Parse(CpusetCpus, "CpusetCpus");
        if (CpusetMems is not null) CpuList.Parse(CpusetMems, "CpusetMems");
        Range(PidsMax, "PidsMax", 0);
        if (IoWeight is { } iw && (iw < 1 || iw > 10000)) throw Invalid("IoWeight", iw.ToString(CultureInfo.InvariantCulture), "a weight from 1 to 10000 (default 100)");
        foreach (var io in IoDeviceLimits) io.Validate();
        foreach (var kv in HugetlbMax)
        {
            HugePageSizes.Parse(kv.Key);
            Range(kv.Value, $"Hugetlb[{kv.Key}]", 0);
        }
        foreach (var kv in NetPrioIfPrioMap)
            if (kv.Key.Length is 0 or > 15 || kv.Key.Any(ch => ch is ' ' or '/' or '\n' or '\0'))
                throw Invalid("NetPrioIfPrioMap", kv.Key, "an interface name of 1 to 15 characters without spaces or '/'");
    }

    private static void Range(long? value, string what, long min)
    {
        if (value is { } v && v < min)
            throw Invalid(what, v.ToString(CultureInfo.InvariantCulture), $"a value of at least {min}, or max for no limit");
    }

    /// <summary>The largest memory size taken (1 EiB), as in config.yaml; larger is an error, not "no limit".</summary>
    public const long MaxSize = 1L << 60;

    private static void Range(long? value, string what, long min, long max)
    {
        if (value is { } v && v != Unlimited && (v < min || v > max))
            throw Invalid(what, v.ToString(CultureInfo.InvariantCulture), $"a size from {Sizes.Format(min)} to {Sizes.Format(max)}, or max for no limit");
    }

    internal static ContainerException Invalid(string what, string value, string expected) =>
        new("InvalidCgroupLimit", ContainerErrorKind.InvalidArgument, $"Invalid value '{value}' for {what}: expected {expected}.", what);

    /// <summary>"1.5" CPUs -> quota microseconds for the period.</summary>
    public static long CpusToQuota(double cpus, long period)
    {
        if (double.IsNaN(cpus) || cpus <= 0 || cpus > 100_000)
            throw Invalid("CpuMax", cpus.ToString(CultureInfo.InvariantCulture), "a positive number of CPUs, e.g. 1.5 or 0.25");
        var quota = (long)Math.Round(cpus * period);
        if (quota < 1000)
            throw Invalid("CpuMax", cpus.ToString(CultureInfo.InvariantCulture), $"at least {1000.0 / period:0.###} CPU at a {period} us period (the kernel's minimum quota is 1000 us)");
        return quota;
    }

    /// <summary>Parses "max"/"unlimited"/"-1" as <see cref="Unlimited"/>, else a size (512M, 1G, bytes).</summary>
    public static long ParseSizeOrMax(string text, string what)
    {
        if (IsMax(text)) return Unlimited;
        if (text.TrimStart().StartsWith('-')) throw Invalid(what, text, "a size of 0 or more (512M, 1G) or max");
        return Sizes.Parse(text, what);
    }

    public static long ParseCountOrMax(string text, string what)
    {
        if (IsMax(text)) return Unlimited;
        if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
            throw Invalid(what, text, "a whole number of 0 or more, or max");
        return n;
    }

    public static bool IsMax(string text) => text.Trim().ToLowerInvariant() is "max" or "unlimited" or "none";

    public static string FormatSize(long v) => v == Unlimited ? "max" : Sizes.Format(v);
}

/// <summary>Per-device I/O throttling: device by path (/dev/vda) or major:minor, limits per second.</summary>
public sealed class IoDeviceLimit
{
    public string Device { get; set; } = "";
    public CgroupLimitValue? ReadBps { get; set; }
    public CgroupLimitValue? WriteBps { get; set; }
    public CgroupLimitValue? ReadIops { get; set; }
    public CgroupLimitValue? WriteIops { get; set; }

    public void Validate()
    {
        if (!DeviceNumbers.LooksLikeDevice(Device))
            throw CgroupLimits.Invalid("IoDeviceLimit.Device", Device, "a block device path (/dev/vda) or major:minor (254:0)");
        if (ReadBps is null && WriteBps is null && ReadIops is null && WriteIops is null)
            throw CgroupLimits.Invalid("IoDeviceLimit", Device, "at least one of readBps, writeBps, readIops, writeIops");
        foreach (var (v, n) in new[] { (ReadBps, "ReadBps"), (WriteBps, "WriteBps"), (ReadIops, "ReadIops"), (WriteIops, "WriteIops") })
            if (v is { } x && x <= 0) throw CgroupLimits.Invalid(n, x.ToString(CultureInfo.InvariantCulture), "a positive number per second, or max");
    }

    public override string ToString() =>
        $"{Device}" + (ReadBps is { } a ? $" rbps={CgroupLimits.FormatSize(a)}" : "") + (WriteBps is { } b ? $" wbps={CgroupLimits.FormatSize(b)}" : "")
        + (ReadIops is { } c ? $" riops={(c == CgroupLimits.Unlimited ? "max" : c)}" : "") + (WriteIops is { } d ? $" wiops={(d == CgroupLimits.Unlimited ? "max" : d)}" : "");

    /// <summary>Parses "/dev/vda rbps=10M wbps=max riops=100" (the v2 io.max spelling, device by path or number).</summary>
    public static IoDeviceLimit Parse(string text)
    {
        var parts = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length < 2) throw CgroupLimits.Invalid("IoDeviceLimit", text, "'DEVICE key=value...' with keys rbps, wbps, riops, wiops, e.g. '/dev/vda rbps=10M wiops=100'");
        var io = new IoDeviceLimit { Device = parts[0] };
        foreach (var kv in parts.Skip(1))
        {
            var eq = kv.IndexOf('=');
            if (eq <= 0) throw CgroupLimits.Invalid("IoDeviceLimit", text, "key=value pairs with keys rbps, wbps, riops, wiops");
            var key = kv[..eq].ToLowerInvariant();
            var value = kv[(eq + 1)..];
            switch (key)
            {
                case "rbps": io.ReadBps = CgroupLimits.ParseSizeOrMax(value, "rbps"); break;
                case "wbps": io.WriteBps = CgroupLimits.ParseSizeOrMax(value, "wbps"); break;
                case "riops": io.ReadIops = CgroupLimits.ParseCountOrMax(value, "riops"); break;
                case "wiops": io.WriteIops = CgroupLimits.ParseCountOrMax(value, "wiops"); break;
                default: throw CgroupLimits.Invalid("IoDeviceLimit", kv, "one of the keys rbps, wbps, riops, wiops");
            }
        }
        io.Validate();
        return io;
    }
}

/// <summary>Kernel cpu/node list syntax: "0-3,5".</summary>
public static class CpuList
{
    private static readonly Regex Syntax = new(@"^\d+(-\d+)?(,\d+(-\d+)?)*$", RegexOptions.CultureInvariant);

    public static SortedSet<int> Parse(string text, string what)
    {
        var set = new SortedSet<int>();
        var t = text.Trim();
        if (t.Length == 0) return set;
        if (!Syntax.IsMatch(t)) throw CgroupLimits.Invalid(what, text, "a list like 0-3,5");
        foreach (var part in t.Split(','))
        {
            var ends = part.Split('-');
            int a = int.Parse(ends[0], CultureInfo.InvariantCulture), b = ends.Length > 1 ? int.Parse(ends[1], CultureInfo.InvariantCulture) : a;
            if (b < a) throw CgroupLimits.Invalid(what, text, $"ranges low-high (got {part})");
            if (b - a > 65536) throw CgroupLimits.Invalid(what, text, "a range of at most 65536 entries");
            for (var i = a; i <= b; i++) set.Add(i);
        }
        return set;
    }

    /// <summary>Checks every cpu (or node) of <paramref name="text"/> is in <paramref name="onlineFile"/>.</summary>
    public static void RequireOnline(string text, string what, string onlineFile, string noun)
    {
        var wanted = Parse(text, what);
        var onlineText = CgroupFiles.TryRead(onlineFile);
        if (onlineText is null) return; // no NUMA information: the kernel will judge
        var online = Parse(onlineText, onlineFile);
        var missing = wanted.Where(c => !online.Contains(c)).ToArray();
        if (missing.Length > 0)
            throw new ContainerException("CgroupCpusNotOnline", ContainerErrorKind.InvalidArgument,
                $"Invalid value '{text}' for {what}: {noun} {string.Join(",", missing)} not on this machine (online: {onlineText}).", what);
    }
}

/// <summary>Huge page sizes as the cgroup files name them: 64KB, 2MB, 1GB.</summary>
public static class HugePageSizes
{
    /// <summary>Normalizes "2M", "2MB", "2048kB" -> "2MB"; error for anything else.</summary>
    public static string Parse(string text)
    {
        if (!Sizes.TryParse(text, out var bytes) || bytes < 4096 || (bytes & (bytes - 1)) != 0)
            throw CgroupLimits.Invalid("hugetlb page size", text, "a power-of-two page size like 2MB or 1GB");
        return Name(bytes);
    }

    public static string Name(long bytes) =>
        bytes >= 1L << 30 ? $"{bytes >> 30}GB" : bytes >= 1L << 20 ? $"{bytes >> 20}MB" : $"{bytes >> 10}KB";

    /// <summary>
    /// The limits of <paramref name="limits"/> with normalized page sizes, each checked against the
    /// sizes this kernel has (both drivers name the control file after the size).
    /// </summary>
    public static IEnumerable<(string Size, long Bytes)> Resolve(IReadOnlyDictionary<string, CgroupLimitValue> limits, string root = DefaultRoot)
    {
        if (limits.Count == 0) yield break;
        var available = Available(root);
        foreach (var (text, bytes) in limits)
        {
            var size = Parse(text);
            if (!available.Contains(size))
                throw new ContainerException("HugePageSizeUnavailable", ContainerErrorKind.InvalidArgument,
                    $"This kernel has no {size} huge pages (available: {(available.Count == 0 ? "none" : string.Join(", ", available))}).", text);
            yield return (size, bytes);
        }
    }

    /// <summary>The page sizes this kernel supports (from /sys/kernel/mm/hugepages).</summary>
    public const string DefaultRoot = "/sys/kernel/mm/hugepages";

    public static IReadOnlyList<string> Available(string root = DefaultRoot)
    {
        if (!Directory.Exists(root)) return Array.Empty<string>();
        return Directory.EnumerateDirectories(root).Select(Path.GetFileName)
            .Where(n => n!.StartsWith("hugepages-", StringComparison.Ordinal) && n.EndsWith("kB", StringComparison.Ordinal))
            .Select(n => Name(long.Parse(n!["hugepages-".Length..^2], CultureInfo.InvariantCulture) * 1024)).Order().ToArray();
    }
}

/// <summary>Device numbers: "254:0", or the st_rdev of a device node (/dev/vda) read from sysfs.</summary>
public static class DeviceNumbers
{
    private static readonly Regex MajorMinor = new(@"^(\d+):(\d+)$", RegexOptions.CultureInvariant);

    public static bool LooksLikeDevice(string text) => MajorMinor.IsMatch(text) || text.StartsWith("/dev/", StringComparison.Ordinal);

    public const string DefaultSysClassBlock = "/sys/class/block";
    public const string DefaultDev = "/dev";

    /// <summary>
    /// Resolves a block device to "major:minor": a /dev path is looked up under <paramref name="devDir"/>
    /// and its numbers are read from <paramref name="sysClassBlock"/>/NAME/dev (both overridable for tests).
    /// </summary>
    public static string ResolveBlock(string device, string sysClassBlock = DefaultSysClassBlock, string devDir = DefaultDev)
    {
        if (MajorMinor.IsMatch(device)) return device;
        string? name = null;
        try
        {
            var local = devDir != DefaultDev && device.StartsWith(DefaultDev + "/", StringComparison.Ordinal)
                ? Path.Combine(devDir, device[(DefaultDev.Length + 1)..]) : device;
            var info = new FileInfo(local);
            var target = info.Exists ? (info.ResolveLinkTarget(true)?.FullName ?? info.FullName) : null;
            name = target is null ? null : Path.GetFileName(target);
        }
        catch (IOException) { }
        var devFile = name is null ? null : Path.Combine(sysClassBlock, name, "dev");
        var numbers = devFile is null ? null : CgroupFiles.TryRead(devFile);
        if (numbers is null || !MajorMinor.IsMatch(numbers))
            throw new ContainerException("DeviceNotFound", ContainerErrorKind.ObjectNotFound,
                $"'{device}' is not a block device on this machine (lsblk lists them; give a path like /dev/vda or major:minor like 254:0).", device);
        return numbers;
    }
}
