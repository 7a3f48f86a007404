using System.Globalization;
using System.Text;

namespace PSContainers.Runtime.UserNamespaces;

public enum IdMapKind
{
    Uid,
    Gid,
}

/// <summary>One line of a user namespace map: container ids <c>ContainerId..+Count</c> are host ids <c>HostId..+Count</c>.</summary>
public sealed record IdMapEntry(IdMapKind Kind, uint ContainerId, uint HostId, uint Count)
{
    /// <summary>LXC's lxc.idmap syntax, which config.yaml's idMap list uses: "u 0 100000 65536".</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{(Kind == IdMapKind.Uid ? 'u' : 'g')} {ContainerId} {HostId} {Count}");
}

/// <summary>
/// A container's user namespace map (config.yaml <c>idMap:</c>, LXC's lxc.idmap): which host uids and
/// gids the container's ids are. A container with a map runs in its own user namespace; its root is
/// an unprivileged id on the host.
/// </summary>
public sealed class IdMap
{
    /// <summary>The kernel accepts at most 340 lines per map (since Linux 4.15).</summary>
    public const int MaxLinesPerKind = 340;
    /// <summary>The usual size of a container's id space: 0..65535 (what /etc/subuid ranges are made for).</summary>
    public const uint DefaultCount = 65536;

    public IReadOnlyList<IdMapEntry> Entries { get; }

    public IdMap(IEnumerable<IdMapEntry> entries)
    {
        Entries = entries.ToArray();
        if (Problem(Entries) is { } problem)
            throw new ContainerException("InvalidIdMap", ContainerErrorKind.InvalidArgument, $"Invalid id map ({string.Join(", ", Entries)}): {problem}.");
    }

    /// <summary>Container ids 0..count-1 mapped onto a subordinate uid range and a subordinate gid range.</summary>
    public static IdMap ForRanges(uint uidStart, uint gidStart, uint count = DefaultCount) =>
        new(new[] { new IdMapEntry(IdMapKind.Uid, 0, uidStart, count), new IdMapEntry(IdMapKind.Gid, 0, gidStart, count) });

    public IEnumerable<IdMapEntry> Of(IdMapKind kind) => Entries.Where(e => e.Kind == kind);

    /// <summary>The host id of a container id; null when the container id is not mapped.</summary>
    public uint? ToHost(IdMapKind kind, uint containerId)
    {
        foreach (var e in Of(kind))
            if (containerId >= e.ContainerId && containerId - e.ContainerId < e.Count) return e.HostId + (containerId - e.ContainerId);
        return null;
    }

    /// <summary>The container id of a host id; null when the host id is not mapped.</summary>
    public uint? ToContainer(IdMapKind kind, uint hostId)
    {
        foreach (var e in Of(kind))
            if (hostId >= e.HostId && hostId - e.HostId < e.Count) return e.ContainerId + (hostId - e.HostId);
        return null;
    }

    /// <summary>The host uid that is root inside the container.</summary>
    public uint RootUid => ToHost(IdMapKind.Uid, 0)!.Value;
    public uint RootGid => ToHost(IdMapKind.Gid, 0)!.Value;

    /// <summary>The first container id above every mapped one (where a helper namespace can put the caller).</summary>
    public uint End(IdMapKind kind) => Of(kind).Max(e => e.ContainerId + e.Count);

    /// <summary>The text of /proc/PID/uid_map or gid_map: "inside outside count" lines.</summary>
    public string KernelText(IdMapKind kind)
    {
        var sb = new StringBuilder();
        foreach (var e in Of(kind)) sb.Append(CultureInfo.InvariantCulture, $"{e.ContainerId} {e.HostId} {e.Count}\n");
        return sb.ToString();
    }

    /// <summary>The arguments newuidmap/newgidmap take after the pid: "inside outside count" triples.</summary>
    public IEnumerable<string> NewIdMapArguments(IdMapKind kind) =>
        Of(kind).SelectMany(e => new[] { e.ContainerId, e.HostId, e.Count }).Select(v => v.ToString(CultureInfo.InvariantCulture));

    /// <summary>This map plus one more line per kind (the caller's own ids, for a helper namespace).</summary>
    public IdMap With(uint uidInside, uint uidOutside, uint gidInside, uint gidOutside) =>
        new(Entries.Append(new IdMapEntry(IdMapKind.Uid, uidInside, uidOutside, 1)).Append(new IdMapEntry(IdMapKind.Gid, gidInside, gidOutside, 1)));

    /// <summary>Parses one lxc.idmap-style line ("u 0 100000 65536"); null with a reason when it is not one.</summary>
    public static IdMapEntry? ParseEntry(string text, out string? problem)
    {
        var parts = text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        problem = null;
        if (parts.Length != 4 || parts[0] is not ("u" or "g"))
        {
            problem = "expected 'u|g CONTAINER-ID HOST-ID COUNT', e.g. 'u 0 100000 65536'";
            return null;
        }
        var numbers = new uint[3];
        for (var i = 0; i < 3; i++)
            if (!uint.TryParse(parts[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out numbers[i]))
            {
                problem = $"'{parts[i + 1]}' is not an id (0 to 4294967294)";
                return null;
            }
        return new IdMapEntry(parts[0] == "u" ? IdMapKind.Uid : IdMapKind.Gid, numbers[0], numbers[1], numbers[2]);
    }

    /// <summary>What the kernel (or a container init) would refuse about these entries; null when they are fine.</summary>
    public static string? Problem(IReadOnlyList<IdMapEntry> entries)
    {
        foreach (var kind in new[] { IdMapKind.Uid, IdMapKind.Gid })
        {
            var name = kind == IdMapKind.Uid ? "uid" : "gid";
            var list = entries.Where(e => e.Kind == kind).ToList();
            if (list.Count == 0) return $"it maps no {name}s (give both u and g lines)";
            if (list.Count > MaxLinesPerKind) return $"more than {MaxLinesPerKind} {name} lines (the kernel's limit)";
            foreach (var e in list)
            {
                if (e.Count == 0) return $"'{e}' maps no ids (count 0)";
                // (uid_t)-1 is "no id": neither side may reach it.
                if ((ulong)e.ContainerId + e.Count > uint.MaxValue || (ulong)e.HostId + e.Count > uint.MaxValue)
                    return $"'{e}' runs past the highest id 4294967294";
            }
            for (var i = 0; i < list.Count; i++)
                for (var j = i + 1; j < list.Count; j++)
                {
                    if (Overlap(list[i].ContainerId, list[i].Count, list[j].ContainerId, list[j].Count))
                        return $"'{list[i]}' and '{list[j]}' overlap inside the container";
                    if (Overlap(list[i].HostId, list[i].Count, list[j].HostId, list[j].Count))
                        return $"'{list[i]}' and '{list[j]}' overlap on the host";
                }
            if (!list.Any(e => e.ContainerId == 0))
                return $"container {name} 0 is not mapped (the container's root needs a host id)";
        }
        return null;
    }

    private static bool Overlap(uint a, uint aCount, uint b, uint bCount) => (ulong)a < (ulong)b + bCount && (ulong)b < (ulong)a + aCount;

    public override string ToString() => string.Join(", ", Entries);
}
