using System.Runtime.InteropServices;
using Google.Protobuf;

namespace PSContainers.Runtime.Checkpoint;

/// <summary>The CRIU this runtime uses: where it is, and what it said about itself and the kernel.</summary>
public sealed record CriuInstallation(string Path, Version Version, bool MemoryTracking)
{
    public override string ToString() => $"criu {Version} ({Path})";
}

/// <summary>
/// Drives CRIU through its RPC interface: `criu swrk FD` serves one request (criu_req from
/// images/rpc.proto, vendored in Proto/) per SOCK_SEQPACKET message on its end of a socketpair and
/// answers with a criu_resp. No output is parsed; failures quote criu's own message (cr_errmsg or
/// the errors of its log) and the log's path.
/// </summary>
public static class CriuService
{
    /// <summary>Names the criu executable (or its wrapper); otherwise criu is looked up on PATH.</summary>
    public const string EnvironmentVariable = "PSCONTAINERS_CRIU";
    public static readonly Version MinimumVersion = new(4, 2);
    private static readonly string[] SbinFallback = { "/usr/local/sbin", "/usr/sbin", "/sbin" };
    private static readonly Dictionary<string, (DateTime Stamp, CriuInstallation Installation)> Checked = new();

    /// <summary>
    /// Finds criu (<paramref name="configuredPath"/>, else $PSCONTAINERS_CRIU, else PATH), asks its
    /// version (>= 4.2) and runs its CHECK request; cached per executable until the file changes.
    /// </summary>
    public static CriuInstallation Require(string? configuredPath = null)
    {
        var path = Locate(configuredPath);
        var stamp = File.GetLastWriteTimeUtc(path);
        lock (Checked)
            if (Checked.TryGetValue(path, out var hit) && hit.Stamp == stamp) return hit.Installation;

        var versionResp = CallOnce(path, new criu_req { Type = criu_req_type.Version }, null, TimeSpan.FromSeconds(30), errorId: "CriuUnusable", what: $"{path} did not answer CRIU's VERSION request. " + InstallHint, path);
        if (versionResp.Version is null)
            throw Failure(errorId: "CriuUnusable", what: $"{path} did not answer CRIU's VERSION request", versionResp, null, path);
        var v = versionResp.Version;
        var version = new Version(v.MajorNumber, v.MinorNumber, v.HasSublevel ? v.Sublevel : 0);
        if (version < MinimumVersion)
            throw new ContainerException("CriuTooOld", ContainerErrorKind.NotInstalled,
                $"{path} is CRIU {version}; checkpoint/restore needs CRIU {MinimumVersion} or later (older versions cannot dump " +
                "inet sockets on Linux 6.16+, and Debian 12's 3.17 fails on this kernel's vDSO). " + InstallHint, path);
        CallOnce(path, new criu_req { Type = criu_req_type.Check }, null, TimeSpan.FromSeconds(60), errorId: "CriuCheckFailed", what: $"'criu check' ({path}) reports that this kernel cannot checkpoint", path);
        // Soft-dirty tracking (pre-dump): CRIU answers a FEATURE_CHECK with what is there, or fails it.
        bool memTrack;
        try { memTrack = CallOnce(path, new criu_req { Type = criu_req_type.FeatureCheck, Features = new criu_features { MemTrack = true } }, null, TimeSpan.FromSeconds(30), errorId: "CriuCheckFailed", what: "feature check", target: path).Features is { MemTrack: true }; }
        catch (ContainerException) { memTrack = false; }
        var installation = new CriuInstallation(path, version, memTrack);
        lock (Checked) Checked[path] = (stamp, installation);
        return installation;
    }

    internal const string InstallHint =
        "Install CRIU 4.2+ (the repository's .ci/install-criu puts Debian testing's criu in /opt/psc-criu with a wrapper " +
        "/usr/local/sbin/criu), or point $" + EnvironmentVariable + " at a criu executable.";

