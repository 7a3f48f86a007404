using System.Runtime.InteropServices;
using System.Text;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace PSContainers.Runtime.Filesystem;

/// <summary>
/// Copies a directory tree like <c>cp -a</c>: file types, numeric owners, full modes (setuid/setgid/sticky),
/// timestamps, xattrs (file capabilities, POSIX ACLs), hard links and sparse files. Symlinks are
/// copied as links and never followed, so a rootfs can be copied without touching the host.
/// </summary>
public static unsafe class TreeCopier
{
    const int FICLONE = 0x40049409;
    const int SEEK_DATA = 3;
    const int SEEK_HOLE = 4;
    const int ENXIO = 6;
    const int ENOSPC = 28;
    const int EPERM = 1;
    const int EACCES = 13;
    const int BufferSize = 1 << 20;
    // Modes are binary literals (C# has no octal): 0b110_000_000 is 0600.

    [DllImport("libc", SetLastError = true)]
    static extern nint llistxattr(byte* path, byte* list, nuint size);
    [DllImport("libc", SetLastError = true)]
    static extern nint lgetxattr(byte* path, byte* name, byte* value, nuint size);
    [DllImport("libc", SetLastError = true)]
    static extern int lsetxattr(byte* path, byte* name, byte* value, nuint size, int flags);
    [DllImport("libc", SetLastError = true)]
    static extern nint copy_file_range(int fdIn, long* offIn, int fdOut, long* offOut, nuint len, uint flags);
    [DllImport("libc", SetLastError = true)]
    static extern nint pread(int fd, byte* buf, nuint count, long offset);
    [DllImport("libc", SetLastError = true)]
    static extern nint pwrite(int fd, byte* buf, nuint count, long offset);

    sealed class Context
    {
        // Source (dev, ino) of multiply-linked non-directories -> the destination path of their first copy.
        public readonly Dictionary<(ulong Dev, ulong Ino), string> Links = new();
        public readonly CancellationToken Token;
        public byte[]? Buffer;
        public Context(CancellationToken token) => Token = token;
    }

    /// <summary>Copies the tree at <paramref name="source"/> to <paramref name="destination"/>, which must not exist or be empty.</summary>
    public static void Copy(string source, string destination, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(source);
        ArgumentException.ThrowIfNullOrEmpty(destination);
        source = Path.GetFullPath(source);
        destination = Path.GetFullPath(destination);

        if (!TryLstat(source, out var srcSt) || (srcSt.st_mode & S_IFMT) != S_IFDIR)
            throw new ContainerException("CopySourceNotDirectory", ContainerErrorKind.ObjectNotFound,
                $"Cannot copy '{source}': it is not an existing directory (symlinks are not followed). Pass the path of a real directory.", source);
        if (destination == source || destination.StartsWith(source.TrimEnd('/') + "/", StringComparison.Ordinal))
            throw new ContainerException("CopyDestinationInsideSource", ContainerErrorKind.InvalidArgument,
                $"Cannot copy '{source}' into '{destination}': the destination lies inside the source. Choose a destination outside it.", destination);

        if (TryLstat(destination, out var dstSt))
        {
            if ((dstSt.st_mode & S_IFMT) != S_IFDIR || Directory.EnumerateFileSystemEntries(destination, "*", ListOptions).Any())
                throw new ContainerException("CopyDestinationNotEmpty", ContainerErrorKind.ResourceExists,
                    $"Cannot copy into '{destination}': it exists and is not an empty directory. Remove it or choose another destination.", destination);
        }
        else
        {
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            MkDir(destination);
        }

        var ctx = new Context(ct);
        CopyDirectoryContents(source, destination, ctx);
        ApplyMetadata(destination, srcSt, source, isSymlink: false);
    }

    static readonly EnumerationOptions ListOptions = new()
    {
        // Unix "hidden" means a leading dot; the defaults would skip those files.
        AttributesToSkip = 0,
        IgnoreInaccessible = false,
        RecurseSubdirectories = false,
        ReturnSpecialDirectories = false,
        MatchType = MatchType.Simple,
    };

