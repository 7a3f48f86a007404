using System.Buffers.Binary;
using System.Text;

namespace PSContainers.Runtime.Network;

/// <summary>rtnetlink constants (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h).</summary>
public static class Rtnl
{
    public const ushort NLMSG_NOOP = 1, NLMSG_ERROR = 2, NLMSG_DONE = 3;
    public const ushort F_REQUEST = 1, F_MULTI = 2, F_ACK = 4, F_DUMP = 0x300, F_REPLACE = 0x100, F_EXCL = 0x200, F_CREATE = 0x400;
    public const ushort F_ACK_TLVS = 0x200, F_CAPPED = 0x100;
    public const ushort RTM_NEWLINK = 16, RTM_DELLINK = 17, RTM_GETLINK = 18;
    public const ushort RTM_NEWADDR = 20, RTM_DELADDR = 21, RTM_GETADDR = 22;
    public const ushort RTM_NEWROUTE = 24, RTM_DELROUTE = 25, RTM_GETROUTE = 26;
    public const ushort RTM_NEWNEIGH = 28, RTM_DELNEIGH = 29, RTM_GETNEIGH = 30;

    public const ushort IFLA_ADDRESS = 1, IFLA_IFNAME = 3, IFLA_MTU = 4, IFLA_LINK = 5, IFLA_MASTER = 10,
        IFLA_OPERSTATE = 16, IFLA_IFALIAS = 20, IFLA_GROUP = 27, IFLA_LINKINFO = 18, IFLA_NET_NS_PID = 19, IFLA_NET_NS_FD = 28, IFLA_LINK_NETNSID = 37;
    public const ushort IFLA_INFO_KIND = 1, IFLA_INFO_DATA = 2, IFLA_INFO_SLAVE_KIND = 4, IFLA_INFO_SLAVE_DATA = 5;
    public const ushort VETH_INFO_PEER = 1, IFLA_MACVLAN_MODE = 1, IFLA_VLAN_ID = 1, IFLA_IPVLAN_MODE = 1, IFLA_IPVLAN_FLAGS = 2;
    public const ushort IFLA_BRPORT_MODE = 4;
    public const uint IFF_UP = 1, IFF_LOOPBACK = 8, IFF_LOWER_UP = 0x10000;

    public const ushort IFA_ADDRESS = 1, IFA_LOCAL = 2, IFA_LABEL = 3, IFA_BROADCAST = 4;
    public const ushort RTA_DST = 1, RTA_OIF = 4, RTA_GATEWAY = 5, RTA_PRIORITY = 6, RTA_PREFSRC = 7, RTA_TABLE = 15;
    public const byte RT_TABLE_MAIN = 254, RTPROT_BOOT = 3, RTN_UNICAST = 1, RT_SCOPE_UNIVERSE = 0, RT_SCOPE_LINK = 253, RT_SCOPE_HOST = 254;
    public const ushort NDA_DST = 1, NDA_LLADDR = 2;
    public const byte AF_UNSPEC = 0, AF_INET = 2, AF_BRIDGE = 7, AF_INET6 = 10;
    public const int NLMSGERR_ATTR_MSG = 1;
}

/// <summary>Builds one netlink message: header, a fixed family header, then (nested) attributes, 4-byte aligned.</summary>
public sealed class NetlinkMessage
{
    private byte[] _buf = new byte[256];
    private int _len;
    private readonly Stack<int> _nests = new();

    public ushort Type { get; }
    public ushort Flags { get; }

    public NetlinkMessage(ushort type, ushort flags)
    {
        Type = type;
        Flags = flags;
        _len = 16;
        BinaryPrimitives.WriteUInt16LittleEndian(_buf.AsSpan(4), type);
        BinaryPrimitives.WriteUInt16LittleEndian(_buf.AsSpan(6), flags);
    }

    public int Length => _len;

    private Span<byte> Grow(int n)
    {
        var aligned = (n + 3) & ~3;
        if (_len + aligned > _buf.Length) Array.Resize(ref _buf, Math.Max(_buf.Length * 2, _len + aligned));
        var span = _buf.AsSpan(_len, aligned);
        span.Clear();
        _len += aligned;
        return span[..n];
    }

    /// <summary>rtgenmsg: just the family (the namespace id requests).</summary>
    public NetlinkMessage RtGen(byte family)
    {
        Grow(1)[0] = family;
        return this;
    }

    /// <summary>ifinfomsg: family, type, index, flags, change.</summary>
    public NetlinkMessage IfInfo(int index = 0, uint flags = 0, uint change = 0, byte family = Rtnl.AF_UNSPEC)
    {
        var s = Grow(16);
        s[0] = family;
        BinaryPrimitives.WriteInt32LittleEndian(s[4..], index);
        BinaryPrimitives.WriteUInt32LittleEndian(s[8..], flags);
        BinaryPrimitives.WriteUInt32LittleEndian(s[12..], change);
        return this;
    }

