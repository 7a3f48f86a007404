using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Security;

namespace PSContainers.Runtime.Config;

/// <summary>
/// The rules a config value must follow, written once for both ways a config is made: the YAML
/// binder (ConfigLoader.Binder) adds the file:line:column of the node to the problem, and
/// <see cref="ConfigLoader.Validate"/> (a config assembled in code) reports it as it is. Each rule
/// takes a value and the setting's path (init.command[0], limits.memory, network[1].mtu) and returns
/// the problem, naming the setting, or null when the value is fine.
/// </summary>
internal static partial class ConfigRules
{
    // The kernel refuses (or immediately OOM-kills) anything much smaller; 1 EiB is "unlimited" in practice.
    public const long MinMemory = 1L << 20;
    public const long MaxMemory = 1L << 60;

    public static string Text(long value) => value.ToString(CultureInfo.InvariantCulture);

    public static string InvalidValue(string path, string text, string expected) =>
        $"invalid value '{text}' for {path} (expected {expected})";

    public static string? Integer(long value, string text, string path, long min, long max, string expected) =>
        value < min || value > max ? InvalidValue(path, text, expected) : null;

    public static string? Size(long bytes, string text, string path, long min, long max)
    {
        if (bytes >= min && bytes <= max) return null;
        string range = max == long.MaxValue
            ? $"at least {Sizes.Format(min)}"
            : $"between {Sizes.Format(min)} and {Sizes.Format(max)}";
        return $"size '{text}' for {path} is out of range (it must be {range})";
    }

    /// <summary>A size that may also be max (<see cref="CgroupLimits.Unlimited"/>).</summary>
    public static string? SizeOrMax(long bytes, string text, string path, long min) =>
        bytes == CgroupLimits.Unlimited ? null : Size(bytes, text, path, min, MaxMemory);

    public static string? CountOrMax(long value, string text, string path, long min, string expected) =>
        value == CgroupLimits.Unlimited || value >= min ? null : InvalidValue(path, text, expected);

    /// <summary>The canonical spelling of <paramref name="text"/> among <paramref name="values"/> (any case), or null.</summary>
    public static string? Match(string text, string[] values) =>
        values.FirstOrDefault(v => v.Equals(text, StringComparison.OrdinalIgnoreCase));

    public static string? OneOf(string text, string path, string[] values) =>
        Match(text, values) is null ? InvalidValue(path, text, "one of: " + string.Join(", ", values)) : null;

    public static string? AbsolutePath(string value, string path, bool allowDotDot)
    {
        if (!value.StartsWith('/'))
            return $"invalid path '{value}' for {path}: it must be absolute (start with '/')";
        if (value.Contains('\0'))
            return $"invalid path for {path}: it must not contain a NUL character";
        // A target is resolved inside the rootfs; '..' would be a way to name a host path instead.
        if (!allowDotDot && value.Split('/').Contains(".."))
            return $"invalid path '{value}' for {path}: '..' components are not allowed";
        return null;
    }

    // ---- top level, init, mounts, stop, console, storage -------------------------------------------

    public static string? Hostname(string name) =>
        HostnameProblem(name) is { } problem ? $"invalid hostname '{name}': {problem}" : null;

    public static string? HostnameProblem(string name)
    {
        // sethostname(2) takes at most 64 bytes (HOST_NAME_MAX), tighter than DNS's 253.
        if (name.Length is 0 or > 64)
            return "it must be 1 to 64 characters long";
        foreach (string label in name.Split('.'))
        {
            if (label.Length is 0 or > 63)
                return "each dot-separated label must be 1 to 63 characters long";
            foreach (char c in label)
            {
                if (!char.IsAsciiLetterOrDigit(c) && c != '-')
                    return "only letters, digits, '-' and '.' are allowed";
            }
            if (label[0] == '-' || label[^1] == '-')
                return "a label must not start or end with '-'";
        }
        return null;
    }

    public static string? CommandArgument(string? arg, int index)
    {
        string path = $"init.command[{index}]";
        if (string.IsNullOrEmpty(arg))
            return $"{path} must be a non-empty string";
        if (arg.Contains('\0'))
            return $"{path} must not contain a NUL character";
        if (index == 0 && !arg.StartsWith('/') && arg.Contains('/'))
            return $"invalid program '{arg}' for init.command: use an absolute path (/bin/sh) or a bare program name looked up in PATH (sh)";
        return null;
    }

    public static string? EnvironmentName(string name)
    {
        if (name.Length == 0)
            return "an environment variable name must not be empty";
        if (name.Contains('=') || name.Contains('\0'))
            return $"invalid environment variable name '{name}': it must not contain '=' or NUL";
        return null;
    }

