using System.Globalization;
using System.Text;
using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.IdMapping;
using PSContainers.Runtime.State;
using PSContainers.Runtime.UserNamespaces;

namespace PSContainers.Runtime.IdRanges;

/// <summary>
/// Isolated id ranges (config <c>idMapIsolated: true</c>, like Incus's security.idmap.isolated): a
/// container of its own 65536 host uids and gids, which no other container of the store shares, so
/// that a process escaping one container owns nothing of another. The blocks are cut from the
/// caller's subordinate ranges (/etc/subuid, /etc/subgid), leaving out the first 65536 ids of the
/// first range, which the store's shared (non-isolated) containers use (DefaultIdMap).
/// <para>
/// Allocations are recorded in &lt;store&gt;/.idmap-ranges ("name uid-start gid-start count" lines),
/// read and rewritten (atomically) only under the store-wide lock .locks/.idmap-ranges.lock, so two
/// creates never take the same block. Remove-Container frees a container's block, and so does a
/// create that fails.
/// </para>
/// </summary>
public sealed class IsolatedIdRanges
{
    private const string LockName = ".idmap-ranges";
    private const uint Block = IdMap.DefaultCount;

    private readonly ContainerStore _store;
    private readonly SubordinateIdDatabase _ids;

    public IsolatedIdRanges(ContainerStore store, SubordinateIdDatabase ids) => (_store, _ids) = (store, ids);

    public string FilePath => Path.Combine(_store.Root, ".idmap-ranges");

    public sealed record Allocation(string Name, uint UidStart, uint GidStart, uint Count)
    {
        public IdMap Map => IdMap.ForRanges(UidStart, GidStart, Count);
    }

    /// <summary>The blocks recorded now.</summary>
    public IReadOnlyList<Allocation> List()
    {
        using var _ = _store.Lock(LockName);
        return Read();
    }

    /// <summary>
    /// A block of uids and gids no container of this store has, for <paramref name="name"/> (its
    /// existing one if it has one already), recorded before it is returned.
    /// </summary>
    public Allocation Allocate(string name) => Allocate(name, out _);

    /// <summary>As <see cref="Allocate(string)"/>; <paramref name="isNew"/> tells whether this call made the
    /// allocation (only then may a failed create free it: an existing one is another container's).</summary>
    public Allocation Allocate(string name, out bool isNew)
    {
        using var _ = _store.Lock(LockName);
        var taken = Read();
        isNew = false;
        if (taken.FirstOrDefault(a => a.Name == name) is { } existing) return existing;
        var user = Host.HostContext.Current.User;
        uint? uid = Free(user, SubordinateIdKind.Uid, taken.Select(a => a.UidStart));
        uint? gid = Free(user, SubordinateIdKind.Gid, taken.Select(a => a.GidStart));
        if (uid is null || gid is null)
            throw new ContainerException("NoIsolatedIdRange", ContainerErrorKind.LimitsExceeded,
                $"No free block of {Block} subordinate {(uid is null ? "uids" : "gids")} is left for an isolated container: {taken.Count} isolated container(s) of this store hold " +
                $"{(taken.Count == 0 ? "none" : string.Join(", ", taken.Select(a => a.Name)))}, and the first {Block} ids of {user.Name}'s first range are the shared containers'. " +
                $"Give {user.Name} a larger range (root: Add-SubordinateIdRange -User {user.Name} -Count {Block * 16}), or remove an isolated container.", name);
        var allocation = new Allocation(name, uid.Value, gid.Value, Block);
        Write(taken.Append(allocation).ToList());
        isNew = true;
        return allocation;
    }

    /// <summary>Frees <paramref name="name"/>'s block, if it has one.</summary>
    public void Free(string name)
    {
        if (!File.Exists(FilePath)) return;
        using var _ = _store.Lock(LockName);
        var taken = Read();
        if (taken.All(a => a.Name != name)) return;
        Write(taken.Where(a => a.Name != name).ToList());
    }

    /// <summary>The lowest block of the user's ranges of <paramref name="kind"/> that starts none of <paramref name="taken"/>.</summary>
    private uint? Free(UserAccount user, SubordinateIdKind kind, IEnumerable<uint> taken)
    {
        var used = taken.ToHashSet();
        var ranges = _ids.GetRanges(user, kind);
        var shared = ranges.FirstOrDefault(r => r.Count >= Block)?.Start;
        foreach (var range in ranges)
            for (ulong start = range.Start; start + Block <= (ulong)range.Start + range.Count; start += Block)
            {
                var s = (uint)start;
                if (s == shared || used.Contains(s)) continue;
                // A block overlapping another allocation (ranges of other sizes) is taken too.
                if (used.Any(u => u < s + Block && s < u + Block)) continue;
                return s;
            }
        return null;
    }

    private List<Allocation> Read()
    {
        if (!File.Exists(FilePath)) return new List<Allocation>();
        var list = new List<Allocation>();
        foreach (var line in File.ReadAllLines(FilePath))
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length != 4 || !uint.TryParse(f[1], NumberStyles.None, CultureInfo.InvariantCulture, out var u)
                || !uint.TryParse(f[2], NumberStyles.None, CultureInfo.InvariantCulture, out var g) || !uint.TryParse(f[3], NumberStyles.None, CultureInfo.InvariantCulture, out var c))
                throw new ContainerException("IdRangeRecordCorrupt", ContainerErrorKind.InvalidData,
                    $"{FilePath} holds a line that is not 'name uid-start gid-start count': '{line}'. Fix or remove that line (Get-Container shows each container's idMap).", FilePath);
            list.Add(new Allocation(f[0], u, g, c));
        }
        return list;
    }

    private void Write(IReadOnlyList<Allocation> list)
    {
        var sb = new StringBuilder();
        foreach (var a in list) sb.Append(CultureInfo.InvariantCulture, $"{a.Name} {a.UidStart} {a.GidStart} {a.Count}\n");
        AtomicFile.WriteAllText(FilePath, sb.ToString());
    }
}
