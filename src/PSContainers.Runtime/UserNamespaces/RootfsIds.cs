using System.Collections.Concurrent;
using PSContainers.Runtime.Launcher;
using PSContainers.Runtime.Namespaces;

namespace PSContainers.Runtime.UserNamespaces;

/// <summary>
/// How a user-namespaced container's rootfs holds its ids on disk (config storage.ids):
/// <list type="bullet">
/// <item>idmapped: the ids the container sees (0..65535, as a privileged container's tree). At start
/// the helper shows the tree to the container through an idmapped mount onto its user namespace
/// (psc-helper idmap.c), so making, copying and snapshotting it walks nothing.</item>
/// <item>shifted: chowned into the host's subordinate range when made (a walk of the whole tree).
/// The fallback where a mount cannot be idmapped: a non-root caller (the kernel allows idmapping
/// a host filesystem's mount only to root) or a filesystem without idmapped-mount support. Also
/// every container made before idmapped mounts (no storage.ids): it is never idmapped on top, which
/// would shift its ids twice.</item>
/// </list>
/// A tree in idmapped mode holds files owned by host root, which the container's root may have made
/// setuid: the store keeps every host user but root out of it (ContainerStore: 0711 root, 0700
/// container directories), as it does for a privileged container.
/// </summary>
public static class RootfsIds
{
    // Per filesystem (device): whether its mounts can be idmapped. A probe is one helper run; a store
    // lives on one or two filesystems.
    // Keyed by the filesystem's type too: an anonymous device number (tmpfs, ramfs) is reused once
    // its filesystem is unmounted, by a filesystem that may not be able to do the same.
    private static readonly ConcurrentDictionary<(ulong Device, long Type), string?> Probed = new();

    /// <summary>
    /// Gives a tree the caller just built (a template's rootfs) to the container's ids: nothing to do
    /// when <paramref name="rootfs"/>'s filesystem can be idmapped (true: the tree stays as it is,
    /// storage.ids idmapped); otherwise the tree is shifted and <paramref name="warn"/> told why, once
    /// (false: storage.ids shifted).
    /// </summary>
    public static bool Give(string rootfs, IdMap map, Action<string>? warn, string? ownersFile = null)
    {
        if (CanIdmap(rootfs, map, out var why)) return true;
        WarnOnce(rootfs, why, warn);
        UserNamespace.Shift(rootfs, map, ownersFile);
        return false;
    }

    // The reasons (per filesystem) already told in this process: the fallback is said once, not at
    // every create of a session (a non-root user's containers always fall back).
    private static readonly ConcurrentDictionary<string, bool> Told = new();

    /// <summary>Tells <paramref name="warn"/> of the fallback for <paramref name="path"/>, once per reason and filesystem in this process.</summary>
    public static void WarnOnce(string path, string? why, Action<string>? warn)
    {
        var key = (Filesystem.FsNative.TryLstat(Path.GetDirectoryName(Path.GetFullPath(path)) ?? "/", out var st) ? ((ulong)st.st_dev).ToString(System.Globalization.CultureInfo.InvariantCulture) : "") + "\n" + why;
        if (warn is not null && Told.TryAdd(key, true)) warn(FallbackWarning(path, why));
    }

    /// <summary>The warning of the fallback: what happened, why, and what it costs.</summary>
    public static string FallbackWarning(string path, string? why) =>
        $"The rootfs at {path} cannot be shown to the container through an idmapped mount ({why}); its files were chowned into the container's host id range instead (a walk of the whole tree; copies and snapshots of it stay shifted). Said once per filesystem in this session.";

    /// <summary>
    /// Whether a mount of <paramref name="path"/> can be idmapped onto a user namespace with
    /// <paramref name="map"/>; when not, <paramref name="why"/> says why.
    /// </summary>
    public static bool CanIdmap(string path, IdMap map, out string? why)
    {
        if (!Host.HostContext.Current.IsRoot)
        {
            why = "only root may idmap a mount of a host filesystem: the kernel requires CAP_SYS_ADMIN in the user namespace that owns the filesystem";
            return false;
        }
        // A path still to be made (a new store) is on the filesystem of its nearest existing ancestor.
        var full = Path.GetFullPath(path);
        Tmds.Linux.stat st;
        while (!Filesystem.FsNative.TryLstat(full, out st) || (st.st_mode & 0xF000) != 0x4000)
            full = Path.GetDirectoryName(full) ?? "/";
        var key = ((ulong)st.st_dev, Filesystem.FsNative.FilesystemType(full));
        why = Probed.GetOrAdd(key, _ => Probe(full, map));
        return why is null;
    }