    public static string? EnvironmentValue(string name, string text) =>
        text.Contains('\0') ? $"init.environment.{name} must not contain a NUL character" : null;

    /// <summary>
    /// execve(2) refuses a single argument or NAME=value longer than MAX_ARG_STRLEN (32 pages) and all
    /// of them together beyond ARG_MAX (a quarter of the 8 MiB stack by default): refused with the
    /// config, instead of as a failed start. One budget per config, charged string by string.
    /// </summary>
    public sealed class ExecBudget
    {
        public const int MaxString = 128 * 1024 - 1;
        public const long MaxTotal = 1 << 20;
        private long _total;

        public string? Charge(string path, string text)
        {
            long bytes = Encoding.UTF8.GetByteCount(text) + 1;
            if (bytes > MaxString + 1)
                return $"{path} is {bytes - 1} bytes long; the kernel passes at most {MaxString} bytes per argument or environment entry to a program";
            _total += bytes + IntPtr.Size;
            if (_total > MaxTotal)
                return $"init.command and init.environment together exceed {Sizes.Format(MaxTotal)}, more than the kernel passes to a program";
            return null;
        }
    }

    public static string MountSourceMissing(string path) => $"{path} needs a source (an absolute host path)";
    public static string MountTargetMissing(string path) => $"{path} needs a target (an absolute path inside the container)";

    public static string? Signal(string text) =>
        Signals.TryParse(text, out _) ? null : $"invalid signal '{text}' for stop.signal ({Signals.SyntaxHelp})";

    public const string StopTimeoutExpected = "whole seconds from 0 to 86400";

    public const string InitIdExpected = "a numeric id (0 or more) as the container sees it";
    public static string? InitId(int? id, string path) =>
        id is { } n ? Integer(n, n.ToString(System.Globalization.CultureInfo.InvariantCulture), path, 0, int.MaxValue - 1, InitIdExpected) : null;
    public static string? StopTimeout(long seconds, string text) =>
        Integer(seconds, text, "stop.timeout", 0, 86400, StopTimeoutExpected);

    // ---- restart ----------------------------------------------------------------------------------

    public const string RestartPolicyExpected = "one of: no, on-failure, always";
    public static string? RestartPolicy(string text, out Config.RestartPolicy policy)
    {
        policy = text switch { "no" => Config.RestartPolicy.No, "on-failure" => Config.RestartPolicy.OnFailure, "always" => Config.RestartPolicy.Always, _ => Config.RestartPolicy.No };
        return text is "no" or "on-failure" or "always" ? null : InvalidValue("restart.policy", text, RestartPolicyExpected);
    }

    public const string RestartMaxRetriesExpected = "a count from 0 (no limit) to 1000000";
    public const string DurationExpected = "a duration from 1ms to 1h, like 500ms, 1s, 2m";

    /// <summary>A duration as config.yaml writes it: a whole number with ms, s, m or h.</summary>
    public static string? Duration(string text, string path, out TimeSpan value)
    {
        value = TimeSpan.Zero;
        var m = System.Text.RegularExpressions.Regex.Match(text, @"^([0-9]{1,7})(ms|s|m|h)$");
        if (!m.Success) return InvalidValue(path, text, DurationExpected);
        var n = long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        value = m.Groups[2].Value switch { "ms" => TimeSpan.FromMilliseconds(n), "s" => TimeSpan.FromSeconds(n), "m" => TimeSpan.FromMinutes(n), _ => TimeSpan.FromHours(n) };
        return value < TimeSpan.FromMilliseconds(1) || value > TimeSpan.FromHours(1) ? InvalidValue(path, text, DurationExpected) : null;
    }

    /// <summary>The shortest way config.yaml writes <paramref name="value"/>.</summary>
    public static string FormatDuration(TimeSpan value) =>
        value.TotalMilliseconds % 1000 != 0 ? $"{(long)value.TotalMilliseconds}ms"
        : value.TotalSeconds % 60 != 0 ? $"{(long)value.TotalSeconds}s"
        : value.TotalMinutes % 60 != 0 ? $"{(long)value.TotalMinutes}m" : $"{(long)value.TotalHours}h";

    public static string? ConsoleLogMaxBytes(long bytes, string text) =>
        Size(bytes, text, "console.logMaxBytes", 0, long.MaxValue);

    public static string? Backend(string text) =>
        text is "dir" or "overlay" or "btrfs" ? null
            : $"unknown storage backend '{text}' for storage.backend (expected one of: dir, overlay, btrfs)";

    // ---- limits -----------------------------------------------------------------------------------