    static void CopyDirectoryContents(string srcDir, string dstDir, Context ctx)
    {
        foreach (var srcPath in Directory.EnumerateFileSystemEntries(srcDir, "*", ListOptions))
        {
            ctx.Token.ThrowIfCancellationRequested();
            var dstPath = Path.Combine(dstDir, Path.GetFileName(srcPath));
            CopyEntry(srcPath, dstPath, ctx);
        }
    }

    static void CopyEntry(string src, string dst, Context ctx)
    {
        var st = Lstat(src);
        var type = st.st_mode & S_IFMT;

        if (type == S_IFSOCK)
            return; // a socket is only meaningful to the process that bound it

        if (type == S_IFDIR)
        {
            MkDir(dst);
            CopyDirectoryContents(src, dst, ctx);
            // After the contents, so copying them does not bump the times or trip over a read-only mode.
            ApplyMetadata(dst, st, src, isSymlink: false);
            return;
        }

        if ((ulong)st.st_nlink > 1)
        {
            var key = ((ulong)st.st_dev, (ulong)st.st_ino);
            if (ctx.Links.TryGetValue(key, out var first))
            {
                fixed (byte* f = Z(first), d = Z(dst))
                    Check(link(f, d), "link", dst);
                return;
            }
            ctx.Links[key] = dst;
        }

        if (type == S_IFREG)
            CopyRegularFile(src, dst, st, ctx);
        else if (type == S_IFLNK)
        {
            var target = ReadLink(src);
            fixed (byte* t = target, d = Z(dst))
                Check(symlink(t, d), "symlink", dst);
        }
        else if (type == S_IFCHR || type == S_IFBLK || type == S_IFIFO)
        {
            fixed (byte* d = Z(dst))
                Check(mknod(d, type | (mode_t)0b110_000_000, st.st_rdev), "mknod", dst);
        }
        else
            throw new ContainerException("CopyUnknownFileType", ContainerErrorKind.InvalidData,
                $"Cannot copy '{src}': unknown file type 0x{(ushort)type:x}. Remove it from the source tree.", src);

        ApplyMetadata(dst, st, src, isSymlink: type == S_IFLNK);
    }

    static void CopyRegularFile(string src, string dst, in stat st, Context ctx)
    {
        int sfd, dfd;
        fixed (byte* s = Z(src))
            sfd = open(s, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
        Check(sfd, "open", src);
        try
        {
            fixed (byte* d = Z(dst))
                dfd = open(d, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)0b110_000_000);
            Check(dfd, "create", dst);
            try
            {
                // A reflink shares the extents (btrfs, xfs): instant and, like the source, sparse.
                if (ioctl(dfd, FICLONE, sfd) == 0)
                    return;
                CopyData(sfd, dfd, (long)st.st_size, src, dst, ctx);
                Check(ftruncate(dfd, st.st_size), "ftruncate", dst);
            }
            finally { close(dfd); }
        }
        finally { close(sfd); }
    }

    /// <summary>Copies only the data extents, so holes stay holes; the caller's ftruncate sets the size.</summary>
    static void CopyData(int sfd, int dfd, long size, string src, string dst, Context ctx)
    {
        long pos = 0;
        while (pos < size)
        {
            ctx.Token.ThrowIfCancellationRequested();
            long dataStart = lseek(sfd, pos, SEEK_DATA);
            long dataEnd;
            if (dataStart < 0)
            {
                int err = errno;
                if (err == ENXIO)
                    return; // only a hole remains
                if (err != EINVAL && err != EOPNOTSUPP)
                    Fail(err, "lseek", src);
                // No SEEK_DATA on this filesystem: treat the rest as data.
                dataStart = pos;
                dataEnd = size;
            }
            else
            {
                dataEnd = lseek(sfd, dataStart, SEEK_HOLE);
                if (dataEnd < 0)
                    dataEnd = size;
            }
            if (dataEnd > size)
                dataEnd = size; // the file may have grown while we copy; take the size we saw
            CopyRange(sfd, dfd, dataStart, dataEnd, src, dst, ctx);
            pos = dataEnd;
        }
    }

