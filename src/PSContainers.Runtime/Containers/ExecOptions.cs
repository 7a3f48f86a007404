using System.Globalization;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.UserNamespaces;

namespace PSContainers.Runtime.Containers;

/// <summary>How Invoke-ContainerCommand runs its program beyond the command line (lxc-attach -u -g -v --clear-env, podman exec -i -u -w -e -t).</summary>
public sealed record ExecOptions
{
    /// <summary>A user name (from the container's /etc/passwd) or a uid; its primary group and supplementary groups come with a name.</summary>
    public string? User { get; init; }
    /// <summary>A group name (from the container's /etc/group) or a gid; replaces the user's primary group.</summary>
    public string? Group { get; init; }
    /// <summary>The environment is only PATH (a default unless given) and the given variables, not the container's.</summary>
    public bool ClearEnvironment { get; init; }
    /// <summary>The program's process group is killed past it (CommandTimeout).</summary>
    public TimeSpan? Timeout { get; init; }
    /// <summary>A new pty of the container's devpts as the program's stdio (output read back through it).</summary>
    public bool Terminal { get; init; }
    /// <summary>The program's standard input (null: none, it reads end of file).</summary>
    public Stream? Input { get; init; }
}

/// <summary>The ids a command runs as inside a container, resolved from its own account files.</summary>
public sealed record ExecIdentity(uint? Uid, uint? Gid, IReadOnlyList<uint> SupplementaryGroups, string? Home);

/// <summary>
/// Resolves -User and -Group in the container's /etc/passwd and /etc/group, read through
/// <see cref="InRoot"/> under its init's root: the container's files (links in them resolved inside
/// it, never on the host), read with a size cap, parsed as data.
/// </summary>
public static class ExecIdentities
{
    private const int MaxAccountFileBytes = 4 << 20;

    /// <summary>
    /// -User / -Group of a command in a running container, read under its init's root. Supplementary
    /// gids its user namespace (<paramref name="idMap"/>) does not map are left out, as podman exec
    /// leaves them out: setgroups(2) would refuse the whole list for one of them.
    /// </summary>
    public static ExecIdentity Resolve(string container, int initPid, string? user, string? group, IdMap? idMap = null)
    {
        if (user is null && group is null) return new ExecIdentity(null, null, Array.Empty<uint>(), null);
        using var root = InRoot.Open($"/proc/{initPid}/root", container);
        var identity = Resolve(root, container, user, group);
        return identity with { SupplementaryGroups = Mapped(identity.SupplementaryGroups, idMap) };
    }

    /// <summary>
    /// Init's groups (an OCI runtime's additionalGids), resolved at each start in the container's own
    /// account files under <paramref name="root"/> (so an edited /etc/group counts from the next
    /// start): init.group first, then the groups of /etc/group that name init.user's account, as runc
    /// and podman give them when the image's User is a name or a uid alone. An image's explicit group
    /// ("name:group", "uid:gid") is the only one, as there. The account is looked up by the image's
    /// user name while it still has init.user's uid (two names can share one), otherwise by the uid;
    /// a uid without an account has no further groups. Gids the user namespace does not map are left out.
    /// </summary>
    public static IReadOnlyList<uint> ForInit(InRoot root, string container, ContainerConfig config)
    {
        var gid = checked((uint)(config.Init.Group ?? 0));
        var imageUser = config.Oci?.User;
        if (config.Init.User is not { } user || imageUser?.Contains(':') == true) return new[] { gid };
        var uid = checked((uint)user);
        var uidText = uid.ToString(CultureInfo.InvariantCulture);
        ExecIdentity? identity = null;
        if (imageUser is { Length: > 0 } && !uint.TryParse(imageUser, NumberStyles.None, CultureInfo.InvariantCulture, out _))
        {
            try { identity = Resolve(root, container, imageUser, null); }
            catch (ContainerException ex) when (ex.ErrorId == "ContainerUserNotFound") { /* gone since: by uid below */ }
        }
        if (identity?.Uid != uid) identity = Resolve(root, container, uidText, null);
        // Resolve puts the account's primary group first: init.group takes its place.
        var groups = new List<uint> { gid };
        groups.AddRange(identity.SupplementaryGroups.Skip(1).Where(g => g != gid));
        return Mapped(groups, config.IdMap);
    }

