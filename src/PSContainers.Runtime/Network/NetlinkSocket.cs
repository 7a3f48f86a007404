using System.Buffers.Binary;
using System.Text;
using static PSContainers.Runtime.Network.NetlinkNative;

namespace PSContainers.Runtime.Network;

/// <summary>A kernel error answer to one request: the errno and the kernel's extended-ack text, if any.</summary>
public sealed class NetlinkError : Exception
{
    public int Errno { get; }
    public string? KernelMessage { get; }
    public NetlinkError(int errno, string? kernelMessage)
        : base(kernelMessage is null ? NetlinkNative.Message(errno) : $"{NetlinkNative.Message(errno)} ({kernelMessage})")
    {
        Errno = errno;
        KernelMessage = kernelMessage;
    }
}

/// <summary>
/// An AF_NETLINK/NETLINK_ROUTE socket: requests with NLM_F_ACK (error answers become
/// <see cref="NetlinkError"/>), multipart dumps, and batches (several requests sent before any ack
/// is read). A socket opened inside another network namespace (<see cref="OpenIn"/>) keeps acting
/// on that namespace whichever thread uses it.
/// </summary>
public sealed unsafe class NetlinkSocket : IDisposable
{
    private int _fd;
    private uint _seq;
    private readonly byte[] _rx = new byte[256 * 1024];

    private NetlinkSocket(int fd)
    {
        _fd = fd;
        _seq = (uint)Environment.TickCount;
    }

