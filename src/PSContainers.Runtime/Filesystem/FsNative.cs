using System.Runtime.InteropServices;
using System.Text;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace PSContainers.Runtime.Filesystem;

/// <summary>Filesystem system calls the storage code needs: statfs, btrfs ioctls, xattrs, mounts.</summary>
public static unsafe class FsNative
{
    public const long BtrfsMagic = 0x9123683E;
    public const long XfsMagic = 0x58465342;
    public const long OverlayMagic = 0x794c7630;

    [DllImport("libc", SetLastError = true)]
    static extern int statfs(byte* path, byte* buf);
    [DllImport("libc", SetLastError = true)]
    static extern nint llistxattr(byte* path, byte* list, nuint size);
    [DllImport("libc", SetLastError = true)]
    static extern nint lgetxattr(byte* path, byte* name, byte* value, nuint size);
    [DllImport("libc", SetLastError = true)]
    static extern int lsetxattr(byte* path, byte* name, byte* value, nuint size, int flags);
    [DllImport("libc", SetLastError = true)]
    static extern int fsetxattr(int fd, byte* name, byte* value, nuint size, int flags);
    [DllImport("libc", SetLastError = true, EntryPoint = "ioctl")]
    static extern int ioctl_ptr(int fd, nuint request, void* arg);

    public static int Errno => Marshal.GetLastPInvokeError();

