using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.Win32.SafeHandles;
using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Native;
using PSContainers.Runtime.State;

namespace PSContainers.Runtime.Stats;

/// <summary>
/// Usage of many containers, sampled again and again at a cost a 1-second refresh of hundreds of
/// containers can afford (Measure-Container, and -Wait). What makes a sample cheap: a container is
/// resolved (its state.json read, its init and cgroup found) only when its records changed (their
/// inode and mtime, one stat each) or its init ended; nothing parses config.yaml, enters a namespace
/// or starts a process; the counter files are opened once per run (<see cref="CgroupUsageReader"/>)
/// and re-read with pread, the network counters too: /proc/&lt;init&gt;/net/dev shows the init's
/// network namespace from outside it.
/// CPU is a percentage of one CPU over the interval between two samples of the same sampler.
/// </summary>
public sealed class ContainerStatsSampler : IDisposable
{
    private readonly IContainerLifecycle _manager;
    private readonly Dictionary<string, Target> _targets = new(StringComparer.Ordinal);
    private readonly byte[] _buffer = new byte[64 * 1024];
    private readonly Lazy<long?> _hostMemory = new(HostMemoryBytes);
    private readonly Lazy<string?> _hostNetNs = new(() => NetNamespaceOf("self"));

    public ContainerStatsSampler(IContainerLifecycle manager) => _manager = manager;

    private sealed class Target : IDisposable
    {
        public (ulong, long, long, ulong, long, long) Stamp;
        public ContainerStatus Status;
        public int Pid;
        public ulong StartTime;
        public string? Cgroup;
        public CgroupUsageReader? Counters;
        public SafeFileHandle? NetDev;
        public TimeSpan? LastCpu;
        public long LastTimestamp;

        public bool Running => Cgroup is not null;
        public void Dispose()
        {
            Counters?.Dispose();
            NetDev?.Dispose();
        }
    }

    /// <summary>
    /// One sample of each of <paramref name="names"/> that is running (or frozen); each one that is
    /// not is passed to <paramref name="notRunning"/> with its status. What fails for one container
    /// (ContainerNotFound: removed meanwhile; a cgroup file it cannot read) goes to
    /// <paramref name="failed"/>, and the others are still sampled; without it, it is thrown.
    /// Containers not named since the previous call are forgotten.
    /// </summary>
    public List<CgroupUsage> Sample(IEnumerable<string> names, Action<string, ContainerStatus>? notRunning = null, Action<string, ContainerException>? failed = null)
    {
        var result = new List<CgroupUsage>();
        var named = new HashSet<string>(StringComparer.Ordinal);
        double? uptime = null;
        foreach (var name in names)
        {
            if (!named.Add(name)) continue;
            Target? t;
            CgroupUsage u;
            try
            {
                t = Resolve(name) ?? throw NotFound(name);
                if (!t.Running) { notRunning?.Invoke(name, t.Status); continue; }
                t.Counters ??= _manager.Cgroups.OpenUsage(t.Cgroup!, name);
                u = t.Counters.Read();
            }
            catch (ContainerException ex)
            {
                var stopped = _targets.TryGetValue(name, out var was) && was.Running && !Sys.IsAlive(was.Pid, was.StartTime);
                Forget(name);
                // Stopped between the check and the read (its supervisor removed the cgroup): not a failure.
                if (stopped) { notRunning?.Invoke(name, ContainerStatus.Stopped); continue; }
                if (failed is null) throw;
                failed(name, ex);
                continue;
            }
            var now = Stopwatch.GetTimestamp();
            if (u.CpuUsage is { } cpu)
            {
                if (t.LastCpu is { } last)
                {
                    var seconds = Stopwatch.GetElapsedTime(t.LastTimestamp, now).TotalSeconds;
                    if (seconds > 0) u.CpuPercent = Math.Max(0, (cpu - last).TotalSeconds / seconds * 100);
                }
                else if ((uptime ??= Uptime()) is { } up && up - t.StartTime / (double)ClockTicks is var lived and > 0)
                    u.CpuPercent = cpu.TotalSeconds / lived * 100;
                t.LastCpu = cpu;
                t.LastTimestamp = now;
            }
            if (u.MemoryCurrent is { } mem)
            {
                long? limit = u.MemoryMax is { IsUnlimited: false } max ? max.Value : _hostMemory.Value;
                if (limit is > 0) u.MemoryPercent = mem * 100.0 / limit.Value;
            }
            if (t.NetDev is not null) u.Network = ReadNetDev(t.NetDev);
            result.Add(u);
        }
        foreach (var gone in _targets.Keys.Where(k => !named.Contains(k)).ToList()) Forget(gone);
        return result;
    }

    private static ContainerException NotFound(string name) =>
        new("ContainerNotFound", ContainerErrorKind.ObjectNotFound,
            $"No container named '{name}' exists (it was removed while this ran). Get-Container lists the containers of this store.", name);