    public const string WeightExpected = "a weight from 1 to 10000 (default 100)";
    public const string CpuQuotaExpected = "microseconds per period (at least 1000), or max";
    public const string CpuPeriodExpected = "microseconds from 1000 to 1000000";
    public const string PidsExpected = "a number of processes (at least 1), or max";
    public const string IopsExpected = "operations per second, or max";
    public const string NetPrioExpected = "a priority of 0 or more";

    public static string? CpuList(string text, string path)
    {
        try { Cgroups.CpuList.Parse(text, path); return null; }
        catch (ContainerException ex) { return ex.Message; }
    }

    public static string? IoDevice(IoDeviceLimit io)
    {
        try { io.Validate(); return null; }
        catch (ContainerException ex) { return ex.Message; }
    }

    public static string? HugePageSize(string text, out string size)
    {
        try { size = HugePageSizes.Parse(text); return null; }
        catch (ContainerException ex) { size = text; return ex.Message; }
    }

    public static string DeviceRuleVerb(int index) =>
        $"limits.devices[{index}] must start with allow or deny, e.g. 'allow c 1:3 rwm' or 'deny a'";

    /// <summary>A devices-cgroup rule as written in config.yaml ("allow c 1:3 rwm"), or the problem with it.</summary>
    public static string? DeviceRuleText(string? text, int index, out DeviceRule? rule)
    {
        rule = null;
        if (text is null || !(text.StartsWith("allow ", StringComparison.OrdinalIgnoreCase) || text.StartsWith("deny ", StringComparison.OrdinalIgnoreCase)))
            return DeviceRuleVerb(index);
        try { rule = DeviceRule.Parse(text, allow: true); return null; }
        catch (ContainerException ex) { return ex.Message; }
    }

    public static string? NetPrioInterface(string name) =>
        name.Length is 0 or > 15 || name.Any(c => c is ' ' or '/')
            ? $"invalid interface name '{name}' under limits.netPrio (1 to 15 characters, no spaces or '/')"
            : null;

    public const string BothCpusAndQuota = "give either limits.cpus or limits.cpuQuota, not both";

    /// <summary>Every value of a limits section (a config built in code; the binder checks them key by key).</summary>
    public static string? Limits(LimitsConfig l)
    {
        return Each(
            l.MemoryMax is { } m ? SizeOrMax(m, Text(m), "limits.memory", MinMemory) : null,
            l.MemoryHigh is { } h ? SizeOrMax(h, Text(h), "limits.memoryHigh", 0) : null,
            l.MemorySwapMax is { } s ? SizeOrMax(s, Text(s), "limits.memorySwap", 0) : null,
            l.MemoryLow is { } lo ? SizeOrMax(lo, Text(lo), "limits.memoryLow", 0) : null,
            l.CpuWeight is { } w ? Integer(w, Text(w), "limits.cpuWeight", 1, 10000, WeightExpected) : null,
            l.CpuQuota is { } q ? CountOrMax(q, Text(q), "limits.cpuQuota", 1000, CpuQuotaExpected) : null,
            l.CpuPeriod is { } p ? Integer(p, Text(p), "limits.cpuPeriod", 1000, 1_000_000, CpuPeriodExpected) : null,
            l.CpusetCpus is { } cc ? CpuList(cc, "limits.cpusetCpus") : null,
            l.CpusetMems is { } cm ? CpuList(cm, "limits.cpusetMems") : null,
            l.PidsMax is { } pid ? CountOrMax(pid, Text(pid), "limits.pids", 1, PidsExpected) : null,
            l.IoWeight is { } iw ? Integer(iw, Text(iw), "limits.ioWeight", 1, 10000, WeightExpected) : null)
            ?? LimitsLists(l);
    }

    private static string? LimitsLists(LimitsConfig l)
    {
        for (int i = 0; i < l.IoDeviceLimits.Count; i++)
        {
            var io = l.IoDeviceLimits[i];
            string path = $"limits.io[{i}]";
            var problem = Each(
                io.ReadBps is { } a ? SizeOrMax(a, Text(a), path + ".readBps", 1) : null,
                io.WriteBps is { } b ? SizeOrMax(b, Text(b), path + ".writeBps", 1) : null,
                io.ReadIops is { } c ? CountOrMax(c, Text(c), path + ".readIops", 1, IopsExpected) : null,
                io.WriteIops is { } d ? CountOrMax(d, Text(d), path + ".writeIops", 1, IopsExpected) : null,
                IoDevice(io));
            if (problem is not null) return problem;
        }
        foreach (var (key, value) in l.HugetlbMax)
        {
            if (HugePageSize(key, out _) is { } bad) return bad;
            long v = value;
            if (SizeOrMax(v, Text(v), $"limits.hugetlb.{key}", 0) is { } range) return range;
        }
        for (int i = 0; i < l.Devices.Count; i++)
            if (DeviceRuleText(l.Devices[i].ToString(), i, out _) is { } bad) return bad;
        foreach (var (name, prio) in l.NetPrioIfPrioMap)
        {
            if (Integer(prio, Text(prio), $"limits.netPrio.{name}", 0, int.MaxValue, NetPrioExpected) is { } bad) return bad;
            if (NetPrioInterface(name) is { } badName) return badName;
        }
        return null;
    }