    static void CopyRange(int sfd, int dfd, long start, long end, string src, string dst, Context ctx)
    {
        long inOff = start, outOff = start;
        bool useCopyFileRange = true;
        while (inOff < end)
        {
            ctx.Token.ThrowIfCancellationRequested();
            nuint chunk = (nuint)Math.Min(end - inOff, 64L << 20);
            if (useCopyFileRange)
            {
                nint n = copy_file_range(sfd, &inOff, dfd, &outOff, chunk, 0);
                if (n > 0)
                    continue; // the kernel advanced both offsets
                if (n == 0)
                    return; // source shrank
                int err = Marshal.GetLastPInvokeError();
                if (err == EINTR)
                    continue;
                if (err == ENOSPC)
                    Fail(err, "write", dst);
                // EXDEV, ENOSYS, EINVAL (special filesystems) and friends: plain read/write works everywhere.
                useCopyFileRange = false;
            }

            ctx.Buffer ??= new byte[BufferSize];
            fixed (byte* buf = ctx.Buffer)
            {
                nint r = pread(sfd, buf, (nuint)Math.Min((long)chunk, BufferSize), inOff);
                if (r < 0)
                {
                    int err = Marshal.GetLastPInvokeError();
                    if (err == EINTR) continue;
                    Fail(err, "read", src);
                }
                if (r == 0)
                    return;
                nint written = 0;
                while (written < r)
                {
                    nint w = pwrite(dfd, buf + written, (nuint)(r - written), outOff + written);
                    if (w < 0)
                    {
                        int err = Marshal.GetLastPInvokeError();
                        if (err == EINTR) continue;
                        Fail(err, "write", dst);
                    }
                    written += w;
                }
                inOff += r;
                outOff += r;
            }
        }
    }

    /// <summary>
    /// Owner, xattrs, mode, times - in this order: chown clears setuid bits and file capabilities,
    /// and chmod after setting an ACL keeps the mode and the ACL mask consistent.
    /// </summary>
    static void ApplyMetadata(string dst, in stat st, string src, bool isSymlink)
    {
        fixed (byte* d = Z(dst))
        {
            Check(lchown(d, st.st_uid, st.st_gid), "lchown", dst);
            CopyXattrs(src, dst, isSymlink);
            if (!isSymlink)
                Check(fchmodat(AT_FDCWD, d, st.st_mode & (mode_t)0xFFF, 0), "chmod", dst);
            timespec* times = stackalloc timespec[2];
            times[0] = st.st_atim;
            times[1] = st.st_mtim;
            Check(utimensat(AT_FDCWD, d, times, AT_SYMLINK_NOFOLLOW), "utimensat", dst);
        }
    }

    static void CopyXattrs(string src, string dst, bool isSymlink)
    {
        var names = ListXattrs(src);
        if (names.Count == 0)
            return;
        fixed (byte* s = Z(src), d = Z(dst))
        {
            foreach (var name in names)
            {
                var value = GetXattr(s, name, src);
                if (value is null)
                    continue; // removed since we listed it
                int rc;
                fixed (byte* n = name, v = value)
                    rc = lsetxattr(d, n, v, (nuint)value.Length, 0);
                if (rc == 0)
                    continue;
                int err = Marshal.GetLastPInvokeError();
                var nameText = Encoding.UTF8.GetString(name, 0, name.Length - 1);
                // The LSM owns its labels (and may refuse them); symlinks only take some namespaces.
                if (nameText.StartsWith("security.selinux", StringComparison.Ordinal) || (isSymlink && err == EPERM))
                    continue;
                throw Error(err, $"set xattr {nameText} on", dst,
                    err == EOPNOTSUPP ? " The destination filesystem does not support this extended attribute; use a filesystem with xattr/ACL support (ext4, xfs, btrfs)." : "");
            }
        }
    }