    private static string Locate(string? configuredPath)
    {
        var explicitPath = configuredPath ?? Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(explicitPath))
        {
            if (File.Exists(explicitPath)) return Path.GetFullPath(explicitPath);
            throw new ContainerException("CriuNotFound", ContainerErrorKind.NotInstalled,
                $"CRIU was configured at '{explicitPath}' ({(configuredPath is null ? "$" + EnvironmentVariable : "the configured path")}), but no such file exists. " + InstallHint, explicitPath);
        }
        var dirs = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries).Concat(SbinFallback);
        foreach (var dir in dirs)
        {
            var candidate = Path.Combine(dir, "criu");
            if (File.Exists(candidate)) return candidate;
        }
        throw new ContainerException("CriuNotFound", ContainerErrorKind.NotInstalled,
            "Checkpoint/restore needs CRIU, and no 'criu' was found on PATH (nor in /usr/local/sbin, /usr/sbin, /sbin). " + InstallHint, "criu");
    }

    // ---- one swrk session -------------------------------------------------------------------

    /// <summary>Runs one request on a fresh `criu swrk` child of this process.</summary>
    internal static criu_resp CallOnce(string criuPath, criu_req request, string? logPath, TimeSpan timeout, string errorId, string what, object? target)
    {
        using var channel = CriuChannel.Create();
        Processes.RunningProgram process;
        lock (CriuChannel.SpawnLock)
        {
            channel.ExposePeer();
            try
            {
                // The protocol runs over the socket; its stdout and stderr are only drained (its log file says what it did).
                process = Processes.ProcessRunner.Start(new Processes.ProgramStart
                {
                    Program = criuPath,
                    Arguments = new[] { "swrk", channel.PeerFd.ToString(System.Globalization.CultureInfo.InvariantCulture) },
                    InputMode = Processes.ProgramInput.Inherit,
                    OutputLimit = 64 << 10,
                    NotFoundErrorId = "CriuNotFound",
                    NotFoundAdvice = InstallHint,
                    Target = target,
                });
            }
            finally { channel.ClosePeer(); }
        }
        using (process)
        {
            try
            {
                return channel.Call(request, WatchingLog(() => !process.HasExited, logPath, errorId, what, target), timeout, errorId, what, target, logPath, () =>
                {
                    // criu ended without answering (a crash, a kill): how it ended and its last words on stderr are all there is to say why.
                    if (!process.WaitForExit(TimeSpan.FromSeconds(2))) return null;
                    var said = string.Join(" | ", process.Error.Split('\n').Where(l => !string.IsNullOrWhiteSpace(l)).TakeLast(3));
                    var ended = process.ExitCode > 128 ? $"killed by signal {process.ExitCode - 128}" : $"exit code {process.ExitCode}";
                    return said.Length > 0 ? $"{ended}: {said}" : ended;
                });
            }
            finally
            {
                channel.Dispose();
                if (!process.WaitForExit(TimeSpan.FromSeconds(10))) { process.Kill(); process.WaitForExit(TimeSpan.FromSeconds(10)); }
                if (logPath is not null) CapLog(logPath);
            }
        }
    }

    /// <summary>
    /// <paramref name="peerAlive"/>, which also fails the request once CRIU's log passes
    /// <see cref="CheckpointManager.MaxLogBytes"/> (checked while waiting for CRIU's answer).
    /// </summary>
    internal static Func<bool> WatchingLog(Func<bool> peerAlive, string? logPath, string errorId, string what, object? target) => () =>
    {
        if (logPath is not null && File.Exists(logPath) && new FileInfo(logPath).Length > CheckpointManager.MaxLogBytes)
        {
            var last = LastLine(logPath);
            throw new ContainerException(errorId, ContainerErrorKind.InvalidOperation,
                $"{what}: CRIU wrote more than {CheckpointManager.MaxLogBytes >> 20} MiB of log, so it was stopped (damaged images make it retry without end; it was writing: '{last}'). CRIU's log: {logPath}", target);
        }
        return peerAlive();
    };

    private static string LastLine(string path)
    {
        try
        {
            using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            var tail = new byte[Math.Min(f.Length, 400)];
            f.Seek(-tail.Length, SeekOrigin.End);
            f.ReadExactly(tail);
            var lines = System.Text.Encoding.UTF8.GetString(tail).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            return lines.Length > 1 ? lines[^2].Trim() : lines.LastOrDefault()?.Trim() ?? "";
        }
        catch (IOException) { return ""; }
    }

    /// <summary>Cuts a CRIU log that outgrew the cap back to it, saying so on its last line (CRIU is gone by now).</summary>
    internal static void CapLog(string logPath)
    {
        try
        {
            using var f = new FileStream(logPath, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
            if (f.Length <= CheckpointManager.MaxLogBytes) return;
            var dropped = f.Length - CheckpointManager.MaxLogBytes;
            f.SetLength(CheckpointManager.MaxLogBytes);
            f.Seek(0, SeekOrigin.End);
            f.Write(System.Text.Encoding.UTF8.GetBytes($"\n[PSContainers: the log was cut here at {CheckpointManager.MaxLogBytes >> 20} MiB; {dropped} more bytes were dropped]\n"));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
    }

    /// <summary>
    /// Mounts CRIU makes in the images directory (its cgroup yard, .criu.cgyard.*) and removes when it
    /// ends normally; a killed criu leaves them. Detached deepest first, then their empty directories removed.
    /// </summary>
    internal static void UnmountLeftovers(string directory)
    {
        var prefix = Path.TrimEndingDirectorySeparator(directory) + "/.criu.";
        foreach (var point in Filesystem.FsNative.MountPoints().Where(p => p.StartsWith(prefix, StringComparison.Ordinal))
                     .OrderByDescending(p => p.Length).ThenByDescending(p => p, StringComparer.Ordinal))
            try { Filesystem.FsNative.Unmount(point); } catch (ContainerException) { }
        foreach (var dir in Directory.EnumerateDirectories(directory, ".criu.*"))
            try { Directory.Delete(dir, recursive: false); } catch (IOException) { }
    }

    /// <summary>The error for a failed request: criu's own words, and where its log is.</summary>
    internal static ContainerException Failure(string errorId, string what, criu_resp? response, string? logPath, object? target)
    {
        var reasons = new List<string>();
        foreach (var line in new[] { response is { HasCrErrmsg: true } ? response.CrErrmsg : null }.Concat(LogErrorLines(logPath)))
            if (Reason(line) is { } reason && !reasons.Contains(reason)) reasons.Add(reason);
        if (reasons.Count > 3) reasons = reasons.GetRange(reasons.Count - 3, 3);
        if (reasons.Count == 0 && response is { HasCrErrno: true } && response.CrErrno != 0) reasons.Add(Marshal.GetPInvokeErrorMessage(response.CrErrno));
        // No error in the log: criu was killed or crashed. Its last words are the best clue there is.
        if (reasons.Count == 0 && LastLogLines(logPath, 3) is { Count: > 0 } last) reasons.Add("the log ends: " + string.Join(" / ", last));
        var message = what + (reasons.Count > 0 ? ": " + string.Join(" | ", reasons) : "") + ".";
        if (logPath is not null) message += $" CRIU's log: {logPath}";
        return new ContainerException(errorId, ContainerErrorKind.InvalidOperation, message, target);
    }

    private static List<string> LastLogLines(string? logPath, int count)
    {
        if (logPath is null || !File.Exists(logPath)) return new();
        var tail = new Queue<string>();
        foreach (var line in File.ReadLines(logPath))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            tail.Enqueue(line.Trim());
            if (tail.Count > count) tail.Dequeue();
        }
        return tail.ToList();
    }

    private static IEnumerable<string> LogErrorLines(string? logPath) =>
        logPath is null || !File.Exists(logPath) ? Array.Empty<string>() : File.ReadLines(logPath).Where(l => l.Contains("Error (", StringComparison.Ordinal));

    /// <summary>The message of one of criu's "Error (file:line): ..." lines; null for the noise every run here prints.</summary>
    internal static string? Reason(string? line)
    {
        if (string.IsNullOrWhiteSpace(line)) return null;
        var at = line.IndexOf("Error (", StringComparison.Ordinal);
        var text = at >= 0 ? line[at..] : line;
        var close = text.IndexOf("): ", StringComparison.Ordinal);
        var message = (at >= 0 && close > 0 ? text[(close + 3)..] : text).Trim().TrimEnd('.');
        // No CAP_SYS_RESOURCE in this sandbox, no iptables on the host (nftables locks the network),
        // and the summary lines that only say that something failed.
        if (message.StartsWith("rlimit:", StringComparison.Ordinal) || message.Contains("iptables", StringComparison.Ordinal) || message.Contains("ip6tables", StringComparison.Ordinal)) return null;
        if (message.EndsWith("FAILED", StringComparison.Ordinal)) return null;
        return message;
    }
}