    /// <summary>
    /// Root: mounts <paramref name="path"/> (or, with <paramref name="overlayLowers"/>, an overlay of
    /// those idmapped layers and <paramref name="overlayDirectory"/>'s upper and work) idmapped onto
    /// <paramref name="map"/> over <paramref name="path"/> in the caller's mount namespace: what CRIU
    /// takes as the root of a restored idmapped container. The caller unmounts it.
    /// </summary>
    public static void MountIdmapped(string path, IdMap map, IReadOnlyList<string> overlayLowers, string? overlayDirectory)
    {
        var spec = new UsernsTreeSpec
        {
            CallerId = map.End(IdMapKind.Uid),
            UidMap = map.KernelText(IdMapKind.Uid),
            GidMap = map.KernelText(IdMapKind.Gid),
            OverlayDirectory = overlayDirectory,
        };
        spec.OverlayLowers.AddRange(overlayLowers);
        spec.Command.Add("idmap-mount");
        spec.Command.Add(Path.GetFullPath(path));
        var result = PscHelper.RunPausing(spec, null);
        if (result.ExitCode != 0)
            throw new ContainerException("IdmapMountFailed", ContainerErrorKind.InvalidOperation,
                $"Could not mount {path} idmapped onto the container's ids ({map}): {string.Join(" ", result.Error).Replace("psc-helper: ", "").Trim()}.", path);
    }

    /// <summary>
    /// Whether a tree with these ids is out of the caller's own reach: a non-root caller's shifted tree
    /// belongs to its subordinate ids, whose 0600 files and 0700 directories it cannot read, and whose
    /// files it can neither chown nor delete. Such a tree is copied, moved and removed as root of a
    /// user namespace mapping them (<see cref="UserNamespace"/>).
    /// </summary>
    public static bool OutOfReach(IdMap? map, bool idmapped) => map is not null && !idmapped && !Host.HostContext.Current.IsRoot;

    /// <summary>
    /// Copies a rootfs tree (or an overlay upper layer) the way its ids allow: see <see cref="OutOfReach"/>.
    /// Out of reach, <paramref name="names"/> renames the copy's etc/hostname there too (the caller cannot
    /// write it); otherwise that is the caller's to do (HostnameFile).
    /// </summary>
    public static void Copy(string source, string destination, IdMap? map, bool idmapped, CancellationToken ct = default, (string Old, string New)? names = null)
    {
        if (OutOfReach(map, idmapped)) UserNamespace.CopyTree(source, destination, map!, names);
        else Filesystem.TreeCopier.Copy(source, destination, ct);
    }

    /// <summary>Deletes a tree (nothing when it does not exist) the way its ids allow: see <see cref="OutOfReach"/>.</summary>
    public static void Delete(string path, IdMap? map, bool idmapped)
    {
        if (OutOfReach(map, idmapped)) UserNamespace.DeleteTree(path, map!);
        else Filesystem.FsNative.DeleteTree(path);
    }

    /// <summary>Moves a directory to another parent the way its ids allow (a directory moved between parents must be writable to its mover).</summary>
    public static void Move(string source, string destination, IdMap? map, bool idmapped)
    {
        if (OutOfReach(map, idmapped)) UserNamespace.MoveTree(source, destination, map!);
        else Directory.Move(source, destination);
    }

    private static string? Probe(string path, IdMap map)
    {
        var spec = new UsernsTreeSpec
        {
            CallerId = map.End(IdMapKind.Uid),
            UidMap = map.KernelText(IdMapKind.Uid),
            GidMap = map.KernelText(IdMapKind.Gid),
        };
        spec.Command.Add("idmap-probe");
        spec.Command.Add(path);
        var result = PscHelper.RunPausing(spec, null);
        if (result.ExitCode == 0) return null;
        var message = string.Join(" ", result.Error).Replace("psc-helper: ", "").Trim();
        // Exit 3: the kernel refused the idmap (the filesystem, or this kernel, cannot). Anything
        // else is a failure of the probe itself, not a property of the filesystem.
        if (result.ExitCode == 3) return message;
        throw new ContainerException("IdmapProbeFailed", ContainerErrorKind.InvalidOperation,
            $"Could not find out whether {path} can be idmapped: {message}. Check that psc-helper is intact and the store path exists.", path);
    }
}