    /// <summary>The container's run as of now, re-read only when its records changed or its init ended; null when it does not exist.</summary>
    private Target? Resolve(string name)
    {
        var stamp = Stamp(name);
        if (_targets.TryGetValue(name, out var t) && t.Stamp == stamp && (!t.Running || Sys.IsAlive(t.Pid, t.StartTime))) return t;
        Forget(name);
        if (!_manager.Exists(name)) return null;
        ContainerRun run;
        try { run = _manager.Inspect(name); }
        catch (ContainerException) when (!_manager.Exists(name)) { return null; }
        t = new Target { Stamp = stamp, Status = run.Status };
        var s = run.State;
        if (run.Status is ContainerStatus.Running or ContainerStatus.Frozen && s.InitPid is { } pid && s.InitStartTime is { } start && s.CgroupPath is { } cgroup)
        {
            t.Pid = pid;
            t.StartTime = start;
            t.Cgroup = cgroup;
            t.NetDev = OpenNetDev(pid, start);
        }
        _targets[name] = t;
        return t;
    }

    private void Forget(string name)
    {
        if (_targets.Remove(name, out var t)) t.Dispose();
    }

    /// <summary>Identity of the container's records (state.json, the supervisor's run record): inode and mtime, 0s when absent.</summary>
    private unsafe (ulong, long, long, ulong, long, long) Stamp(string name)
    {
        var a = StampOf(_manager.Store.StatePath(name));
        var b = StampOf(_manager.Store.RunRecordPath(name));
        return (a.Item1, a.Item2, a.Item3, b.Item1, b.Item2, b.Item3);

        static (ulong, long, long) StampOf(string path)
        {
            Tmds.Linux.stat st;
            var bytes = Encoding.UTF8.GetBytes(path + "\0");
            fixed (byte* p = bytes)
                if (Tmds.Linux.LibC.stat(p, &st) != 0) return default;
            return ((ulong)st.st_ino, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
        }
    }

    /// <summary>
    /// /proc/&lt;init&gt;/net/dev, opened once: it lists the interfaces of the init's network namespace,
    /// read from outside (no setns, no exec). Null when the container shares the host's namespace
    /// (its counters are the host's, not the container's) or the process went away.
    /// </summary>
    private SafeFileHandle? OpenNetDev(int pid, ulong start)
    {
        var ns = NetNamespaceOf(pid.ToString(CultureInfo.InvariantCulture));
        if (ns is null || ns == _hostNetNs.Value) return null;
        SafeFileHandle handle;
        try { handle = File.OpenHandle($"/proc/{pid}/net/dev", FileMode.Open, FileAccess.Read); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return null; }
        // The pid may have been recycled since it was checked: the descriptor is good only if it still is the init.
        if (Sys.IsAlive(pid, start)) return handle;
        handle.Dispose();
        return null;
    }

    private static string? NetNamespaceOf(string pid)
    {
        try { return new FileInfo($"/proc/{pid}/ns/net").LinkTarget; }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return null; }
    }

    /// <summary>Parses net/dev: two header lines, then "  name: rx_bytes rx_packets (6 more) tx_bytes tx_packets ...".</summary>
    private List<NetworkDeviceUsage> ReadNetDev(SafeFileHandle handle)
    {
        var list = new List<NetworkDeviceUsage>();
        int length;
        try { length = ReadAll(handle); }
        catch (IOException) { return list; }
        var text = Encoding.ASCII.GetString(_buffer, 0, length);
        foreach (var line in text.Split('\n').Skip(2))
        {
            var colon = line.IndexOf(':');
            if (colon < 0) continue;
            var ifname = line[..colon].Trim();
            var f = line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 10) continue;
            list.Add(new NetworkDeviceUsage(ifname, Long(f[0]), Long(f[8]), Long(f[1]), Long(f[9])));
        }
        return list;

        static long Long(string s) => long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : 0;
    }

    /// <summary>The whole file from offset 0 (a seq_file regenerates its text on a read from 0).</summary>
    private int ReadAll(SafeFileHandle handle)
    {
        var total = 0;
        int n;
        while (total < _buffer.Length && (n = RandomAccess.Read(handle, _buffer.AsSpan(total), total)) > 0) total += n;
        return total;
    }

    /// <summary>USER_HZ: the unit of /proc/PID/stat's start time; 100 on every Linux architecture .NET runs on.</summary>
    private const int ClockTicks = 100;

    private static double? Uptime()
    {
        try
        {
            var text = File.ReadAllText("/proc/uptime");
            return double.Parse(text[..text.IndexOf(' ')], CultureInfo.InvariantCulture);
        }
        catch (Exception ex) when (ex is IOException or FormatException or ArgumentOutOfRangeException) { return null; }
    }

    private static long? HostMemoryBytes()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
                if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
                    return long.Parse(line[9..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
        }
        catch (Exception ex) when (ex is IOException or FormatException) { }
        return null;
    }

    public void Dispose()
    {
        foreach (var t in _targets.Values) t.Dispose();
        _targets.Clear();
    }
}