/// <summary>
/// Our end of a SOCK_SEQPACKET socketpair with criu at the other. The peer end is created
/// close-on-exec and made inheritable only around the one spawn that must pass it on
/// (<see cref="SpawnLock"/> keeps our own spawns from inheriting each other's).
/// </summary>
internal sealed class CriuChannel : IDisposable
{
    internal static readonly object SpawnLock = new();
    private int _fd = -1;
    public int PeerFd { get; private set; } = -1;

    public static CriuChannel Create()
    {
        var fds = new int[2];
        if (Native.socketpair(Native.AF_UNIX, Native.SOCK_SEQPACKET | Native.SOCK_CLOEXEC, 0, fds) < 0)
            throw new ContainerException("CriuUnusable", ContainerErrorKind.DeviceError, $"socketpair for CRIU's RPC: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}.");
        return new CriuChannel { _fd = fds[0], PeerFd = fds[1] };
    }

    public void ExposePeer() => Native.fcntl(PeerFd, Native.F_SETFD, 0);

    public void ClosePeer()
    {
        if (PeerFd >= 0) Native.close(PeerFd);
        PeerFd = -1;
    }

    /// <summary>Sends a request and waits for its answer while <paramref name="peerAlive"/> holds.
    /// A failed request, or criu ending without an answer, is <paramref name="errorId"/>: "<paramref name="what"/>: criu's words";
    /// <paramref name="howItEnded"/> tells what is known of a criu that ended without answering (its exit and stderr).</summary>
    public criu_resp Call(criu_req request, Func<bool> peerAlive, TimeSpan timeout, string errorId, string what, object? target, string? logPath, Func<string?>? howItEnded = null)
    {
        Send(request);
        var resp = Receive(peerAlive, timeout, errorId, what, target, logPath, howItEnded);
        if (!resp.Success) throw CriuService.Failure(errorId, what, resp, logPath, target);
        return resp;
    }

