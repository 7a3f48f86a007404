using System.Runtime.InteropServices;

namespace PSContainers.Runtime.Network;

/// <summary>The socket-level system calls and constants rtnetlink needs (Tmds.LibC has no sockaddr_nl).</summary>
internal static unsafe class NetlinkNative
{
    public const int AF_NETLINK = 16, SOCK_RAW = 3, SOCK_CLOEXEC = 0x80000, NETLINK_ROUTE = 0;
    public const int SOL_NETLINK = 270, NETLINK_EXT_ACK = 11, NETLINK_GET_STRICT_CHK = 12;
    public const int SOL_SOCKET = 1, SO_RCVBUF = 8, SO_SNDBUF = 7;
    public const int CLONE_NEWNET = 0x40000000;

    [StructLayout(LayoutKind.Sequential)]
    public struct sockaddr_nl
    {
        public ushort nl_family;
        public ushort nl_pad;
        public uint nl_pid;
        public uint nl_groups;
    }

    [DllImport("libc", SetLastError = true)] public static extern int socket(int domain, int type, int protocol);
    [DllImport("libc", SetLastError = true)] public static extern int bind(int fd, sockaddr_nl* addr, int len);
    [DllImport("libc", SetLastError = true)] public static extern int getsockname(int fd, sockaddr_nl* addr, int* len);
    [DllImport("libc", SetLastError = true)] public static extern int setsockopt(int fd, int level, int name, void* value, int len);
    [DllImport("libc", SetLastError = true)] public static extern nint sendto(int fd, void* buf, nint len, int flags, sockaddr_nl* addr, int addrlen);
    [DllImport("libc", SetLastError = true)] public static extern nint recv(int fd, void* buf, nint len, int flags);
    [DllImport("libc", SetLastError = true)] public static extern int close(int fd);
    [DllImport("libc", SetLastError = true)] public static extern int setns(int fd, int nstype);
    [DllImport("libc", SetLastError = true)] public static extern int unshare(int flags);
    [DllImport("libc", SetLastError = true)] public static extern int open(string path, int flags, int mode);
    [DllImport("libc", SetLastError = true)] public static extern int mount(string? source, string target, string? fstype, ulong flags, string? data);
    [DllImport("libc", SetLastError = true)] public static extern int umount2(string target, int flags);
    [DllImport("libc", SetLastError = true)] public static extern int gettid();

    public const int O_RDONLY = 0, O_CLOEXEC = 0x80000;
    public const ulong MS_BIND = 4096, MS_REC = 16384, MS_SHARED = 1 << 20;
    public const int MNT_DETACH = 2;

    public static int Errno => Marshal.GetLastPInvokeError();
    public static string Message(int errno) => Marshal.GetPInvokeErrorMessage(errno);
}