    /// <summary>The list without the gids (after the first, the primary one) that <paramref name="idMap"/> does not map.</summary>
    static IReadOnlyList<uint> Mapped(IReadOnlyList<uint> groups, IdMap? idMap) =>
        idMap is null ? groups : groups.Where((g, i) => i == 0 || idMap.ToHost(IdMapKind.Gid, g) is not null).ToList();

    /// <summary>The same, in a root filesystem given as a tree (an image's, when its container is made).</summary>
    public static ExecIdentity Resolve(InRoot root, string container, string? user, string? group)
    {
        if (user is null && group is null) return new ExecIdentity(null, null, Array.Empty<uint>(), null);
        var passwd = Parse(root.ReadText("/etc/passwd", MaxAccountFileBytes));
        var groups = Parse(root.ReadText("/etc/group", MaxAccountFileBytes));
        uint? uid = null, gid = null;
        string? home = null, userName = null;
        var supplementary = new List<uint>();
        if (user is not null)
        {
            var entry = passwd.FirstOrDefault(f => f.Length >= 7 && f[0] == user)
                ?? (uint.TryParse(user, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? passwd.FirstOrDefault(f => f.Length >= 7 && f[2] == user) ?? new[] { "", "", user, "0", "", "/", "" } : null)
                ?? throw new ContainerException("ContainerUserNotFound", ContainerErrorKind.ObjectNotFound,
                    $"Container '{container}' has no user '{user}' in its /etc/passwd. Give a user it has, or a numeric uid.", user);
            uid = Id(entry[2], "uid", container, user);
            gid = Id(entry[3], "gid", container, user);
            home = entry[5].Length > 0 ? entry[5] : "/";
            userName = entry[0];
            // Supplementary groups: where the name is a member (initgroups), the primary one first;
            // (gid_t)-1 is no group (setgroups refuses it).
            if (userName.Length > 0)
                foreach (var g in groups.Where(f => f.Length >= 4 && f[3].Split(',').Contains(userName)))
                    if (uint.TryParse(g[2], NumberStyles.None, CultureInfo.InvariantCulture, out var sg) && sg != gid && sg != uint.MaxValue) supplementary.Add(sg);
            supplementary.Insert(0, gid.Value);
        }
        if (group is not null)
        {
            var entry = groups.FirstOrDefault(f => f.Length >= 3 && f[0] == group);
            gid = entry is not null ? Id(entry[2], "gid", container, group)
                : uint.TryParse(group, NumberStyles.None, CultureInfo.InvariantCulture, out var g) ? g
                : throw new ContainerException("ContainerGroupNotFound", ContainerErrorKind.ObjectNotFound,
                    $"Container '{container}' has no group '{group}' in its /etc/group. Give a group it has, or a numeric gid.", group);
            if (supplementary.Count > 0) supplementary[0] = gid.Value;
        }
        return new ExecIdentity(uid, gid, supplementary.Distinct().Take(256).ToList(), home);
    }

    private static uint Id(string text, string what, string container, string name) =>
        uint.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var id) && id != uint.MaxValue ? id
            : throw new ContainerException("ContainerAccountInvalid", ContainerErrorKind.InvalidData,
                $"Container '{container}': the {what} of '{name}' in its account files is not a number ('{text}'). Fix the container's /etc/passwd or /etc/group, or give numeric ids.", name);

    private static List<string[]> Parse(string? text) =>
        (text ?? "").Split('\n').Where(l => l.Length > 0 && !l.StartsWith('#')).Select(l => l.Split(':')).ToList();
}