    public unsafe void Send(criu_req request)
    {
        var bytes = request.ToByteArray();
        fixed (byte* p = bytes)
            if (Native.send(_fd, p, (nint)bytes.Length, Native.MSG_NOSIGNAL) < 0)
                throw new ContainerException("CriuUnusable", ContainerErrorKind.DeviceError,
                    $"CRIU went away before it took the {request.Type} request ({Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}).");
    }

    private unsafe criu_resp Receive(Func<bool> peerAlive, TimeSpan timeout, string errorId, string what, object? target, string? logPath, Func<string?>? howItEnded)
    {
        ContainerException Gone() => CriuService.Failure(errorId, what + (howItEnded?.Invoke() is { } how ? $" (CRIU exited without answering, {how})" : " (CRIU exited without answering)"), null, logPath, target);
        var deadline = DateTime.UtcNow + timeout;
        var buffer = new byte[1 << 20];
        var peerGone = false;
        while (true)
        {
            var pfd = new Native.PollFd { fd = _fd, events = Native.POLLIN };
            // criu answers and then exits (swrk serves one request): once it is seen gone, look at the
            // socket once more, without waiting, for the answer it sent just before.
            var ready = Native.poll(&pfd, 1, peerGone ? 0 : 200);
            if (ready > 0)
            {
                nint n;
                fixed (byte* p = buffer) n = Native.recv(_fd, p, buffer.Length, 0);
                if (n > 0) return criu_resp.Parser.ParseFrom(buffer, 0, (int)n);
                if (n == 0) throw Gone();
            }
            if (peerGone) throw Gone();
            if (!peerAlive()) { peerGone = true; continue; }
            if (DateTime.UtcNow > deadline)
                throw new ContainerException("CriuTimeout", ContainerErrorKind.OperationTimeout,
                    $"CRIU did not answer within {timeout.TotalSeconds:0} s." + (logPath is null ? "" : $" Its log: {logPath}."), target);
        }
    }

    public void Dispose()
    {
        ClosePeer();
        if (_fd >= 0) Native.close(_fd);
        _fd = -1;
    }

    private static unsafe class Native
    {
        public const int AF_UNIX = 1, SOCK_SEQPACKET = 5, SOCK_CLOEXEC = 0x80000, F_SETFD = 2, MSG_NOSIGNAL = 0x4000;
        public const short POLLIN = 1;

        [StructLayout(LayoutKind.Sequential)]
        public struct PollFd { public int fd; public short events; public short revents; }

        [DllImport("libc", SetLastError = true)] public static extern int socketpair(int domain, int type, int protocol, int[] sv);
        [DllImport("libc", SetLastError = true)] public static extern int fcntl(int fd, int cmd, int arg);
        [DllImport("libc", SetLastError = true)] public static extern int close(int fd);
        [DllImport("libc", SetLastError = true)] public static extern nint send(int fd, byte* buf, nint len, int flags);
        [DllImport("libc", SetLastError = true)] public static extern nint recv(int fd, byte* buf, nint len, int flags);
        [DllImport("libc", SetLastError = true)] public static extern int poll(PollFd* fds, ulong nfds, int timeout);
    }
}
