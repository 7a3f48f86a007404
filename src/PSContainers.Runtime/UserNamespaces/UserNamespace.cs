using System.Diagnostics;
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

    public static uint CallerUid => LibC.getuid();
    public static uint CallerGid => LibC.getgid();

    /// <summary>Sets a start/exec spec up for a container with <paramref name="map"/>: the user namespace, and for root the maps the helper writes.</summary>
    public static void Prepare(LaunchSpec spec, IdMap map)
    {
        spec.Namespaces |= NamespaceKind.User;
        if (!Sys.IsRoot) return; // written with newuidmap/newgidmap while init waits: WriteMaps
        spec.UidMap = map.KernelText(IdMapKind.Uid);
        spec.GidMap = map.KernelText(IdMapKind.Gid);
    }

    /// <summary>
    /// Non-root: runs newuidmap and newgidmap for <paramref name="pid"/> (a process waiting in its
    /// new user namespace). Root needs no call: the helper wrote the maps already.
    /// </summary>
    public static void WriteMaps(int pid, IdMap map)
    {
        if (Sys.IsRoot) return;
        foreach (var (tool, kind) in new[] { (NewUidMap, IdMapKind.Uid), (NewGidMap, IdMapKind.Gid) })
        {
            var psi = new ProcessStartInfo(tool) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
            psi.ArgumentList.Add(pid.ToString(CultureInfo.InvariantCulture));
            foreach (var a in map.NewIdMapArguments(kind)) psi.ArgumentList.Add(a);
            Process process;
            try { process = Process.Start(psi)!; }
            catch (System.ComponentModel.Win32Exception ex)
            {
                throw new ContainerException("NewIdMapNotFound", ContainerErrorKind.NotInstalled,
                    $"{tool} is needed to map the container's ids as a non-root user, and it could not be run ({ex.Message}). Install it: apt-get install uidmap.", tool, ex);
            }
            using (process)
            {
                var stderr = process.StandardError.ReadToEnd();
                process.StandardOutput.ReadToEnd();
                process.WaitForExit();
                if (process.ExitCode != 0)
                {
                    var file = kind == IdMapKind.Uid ? "/etc/subuid" : "/etc/subgid";
                    throw new ContainerException("IdMapRefused", ContainerErrorKind.PermissionDenied,
                        $"{tool} refused the map {string.Join(", ", map.Of(kind))}: {stderr.Trim()}. " +
                        $"The host ids must be a range {file} grants to {Environment.UserName} (Get-SubordinateIdRange; root adds one with Add-SubordinateIdRange -User {Environment.UserName}).", tool);
                }
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

    private static void RunTree(string operation, string path, IdMap map, string? ownersFile)
    {
        // The caller's own ids are mapped too, just above the container's, so that what the caller
        // owns is visible (and changeable) in there.
        uint uidInside = map.End(IdMapKind.Uid), gidInside = map.End(IdMapKind.Gid);
        var treeMap = map.With(uidInside, CallerUid, gidInside, CallerGid);
        var spec = new LaunchSpec();
        spec.Command.Add(operation);
        spec.Command.Add(Path.GetFullPath(path));
        spec.CallerId = uidInside == gidInside ? uidInside : throw new ContainerException("InvalidIdMap", ContainerErrorKind.InvalidArgument,
            $"The id map {map} maps different numbers of uids and gids; rootfs ownership can only be shifted for maps whose uid and gid ranges end at the same container id.");
        spec.OwnersFile = ownersFile;
        var direct = Sys.IsRoot;
        if (direct)
        {
            spec.UidMap = treeMap.KernelText(IdMapKind.Uid);
            spec.GidMap = treeMap.KernelText(IdMapKind.Gid);
        }
        var result = PscHelper.RunPausing("userns-tree", spec, direct ? null : (_, child) => WriteMaps(child, treeMap));
        if (result.ExitCode != 0)
            throw new ContainerException(operation == "shift" ? "RootfsShiftFailed" : "RootfsRemoveFailed", ContainerErrorKind.InvalidOperation,
                $"Could not {(operation == "shift" ? "give" : "remove")} {path} {(operation == "shift" ? "to" : "owned by")} the container's ids ({map}): " +
                string.Join(" ", result.Error).Replace("psc-helper: ", "").Trim(), path);
    }
}
