using System.Buffers.Binary;

namespace PSContainers.Runtime.IdMapping;

/// <summary>
/// File capabilities as the kernel stores them in the security.capability xattr (struct
/// vfs_cap_data / vfs_ns_cap_data, little endian): magic_etc (revision | effective flag), then
/// permitted/inheritable 32-bit words, and for revision 3 the root uid of the owning user namespace.
/// </summary>
public sealed record FileCapabilities(ulong Permitted, ulong Inheritable, bool Effective, uint? RootUid)
{
    public const string XattrName = "security.capability";
    public const int CapSetgid = 6;
    public const int CapSetuid = 7;

    private const uint RevisionMask = 0xFF000000, FlagEffective = 0x000001;
    private const uint Revision1 = 0x01000000, Revision2 = 0x02000000, Revision3 = 0x03000000;

    /// <summary>Is the capability permitted and raised at exec (what a program that does not raise it itself, like newuidmap, needs)?</summary>
    public bool Grants(int capability) => Effective && (Permitted & (1UL << capability)) != 0;

    /// <summary>Parses the xattr value; null when it is not a known revision or too short.</summary>
    public static FileCapabilities? Parse(ReadOnlySpan<byte> value)
    {
        if (value.Length < 4) return null;
        var magic = BinaryPrimitives.ReadUInt32LittleEndian(value);
        int words = (magic & RevisionMask) switch { Revision1 => 1, Revision2 or Revision3 => 2, _ => 0 };
        if (words == 0 || value.Length < 4 + words * 8) return null;
        ulong permitted = 0, inheritable = 0;
        for (int i = 0; i < words; i++)
        {
            permitted |= (ulong)BinaryPrimitives.ReadUInt32LittleEndian(value[(4 + i * 8)..]) << (32 * i);
            inheritable |= (ulong)BinaryPrimitives.ReadUInt32LittleEndian(value[(8 + i * 8)..]) << (32 * i);
        }
        uint? root = (magic & RevisionMask) == Revision3 && value.Length >= 24 ? BinaryPrimitives.ReadUInt32LittleEndian(value[20..]) : null;
        return new FileCapabilities(permitted, inheritable, (magic & FlagEffective) != 0, root);
    }

    /// <summary>The xattr value (revision 2, what setcap writes) granting <paramref name="permitted"/>, raised at exec when <paramref name="effective"/>.</summary>
    public static byte[] Encode(ulong permitted, bool effective)
    {
        var value = new byte[20];
        BinaryPrimitives.WriteUInt32LittleEndian(value, Revision2 | (effective ? FlagEffective : 0));
        BinaryPrimitives.WriteUInt32LittleEndian(value.AsSpan(4), (uint)permitted);
        BinaryPrimitives.WriteUInt32LittleEndian(value.AsSpan(12), (uint)(permitted >> 32));
        return value;
    }

    /// <summary>The capabilities of a file (symlinks followed); null when it has none.</summary>
    public static FileCapabilities? Read(string path)
    {
        var target = File.ResolveLinkTarget(path, returnFinalTarget: true)?.FullName ?? path;
        return Filesystem.FsNative.GetXattr(target, XattrName) is { } value ? Parse(value) : null;
    }
}
