using System.Globalization;

namespace PSContainers.Runtime.UserNamespaces;

/// <summary>
/// The id map a new unprivileged container gets when neither its config nor the user's defaults
/// name one: container ids 0..65535 on the first subordinate uid and gid ranges of at least 65536
/// ids that /etc/subuid and /etc/subgid grant the user (LXC's recommended set-up).
/// </summary>
public static class DefaultIdMap
{
    public static IdMap For(string user, uint uid)
    {
        var uids = FirstRange("/etc/subuid", user, uid);
        var gids = FirstRange("/etc/subgid", user, uid);
        if (uids is null || gids is null)
            throw new ContainerException("NoSubordinateIds", ContainerErrorKind.PermissionDenied,
                $"User '{user}' has no range of at least {IdMap.DefaultCount} subordinate {(uids is null ? "uids in /etc/subuid" : "gids in /etc/subgid")}, " +
                $"so an unprivileged container has no ids to run as. Root can add one: Add-SubordinateIdRange -User {user}. " +
                "Or give the container an explicit idMap in config.yaml.", user);
        return IdMap.ForRanges(uids.Value, gids.Value);
    }

    // TODO(subids): replace with the IdMapping API once merged.
    private static uint? FirstRange(string file, string user, uint uid)
    {
        if (!File.Exists(file)) return null;
        foreach (var line in File.ReadLines(file))
        {
            var f = line.Split(':');
            if (f.Length == 3 && (f[0] == user || f[0] == uid.ToString(CultureInfo.InvariantCulture))
                && uint.TryParse(f[1], out var start) && uint.TryParse(f[2], out var count) && count >= IdMap.DefaultCount)
                return start;
        }
        return null;
    }
}
