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
    public static IdMap ForCaller(SubordinateIdDatabase? database = null, Action<string>? warn = null)
    {
        var db = database ?? new SubordinateIdDatabase();
        var user = Host.HostContext.Current.User;
        uint? First(SubordinateIdKind kind) =>
            db.GetRanges(user, kind).FirstOrDefault(r => r.Count >= IdMap.DefaultCount)?.Start;
        var (uids, gids) = (First(SubordinateIdKind.Uid), First(SubordinateIdKind.Gid));
        if ((uids is null || gids is null) && Host.HostContext.Current.IsRoot)
        {
            var added = db.Add(user.Name, IdMap.DefaultCount, null, SubordinateIdDatabase.BothKinds);
            warn?.Invoke($"Root had no subordinate id range; allocated {string.Join(" and ", added.Select(r => $"{r} in {r.Path}"))} for its unprivileged containers.");
            (uids, gids) = (First(SubordinateIdKind.Uid), First(SubordinateIdKind.Gid));
        }
        if (uids is null || gids is null)
            throw new ContainerException("NoSubordinateIds", ContainerErrorKind.PermissionDenied,
                $"User '{user.Name}' has no range of at least {IdMap.DefaultCount} subordinate {(uids is null ? "uids in /etc/subuid" : "gids in /etc/subgid")}, " +
                $"so an unprivileged container has no ids to run as. Root can add one: Add-SubordinateIdRange -User {user.Name}. " +
                "Or put an idMap allowed to you in ~/.config/pscontainers/config.yaml.", user.Name);
        return IdMap.ForRanges(uids.Value, gids.Value);
    }
}