    private static string? Each(params string?[] problems) => problems.FirstOrDefault(p => p is not null);

    // ---- network ----------------------------------------------------------------------------------

    public static readonly string[] NicTypes = { "none", "empty", "veth", "macvlan", "vlan", "phys", "ipvlan", "pasta" };
    public static readonly string[] MacvlanModes = { "private", "vepa", "bridge", "passthru" };
    public static readonly string[] IpvlanModes = { "l2", "l3", "l3s" };
    public const string MtuExpected = "an MTU from 68 to 65535";
    public const string VlanIdExpected = "a VLAN id from 0 to 4094";

    /// <summary>The keys that mean something for a NIC of this type (others are mistakes worth reporting).</summary>
    public static string[] NicKeys(string type) => type switch
    {
        "none" or "empty" => new[] { "type" },
        "veth" => new[] { "type", "name", "link", "linkNamespace", "hostName", "hwAddress", "mtu", "up", "ipv4", "ipv6", "ipv4Gateway", "ipv6Gateway" },
        "pasta" => new[] { "type", "name", "mtu", "ports", "hostPorts" },
        "phys" => new[] { "type", "name", "link", "linkNamespace", "hwAddress", "mtu", "up", "ipv4", "ipv6", "ipv4Gateway", "ipv6Gateway" },
        var t => new[] { "type", "name", "link", "linkNamespace", "hwAddress", "mtu", "up", "ipv4", "ipv6", "ipv4Gateway", "ipv6Gateway", t + "Mode", t == "vlan" ? "vlanId" : "" },
    };

    public static string? NicKey(string type, string key, string path)
    {
        var allowed = NicKeys(type);
        return allowed.Contains(key) ? null
            : $"'{key}' does not apply to a {type} interface ({path}); it takes: {string.Join(", ", allowed.Where(a => a.Length > 0))}";
    }

    public static string? LinkName(string name, string path)
    {
        var bytes = Encoding.UTF8.GetByteCount(name);
        if (bytes is 0 or > 15 || name.Any(c => c is '/' or ':' or '\0' || char.IsWhiteSpace(c)) || name is "." or "..")
            return $"invalid interface name '{name}' for {path}: the kernel allows 1-15 bytes without '/', ':' or spaces{(bytes > 15 ? $" (it has {bytes})" : "")}";
        return null;
    }

    public static string? NamespaceName(string name, string path) =>
        name.Contains('/') || name is "." or ".."
            ? $"invalid network namespace name '{name}' for {path} (a name under /run/netns, without '/')"
            : null;

    public static string? Mac(string text, string path) =>
        !Regex.IsMatch(text, "^([0-9a-fA-Fx]{2}:){5}[0-9a-fA-Fx]{2}$") || text.StartsWith('x') || (Convert.ToInt32(text[..2], 16) & 1) != 0
            ? $"invalid MAC address '{text}' for {path} (six unicast hex bytes; 'x' digits are filled in, e.g. 00:16:3e:xx:xx:xx)"
            : null;

    /// <summary>pasta port forwards: "PORT" or "OUTER:INNER" (1-65535), TCP; <paramref name="normal"/> drops leading zeros.</summary>
    public static string? Port(string text, string path, out string normal)
    {
        normal = text;
        var parts = text.Split(':');
        if (parts.Length > 2 || parts.Any(p => !int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535))
            return $"invalid port '{text}' for {path} (expected PORT or OUTER:INNER, each 1-65535)";
        normal = string.Join(':', parts.Select(p => int.Parse(p, CultureInfo.InvariantCulture).ToString(CultureInfo.InvariantCulture)));
        return null;
    }