    static List<byte[]> ListXattrs(string path)
    {
        var result = new List<byte[]>();
        fixed (byte* p = Z(path))
        {
            while (true)
            {
                nint size = llistxattr(p, null, 0);
                if (size < 0)
                {
                    int err = Marshal.GetLastPInvokeError();
                    if (err == EOPNOTSUPP) return result;
                    Fail(err, "list xattrs of", path);
                }
                if (size == 0)
                    return result;
                var buf = new byte[size];
                nint got;
                fixed (byte* b = buf)
                    got = llistxattr(p, b, (nuint)size);
                if (got < 0)
                {
                    int err = Marshal.GetLastPInvokeError();
                    if (err == ERANGE) continue; // grew between the two calls
                    Fail(err, "list xattrs of", path);
                }
                int start = 0;
                for (int i = 0; i < got; i++)
                {
                    if (buf[i] != 0) continue;
                    if (i > start)
                        result.Add(buf[start..(i + 1)]); // keep the NUL terminator
                    start = i + 1;
                }
                return result;
            }
        }
    }

    static byte[]? GetXattr(byte* path, byte[] name, string pathText)
    {
        fixed (byte* n = name)
        {
            while (true)
            {
                nint size = lgetxattr(path, n, null, 0);
                if (size < 0)
                {
                    int err = Marshal.GetLastPInvokeError();
                    if (err == ENODATA) return null;
                    Fail(err, "read xattr of", pathText);
                }
                var buf = new byte[size];
                if (size == 0)
                    return buf;
                nint got;
                fixed (byte* b = buf)
                    got = lgetxattr(path, n, b, (nuint)size);
                if (got >= 0)
                    return got == size ? buf : buf[..(int)got];
                int err2 = Marshal.GetLastPInvokeError();
                if (err2 == ERANGE) continue;
                if (err2 == ENODATA) return null;
                Fail(err2, "read xattr of", pathText);
            }
        }
    }

    static byte[] ReadLink(string path)
    {
        fixed (byte* p = Z(path))
        {
            for (int size = 256; ; size *= 2)
            {
                var buf = new byte[size];
                long n;
                fixed (byte* b = buf)
                    n = readlink(p, b, size);
                if (n < 0)
                    Fail(errno, "readlink", path);
                if (n < size)
                {
                    var target = new byte[n + 1]; // NUL-terminated, bytes kept as-is
                    Array.Copy(buf, target, n);
                    return target;
                }
            }
        }
    }

    static void MkDir(string path)
    {
        // 0700 while we fill it; the real mode comes with the metadata afterwards.
        fixed (byte* p = Z(path))
            Check(mkdir(p, (mode_t)0b111_000_000), "mkdir", path);
    }

    static stat Lstat(string path)
    {
        if (!TryLstat(path, out var st))
            Fail(errno, "lstat", path);
        return st;
    }

    static bool TryLstat(string path, out stat st)
    {
        stat s;
        int rc;
        fixed (byte* p = Z(path))
            rc = lstat(p, &s);
        st = s;
        return rc == 0;
    }

    /// <summary>NUL-terminated UTF-8, the form every libc path argument takes.</summary>
    static byte[] Z(string s)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(s) + 1];
        Encoding.UTF8.GetBytes(s, 0, s.Length, bytes, 0);
        return bytes;
    }

    static void Check(long rc, string op, string path)
    {
        if (rc < 0)
            Fail(errno, op, path);
    }

    static void Fail(int err, string op, string path) => throw Error(err, op, path, "");

    static ContainerException Error(int err, string op, string path, string hint)
    {
        var kind = err switch
        {
            EPERM or EACCES => ContainerErrorKind.PermissionDenied,
            ENOSPC => ContainerErrorKind.DeviceError,
            _ => ContainerErrorKind.InvalidOperation,
        };
        if (hint.Length == 0)
            hint = kind switch
            {
                ContainerErrorKind.PermissionDenied => " Copying a rootfs needs root (owners, devices and capabilities are preserved).",
                ContainerErrorKind.DeviceError => " Free some space on the destination filesystem.",
                _ => "",
            };
        return new ContainerException("TreeCopyFailed", kind,
            $"Copying the tree failed: cannot {op} '{path}': {Marshal.GetPInvokeErrorMessage(err)} (errno {err}).{hint}", path);
    }
}
