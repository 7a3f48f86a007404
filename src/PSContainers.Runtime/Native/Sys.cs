using System.Runtime.InteropServices;
using Tmds.Linux;

namespace PSContainers.Runtime.Native;

/// <summary>The few system calls the runtime makes directly (everything else is files or the helper).</summary>
public static unsafe class Sys
{
    public static int Errno => Marshal.GetLastPInvokeError();

    public static string ErrnoMessage(int errno) => Marshal.GetPInvokeErrorMessage(errno);

    [DllImport("libc", EntryPoint = "link", SetLastError = true)]
    private static extern int link(string oldPath, string newPath);

    /// <summary>link(2): 0, or the errno.</summary>
    public static int HardLink(string existing, string newPath) =>
        link(existing, newPath) == 0 ? 0 : Marshal.GetLastPInvokeError();

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit { public ulong Cur; public ulong Max; }

    [DllImport("libc", EntryPoint = "prlimit", SetLastError = true)]
    private static extern int prlimit(int pid, int resource, RLimit* newLimit, RLimit* oldLimit);

    /// <summary>prlimit(2) setting both limits of <paramref name="resource"/> on <paramref name="pid"/>: 0, or the errno.</summary>
    public static int SetProcessLimit(int pid, int resource, ulong soft, ulong hard)
    {
        var limit = new RLimit { Cur = soft, Max = hard };
        return prlimit(pid, resource, &limit, null) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    [DllImport("libc", EntryPoint = "memfd_create", SetLastError = true)]
    private static extern int memfd_create(string name, uint flags);

    [DllImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static extern int fcntl(int fd, int cmd, int arg);

    private const uint MFD_CLOEXEC = 0x1, MFD_ALLOW_SEALING = 0x2, MFD_EXEC = 0x10;
    private const int F_ADD_SEALS = 1033, F_SEAL_SEAL = 0x1, F_SEAL_SHRINK = 0x2, F_SEAL_GROW = 0x4, F_SEAL_WRITE = 0x8;

    /// <summary>
    /// A copy of <paramref name="path"/> in an anonymous memory file sealed against any change
    /// (memfd_create + F_ADD_SEALS), held open for the life of this process. Its path
    /// /proc/&lt;this pid&gt;/fd/&lt;n&gt; can be executed; what the program sees as /proc/self/exe is then
    /// the sealed copy, never the file on disk. Null where memfds cannot be executable
    /// (vm.memfd_noexec = 2) or created.
    /// </summary>
    public static string? SealedExecutableCopy(string path, string name)
    {
        var fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
        if (fd < 0 && Marshal.GetLastPInvokeError() == LibC.EINVAL) fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING); // before 6.3
        if (fd < 0) return null;
        try
        {
            // A handle that does not own fd: disposing the stream must leave the copy open.
            using (var source = File.OpenRead(path))
            using (var copy = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: false), FileAccess.Write))
                source.CopyTo(copy);
            if (fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) throw new IOException("F_ADD_SEALS failed");
            return $"/proc/{Environment.ProcessId}/fd/{fd}";
        }
        catch (IOException)
        {
            LibC.close(fd);
            return null;
        }
    }

    /// <summary>kill(2); false when the process does not exist (ESRCH).</summary>
    public static bool Kill(int pid, int signal)
    {
        if (LibC.kill(pid, signal) == 0) return true;
        var errno = Marshal.GetLastPInvokeError();
        if (errno == LibC.ESRCH) return false;
        throw new ContainerException("SignalFailed", ContainerErrorKind.PermissionDenied,
            $"Cannot send signal {signal} to pid {pid}: {ErrnoMessage(errno)}.", pid);
    }

    /// <summary>The start time (clock ticks since boot) of a process, field 22 of /proc/pid/stat; null if gone.</summary>
    public static ulong? ProcessStartTime(int pid)
    {
        string stat;
        try { stat = File.ReadAllText($"/proc/{pid}/stat"); }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
        // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
        var rest = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // rest[0] is field 3 (state); field 22 is rest[19]. A zombie is as good as gone.
        if (rest[0] == "Z" || rest[0] == "X") return null;
        return ulong.Parse(rest[19]);
    }

    /// <summary>Is this exactly the process we started (same pid and same start time)?</summary>
    public static bool IsAlive(int? pid, ulong? startTime) =>
        pid is > 0 && startTime is not null && ProcessStartTime(pid.Value) == startTime;

    /// <summary>
    /// Will the process act on <paramref name="signal"/>: does it catch it (SigCgt), or block it to
    /// take it with sigwait/signalfd (SigBlk), or wait for it in sigtimedwait? A namespace's pid 1 drops
    /// every other signal from outside.
    /// </summary>
    public static bool AcceptsSignal(int pid, int signal)
    {
        string[] lines;
        try { lines = File.ReadAllLines($"/proc/{pid}/status"); }
        catch (IOException) { return false; }
        var bit = 1UL << (signal - 1);
        ulong Mask(string key) =>
            lines.FirstOrDefault(l => l.StartsWith(key, StringComparison.Ordinal)) is { } line ? Convert.ToUInt64(line[key.Length..].Trim(), 16) : 0;
        if (((Mask("SigCgt:") | Mask("SigBlk:")) & bit) != 0) return true;
        // Inside sigtimedwait the waited signals show in neither mask (the kernel keeps them in
        // real_blocked): busybox init spends its idle time there.
        return InSigTimedWait(pid);
    }

    private static bool InSigTimedWait(int pid)
    {
        string text;
        try { text = File.ReadAllText($"/proc/{pid}/syscall"); }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
        var nr = text.Split(' ')[0];
        var rtSigtimedwait = RuntimeInformation.OSArchitecture == Architecture.Arm64 ? "137" : "128";
        return nr == rtSigtimedwait;
    }

    private const int SYS_pidfd_open = 434;

    /// <summary>
    /// Waits until a process exits, using a pidfd (woken by the kernel at exit, no polling); falls
    /// back to polling /proc where pidfds are unavailable. Returns false on timeout.
    /// </summary>
    public static bool WaitForExit(int pid, ulong startTime, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        int fd = (int)LibC.syscall(SYS_pidfd_open, pid, 0);
        if (fd >= 0)
        {
            try
            {
                // The pid could have been recycled between our check and pidfd_open: verify after.
                if (ProcessStartTime(pid) != startTime) return true;
                var pfd = new pollfd { fd = fd, events = LibC.POLLIN };
                while (true)
                {
                    var left = deadline - DateTime.UtcNow;
                    if (left <= TimeSpan.Zero) return ProcessStartTime(pid) != startTime;
                    int rc = LibC.poll(&pfd, 1, (int)Math.Min(left.TotalMilliseconds + 1, int.MaxValue));
                    if (rc > 0) return true;
                    if (rc < 0 && Marshal.GetLastPInvokeError() != LibC.EINTR) break;
                }
            }
            finally { LibC.close(fd); }
        }
        while (ProcessStartTime(pid) == startTime)
        {
            if (DateTime.UtcNow >= deadline) return false;
            Thread.Sleep(2);
        }
        return true;
    }
}