    /// <summary>NUL-terminated UTF-8.</summary>
    public static byte[] Z(string s)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(s) + 1];
        Encoding.UTF8.GetBytes(s, 0, s.Length, bytes, 0);
        return bytes;
    }

    /// <summary>The filesystem type magic (statfs f_type) of the filesystem holding <paramref name="path"/>.</summary>
    public static long FilesystemType(string path)
    {
        var buf = stackalloc byte[256];
        fixed (byte* p = Z(path))
            if (statfs(p, buf) != 0) throw Error("statfs", path, Errno);
        return *(long*)buf;
    }

    /// <summary>Free bytes (for an unprivileged writer, f_bavail), total bytes and free inodes of the filesystem holding <paramref name="path"/>.</summary>
    public static (long Available, long Total, long FreeInodes) Space(string path)
    {
        var buf = stackalloc long[16];
        fixed (byte* p = Z(path))
            if (statfs(p, (byte*)buf) != 0) throw Error("statfs", path, Errno);
        long unit = buf[9] != 0 ? buf[9] : buf[1]; // f_frsize, else f_bsize
        return (buf[4] * unit, buf[2] * unit, buf[5] == 0 ? long.MaxValue : buf[6]); // no inode count (btrfs reports 0 files): unlimited
    }

    public static ContainerException Error(string op, string path, int errno, string hint = "") =>
        new("StorageOperationFailed", errno is 1 or 13 ? ContainerErrorKind.PermissionDenied : errno == 28 ? ContainerErrorKind.DeviceError : ContainerErrorKind.InvalidOperation,
            $"Cannot {op} '{path}': {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno}).{(hint.Length > 0 ? " " + hint : "")}", path);

    // ---- btrfs ------------------------------------------------------------------------------------

    // _IOW(0x94, nr, 4096-byte struct): both btrfs_ioctl_vol_args and _v2 are 4096 bytes.
    const nuint BTRFS_IOC_SNAP_DESTROY = 0x5000940F;
    const nuint BTRFS_IOC_SUBVOL_CREATE = 0x5000940E;
    const nuint BTRFS_IOC_SNAP_CREATE_V2 = 0x50009417;
    const ulong BTRFS_SUBVOL_RDONLY = 1UL << 1;
    // btrfs_ioctl_vol_args_v2: fd, transid, flags, 32 bytes of union, then name[4040].
    const int V2NameOffset = 8 + 8 + 8 + 32;

    static int OpenDirectory(string path)
    {
        int fd;
        fixed (byte* p = Z(path))
            fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
        if (fd < 0) throw Error("open", path, Errno);
        return fd;
    }

    static void PutName(byte* args, int offset, int max, string name)
    {
        var bytes = Encoding.UTF8.GetBytes(name);
        if (bytes.Length >= max || name.Contains('/')) throw new ContainerException("InvalidArgument", ContainerErrorKind.InvalidArgument, $"Invalid subvolume name '{name}'.", name);
        for (int i = 0; i < bytes.Length; i++) args[offset + i] = bytes[i];
    }

    /// <summary>Creates <paramref name="path"/> as a new, empty btrfs subvolume (BTRFS_IOC_SUBVOL_CREATE).</summary>
    public static void BtrfsCreateSubvolume(string path)
    {
        int dir = OpenDirectory(Path.GetDirectoryName(path)!);
        try
        {
            var args = stackalloc byte[4096];
            new Span<byte>(args, 4096).Clear();
            PutName(args, 8, 4088, Path.GetFileName(path));
            if (ioctl_ptr(dir, BTRFS_IOC_SUBVOL_CREATE, args) != 0)
                throw Error("create btrfs subvolume", path, Errno, "The store must be on a btrfs filesystem for the btrfs backend.");
        }
        finally { close(dir); }
    }

    /// <summary>Snapshots the subvolume <paramref name="source"/> as <paramref name="destination"/> (BTRFS_IOC_SNAP_CREATE_V2).</summary>
    public static void BtrfsSnapshot(string source, string destination, bool readOnly)
    {
        int src = OpenDirectory(source);
        try
        {
            int dir = OpenDirectory(Path.GetDirectoryName(destination)!);
            try
            {
                var args = stackalloc byte[4096];
                new Span<byte>(args, 4096).Clear();
                *(long*)args = src;
                *(ulong*)(args + 16) = readOnly ? BTRFS_SUBVOL_RDONLY : 0;
                PutName(args, V2NameOffset, 4040, Path.GetFileName(destination));
                if (ioctl_ptr(dir, BTRFS_IOC_SNAP_CREATE_V2, args) != 0)
                    throw Error("snapshot btrfs subvolume to", destination, Errno, $"'{source}' must be a btrfs subvolume on the same filesystem.");
            }
            finally { close(dir); }
        }
        finally { close(src); }
    }

    /// <summary>Deletes the subvolume at <paramref name="path"/> with everything in it (BTRFS_IOC_SNAP_DESTROY).</summary>
    public static void BtrfsDeleteSubvolume(string path)
    {
        int dir = OpenDirectory(Path.GetDirectoryName(path)!);
        try
        {
            var args = stackalloc byte[4096];
            new Span<byte>(args, 4096).Clear();
            PutName(args, 8, 4088, Path.GetFileName(path));
            if (ioctl_ptr(dir, BTRFS_IOC_SNAP_DESTROY, args) != 0)
                throw Error("delete btrfs subvolume", path, Errno);
        }
        finally { close(dir); }
    }

    /// <summary>Is <paramref name="path"/> the root of a btrfs subvolume (inode 256 on btrfs)?</summary>
    public static bool IsBtrfsSubvolume(string path)
    {
        stat st;
        fixed (byte* p = Z(path))
            if (lstat(p, &st) != 0) return false;
        return (st.st_mode & S_IFMT) == S_IFDIR && (ulong)st.st_ino == 256 && FilesystemType(path) == BtrfsMagic;
    }

    /// <summary>
    /// Deletes a tree that may hold btrfs subvolumes (a container directory): subvolumes go with one
    /// ioctl each (also read-only snapshots), the rest file by file. Symlinks are never followed.
    /// </summary>
    public static void DeleteTree(string path)
    {
        stat st;
        fixed (byte* p = Z(path))
            if (lstat(p, &st) != 0) return;
        if ((st.st_mode & S_IFMT) != S_IFDIR) { File.Delete(path); return; }
        // A read-only view left mounted by a killed process (see OverlayBackend.MountView): detach it first.
        stat parent;
        fixed (byte* p = Z(Path.GetDirectoryName(path.TrimEnd('/')) ?? "/"))
            if (lstat(p, &parent) == 0 && parent.st_dev != st.st_dev && FilesystemType(path) == OverlayMagic)
            {
                Unmount(path);
                fixed (byte* q = Z(path)) lstat(q, &st);
            }
        if ((ulong)st.st_ino == 256 && FilesystemType(path) == BtrfsMagic)
        {
            // Nested subvolumes first (a container dir can hold rootfs/ and snapshots/*/rootfs).
            foreach (var child in Directory.EnumerateDirectories(path, "*", new EnumerationOptions { AttributesToSkip = FileAttributes.ReparsePoint, RecurseSubdirectories = false }))
                if (IsBtrfsSubvolume(child)) DeleteTree(child);
            BtrfsDeleteSubvolume(path);
            return;
        }
        if (FilesystemType(path) == BtrfsMagic)
            foreach (var sub in FindSubvolumes(path)) BtrfsDeleteSubvolume(sub);
        try { Directory.Delete(path, recursive: true); }
        catch (DirectoryNotFoundException) { }
    }

    /// <summary>Subvolumes at most three levels below <paramref name="root"/> (deepest first).</summary>
    static List<string> FindSubvolumes(string root)
    {
        var result = new List<string>();
        void Walk(string dir, int depth)
        {
            if (depth > 3) return;
            foreach (var child in Directory.EnumerateDirectories(dir, "*", new EnumerationOptions { AttributesToSkip = FileAttributes.ReparsePoint }))
            {
                if (IsBtrfsSubvolume(child)) { result.Add(child); continue; }
                Walk(child, depth + 1);
            }
        }
        Walk(root, 0);
        result.Reverse();
        return result;
    }

    // ---- xattrs -------------------------------------------------------------------------------------

    /// <summary>All extended attributes of a path (not following symlinks), name -> raw value.</summary>
    public static SortedDictionary<string, byte[]> ReadXattrs(string path)
    {
        var result = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
        fixed (byte* p = Z(path))
        {
            nint size = llistxattr(p, null, 0);
            if (size <= 0) return result;
            var list = new byte[size + 256];
            fixed (byte* l = list) size = llistxattr(p, l, (nuint)list.Length);
            if (size <= 0) return result;
            int start = 0;
            for (int i = 0; i < size; i++)
            {
                if (list[i] != 0) continue;
                if (i > start)
                {
                    var name = Encoding.UTF8.GetString(list, start, i - start);
                    var value = GetXattr(p, list.AsSpan(start, i - start + 1));
                    if (value is not null) result[name] = value;
                }
                start = i + 1;
            }
        }
        return result;
    }

    static byte[]? GetXattr(byte* path, ReadOnlySpan<byte> nameZ)
    {
        fixed (byte* n = nameZ)
        {
            for (int attempt = 0; attempt < 4; attempt++)
            {
                nint size = lgetxattr(path, n, null, 0);
                if (size < 0) return null;
                var buf = new byte[size];
                if (size == 0) return buf;
                fixed (byte* b = buf) size = lgetxattr(path, n, b, (nuint)buf.Length);
                if (size >= 0) return size == buf.Length ? buf : buf[..(int)size];
            }
            return null;
        }
    }

    public static byte[]? GetXattr(string path, string name)
    {
        fixed (byte* p = Z(path)) return GetXattr(p, Z(name));
    }

    public static void SetXattr(int fd, string path, string name, byte[] value)
    {
        int rc;
        fixed (byte* n = Z(name), v = value)
            rc = fd >= 0 ? fsetxattr(fd, n, v, (nuint)value.Length, 0) : LSetXattr(path, n, v, value.Length);
        if (rc != 0)
        {
            int err = Errno;
            if (name.StartsWith("security.selinux", StringComparison.Ordinal)) return;
            throw Error($"set extended attribute {name} on", path, err,
                err == EOPNOTSUPP ? "The filesystem does not support this extended attribute; use ext4, xfs or btrfs." : "");
        }
    }

    static int LSetXattr(string path, byte* n, byte* v, int length)
    {
        fixed (byte* p = Z(path)) return lsetxattr(p, n, v, (nuint)length, 0);
    }

    // ---- mounts -------------------------------------------------------------------------------------

    public static void Mount(string source, string target, string fsType, ulong flags, string data)
    {
        fixed (byte* s = Z(source), t = Z(target), f = Z(fsType), d = Z(data))
            if (mount(s, t, f, (ulong_t)flags, d) != 0)
                throw Error($"mount {fsType} on", target, Errno);
    }

    /// <summary>The mount points of this mount namespace (/proc/self/mountinfo), in its order; none if it cannot be read.</summary>
    public static IReadOnlyList<string> MountPoints() => MountInfo.Current().Select(m => m.MountPoint).ToList();

    /// <summary>
    /// Detaches every mount of this mount namespace at or below <paramref name="path"/>, deepest
    /// first: what a killed process left on a tree (a restore's idmapped root) before it is deleted
    /// or mounted again (an idmapped mount cannot be made on top of an idmapped one: EPERM).
    /// </summary>
    public static void UnmountBelow(string path)
    {
        var root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));
        foreach (var point in MountPoints().Where(p => p == root || p.StartsWith(root + "/", StringComparison.Ordinal)).OrderByDescending(p => p.Length))
            Unmount(point);
    }

    public static void Unmount(string target)
    {
        fixed (byte* t = Z(target))
            if (umount2(t, MNT_DETACH) != 0 && Errno != EINVAL && Errno != ENOENT)
                throw Error("unmount", target, Errno);
    }

    /// <summary>lstat(2) without throwing: false when the path is gone or unreadable.</summary>
    internal static bool TryLstat(string path, out Tmds.Linux.stat st)
    {
        Tmds.Linux.stat s;
        int rc;
        fixed (byte* p = Z(path)) rc = Tmds.Linux.LibC.lstat(p, &s);
        st = s;
        return rc == 0;
    }

    /// <summary>The owner of a file (stat(2), following links); null when it cannot be read.</summary>
    internal static uint? OwnerOf(string path)
    {
        Tmds.Linux.stat st;
        fixed (byte* p = Z(path))
            return Tmds.Linux.LibC.stat(p, &st) == 0 ? st.st_uid : null;
    }
}