    /// <summary>
    /// A socket in the calling thread's network namespace; <paramref name="strict"/> asks the kernel to
    /// check dump requests strictly (NETLINK_GET_STRICT_CHK), which is how a dump takes filters such as
    /// IFA_TARGET_NETNSID at all.
    /// </summary>
    public static NetlinkSocket Open(bool strict = false)
    {
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (fd < 0) throw Failure("open a netlink socket", Errno);
        try
        {
            int one = 1, size = 1 << 20;
            setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, 4);
            if (strict && setsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, 4) < 0) throw Failure("ask for strict netlink checks", Errno);
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, 4);
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, 4);
            var addr = new sockaddr_nl { nl_family = AF_NETLINK };
            if (bind(fd, &addr, sizeof(sockaddr_nl)) < 0) throw Failure("bind a netlink socket", Errno);
            return new NetlinkSocket(fd);
        }
        catch
        {
            close(fd);
            throw;
        }
    }

    /// <summary>A socket in the network namespace of <paramref name="nsPath"/> (null: this process's).</summary>
    public static NetlinkSocket OpenIn(string? nsPath) => nsPath is null ? Open() : NetNsThread.Run(nsPath, () => Open());

    private static ContainerException Failure(string what, int errno) =>
        new("NetlinkFailed", ContainerErrorKind.DeviceError, $"Cannot {what}: {Message(errno)}.");

    private void Send(byte[] msg)
    {
        var dst = new sockaddr_nl { nl_family = AF_NETLINK };
        fixed (byte* p = msg)
        {
            while (true)
            {
                var n = sendto(_fd, p, msg.Length, 0, &dst, sizeof(sockaddr_nl));
                if (n >= 0) return;
                var e = Errno;
                if (e != 4) throw Failure("send a netlink request", e); // EINTR retried
            }
        }
    }

    private int Receive()
    {
        fixed (byte* p = _rx)
        {
            while (true)
            {
                var n = recv(_fd, p, _rx.Length, 0);
                if (n >= 0) return (int)n;
                var e = Errno;
                if (e != 4) throw Failure("read a netlink answer", e);
            }
        }
    }

    private IEnumerable<NetlinkReply> Messages(int n)
    {
        var off = 0;
        var list = new List<NetlinkReply>();
        while (off + 16 <= n)
        {
            var len = (int)BinaryPrimitives.ReadUInt32LittleEndian(_rx.AsSpan(off));
            if (len < 16 || off + len > n) break;
            var type = BinaryPrimitives.ReadUInt16LittleEndian(_rx.AsSpan(off + 4));
            var flags = BinaryPrimitives.ReadUInt16LittleEndian(_rx.AsSpan(off + 6));
            var seq = BinaryPrimitives.ReadUInt32LittleEndian(_rx.AsSpan(off + 8));
            list.Add(new NetlinkReply(type, flags, seq, _rx.AsMemory(off + 16, len - 16).ToArray()));
            off += (len + 3) & ~3;
        }
        return list;
    }

    /// <summary>Decodes an NLMSG_ERROR payload: 0 for an ack, else the errno and the extended-ack message.</summary>
    internal static (int Errno, string? Message) DecodeError(NetlinkReply reply)
    {
        var p = reply.Payload.Span;
        var error = -BinaryPrimitives.ReadInt32LittleEndian(p);
        string? text = null;
        if ((reply.Flags & Rtnl.F_ACK_TLVS) != 0 && p.Length >= 20)
        {
            // After the error code comes the original header (just the header when capped), then TLVs.
            var origLen = (reply.Flags & Rtnl.F_CAPPED) != 0 ? 16 : (int)BinaryPrimitives.ReadUInt32LittleEndian(p[4..]);
            var tlvStart = 4 + ((origLen + 3) & ~3);
            if (tlvStart < p.Length)
                text = new NetlinkAttributes(reply.Payload[tlvStart..]).Str(Rtnl.NLMSGERR_ATTR_MSG);
        }
        return (error, string.IsNullOrEmpty(text) ? null : text);
    }

    /// <summary>Sends one request with NLM_F_ACK and waits for its ack; a kernel error throws <see cref="NetlinkError"/>.</summary>
    public void Request(NetlinkMessage message)
    {
        var errors = Batch(new[] { message });
        if (errors[0] is { } e) throw e;
    }

    /// <summary>
    /// Sends all requests (each with NLM_F_ACK) before reading any answer, then collects the acks:
    /// one netlink round trip for many operations. Returns each request's error (null = done).
    /// </summary>
    public NetlinkError?[] Batch(IReadOnlyList<NetlinkMessage> messages)
    {
        var first = _seq + 1;
        var result = new NetlinkError?[messages.Count];
        var pending = new bool[messages.Count];
        // Sent in chunks so the acks never overflow the receive buffer.
        const int chunk = 256;
        for (var start = 0; start < messages.Count; start += chunk)
        {
            var end = Math.Min(messages.Count, start + chunk);
            for (var i = start; i < end; i++)
            {
                var m = messages[i];
                if ((m.Flags & Rtnl.F_ACK) == 0) throw new ArgumentException("requests must ask for an ack");
                pending[i] = true;
                Send(m.ToBytes(first + (uint)i));
            }
            _seq = first + (uint)end - 1;
            var left = end - start;
            while (left > 0)
            {
                foreach (var r in Messages(Receive()))
                {
                    var i = (long)r.Seq - first;
                    if (r.Type != Rtnl.NLMSG_ERROR || i < start || i >= end || !pending[i]) continue;
                    pending[i] = false;
                    left--;
                    var (errno, text) = DecodeError(r);
                    if (errno != 0) result[i] = new NetlinkError(errno, text);
                }
            }
        }
        return result;
    }

    /// <summary>Sends a dump request (NLM_F_DUMP) and returns every message of the multipart answer.</summary>
    public List<NetlinkReply> Dump(NetlinkMessage message)
    {
        var seq = ++_seq;
        Send(message.ToBytes(seq));
        var list = new List<NetlinkReply>();
        while (true)
        {
            foreach (var r in Messages(Receive()))
            {
                if (r.Seq != seq) continue;
                if (r.Type == Rtnl.NLMSG_DONE) return list;
                if (r.Type == Rtnl.NLMSG_ERROR)
                {
                    var (errno, text) = DecodeError(r);
                    if (errno != 0) throw new NetlinkError(errno, text);
                    return list;
                }
                list.Add(r);
                if ((r.Flags & Rtnl.F_MULTI) == 0) return list;
            }
        }
    }

    public void Dispose()
    {
        if (_fd >= 0) close(_fd);
        _fd = -1;
    }
}