    /// <summary>ifaddrmsg: family, prefix length, flags, scope, index.</summary>
    public NetlinkMessage IfAddr(byte family, byte prefix, int index, byte scope = 0)
    {
        var s = Grow(8);
        s[0] = family; s[1] = prefix; s[3] = scope;
        BinaryPrimitives.WriteInt32LittleEndian(s[4..], index);
        return this;
    }

    /// <summary>rtmsg.</summary>
    public NetlinkMessage RtMsg(byte family, byte dstLen, byte table, byte protocol, byte scope, byte type)
    {
        var s = Grow(12);
        s[0] = family; s[1] = dstLen; s[4] = table; s[5] = protocol; s[6] = scope; s[7] = type;
        return this;
    }

    /// <summary>ndmsg.</summary>
    public NetlinkMessage NdMsg(byte family, int index = 0)
    {
        var s = Grow(12);
        s[0] = family;
        BinaryPrimitives.WriteInt32LittleEndian(s[4..], index);
        return this;
    }

    public NetlinkMessage Attr(ushort type, ReadOnlySpan<byte> value)
    {
        var s = Grow(4 + value.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(s, (ushort)(4 + value.Length));
        BinaryPrimitives.WriteUInt16LittleEndian(s[2..], type);
        value.CopyTo(s[4..]);
        return this;
    }

    public NetlinkMessage U8(ushort type, byte v) => Attr(type, new[] { v });
    public NetlinkMessage U16(ushort type, ushort v) { Span<byte> b = stackalloc byte[2]; BinaryPrimitives.WriteUInt16LittleEndian(b, v); return Attr(type, b); }
    public NetlinkMessage U32(ushort type, uint v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); return Attr(type, b); }
    /// <summary>A NUL-terminated string (IFLA_IFNAME).</summary>
    public NetlinkMessage Str(ushort type, string v) => Attr(type, Encoding.UTF8.GetBytes(v + "\0"));
    /// <summary>A string without its NUL, as iproute2 sends IFLA_INFO_KIND.</summary>
    public NetlinkMessage StrNoNul(ushort type, string v) => Attr(type, Encoding.UTF8.GetBytes(v));

    /// <summary>Opens a nested attribute (no NLA_F_NESTED flag, as iproute2 does); close with <see cref="End"/>.</summary>
    public NetlinkMessage Begin(ushort type)
    {
        _nests.Push(_len);
        var s = Grow(4);
        BinaryPrimitives.WriteUInt16LittleEndian(s[2..], type);
        return this;
    }

    public NetlinkMessage End()
    {
        var start = _nests.Pop();
        BinaryPrimitives.WriteUInt16LittleEndian(_buf.AsSpan(start), (ushort)(_len - start));
        return this;
    }

    /// <summary>The message with its length and sequence number filled in.</summary>
    public byte[] ToBytes(uint seq)
    {
        if (_nests.Count != 0) throw new InvalidOperationException("unclosed nested attribute");
        var bytes = _buf.AsSpan(0, _len).ToArray();
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, (uint)_len);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), seq);
        return bytes;
    }
}

/// <summary>A parsed attribute list: type (flags masked off) to value; repeated types keep the first.</summary>
public sealed class NetlinkAttributes
{
    private readonly Dictionary<ushort, ReadOnlyMemory<byte>> _attrs = new();

    public NetlinkAttributes(ReadOnlyMemory<byte> data)
    {
        var span = data.Span;
        var off = 0;
        while (off + 4 <= span.Length)
        {
            var len = BinaryPrimitives.ReadUInt16LittleEndian(span[off..]);
            var type = (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(span[(off + 2)..]) & 0x3FFF);
            if (len < 4 || off + len > span.Length) break;
            _attrs.TryAdd(type, data.Slice(off + 4, len - 4));
            off += (len + 3) & ~3;
        }
    }

    public bool Has(ushort type) => _attrs.ContainsKey(type);
    // (A bare "null" here would convert to an empty ReadOnlyMemory through its implicit conversion from byte[].)
    public ReadOnlyMemory<byte>? Get(ushort type) => _attrs.TryGetValue(type, out var v) ? v : (ReadOnlyMemory<byte>?)null;
    public uint? U32(ushort type) => Get(type) is { Length: >= 4 } v ? BinaryPrimitives.ReadUInt32LittleEndian(v.Span) : null;
    public ushort? U16(ushort type) => Get(type) is { Length: >= 2 } v ? BinaryPrimitives.ReadUInt16LittleEndian(v.Span) : null;
    public byte? U8(ushort type) => Get(type) is { Length: >= 1 } v ? v.Span[0] : null;
    public string? Str(ushort type) => Get(type) is { } v ? Encoding.UTF8.GetString(v.Span).TrimEnd('\0') : null;
    public NetlinkAttributes? Nested(ushort type) => Get(type) is { } v ? new NetlinkAttributes(v) : null;
}

/// <summary>A received message: type, flags and payload (family header + attributes).</summary>
public sealed record NetlinkReply(ushort Type, ushort Flags, uint Seq, ReadOnlyMemory<byte> Payload)
{
    public NetlinkAttributes Attributes(int headerSize) => new(Payload[Math.Min(Payload.Length, (headerSize + 3) & ~3)..]);
}
