using PSContainers.Runtime.IdMapping;
using PSContainers.Runtime.Native;

namespace PSContainers.Runtime.UserNamespaces;

/// <summary>
/// The id map a new unprivileged container gets when neither its config nor the user's defaults
/// name one: container ids 0..65535 on the first subordinate uid and gid ranges of at least 65536
/// ids that /etc/subuid and /etc/subgid grant the calling user (LXC's recommended set-up). Root
/// without a range gets one allocated, as `usermod --add-subuids` would (LXC asks root to do that).
/// </summary>
public static class DefaultIdMap
{
    /// <summary>
    /// The map, and the ranges allocated for it (root had none; empty otherwise): whoever makes the
    /// container gives them back with <see cref="Release"/> when the container is not made after all,
    /// so a failed create leaves /etc/subuid and /etc/subgid as they were.
    /// </summary>
    public sealed record Allocation(IdMap Map, IReadOnlyList<SubordinateIdRange> Added)
    {
        /// <summary>What to tell the user once the container exists (null when nothing was allocated).</summary>
        public string? Notice => Added.Count == 0 ? null
            : $"Root had no subordinate id range; allocated {string.Join(" and ", Added.Select(r => $"{r} in {r.Path}"))} for its unprivileged containers.";
    }

    public static IdMap ForCaller(SubordinateIdDatabase? database = null, Action<string>? warn = null)
    {
        var allocation = Allocate(database);
        if (allocation.Notice is { } notice) warn?.Invoke(notice);
        return allocation.Map;
    }

    public static Allocation Allocate(SubordinateIdDatabase? database = null)
    {
        var db = database ?? new SubordinateIdDatabase();
        var user = Host.HostContext.Current.User;
        uint? First(SubordinateIdKind kind) =>
            db.GetRanges(user, kind).FirstOrDefault(r => r.Count >= IdMap.DefaultCount)?.Start;
        var (uids, gids) = (First(SubordinateIdKind.Uid), First(SubordinateIdKind.Gid));
        IReadOnlyList<SubordinateIdRange> added = Array.Empty<SubordinateIdRange>();
        if ((uids is null || gids is null) && Host.HostContext.Current.IsRoot)
        {
            var before = db.GetRanges(user);
            added = db.Add(user.Name, IdMap.DefaultCount, null, SubordinateIdDatabase.BothKinds)
                .Where(r => !before.Any(b => b.Kind == r.Kind && b.Start == r.Start && b.Count == r.Count)).ToList();
            (uids, gids) = (First(SubordinateIdKind.Uid), First(SubordinateIdKind.Gid));
        }
        if (uids is null || gids is null)
            throw new ContainerException("NoSubordinateIds", ContainerErrorKind.PermissionDenied,
                $"User '{user.Name}' has no range of at least {IdMap.DefaultCount} subordinate {(uids is null ? "uids in /etc/subuid" : "gids in /etc/subgid")}, " +
                $"so an unprivileged container has no ids to run as. Root can add one: Add-SubordinateIdRange -User {user.Name}. " +
                "Or put an idMap allowed to you in ~/.config/pscontainers/config.yaml" +
                (Host.HostContext.Current.IsRoot ? ", or make a privileged container with -Privileged." : "."), user.Name);
        return new Allocation(IdMap.ForRanges(uids.Value, gids.Value), added);
    }

    /// <summary>
    /// Gives back what <see cref="Allocate"/> added, exactly those ids (a range edited meanwhile by
    /// someone else loses only them). Best effort: the create that failed reports its own error.
    /// </summary>
    public static void Release(SubordinateIdDatabase? database, Allocation? allocation)
    {
        if (allocation is null || allocation.Added.Count == 0) return;
        var db = database ?? new SubordinateIdDatabase();
        foreach (var r in allocation.Added)
        {
            try { db.Remove(r.Owner, r.Start, r.Count, r.Kind); }
            catch (ContainerException) { /* already gone */ }
        }
    }
}