    /// <summary>An address/prefix of the family; <paramref name="normal"/> is its canonical form.</summary>
    public static string? Address(string text, string path, AddressFamily family, out string normal)
    {
        normal = text;
        var slash = text.IndexOf('/');
        if (slash < 0)
            return $"address '{text}' for {path} has no prefix length (write it as address/prefix, e.g. {text}/{(family == AddressFamily.InterNetwork ? 24 : 64)})";
        var max = family == AddressFamily.InterNetwork ? 32 : 128;
        if (!IPAddress.TryParse(text[..slash], out var ip) || ip.AddressFamily != family || (family == AddressFamily.InterNetwork && text[..slash].Count(c => c == '.') != 3)
            || !int.TryParse(text[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var prefix) || prefix > max)
            return $"invalid {(family == AddressFamily.InterNetwork ? "IPv4" : "IPv6")} address '{text}' for {path} (expected address/prefix with a prefix of 0-{max})";
        normal = $"{ip}/{prefix}";
        return null;
    }

    public static string? Gateway(string text, string path, AddressFamily family, out string normal)
    {
        normal = text;
        if (!IPAddress.TryParse(text, out var ip) || ip.AddressFamily != family || (family == AddressFamily.InterNetwork && text.Count(c => c == '.') != 3))
            return $"invalid gateway '{text}' for {path} (expected an {(family == AddressFamily.InterNetwork ? "IPv4" : "IPv6")} address without prefix)";
        normal = ip.ToString();
        return null;
    }

    /// <summary>
    /// The values of one NIC, each checked on its own (the keys given are checked by
    /// <see cref="NicKey"/> first, since a key that does not apply is the clearer message).
    /// </summary>
    public static string? NicValues(NicConfig nic, string path)
    {
        string? First(IEnumerable<string?> problems) => problems.FirstOrDefault(p => p is not null);
        return Each(
            OneOf(nic.Type, $"{path}.type", NicTypes),
            nic.Name is { } n ? LinkName(n, $"{path}.name") : null,
            nic.Link is { } l ? LinkName(l, $"{path}.link") : null,
            nic.LinkNamespace is { } ns ? NamespaceName(ns, $"{path}.linkNamespace") : null,
            nic.HostName is { } hn ? LinkName(hn, $"{path}.hostName") : null,
            nic.HwAddress is { } mac ? Mac(mac, $"{path}.hwAddress") : null,
            nic.Mtu is { } mtu ? Integer(mtu, Text(mtu), $"{path}.mtu", 68, 65535, MtuExpected) : null,
            First(nic.IPv4.Select(a => Address(a, $"{path}.ipv4", AddressFamily.InterNetwork, out _))),
            First(nic.IPv6.Select(a => Address(a, $"{path}.ipv6", AddressFamily.InterNetworkV6, out _))),
            nic.IPv4Gateway is { } g4 ? Gateway(g4, $"{path}.ipv4Gateway", AddressFamily.InterNetwork, out _) : null,
            nic.IPv6Gateway is { } g6 ? Gateway(g6, $"{path}.ipv6Gateway", AddressFamily.InterNetworkV6, out _) : null,
            nic.MacvlanMode is { } mm ? OneOf(mm, $"{path}.macvlanMode", MacvlanModes) : null,
            nic.VlanId is { } vid ? Integer(vid, Text(vid), $"{path}.vlanId", 0, 4094, VlanIdExpected) : null,
            nic.IpvlanMode is { } im ? OneOf(im, $"{path}.ipvlanMode", IpvlanModes) : null,
            First(nic.Ports.Select(p => Port(p, $"{path}.ports", out _))),
            First(nic.HostPorts.Select(p => Port(p, $"{path}.hostPorts", out _))));
    }

    /// <summary>The keys a NIC sets (non-default values), as they are named in config.yaml.</summary>
    public static IEnumerable<string> NicKeysSet(NicConfig nic)
    {
        yield return "type";
        if (nic.Name is not null) yield return "name";
        if (nic.Link is not null) yield return "link";
        if (nic.LinkNamespace is not null) yield return "linkNamespace";
        if (nic.HostName is not null) yield return "hostName";
        if (nic.HwAddress is not null) yield return "hwAddress";
        if (nic.Mtu is not null) yield return "mtu";
        if (!nic.Up) yield return "up";
        if (nic.IPv4.Count > 0) yield return "ipv4";
        if (nic.IPv6.Count > 0) yield return "ipv6";
        if (nic.IPv4Gateway is not null) yield return "ipv4Gateway";
        if (nic.IPv6Gateway is not null) yield return "ipv6Gateway";
        if (nic.MacvlanMode is not null) yield return "macvlanMode";
        if (nic.VlanId is not null) yield return "vlanId";
        if (nic.IpvlanMode is not null) yield return "ipvlanMode";
        if (nic.Ports.Count > 0) yield return "ports";
        if (nic.HostPorts.Count > 0) yield return "hostPorts";
    }

    /// <summary>
    /// What one NIC needs given the ones before it (<paramref name="before"/>) and how many there are;
    /// <paramref name="names"/> collects the interface names used so far (name -> index).
    /// </summary>
    public static string? NicInList(NicConfig nic, string path, int index, int count, IReadOnlyList<NicConfig> before, Dictionary<string, int> names)
    {
        if (nic.Type is "macvlan" or "vlan" or "ipvlan" or "phys" && nic.Link is null)
            return $"{path}: a {nic.Type} interface needs 'link' ({(nic.Type == "phys" ? "the interface to move in" : "its parent interface")})";
        if (nic.Type == "vlan" && nic.VlanId is null) return $"{path}: a vlan interface needs 'vlanId'";
        if (nic.Type == "none" && count > 1)
            return $"{path}: type none shares the host's network, so it must be the only entry of network";
        if (nic.Type == "pasta" && before.Any(n => n.Type == "pasta"))
            return $"{path}: a container has at most one pasta interface (pasta forwards all traffic through one)";
        if (nic.Type is "veth" or "macvlan" or "vlan" or "ipvlan" or "phys" or "pasta")
        {
            var name = nic.Name ?? $"eth{before.Count(n => n.Type is not ("none" or "empty"))}";
            if (names.TryGetValue(name, out var other))
                return $"{path}: interface name '{name}' is already used by network[{other}]; give it another 'name'";
            names[name] = index;
        }
        return null;
    }

    // ---- security ---------------------------------------------------------------------------------

    public static readonly string[] ProcModes = { "mixed", "rw" };
    public static readonly string[] SysModes = { "ro", "rw" };
    public static readonly string[] DeviceModes = { "default", "unconfined" };
    public const string DropAndKeep = "security.capabilities takes either drop (these are dropped) or keep (only these are kept), not both";

    public static string? Capability(string name, string path, bool allowDefault, out string normal)
    {
        normal = Capabilities.Normalize(name);
        return !(allowDefault && normal == "default") && Capabilities.Number(normal) < 0
            ? $"unknown capability '{name}' in {path} (known: {(allowDefault ? "default, " : "")}{string.Join(", ", Capabilities.Names)})"
            : null;
    }

    public static string? Syscall(string name, string path) =>
        SyscallTable.IsKnown(name) ? null
            : $"unknown system call '{name}' in {path} (names as in syscalls(2), e.g. keyctl, ptrace, unshare)";

    public static string? Errno(string text, string path) =>
        SyscallTable.TryParseErrno(text, out _) ? null : InvalidValue(path, text, SyscallTable.ErrnoHelp);

    /// <summary>default, unconfined or an absolute path (no '..' check: the file is the user's own to name).</summary>
    public static string? SeccompProfile(string text)
    {
        if (text is "default" or "unconfined") return null;
        if (!text.StartsWith('/'))
            return InvalidValue("security.seccomp.profile", text, "default, unconfined or the absolute path of a profile file");
        return AbsolutePath(text, "security.seccomp.profile", allowDotDot: true);
    }

    public static string NameMissing(string path) => $"{path} must not be empty";

    public static string? Security(SecurityConfig s)
    {
        string? Names(List<string>? names, string path, Func<string, string, string?> rule)
        {
            if (names is null) return null;
            for (int i = 0; i < names.Count; i++)
            {
                // null is what an empty YAML item (- ) reads as; "" goes to the rule, as a quoted '' does.
                if (names[i] is null) return NameMissing($"{path}[{i}]");
                if (rule(names[i], path) is { } bad) return bad;
            }
            return null;
        }
        return Each(
            Names(s.CapabilitiesDrop, "security.capabilities.drop", (n, p) => Capability(n, p, allowDefault: true, out _)),
            Names(s.CapabilitiesKeep, "security.capabilities.keep", (n, p) => Capability(n, p, allowDefault: false, out _)),
            s.CapabilitiesDrop is not null && s.CapabilitiesKeep is not null ? DropAndKeep : null,
            SeccompProfile(s.SeccompProfile),
            s.SeccompErrno is { } errno ? Errno(errno, "security.seccomp.errno") : null,
            Names(s.SeccompDeny, "security.seccomp.deny", Syscall),
            Names(s.SeccompAllow, "security.seccomp.allow", Syscall),
            OneOf(s.Proc, "security.proc", ProcModes),
            OneOf(s.Sys, "security.sys", SysModes),
            s.MaskedPaths is null ? null
                : s.MaskedPaths.Select((p, i) => p is null ? NameMissing($"security.maskedPaths[{i}]")
                    : AbsolutePath(p, $"security.maskedPaths[{i}]", allowDotDot: false)).FirstOrDefault(x => x is not null),
            OneOf(s.Devices, "security.devices", DeviceModes));
    }

    // ---- autostart --------------------------------------------------------------------------------

    public const string AutostartDelayExpected = "whole seconds from 0 to 86400";
    public const string AutostartOrderExpected = "a whole number (higher starts first)";
    public const int MaxGroups = 64;

    /// <summary>
    /// A group name: what lxc.group allows in practice (it splits on commas and spaces), and safe in a
    /// systemd command line: 1-64 letters, digits, '_', '.', '-', not starting with '-' or '.'.
    /// </summary>
    public static string? GroupName(string? name, string path)
    {
        if (string.IsNullOrEmpty(name)) return $"{path} must not be empty (a container in no group belongs to the NULL group: leave groups empty)";
        if (name.Length > 64 || name[0] is '-' or '.' || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-'))
            return $"invalid group name '{name}' for {path}: use 1 to 64 letters, digits, '_', '.' or '-', not starting with '-' or '.'";
        return null;
    }

    /// <summary>An image's exposed port as OCI writes it: PORT, PORT/tcp, PORT/udp or PORT/sctp (1-65535).</summary>
    public static string? ExposedPort(string port, string path)
    {
        var slash = port.IndexOf('/');
        var number = slash < 0 ? port : port[..slash];
        var proto = slash < 0 ? "tcp" : port[(slash + 1)..];
        if (!int.TryParse(number, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) || n is < 1 or > 65535 || proto is not ("tcp" or "udp" or "sctp"))
            return $"invalid port '{port}' for {path}: expected PORT/PROTOCOL with PORT 1-65535 and PROTOCOL tcp, udp or sctp (e.g. 80/tcp)";
        return null;
    }

    public static string? Autostart(AutostartConfig a)
    {
        if (Integer(a.Delay, Text(a.Delay), "autostart.delay", 0, 86400, AutostartDelayExpected) is { } badDelay) return badDelay;
        var groups = a.Groups ?? new List<string>();
        if (groups.Count > MaxGroups) return $"autostart.groups has {groups.Count} groups; at most {MaxGroups} are allowed";
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < groups.Count; i++)
        {
            if (GroupName(groups[i], $"autostart.groups[{i}]") is { } bad) return bad;
            if (!seen.Add(groups[i])) return DuplicateGroup(groups[i], i);
        }
        return null;
    }

    public static string DuplicateGroup(string name, int index) => $"autostart.groups[{index}]: group '{name}' is listed twice";

    // ---- idMap ------------------------------------------------------------------------------------

    public static string? IdMap(IReadOnlyList<UserNamespaces.IdMapEntry> entries) =>
        UserNamespaces.IdMap.Problem(entries) is { } wrong ? $"invalid idMap: {wrong}" : null;

    /// <summary>privileged: true and an idMap ask for both modes at once.</summary>
    public static string PrivilegedWithIdMap(string idMap) =>
        $"privileged: true contradicts idMap [{idMap}]: a privileged container has no user namespace. Remove one of them (privileged: true for a privileged container, idMap for a user-namespaced one).";

    // ---- kernel settings of init: prlimit, sysctl, oomScoreAdj ----------------------------------

    public const string OomScoreAdjExpected = "a whole number from -1000 (never killed) to 1000 (killed first)";

    /// <summary>lxc.prlimit's resource names, each with its RLIMIT_* number (the same on every Linux architecture psc-helper builds for).</summary>
    public static readonly IReadOnlyDictionary<string, int> PrlimitResources = new Dictionary<string, int>(StringComparer.Ordinal)
    {
        ["cpu"] = 0, ["fsize"] = 1, ["data"] = 2, ["stack"] = 3, ["core"] = 4, ["rss"] = 5, ["nproc"] = 6,
        ["nofile"] = 7, ["memlock"] = 8, ["as"] = 9, ["locks"] = 10, ["sigpending"] = 11, ["msgqueue"] = 12,
        ["nice"] = 13, ["rtprio"] = 14, ["rttime"] = 15,
    };

    /// <summary>RLIM_INFINITY.</summary>
    public const ulong PrlimitUnlimited = ulong.MaxValue;

    /// <summary>
    /// limits.prlimit.NAME: "soft:hard" or one value for both; each a whole number or "unlimited"; soft
    /// at most hard (the kernel's own rule, told here rather than at start).
    /// </summary>
    public static string? Prlimit(string name, string value, out ulong soft, out ulong hard)
    {
        soft = hard = 0;
        string path = $"limits.prlimit.{name}";
        if (!PrlimitResources.ContainsKey(name))
            return $"unknown resource '{name}' in limits.prlimit (expected one of: {string.Join(", ", PrlimitResources.Keys)})";
        var parts = value.Split(':');
        if (parts.Length > 2 || !LimitValue(parts[0], out soft) || !LimitValue(parts[^1], out hard))
            return $"invalid value '{value}' for {path} (expected \"soft:hard\" or one value for both, each a whole number or unlimited, e.g. \"1024:4096\")";
        if (soft > hard) return $"{path}: the soft limit {parts[0]} is above the hard limit {parts[^1]}";
        return null;

        static bool LimitValue(string text, out ulong v)
        {
            if (text is "unlimited" or "infinity") { v = PrlimitUnlimited; return true; }
            return ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out v) && v != PrlimitUnlimited;
        }
    }

