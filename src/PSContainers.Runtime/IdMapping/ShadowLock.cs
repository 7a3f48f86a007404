using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using PSContainers.Runtime.Native;

namespace PSContainers.Runtime.IdMapping;

/// <summary>
/// Locks /etc/subuid and /etc/subgid the way shadow-utils (useradd, usermod) does, so that this
/// module and those tools never write them at the same time:
/// 1. lckpwdf(): a write lock on /etc/.pwd.lock. glibc takes a POSIX record lock; we take an
///    open-file-description lock, which conflicts with it across processes and also between the
///    threads of this process.
/// 2. per file, commonio's lock: write our pid to "file.PID", hard-link it to "file.lock", and own
///    the lock only if the link count is then 2. A lock file whose pid is dead is stale and removed.
/// Like commonio_lock it gives up after a while (15 s by default) with an error naming the holder.
/// </summary>
internal sealed unsafe class ShadowLock : IDisposable
{
    public const string PasswdLockPath = "/etc/.pwd.lock";

    [StructLayout(LayoutKind.Sequential)]
    private struct Flock
    {
        public short Type;
        public short Whence;
        public long Start;
        public long Len;
        public int Pid;
    }

    [DllImport("libc", SetLastError = true, EntryPoint = "fcntl")] private static extern int fcntl_lock(int fd, int cmd, Flock* lk);
    [DllImport("libc", SetLastError = true)] private static extern int open(byte* path, int flags, int mode);
    [DllImport("libc", SetLastError = true)] private static extern int close(int fd);

    private const int F_OFD_SETLK = 37;
    private const short F_WRLCK = 1;
    private const int O_WRONLY = 1, O_CREAT = 0x40, O_CLOEXEC = 0x80000;
    private const int EACCES = 13, EAGAIN = 11, EEXIST = 17, EPERM = 1;

    // Within one process the pid in "file.lock" cannot tell two threads apart: serialize first.
    private static readonly SemaphoreSlim ProcessGate = new(1, 1);

    private readonly List<string> _lockFiles = new();
    private int _passwdFd = -1;
    private bool _gate;

    private ShadowLock() { }

    /// <param name="files">The files to lock, in this order (shadow-utils locks subuid before subgid).</param>
    /// <param name="passwdLock">The lckpwdf() file; null for files outside /etc (shadow's --prefix mode skips it too).</param>
    public static ShadowLock Acquire(IReadOnlyList<string> files, string? passwdLock, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var l = new ShadowLock();
        try
        {
            if (!ProcessGate.Wait(timeout))
                throw Busy(files[0], "another operation of this process is changing it");
            l._gate = true;
            if (passwdLock is not null) l._passwdFd = LockPasswd(passwdLock, deadline);
            foreach (var file in files)
            {
                LockFile(file, deadline);
                l._lockFiles.Add(file + ".lock");
            }
            return l;
        }
        catch
        {
            l.Dispose();
            throw;
        }
    }

