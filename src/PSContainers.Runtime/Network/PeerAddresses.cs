using System.Buffers.Binary;
using System.Net;

namespace PSContainers.Runtime.Network;

/// <summary>
/// The global addresses of other network namespaces, read from this one: the namespace is given an
/// id here (RTM_NEWNSID, what <c>ip netns set NAME auto</c> does; the kernel frees it with the
/// namespace) and its addresses are dumped with IFA_TARGET_NETNSID (Linux 4.20+, added for runtimes
/// that list many containers). No thread enters each namespace, which is what listing hundreds of
/// containers paid for. Needs CAP_NET_ADMIN here: for anyone else (or an older kernel) a read
/// returns null and the caller enters the namespace as before.
/// </summary>
public sealed class PeerAddresses : IDisposable
{
    private const ushort RTM_NEWNSID = 88, RTM_GETNSID = 90;
    private const ushort NETNSA_NSID = 1, NETNSA_PID = 2;
    private const ushort IFA_TARGET_NETNSID = 10;

    private readonly NetlinkSocket _socket;
    private bool _unavailable;

    private PeerAddresses(NetlinkSocket socket) { _socket = socket; }

    /// <summary>A reader on a strict socket in the calling thread's namespace; null when none can be opened.</summary>
    public static PeerAddresses? TryOpen()
    {
        try { return new PeerAddresses(NetlinkSocket.Open(strict: true)); }
        catch (ContainerException) { return null; }
    }

    /// <summary>The global IPv4 and IPv6 addresses in the network namespace of <paramref name="pid"/>; null: read them another way.</summary>
    public (string[] IPv4, string[] IPv6)? Read(int pid)
    {
        if (_unavailable) return null;
        try
        {
            var nsid = IdOf(pid);
            if (nsid < 0)
            {
                // Give it one; EEXIST: someone else just did.
                var error = _socket.Batch(new[] { new NetlinkMessage(RTM_NEWNSID, Rtnl.F_REQUEST | Rtnl.F_ACK).RtGen(Rtnl.AF_UNSPEC).U32(NETNSA_PID, (uint)pid).U32(NETNSA_NSID, unchecked((uint)-1)) })[0];
                if (error is not null && error.Errno != 17) throw error;
                nsid = IdOf(pid);
                if (nsid < 0) return null;
            }
            var v4 = new List<string>();
            var v6 = new List<string>();
            foreach (var r in _socket.Dump(new NetlinkMessage(Rtnl.RTM_GETADDR, Rtnl.F_REQUEST | Rtnl.F_DUMP).IfAddr(Rtnl.AF_UNSPEC, 0, 0).U32(IFA_TARGET_NETNSID, (uint)nsid)))
            {
                if (r.Type != Rtnl.RTM_NEWADDR) continue;
                var p = r.Payload.Span;
                var attrs = r.Attributes(8);
                // A kernel that ignored the target would answer with this namespace's own addresses,
                // which carry no IFA_TARGET_NETNSID: never report those as the container's.
                if (attrs.U32(IFA_TARGET_NETNSID) is not { } target || (int)target != nsid) { _unavailable = true; return null; }
                if (p[3] != 0) continue; // scope: global only
                var bytes = attrs.Get(Rtnl.IFA_LOCAL) ?? attrs.Get(Rtnl.IFA_ADDRESS);
                if (bytes is null) continue;
                (p[0] == Rtnl.AF_INET ? v4 : v6).Add(new IPAddress(bytes.Value.Span).ToString());
            }
            return (v4.ToArray(), v6.ToArray());
        }
        catch (NetlinkError e) when (e.Errno is 1 or 13 or 22 or 95)
        {
            // EPERM/EACCES (no CAP_NET_ADMIN here), EINVAL/EOPNOTSUPP (a kernel without the target): the slow way from now on.
            _unavailable = true;
            return null;
        }
        catch (NetlinkError)
        {
            return null; // ESRCH: the process is gone; the caller's own read says so its way
        }
    }

    /// <summary>The id this namespace knows the namespace of <paramref name="pid"/> by; -1: none yet.</summary>
    private int IdOf(int pid)
    {
        foreach (var r in _socket.Dump(new NetlinkMessage(RTM_GETNSID, Rtnl.F_REQUEST).RtGen(Rtnl.AF_UNSPEC).U32(NETNSA_PID, (uint)pid)))
            if (r.Type == RTM_NEWNSID && r.Attributes(1).U32(NETNSA_NSID) is { } id) return (int)id;
        return -1;
    }

    public void Dispose() => _socket.Dispose();
}
