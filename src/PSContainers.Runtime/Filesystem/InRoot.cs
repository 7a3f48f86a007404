using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace PSContainers.Runtime.Filesystem;

/// <summary>
/// A directory used as a root that paths are resolved in and never leave: the one way to reach
/// files of a tree someone else controls (a container's rootfs, its /etc/passwd, a host destination
/// that a copy from a container writes into). Every lookup is openat2 with RESOLVE_IN_ROOT |
/// RESOLVE_NO_MAGICLINKS relative to the root's descriptor, so ".." and absolute or relative
/// symlinks are resolved as if the root were "/" (a link to /etc/shadow means the root's
/// etc/shadow), and /proc magic links are refused. The last component of what is created, replaced
/// or listed is handled relative to its parent's descriptor without following it, so a link swapped
/// in between two steps redirects nothing (every step after the lookup is on descriptors).
/// </summary>
public sealed unsafe class InRoot : IDisposable
{
    const ulong RESOLVE_NO_MAGICLINKS_ = 0x02;
    const ulong RESOLVE_IN_ROOT_ = 0x10;

    /// <summary>What the root was opened as, for messages.</summary>
    public string Display { get; }
    /// <summary>The root's O_PATH descriptor.</summary>
    public int Fd { get; private set; }

    private InRoot(int fd, string display) { Fd = fd; Display = display; }

    /// <summary>Opens <paramref name="directory"/> (a host path, trusted up to itself) as a root.</summary>
    public static InRoot Open(string directory, string? display = null)
    {
        int fd;
        fixed (byte* p = FsNative.Z(directory)) fd = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
        if (fd < 0) throw FsNative.Error("open", directory, FsNative.Errno);
        return new InRoot(fd, display ?? directory);
    }

    public void Dispose()
    {
        if (Fd >= 0) close(Fd);
        Fd = -1;
    }

    /// <summary>The path relative to the root ("/etc/x" and "etc/x" alike); "" is the root itself.</summary>
    public static string Relative(string path) => path.Replace('\\', '/').TrimStart('/');

    /// <summary>The path shown in messages: the root's display name and the path inside it.</summary>
    public string Show(string path) => Display + ":/" + Relative(path);

    /// <summary>
    /// openat2 inside the root (errno on failure, never an exception). <paramref name="followLast"/>
    /// false adds O_NOFOLLOW: a final symlink is then opened itself (with O_PATH) or refused.
    /// </summary>
    public int TryOpen(string path, int flags, bool followLast = true, uint mode = 0)
    {
        var rel = Relative(path);
        if (rel.Length == 0) rel = ".";
        var how = new open_how { flags = (ulong)(flags | O_CLOEXEC | (followLast ? 0 : O_NOFOLLOW)), mode = mode, resolve = RESOLVE_IN_ROOT_ | RESOLVE_NO_MAGICLINKS_ };
        int fd;
        fixed (byte* p = FsNative.Z(rel)) fd = openat2(Fd, p, &how, (size_t)sizeof(open_how));
        return fd >= 0 ? fd : -FsNative.Errno;
    }

    /// <summary><see cref="TryOpen"/> that throws a message naming the path inside the root.</summary>
    public int Open(string path, int flags, bool followLast = true)
    {
        int fd = TryOpen(path, flags, followLast);
        if (fd < 0) throw FsNative.Error("open", Show(path), -fd);
        return fd;
    }

    /// <summary>lstat/stat of a path inside the root; false when it does not exist.</summary>
    public bool TryStat(string path, bool followLast, out stat st)
    {
        st = default;
        int fd = TryOpen(path, O_PATH, followLast);
        if (fd == -ENOENT || fd == -ENOTDIR) return false;
        if (fd < 0) throw FsNative.Error("look up", Show(path), -fd);
        try { return Stat(fd, out st); }
        finally { close(fd); }
    }

    /// <summary>fstat of a descriptor (an O_PATH one included).</summary>
    public static bool Stat(int fd, out stat st)
    {
        stat s;
        var empty = stackalloc byte[1];
        empty[0] = 0;
        int rc = fstatat(fd, empty, &s, AT_EMPTY_PATH);
        st = s;
        return rc == 0;
    }