    private static int LockPasswd(string path, DateTime deadline)
    {
        int fd;
        fixed (byte* p = Encoding.UTF8.GetBytes(path + "\0")) fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0b110_000_000);
        if (fd < 0) throw Failed("open", path, Sys.Errno);
        var delay = 1;
        while (true)
        {
            var lk = new Flock { Type = F_WRLCK, Whence = 0, Start = 0, Len = 0, Pid = 0 };
            if (fcntl_lock(fd, F_OFD_SETLK, &lk) == 0) return fd;
            var errno = Sys.Errno;
            if ((errno != EAGAIN && errno != EACCES) || DateTime.UtcNow >= deadline)
            {
                close(fd);
                throw errno is EAGAIN or EACCES
                    ? Busy(path, "another program holds the password-file lock (lckpwdf: useradd, usermod, passwd, vipw ...)")
                    : Failed("lock", path, errno);
            }
            Thread.Sleep(delay);
            delay = Math.Min(delay * 2, 100);
        }
    }

    private static void LockFile(string file, DateTime deadline)
    {
        var pidFile = $"{file}.{Environment.ProcessId}";
        var lockFile = file + ".lock";
        var delay = 1;
        while (true)
        {
            var holder = TryLockFile(pidFile, lockFile);
            if (holder is null) return;
            if (DateTime.UtcNow >= deadline)
                throw Busy(file, $"process {holder} ({ProcessName(holder.Value)}) holds {lockFile}");
            Thread.Sleep(delay);
            delay = Math.Min(delay * 2, 100);
        }
    }

    /// <summary>commonio's do_lock_file: null when locked, else the pid that holds the lock.</summary>
    private static int? TryLockFile(string pidFile, string lockFile)
    {
        // The pid, NUL-terminated, as shadow-utils writes it (and reads it back with strtol).
        using (var fs = new FileStream(pidFile, FileMode.Create, FileAccess.Write, FileShare.ReadWrite))
        {
            fs.Write(Encoding.ASCII.GetBytes(Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + "\0"));
            fs.Flush(flushToDisk: true);
        }
        try
        {
            for (int attempt = 0; attempt < 2; attempt++)
            {
                var errno = Sys.HardLink(pidFile, lockFile);
                if (errno == 0)
                {
                    // Two links (ours and the lock) prove the link is ours, also over NFS.
                    if (LinkCount(pidFile) == 2) return null;
                    throw Failed("lock", lockFile, EEXIST, "The lock file is linked elsewhere too.");
                }
                if (errno != EEXIST) throw Failed("create", lockFile, errno);
                var holder = ReadPid(lockFile);
                // Our own pid can only be a leftover: the process gate keeps our threads apart.
                if (holder is { } pid && pid != Environment.ProcessId && IsAlive(pid)) return pid;
                if (holder is null && !File.Exists(lockFile)) continue; // released meanwhile
                if (holder is null)
                    throw Failed("lock", lockFile, EEXIST,
                        $"It holds no process id; if no shadow-utils program is running, remove {lockFile}.");
                File.Delete(lockFile); // stale: its process is gone
            }
            return ReadPid(lockFile) ?? 0;
        }
        finally { File.Delete(pidFile); }
    }

    private static int? ReadPid(string lockFile)
    {
        string text;
        try { text = Encoding.ASCII.GetString(File.ReadAllBytes(lockFile)); }
        catch (FileNotFoundException) { return null; }
        text = text.TrimEnd('\0', '\n', ' ');
        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && pid > 0 ? pid : null;
    }

    private static bool IsAlive(int pid) => Tmds.Linux.LibC.kill(pid, 0) == 0 || Sys.Errno == EPERM;

    private static string ProcessName(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/comm").Trim(); }
        catch (IOException) { return "unknown"; }
    }

    private static ulong LinkCount(string path)
    {
        Tmds.Linux.stat st;
        fixed (byte* p = Encoding.UTF8.GetBytes(path + "\0"))
            if (Tmds.Linux.LibC.stat(p, &st) != 0) throw Failed("stat", path, Sys.Errno);
        return (ulong)st.st_nlink;
    }

    private static ContainerException Busy(string file, string why) =>
        new("SubordinateIdFileLocked", ContainerErrorKind.ResourceBusy,
            $"Cannot lock '{file}': {why}. Try again when it has finished.", file);

    private static ContainerException Failed(string op, string path, int errno, string hint = "") =>
        new("SubordinateIdFileLockFailed", errno is EACCES or EPERM ? ContainerErrorKind.PermissionDenied : ContainerErrorKind.InvalidOperation,
            $"Cannot {op} '{path}': {Sys.ErrnoMessage(errno)}.{(hint.Length > 0 ? " " + hint : "")}" +
            (errno is EACCES or EPERM ? " Changing /etc/subuid and /etc/subgid needs root." : ""), path);

    public void Dispose()
    {
        // Reverse order, as commonio_unlock: the file locks, then lckpwdf's.
        for (int i = _lockFiles.Count - 1; i >= 0; i--)
            try { File.Delete(_lockFiles[i]); } catch (IOException) { }
        _lockFiles.Clear();
        if (_passwdFd >= 0) { close(_passwdFd); _passwdFd = -1; }
        if (_gate) { ProcessGate.Release(); _gate = false; }
    }
}