/// <summary>
/// Runs code on a dedicated thread that has entered another network namespace (a network
/// namespace is per thread: setns(CLONE_NEWNET) needs no single-threaded process). Sockets made
/// there stay in that namespace. The thread returns to its original namespace before it ends.
/// </summary>
public static class NetNsThread
{
    public static T Run<T>(string nsPath, Func<T> action)
    {
        int target = open(nsPath, O_RDONLY | O_CLOEXEC, 0);
        if (target < 0)
        {
            var e = Errno;
            throw new ContainerException("NetNamespaceNotFound", ContainerErrorKind.ObjectNotFound,
                $"Cannot open the network namespace {nsPath}: {Message(e)}. Get-NetNamespace lists the named ones.", nsPath);
        }
        try { return OnWorker(() => Enter(target, action)); }
        finally { close(target); }
    }

    private sealed class WorkerThread
    {
        public readonly System.Collections.Concurrent.BlockingCollection<Action> Work = new();
        public readonly Thread Thread;
        public volatile bool Poisoned;
        public WorkerThread()
        {
            Thread = new Thread(() =>
            {
                foreach (var item in Work.GetConsumingEnumerable())
                {
                    item();
                    if (Poisoned) break; // stuck in a foreign namespace: this thread ends, the next call makes a new one
                }
            }, 256 * 1024) { IsBackground = true, Name = "psc-netns-worker" };
            Thread.Start();
        }
    }

    private static readonly object WorkerLock = new();
    private static WorkerThread? _worker;
    [ThreadStatic] private static WorkerThread? _current;

    /// <summary>
    /// Runs on one long-lived worker thread reserved for namespace switches (cheaper than a thread
    /// per call); it is always back in its original namespace between items.
    /// </summary>
    private static T OnWorker<T>(Func<T> action)
    {
        if (_current is not null) return action();
        WorkerThread worker;
        lock (WorkerLock)
        {
            if (_worker is null || _worker.Poisoned) _worker = new WorkerThread();
            worker = _worker;
        }
        T result = default!;
        Exception? error = null;
        using var done = new ManualResetEventSlim();
        worker.Work.Add(() =>
        {
            _current = worker;
            try { result = action(); }
            catch (Exception ex) { error = ex; }
            finally { _current = null; done.Set(); }
        });
        done.Wait();
        if (error is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(error).Throw();
        return result;
    }

    /// <summary>Runs on a fresh thread (its namespace changes never touch a pool thread), rethrowing its exception.</summary>
    internal static T OnThread<T>(Func<T> action)
    {
        T result = default!;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try { result = action(); }
            catch (Exception ex) { error = ex; }
        }, 256 * 1024) { IsBackground = true, Name = "psc-netns" };
        thread.Start();
        thread.Join();
        if (error is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(error).Throw();
        return result;
    }

    private static T Enter<T>(int target, Func<T> action)
    {
        int original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC, 0);
        if (original < 0) throw new ContainerException("NetNamespaceFailed", ContainerErrorKind.DeviceError, $"Cannot open this thread's network namespace: {Message(Errno)}.");
        try
        {
            if (setns(target, CLONE_NEWNET) < 0)
            {
                var e = Errno;
                throw new ContainerException("NetNamespaceFailed", ContainerErrorKind.InvalidArgument,
                    $"Cannot enter the network namespace: {Message(e)} (is the path a network namespace file?).");
            }
            try { return action(); }
            finally
            {
                // A thread that cannot return to its namespace must not serve another request.
                if (setns(original, CLONE_NEWNET) < 0 && _current is { } w) w.Poisoned = true;
            }
        }
        finally { close(original); }
    }
}
