namespace PSContainers.Runtime.Cgroups;

/// <summary>
/// One cgroup hierarchy layout (v1 controllers, or the v2 unified tree). Paths are relative to the
/// hierarchy roots ("pscontainers/web1"). Nothing outside the runtime sees a driver: cmdlets only
/// see <see cref="CgroupManager"/>, so a new layout never leaks upwards.
/// </summary>
public interface ICgroupDriver
{
    /// <summary>"v1" or "v2".</summary>
    string Version { get; }
    /// <summary>Controllers this driver can apply limits through (memory, pids, freezer, ...).</summary>
    IReadOnlySet<string> Controllers { get; }
    bool CanFreeze { get; }
    bool CanKill { get; }

    /// <summary>Creates the cgroup and any missing parents, enabling <paramref name="controllers"/> on v2.</summary>
    void Create(string path, IReadOnlyCollection<string> controllers);
    /// <summary>Removes the cgroup (must be empty of processes); true if it is gone.</summary>
    bool Remove(string path);
    bool Exists(string path);
    /// <summary>Absolute directories of the cgroup in each hierarchy, leaf last per hierarchy.</summary>
    IReadOnlyList<string> Directories(string path);
    /// <summary>The cgroup.procs files a process writes its pid to, to join the cgroup.</summary>
    IReadOnlyList<string> ProcsFiles(string path);
    IReadOnlyList<int> Pids(string path);

    void Freeze(string path, TimeSpan timeout);
    void Thaw(string path);
    bool IsFrozen(string path);
    /// <summary>SIGKILL every process in the cgroup and in every cgroup below it.</summary>
    void KillAll(string path);

    void SetMemoryMax(string path, long? bytes);
    long? GetMemoryMax(string path);

    /// <summary>The exact writes that apply <paramref name="limits"/> (only controllers this driver owns).</summary>
    IReadOnlyList<CgroupWrite> PlanLimits(string path, CgroupLimits limits);
    /// <summary>Reads the limits in force for <paramref name="controllers"/> into <paramref name="report"/>.</summary>
    void ReadLimits(string path, CgroupLimitReport report, IReadOnlyCollection<string> controllers);
    /// <summary>Adds to <paramref name="reader"/> the files that hold the usage counters of <paramref name="controllers"/>.</summary>
    void UsageCounters(string path, CgroupUsageReader reader, IReadOnlyCollection<string> controllers);
}