    /// <summary>
    /// The sysctls that belong to a container's own namespaces (what lxc.sysctl documents): the
    /// network namespace's net.*, the IPC namespace's kernel.shm*, kernel.msg*, kernel.sem and
    /// fs.mqueue.*. kernel.hostname and kernel.domainname are the hostname key's; anything else
    /// would change the host.
    /// </summary>
    public static string? SysctlName(string name)
    {
        const string allowed = "net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*";
        if (name.Length == 0 || name.Length > 200 || name.Contains('/') || name.Contains("..") || name.StartsWith('.') || name.EndsWith('.')
            || name.Any(ch => !(char.IsAsciiLetterOrDigit(ch) || ch is '.' or '_' or '-')))
            return $"'{name}' is not a sysctl name (dotted, like net.ipv4.ip_forward)";
        bool namespaced = name.StartsWith("net.", StringComparison.Ordinal)
            || name.StartsWith("kernel.shm", StringComparison.Ordinal)
            || name.StartsWith("kernel.msg", StringComparison.Ordinal)
            || name == "kernel.sem"
            || name.StartsWith("fs.mqueue.", StringComparison.Ordinal);
        if (name is "kernel.hostname" or "kernel.domainname")
            return $"sysctl '{name}' is not accepted: set the container's name with the hostname key";
        return namespaced ? null
            : $"sysctl '{name}' is not namespaced: writing it would change the host. Only {allowed} are accepted; set host-wide sysctls on the host.";
    }

