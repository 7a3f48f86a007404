namespace PSContainers.Runtime.Cgroups;

/// <summary>
/// One write a driver makes to apply a limit: <see cref="Value"/> into <see cref="File"/> (absolute
/// path). A v2 device-rule write is an eBPF program attached to the cgroup directory <see cref="File"/>
/// instead (<see cref="DeviceProgram"/> holds the complete rule list it enforces).
/// <see cref="Undo"/> restores what was there before (read when the write was planned).
/// </summary>
public sealed record CgroupWrite(string Controller, string File, string Value)
{
    public IReadOnlyList<DeviceRule>? DeviceProgram { get; init; }
    public IReadOnlyList<(string File, string Value)> Undo { get; init; } = Array.Empty<(string, string)>();

    public override string ToString() => DeviceProgram is null ? $"{File} <- {Value}" : $"{File} <- bpf(cgroup_device: {Value})";
}

/// <summary>Limits in force for a cgroup, read back from the kernel's files.</summary>
public sealed class CgroupLimitReport : CgroupLimits
{
    /// <summary>Container name, or null for a plain cgroup.</summary>
    public string? Name { get; set; }
    public string CgroupPath { get; set; } = "";
    /// <summary>Which hierarchy each controller was read from ("memory=v1", "hugetlb=v2").</summary>
    public IReadOnlyDictionary<string, string> ControllerVersions { get; set; } = new Dictionary<string, string>();
}

public sealed record IoDeviceUsage(string Device, long ReadBytes, long WriteBytes, long ReadOperations, long WriteOperations);

/// <summary>Bytes and packets through one network interface of a container's network namespace (its /proc/&lt;init&gt;/net/dev).</summary>
public sealed record NetworkDeviceUsage(string Interface, long ReceivedBytes, long SentBytes, long ReceivedPackets, long SentPackets);

/// <summary>Resource usage of a cgroup (like Hyper-V's Measure-VM); null where this host does not account it.</summary>
public sealed class CgroupUsage
{
    public string? Name { get; set; }
    public string CgroupPath { get; set; } = "";
    public DateTimeOffset Time { get; set; } = DateTimeOffset.Now;
    public long? MemoryCurrent { get; set; }
    public long? MemoryPeak { get; set; }
    /// <summary>The memory limit in force: bytes, or max (unlimited).</summary>
    public CgroupLimitValue? MemoryMax { get; set; }
    public long? SwapCurrent { get; set; }
    /// <summary>Times the memory limit was hit (v1 memory.failcnt, v2 memory.events max).</summary>
    public long? MemoryLimitHits { get; set; }
    /// <summary>Processes killed by the OOM killer in this cgroup.</summary>
    public long? OomKills { get; set; }
    public TimeSpan? CpuUsage { get; set; }
    public TimeSpan? CpuUser { get; set; }
    public TimeSpan? CpuSystem { get; set; }
    public long? CpuPeriods { get; set; }
    public long? CpuThrottledPeriods { get; set; }
    public TimeSpan? CpuThrottledTime { get; set; }
    public long? PidsCurrent { get; set; }
    /// <summary>The task limit in force, or max (unlimited).</summary>
    public CgroupLimitValue? PidsMax { get; set; }
    /// <summary>Fork attempts refused by pids.max.</summary>
    public long? PidsLimitHits { get; set; }
    public List<IoDeviceUsage> Io { get; set; } = new();

    /// <summary>
    /// CPU used over the interval since the previous sample, in percent of one CPU (200 = two CPUs
    /// busy; top's and podman stats' scale); the first sample of a container averages over its run.
    /// </summary>
    public double? CpuPercent { get; set; }
    /// <summary>Memory in use, in percent of the memory limit, or of the host's memory when unlimited.</summary>
    public double? MemoryPercent { get; set; }
    /// <summary>The interfaces of the container's own network namespace, loopback too; empty when it shares the host's.</summary>
    public List<NetworkDeviceUsage> Network { get; set; } = new();
    /// <summary>Bytes through the container's interfaces but loopback (what went in and out of the container).</summary>
    public long NetworkReceivedBytes => Network.Where(n => n.Interface != "lo").Sum(n => n.ReceivedBytes);
    public long NetworkSentBytes => Network.Where(n => n.Interface != "lo").Sum(n => n.SentBytes);
    public long IoReadBytes => Io.Sum(d => d.ReadBytes);
    public long IoWriteBytes => Io.Sum(d => d.WriteBytes);
}
