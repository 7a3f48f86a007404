using System.Globalization;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Native;
using Tmds.Linux;
using PSContainers.Runtime.Launcher;

namespace PSContainers.Runtime.UserNamespaces;

/// <summary>
/// How a container's user namespace gets its id maps and how its root filesystem comes to be owned
/// by the mapped ids. Root writes maps directly (through the helper); any other user has them
/// written by newuidmap/newgidmap (setuid root, from the uidmap package), which allow exactly the
/// ranges /etc/subuid and /etc/subgid grant that user, plus the user's own uid and gid.
/// </summary>
public static class UserNamespace
{
    public const string NewUidMap = "newuidmap";
    public const string NewGidMap = "newgidmap";

    public static uint CallerUid => Host.HostContext.Current.Uid;
    public static uint CallerGid => Host.HostContext.Current.Gid;

    /// <summary>Sets a start spec up for a container with <paramref name="map"/>: the user namespace, and for root the maps the helper writes.</summary>
    public static void Prepare(StartSpec spec, IdMap map)
    {
        spec.Namespaces |= NamespaceKind.User;
        if (!Host.HostContext.Current.IsRoot) return; // written with newuidmap/newgidmap while init waits: WriteMaps
        spec.UidMap = map.KernelText(IdMapKind.Uid);
        spec.GidMap = map.KernelText(IdMapKind.Gid);
    }

    /// <summary>
    /// Non-root: runs newuidmap and newgidmap for <paramref name="pid"/> (a process waiting in its
    /// new user namespace). Root needs no call: the helper wrote the maps already.
    /// </summary>
    public static void WriteMaps(int pid, IdMap map)
    {
        if (Host.HostContext.Current.IsRoot) return;
        foreach (var (tool, kind) in new[] { (NewUidMap, IdMapKind.Uid), (NewGidMap, IdMapKind.Gid) })
        {
            var result = Processes.ProcessRunner.Run(new Processes.ProgramStart
            {
                Program = tool,
                Arguments = new[] { pid.ToString(CultureInfo.InvariantCulture) }.Concat(map.NewIdMapArguments(kind)).ToArray(),
                Timeout = TimeSpan.FromSeconds(30),
                NotFoundErrorId = "NewIdMapNotFound",
                NotFoundAdvice = $"{tool} is needed to map the container's ids as a non-root user. Install it: apt-get install uidmap.",
            });
            if (!result.Succeeded)
            {
                var file = kind == IdMapKind.Uid ? "/etc/subuid" : "/etc/subgid";
                var user = Host.HostContext.Current.UserName;
                throw result.Failure("IdMapRefused", ContainerErrorKind.PermissionDenied, $"{tool} refused the map {string.Join(", ", map.Of(kind))}",
                    $"The host ids must be a range {file} grants to {user} (Get-SubordinateIdRange; root adds one with Add-SubordinateIdRange -User {user}).", tool);
            }
        }
    }

    /// <summary>
    /// Hands a tree the caller made (a template's rootfs, an extracted archive) to the container's
    /// ids: every entry owned by the caller becomes the container root's; <paramref name="ownersFile"/>
    /// optionally lists "uid gid relative-path" records (container ids, NUL-terminated) applied after.
    /// </summary>
    public static void Shift(string path, IdMap map, string? ownersFile = null) => RunTree("shift", path, map, ownersFile);

    /// <summary>Deletes a tree owned by the container's ids (which a non-root caller cannot delete itself).</summary>
    public static void DeleteTree(string path, IdMap map)
    {
        if (!Path.Exists(path)) return;
        RunTree("remove", path, map, null);
    }

    /// <summary>
    /// Copies a tree owned by the container's ids (a non-root user's shifted rootfs, which that user
    /// can neither read whole nor chown) to <paramref name="destination"/> (which must not exist or be empty) with
    /// the same owners, modes, xattrs, hard links and times, as root of a namespace mapping them.
    /// </summary>
    /// <param name="names">A copy under a new name: its etc/hostname holding the old name gets the new one.</param>
    public static void CopyTree(string source, string destination, IdMap map, (string Old, string New)? names = null) =>
        RunTree("copy", source, map, null, destination, names);