    public static string? SysctlValue(string name, string value) =>
        value.Length == 0 || value.Length > 1024 || value.Any(char.IsControl)
            ? $"invalid value for sysctl.{name}: give it as text on one line (e.g. \"1\")"
            : null;

    // ---- typed mounts and mount options (lxc.mount.entry) -----------------------------------------

    /// <summary>mounts[i].type: a filesystem type name as /proc/filesystems spells them, or bind.</summary>
    public static string? MountType(string? type, string path) =>
        type is null || (type.Length is > 0 and <= 32 && type.All(ch => char.IsAsciiLetterLower(ch) || char.IsAsciiDigit(ch) || ch is '.' or '_' or '-'))
            ? null
            : $"invalid filesystem type '{type}' for {path}.type (e.g. tmpfs; leave it out for a bind mount)";

    /// <summary>
    /// mounts[i].options, mount(8)'s comma-separated list: ro/rw, nosuid, nodev, noexec become
    /// flags; for a typed mount anything else (size=64m, mode=1777, uid=0) is the filesystem's data,
    /// which the kernel checks. A bind mount takes flags only.
    /// </summary>
    public static string? MountOptions(string? options, bool bind, string path, out Namespaces.MountFlags flags, out string data)
    {
        flags = Namespaces.MountFlags.None;
        data = "";
        if (options is null) return null;
        var rest = new List<string>();
        foreach (var raw in options.Split(','))
        {
            var o = raw.Trim();
            switch (o)
            {
                case "": return $"{path}.options has an empty option in '{options}'";
                case "ro": flags |= Namespaces.MountFlags.ReadOnly; break;
                case "rw": break;
                case "nosuid": flags |= Namespaces.MountFlags.NoSuid; break;
                case "nodev": flags |= Namespaces.MountFlags.NoDev; break;
                case "noexec": flags |= Namespaces.MountFlags.NoExec; break;
                default:
                    if (bind)
                        return $"{path}.options: a bind mount takes only ro, rw, nosuid, nodev and noexec, not '{o}'";
                    if (o.Any(ch => char.IsControl(ch) || ch == ' '))
                        return $"{path}.options: invalid option '{o}'";
                    rest.Add(o);
                    break;
            }
        }
        data = string.Join(',', rest);
        return data.Length > 4095 ? $"{path}.options is longer than the kernel takes (4095 bytes of filesystem options)" : null;
    }
}
