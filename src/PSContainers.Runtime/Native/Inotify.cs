using System.Runtime.InteropServices;
using System.Text;

namespace PSContainers.Runtime.Native;

/// <summary>
/// One inotify instance (inotify(7)) and a wake-up eventfd: waits until something changes in the
/// watched directories, until <see cref="Wake"/> (Ctrl+C) or until a timeout, without polling the files.
/// One instance serves any number of directories (the per-user limit on instances is small, 128 by
/// default; on watches it is large).
/// </summary>
public sealed unsafe class Inotify : IDisposable
{
    public const uint Modify = 0x2, Attrib = 0x4, CloseWrite = 0x8, MovedFrom = 0x40, MovedTo = 0x80, Create = 0x100, Delete = 0x200, DeleteSelf = 0x400;

    [DllImport("libc", SetLastError = true)] private static extern int inotify_init1(int flags);
    [DllImport("libc", SetLastError = true)] private static extern int inotify_add_watch(int fd, string path, uint mask);
    // Blocking calls through plain P/Invoke (a GC-safe transition): a wait must never hold up the GC.
    [DllImport("libc", SetLastError = true)] private static extern int poll(PollFd* fds, nuint nfds, int timeout);
    [DllImport("libc", SetLastError = true)] private static extern nint read(int fd, byte* buf, nuint count);
    [DllImport("libc", SetLastError = true)] private static extern nint write(int fd, void* buf, nuint count);
    [DllImport("libc", SetLastError = true)] private static extern int eventfd(uint initval, int flags);
    [DllImport("libc")] private static extern int close(int fd);

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd { public int Fd; public short Events; public short Revents; }
    private const short PollIn = 1;

    private readonly int _fd, _wake;
    private readonly Dictionary<int, string> _dirs = new();
    private readonly byte[] _buffer = new byte[16 * 1024];

    private Inotify(int fd, int wake)
    {
        _fd = fd;
        _wake = wake;
    }

    /// <summary>A new instance, or null where inotify is unavailable (ENOSYS, the instance limit reached).</summary>
    public static Inotify? TryCreate()
    {
        var fd = inotify_init1(0x800 | 0x80000); // IN_NONBLOCK | IN_CLOEXEC
        if (fd < 0) return null;
        var wake = eventfd(0, 0x80000 | 0x800); // EFD_CLOEXEC | EFD_NONBLOCK
        if (wake < 0) { close(fd); return null; }
        return new Inotify(fd, wake);
    }

    /// <summary>Watches <paramref name="directory"/> for <paramref name="mask"/>; false when it cannot (gone, the watch limit).</summary>
    public bool Add(string directory, uint mask)
    {
        var wd = inotify_add_watch(_fd, directory, mask);
        if (wd < 0) return false;
        _dirs[wd] = directory;
        return true;
    }

    /// <summary>
    /// Waits for changes: the (directory, file name) of each event, empty on timeout, null when woken
    /// by <see cref="Wake"/>.
    /// </summary>
    public List<(string Directory, string Name)>? Wait(TimeSpan timeout)
    {
        var fds = stackalloc PollFd[2];
        fds[0] = new PollFd { Fd = _fd, Events = PollIn };
        fds[1] = new PollFd { Fd = _wake, Events = PollIn };
        var ms = timeout == Timeout.InfiniteTimeSpan ? -1 : (int)Math.Min(int.MaxValue, timeout.TotalMilliseconds);
        int rc;
        while ((rc = poll(fds, 2, ms)) < 0 && Marshal.GetLastPInvokeError() == 4 /* EINTR */) { }
        var events = new List<(string, string)>();
        if (rc <= 0) return events;
        if (fds[1].Revents != 0) return null;
        fixed (byte* buf = _buffer)
        {
            long n;
            while ((n = read(_fd, buf, (nuint)_buffer.Length)) > 0)
                for (long off = 0; off + 16 <= n;)
                {
                    var wd = *(int*)(buf + off);
                    var len = *(uint*)(buf + off + 12);
                    var name = len > 0 ? Encoding.UTF8.GetString(buf + off + 16, (int)len).TrimEnd('\0') : "";
                    if (_dirs.TryGetValue(wd, out var dir)) events.Add((dir, name));
                    off += 16 + len;
                }
        }
        return events;
    }

    /// <summary>Ends a <see cref="Wait"/> in progress (or the next one) from another thread.</summary>
    public void Wake()
    {
        ulong one = 1;
        write(_wake, &one, sizeof(ulong));
    }

    public void Dispose()
    {
        close(_fd);
        close(_wake);
    }
}
