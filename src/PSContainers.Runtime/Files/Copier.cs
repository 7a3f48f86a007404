using Microsoft.Win32.SafeHandles;
using PSContainers.Runtime.Filesystem;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace PSContainers.Runtime.Files;

/// <summary>
/// One copy from a source root to a destination root, on descriptors only: each source entry is
/// opened (O_PATH, never following a link below the named paths) and read through that very
/// descriptor; each destination entry is created under a temporary name in its parent's descriptor
/// (O_EXCL, O_NOFOLLOW), given its owner, mode and times, then renamed into place (RENAME_NOREPLACE
/// unless -Force). Files, directories and symbolic links are copied (links as links, never
/// followed); other types are skipped with a warning.
/// </summary>
internal sealed unsafe class Copier(InRoot destination, CopyDirection direction, string container, FileCopyOptions options,
    IProgress<FileCopyProgress>? progress, Action<string>? warn, CancellationToken ct)
{
    /// <summary>Sets the owner of a new entry: its descriptor (or, for a link, its parent and name).</summary>
    public required Action<int, bool, int, string> Chown { get; init; }
    /// <summary>Ids written on disk -> ids the output reports.</summary>
    public required Func<uint, uint, (uint, uint)> ViewIds { get; init; }
    /// <summary>Sets the owner of a missing parent directory the copy made (the destination side's root).</summary>
    public Action<int>? ChownParent { get; init; }
    /// <summary>Around each creation: acting as the id new entries must be created by (see ContainerFiles.CreatingAs); null: as we are.</summary>
    public Func<IDisposable?>? CreateAs { get; init; }
    /// <summary>(source mode, file type) -> the permission bits written.</summary>
    public required Func<uint, uint, uint> ModeOf { get; init; }

    const uint RENAME_NOREPLACE = 1;
    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    static extern int renameat2(int olddirfd, byte* oldpath, int newdirfd, byte* newpath, uint flags);
    private readonly List<ContainerFileItem> _written = new();
    private long _filesTotal, _bytesTotal, _filesDone, _bytesDone;

    public IReadOnlyList<ContainerFileItem> Run(InRoot source, IReadOnlyList<string> paths, string destinationPath)
    {
        var opened = new List<(string Path, int Fd, stat St)>();
        try
        {
            foreach (var p in paths)
            {
                // A link named by the caller is followed (inside its root), as Copy-Item follows it.
                int fd = source.TryOpen(p, O_PATH);
                if (fd == -ENOENT || fd == -ENOTDIR)
                    throw new ContainerException("ItemNotFound", ContainerErrorKind.ObjectNotFound,
                        $"'{source.Show(p)}' does not exist.", p);
                if (fd < 0) throw FsNative.Error("open", source.Show(p), -fd);
                InRoot.Stat(fd, out var st);
                opened.Add((p, fd, st));
                if (IsDir(st) && !options.Recurse)
                    throw new ContainerException("DirectoryNeedsRecurse", ContainerErrorKind.InvalidArgument,
                        $"'{source.Show(p)}' is a directory: add -Recurse to copy it with its contents.", p);
            }
            foreach (var o in opened) Count(o.Fd, o.St);

            // Into an existing directory (or several sources, or a path ending in '/'): each source by its own name.
            bool intoDirectory = destination.TryStat(destinationPath, followLast: true, out var dst) ? IsDir(dst)
                : opened.Count > 1 || destinationPath.EndsWith('/');
            if (intoDirectory)
            {
                int dir = destination.TryOpen(destinationPath, O_PATH | O_DIRECTORY);
                if (dir == -ENOENT) using (CreateAs?.Invoke()) dir = destination.MakeDirectories(destinationPath, ChownParent);
                if (dir < 0) throw FsNative.Error("open directory", destination.Show(destinationPath), -dir);
                try
                {
                    foreach (var o in opened)
                    {
                        var name = Path.GetFileName(o.Path.TrimEnd('/'));
                        if (name.Length == 0) name = container; // the container's "/" copied out: a directory named after it
                        CopyEntry(o.Fd, o.St, source.Show(o.Path), dir, name, Join(destinationPath, name));
                    }
                }
                finally { close(dir); }
            }
            else
            {
                if (opened.Count > 1)
                    throw new ContainerException("DestinationNotDirectory", ContainerErrorKind.InvalidArgument,
                        $"Several items are copied, so '{destination.Show(destinationPath)}' must be a directory; it is a file.", destinationPath);
                int dir;
                string name;
                using (CreateAs?.Invoke()) (dir, name) = destination.OpenParent(destinationPath, create: true, ChownParent);
                try { CopyEntry(opened[0].Fd, opened[0].St, source.Show(opened[0].Path), dir, name, destinationPath); }
                finally { close(dir); }
            }
        }
        finally
        {
            foreach (var o in opened) close(o.Fd);
        }
        return _written;
    }

    private static string Join(string dir, string name) => dir.EndsWith('/') ? dir + name : dir + "/" + name;
    private static bool IsDir(in stat st) => ((uint)st.st_mode & Ft.IFMT) == Ft.IFDIR;

    /// <summary>Counts files and bytes for the progress bar (directories are walked the same safe way).</summary>
    private void Count(int fd, in stat st)
    {
        ct.ThrowIfCancellationRequested();
        if (!IsDir(st)) { _filesTotal++; _bytesTotal += ((uint)st.st_mode & Ft.IFMT) == Ft.IFREG ? st.st_size : 0; return; }
        foreach (var child in InRoot.List(fd, "directory"))
        {
            int c = OpenChild(fd, child);
            if (c < 0) continue;
            try { if (InRoot.Stat(c, out var cst)) Count(c, cst); }
            finally { close(c); }
        }
    }

    private static int OpenChild(int dirFd, string name)
    {
        fixed (byte* n = FsNative.Z(name)) return openat(dirFd, n, O_PATH | O_NOFOLLOW | O_CLOEXEC, 0);
    }

    private void CopyEntry(int srcFd, stat st, string srcShow, int dstDir, string name, string dstShow)
    {
        ct.ThrowIfCancellationRequested();
        uint type = (uint)((uint)st.st_mode & Ft.IFMT);
        bool exists = TryStatAt(dstDir, name, out var existing);
        if (type == Ft.IFDIR)
        {
            int dir;
            if (exists && IsDir(existing))
                dir = OpenAt(dstDir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, dstShow); // merged, as Copy-Item -Recurse does
            else
            {
                if (exists) ReplaceOrRefuse(dstDir, name, dstShow, existing);
                int made;
                using (CreateAs?.Invoke())
                    fixed (byte* n = FsNative.Z(name)) made = mkdirat(dstDir, n, (mode_t)0b111_000_000);
                if (made != 0) throw FsNative.Error("create directory", dstShow, FsNative.Errno);
                dir = OpenAt(dstDir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, dstShow);
                Chown(dir, false, dstDir, name);
                if (fchmod(dir, (mode_t)ModeOf((uint)st.st_mode, type)) != 0) throw FsNative.Error("set the mode of", dstShow, FsNative.Errno);
            }
            try
            {
                foreach (var child in InRoot.List(srcFd, srcShow))
                {
                    int c = OpenChild(srcFd, child);
                    if (c < 0) { warn?.Invoke($"Skipped '{srcShow}/{child}': it vanished during the copy."); continue; }
                    try
                    {
                        InRoot.Stat(c, out var cst);
                        CopyEntry(c, cst, srcShow.TrimEnd('/') + "/" + child, dir, child, Join(dstShow, child));
                    }
                    finally { close(c); }
                }
                SetTimes(dir, st, dstShow);
                Record(dir, dstShow, srcShow, "Directory");
            }
            finally { close(dir); }
            return;
        }
        if (type != Ft.IFREG && type != Ft.IFLNK)
        {
            warn?.Invoke($"Skipped '{srcShow}': only files, directories and symbolic links are copied (it is a {TypeName(type)}).");
            return;
        }
        if (exists && IsDir(existing))
            throw new ContainerException("CopyDestinationExists", ContainerErrorKind.ResourceExists,
                $"Cannot copy '{srcShow}' to '{dstShow}': a directory of that name is there. Remove it, or copy into it.", dstShow);
        if (exists && !options.Force)
            throw new ContainerException("CopyDestinationExists", ContainerErrorKind.ResourceExists,
                $"'{dstShow}' already exists. Add -Force to replace it.", dstShow);
        var temp = $".psc-copy-{Guid.NewGuid():N}";
        try
        {
            if (type == Ft.IFLNK) CopyLink(srcFd, dstDir, temp, dstShow, srcShow);
            else CopyFile(srcFd, st, dstDir, temp, dstShow, srcShow);
            int rc;
            using (CreateAs?.Invoke())
                fixed (byte* t = FsNative.Z(temp), n = FsNative.Z(name))
                    rc = renameat2(dstDir, t, dstDir, n, options.Force ? 0u : RENAME_NOREPLACE);
            if (rc != 0)
            {
                int e = FsNative.Errno;
                if (e == EEXIST) throw new ContainerException("CopyDestinationExists", ContainerErrorKind.ResourceExists, $"'{dstShow}' already exists. Add -Force to replace it.", dstShow);
                throw FsNative.Error("put in place", dstShow, e);
            }
            temp = null!;
        }
        finally
        {
            if (temp is not null)
                using (CreateAs?.Invoke())
                    fixed (byte* t = FsNative.Z(temp)) unlinkat(dstDir, t, 0);
        }
        _filesDone++;
        progress?.Report(new FileCopyProgress(_filesDone, _filesTotal, _bytesDone, _bytesTotal, srcShow));
    }

    private void ReplaceOrRefuse(int dir, string name, string show, in stat existing)
    {
        if (!options.Force)
            throw new ContainerException("CopyDestinationExists", ContainerErrorKind.ResourceExists,
                $"'{show}' already exists and is not a directory. Add -Force to replace it.", show);
        int rc;
        using (CreateAs?.Invoke())
            fixed (byte* n = FsNative.Z(name)) rc = unlinkat(dir, n, 0);
        if (rc != 0) throw FsNative.Error("remove", show, FsNative.Errno);
    }

    private void CopyFile(int srcFd, in stat st, int dstDir, string temp, string dstShow, string srcShow)
    {
        // The O_PATH descriptor's own inode, opened for reading: what was checked is what is read.
        int rfd;
        fixed (byte* p = FsNative.Z($"/proc/self/fd/{srcFd}")) rfd = open(p, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0);
        if (rfd < 0) throw FsNative.Error("read", dstShow, FsNative.Errno);
        using var input = new SafeFileHandle(rfd, true);
        int wfd;
        using (CreateAs?.Invoke())
            fixed (byte* t = FsNative.Z(temp)) wfd = openat(dstDir, t, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0b110_000_000);
        if (wfd < 0) throw FsNative.Error("create", dstShow, FsNative.Errno);
        using var handle = new SafeFileHandle(wfd, true);
        var buffer = new byte[1 << 16];
        long offset = 0;
        int n;
        while ((n = RandomAccess.Read(input, buffer, offset)) > 0)
        {
            ct.ThrowIfCancellationRequested();
            RandomAccess.Write(handle, buffer.AsSpan(0, n), offset);
            offset += n;
            _bytesDone += n;
        }
        Chown(wfd, false, dstDir, temp);
        // After the chown, which clears set-id bits.
        if (fchmod(wfd, (mode_t)ModeOf((uint)st.st_mode, Ft.IFREG)) != 0) throw FsNative.Error("set the mode of", dstShow, FsNative.Errno);
        SetTimes(wfd, st, dstShow);
        Record(wfd, dstShow, srcShow, "File");
    }

    private void CopyLink(int srcFd, int dstDir, string temp, string dstShow, string srcShow)
    {
        var buffer = new byte[4096];
        nint n;
        var empty = stackalloc byte[1] { 0 };
        fixed (byte* b = buffer) n = (nint)readlinkat(srcFd, empty, b, (size_t)buffer.Length);
        if (n < 0) throw FsNative.Error("read link", dstShow, FsNative.Errno);
        var target = buffer.AsSpan(0, (int)n).ToArray();
        int rc;
        fixed (byte* t = FsNative.Z(temp))
        {
            var z = new byte[target.Length + 1];
            target.CopyTo(z, 0);
            using (CreateAs?.Invoke())
                fixed (byte* tg = z) rc = symlinkat(tg, dstDir, t);
        }
        if (rc != 0) throw FsNative.Error("create link", dstShow, FsNative.Errno);
        Chown(-1, true, dstDir, temp);
        int fd = OpenAt(dstDir, temp, O_PATH | O_NOFOLLOW, dstShow);
        try { Record(fd, dstShow, srcShow, "SymbolicLink"); }
        finally { close(fd); }
    }

    private static int OpenAt(int dir, string name, int flags, string show)
    {
        int fd;
        fixed (byte* n = FsNative.Z(name)) fd = openat(dir, n, flags | O_CLOEXEC, 0);
        if (fd < 0) throw FsNative.Error("open", show, FsNative.Errno);
        return fd;
    }

    private static bool TryStatAt(int dir, string name, out stat st)
    {
        stat s;
        int rc;
        fixed (byte* n = FsNative.Z(name)) rc = fstatat(dir, n, &s, AT_SYMLINK_NOFOLLOW);
        st = s;
        return rc == 0;
    }

    private static void SetTimes(int fd, in stat st, string show)
    {
        timespec* times = stackalloc timespec[2];
        times[0] = st.st_atim;
        times[1] = st.st_mtim;
        if (futimens(fd, times) != 0) throw FsNative.Error("set the times of", show, FsNative.Errno);
    }

    private void Record(int fd, string fullName, string source, string type)
    {
        InRoot.Stat(fd, out var st);
        var (uid, gid) = ViewIds(st.st_uid, st.st_gid);
        _written.Add(new ContainerFileItem
        {
            Container = container,
            Direction = direction,
            FullName = fullName,
            Source = source,
            Type = type,
            Length = type == "File" ? st.st_size : 0,
            Mode = (UnixFileMode)((uint)st.st_mode & 0xFFF),
            Owner = uid,
            Group = gid,
            LastWriteTime = DateTimeOffset.FromUnixTimeSeconds(st.st_mtim.tv_sec).AddTicks(st.st_mtim.tv_nsec / 100),
        });
    }

    private static string TypeName(uint type) => type switch
    {
        var t when t == Ft.IFCHR => "character device",
        var t when t == Ft.IFBLK => "block device",
        var t when t == Ft.IFIFO => "FIFO",
        var t when t == Ft.IFSOCK => "socket",
        _ => "special file",
    };
}

/// <summary>File type bits of st_mode.</summary>
internal static class Ft
{
    public const uint IFMT = 0xF000, IFSOCK = 0xC000, IFLNK = 0xA000, IFREG = 0x8000, IFBLK = 0x6000, IFDIR = 0x4000, IFCHR = 0x2000, IFIFO = 0x1000;
}