    /// <summary>
    /// The parent directory of <paramref name="path"/> (opened O_PATH inside the root) and its last
    /// component, which the caller handles relative to the descriptor without following it.
    /// Missing parents are created (0755, owned as <paramref name="createOwner"/> says) when asked.
    /// </summary>
    public (int Dir, string Name) OpenParent(string path, bool create = false, Action<int>? createOwner = null)
    {
        var parts = Relative(path).Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0 || parts[^1] is "." or "..")
            throw new ContainerException("PathInvalid", ContainerErrorKind.InvalidArgument,
                $"'{path}' names no file in {Display}: give a path that ends in a file or directory name.", path);
        var parent = string.Join('/', parts[..^1]);
        int dir = TryOpen(parent, O_PATH | O_DIRECTORY);
        if (dir == -ENOENT && create) dir = MakeDirectories(parent, createOwner);
        if (dir < 0) throw FsNative.Error("open directory", Show(parent), -dir);
        return (dir, parts[^1]);
    }

    /// <summary>mkdir -p inside the root, each level created relative to its parent's descriptor; returns the last (O_PATH).</summary>
    public int MakeDirectories(string path, Action<int>? owner = null, uint mode = 0b111_101_101)
    {
        int dir = dup(Fd);
        foreach (var part in Relative(path).Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            int rc;
            fixed (byte* c = FsNative.Z(part)) rc = mkdirat(dir, c, (mode_t)mode);
            bool made = rc == 0;
            if (!made && FsNative.Errno != EEXIST) { int e = FsNative.Errno; close(dir); throw FsNative.Error("create directory", Show(path), e); }
            // The component is resolved again inside the root: a link made there meanwhile stays inside.
            var how = new open_how { flags = (ulong)(O_PATH | O_DIRECTORY | O_CLOEXEC), resolve = RESOLVE_IN_ROOT_ | RESOLVE_NO_MAGICLINKS_ };
            int next;
            fixed (byte* c = FsNative.Z(part)) next = openat2(dir, c, &how, (size_t)sizeof(open_how));
            int err = FsNative.Errno;
            close(dir);
            if (next < 0) throw FsNative.Error("open directory", Show(path), err);
            if (made && owner is not null) owner(next);
            dir = next;
        }
        return dir;
    }

    /// <summary>Reads a small regular file inside the root (at most <paramref name="maxBytes"/>); null when it does not exist.</summary>
    public string? ReadText(string path, int maxBytes = 1 << 20)
    {
        // O_NONBLOCK: a FIFO put where a file is expected must not hang the open (it is then refused as not regular).
        int fd = TryOpen(path, O_RDONLY | O_NONBLOCK);
        if (fd == -ENOENT || fd == -ENOTDIR) return null;
        if (fd < 0) throw FsNative.Error("open", Show(path), -fd);
        using var handle = new SafeFileHandle(fd, ownsHandle: true);
        if (!Stat(fd, out var st) || ((uint)st.st_mode & 0xF000) != 0x8000) return null;
        using var stream = new FileStream(handle, FileAccess.Read);
        var buffer = new byte[maxBytes];
        int total = 0, n;
        while (total < buffer.Length && (n = stream.Read(buffer, total, buffer.Length - total)) > 0) total += n;
        return Encoding.UTF8.GetString(buffer, 0, total);
    }

    /// <summary>The names in a directory descriptor (any kind of fd to it), without "." and "..".</summary>
    public static List<string> List(int dirFd, string display)
    {
        // getdents through a fresh O_RDONLY open of the same directory (an O_PATH fd cannot be read).
        int fd;
        var dot = stackalloc byte[2] { (byte)'.', 0 };
        fd = openat(dirFd, dot, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
        if (fd < 0) throw FsNative.Error("list", display, FsNative.Errno);
        var result = new List<string>();
        var buf = new byte[1 << 16];
        try
        {
            fixed (byte* b = buf)
                while (true)
                {
                    long n = getdents64(fd, b, (nuint)buf.Length);
                    if (n < 0) throw FsNative.Error("list", display, FsNative.Errno);
                    if (n == 0) break;
                    for (long off = 0; off < n;)
                    {
                        ushort reclen = *(ushort*)(b + off + 16);
                        var name = Marshal.PtrToStringUTF8((nint)(b + off + 19))!;
                        if (name is not ("." or "..")) result.Add(name);
                        off += reclen;
                    }
                }
        }
        finally { close(fd); }
        result.Sort(StringComparer.Ordinal);
        return result;
    }

    [DllImport("libc", SetLastError = true)]
    static extern nint getdents64(int fd, byte* dirp, nuint count);
}