    /// <summary>Moves a directory the container's ids own to another parent (<paramref name="destination"/> must not exist).</summary>
    public static void MoveTree(string source, string destination, IdMap map) => RunTree("rename", source, map, null, destination);

    /// <summary>
    /// Describes a tree owned by the container's ids (which a non-root caller can neither list nor
    /// stat whole) into <paramref name="listing"/>, a file the caller made, entry by entry with the
    /// owners the container sees (the format: psc-helper's tree_list.c; Storage/TreeListing reads it).
    /// </summary>
    public static void ListTree(string path, string listing, IdMap map) => RunTree("list", path, map, null, listing);

    /// <summary>
    /// Like <see cref="ListTree"/> with every regular file's content after its record, written into
    /// <paramref name="fifo"/> (Export-Container of a tree the caller cannot read itself).
    /// </summary>
    public static void ExportTree(string path, string fifo, IdMap map) => RunTree("export", path, map, null, fifo);

    private static void RunTree(string operation, string path, IdMap map, string? ownersFile, string? destination = null, (string Old, string New)? names = null)
    {
        // The caller's own ids are mapped too, just above the container's, so that what the caller
        // owns is visible (and changeable) in there. Root maps host ids 0.. instead (as many as the
        // container has, below its range): a tree root built (debootstrap) has files of several
        // owners (root:shadow, _apt) that mean the container's ids, and its namespace's root can
        // only open and chown what has a mapped owner and group.
        uint uidInside = map.End(IdMapKind.Uid), gidInside = map.End(IdMapKind.Gid);
        var direct = Host.HostContext.Current.IsRoot;
        uint count = 1;
        if (direct && CallerUid == 0 && CallerGid == 0)
            count = Math.Min(Math.Min(uidInside, gidInside), map.Entries.Min(e => e.HostId));
        var treeMap = count > 1
            ? new IdMap(map.Entries.Append(new IdMapEntry(IdMapKind.Uid, uidInside, 0, count)).Append(new IdMapEntry(IdMapKind.Gid, gidInside, 0, count)))
            : map.With(uidInside, CallerUid, gidInside, CallerGid);
        var spec = new UsernsTreeSpec();
        spec.Command.Add(operation);
        spec.Command.Add(Path.GetFullPath(path));
        if (destination is not null) spec.Command.Add(Path.GetFullPath(destination));
        if (names is { } n) { spec.Command.Add(n.Old); spec.Command.Add(n.New); }
        spec.CallerId = uidInside == gidInside ? uidInside : throw new ContainerException("InvalidIdMap", ContainerErrorKind.InvalidArgument,
            $"The id map {map} maps different numbers of uids and gids; rootfs ownership can only be shifted for maps whose uid and gid ranges end at the same container id.");
        spec.OwnersFile = ownersFile;
        if (count > 1) spec.CallerCount = count;
        if (direct)
        {
            spec.UidMap = treeMap.KernelText(IdMapKind.Uid);
            spec.GidMap = treeMap.KernelText(IdMapKind.Gid);
        }
        var result = PscHelper.RunPausing(spec, direct ? null : (_, child) => WriteMaps(child, treeMap));
        if (result.ExitCode != 0)
        {
            var what = operation switch
            {
                "shift" => $"give {path} to",
                "copy" => $"copy {path} to {destination} as",
                "rename" => $"move {path} to {destination} as",
                "list" or "export" => $"list {path} as",
                _ => $"remove {path} owned by",
            };
            throw new ContainerException(operation == "shift" ? "RootfsShiftFailed" : operation == "remove" ? "RootfsRemoveFailed" : operation is "list" or "export" ? "RootfsListFailed" : "RootfsCopyFailed", ContainerErrorKind.InvalidOperation,
                $"Could not {what} the container's ids ({map}): " + string.Join(" ", result.Error).Replace("psc-helper: ", "").Trim() +
                (operation == "copy" ? ". Check the free space and that the source is a container rootfs of this user's (no device nodes)." : ""), path);
        }
    }
}
