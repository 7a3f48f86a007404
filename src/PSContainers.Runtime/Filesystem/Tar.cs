using System.Buffers;
using System.Globalization;
using System.IO.Compression;
using System.Text;

namespace PSContainers.Runtime.Filesystem;

/// <summary>Entry types of the ustar format (the typeflag byte).</summary>
public enum TarEntryType : byte
{
    Regular = (byte)'0',
    HardLink = (byte)'1',
    SymbolicLink = (byte)'2',
    CharacterDevice = (byte)'3',
    BlockDevice = (byte)'4',
    Directory = (byte)'5',
    Fifo = (byte)'6',
}

/// <summary>One archive member: what a header (plus its PAX records) says.</summary>
public sealed class TarEntry
{
    public string Path { get; set; } = "";
    public TarEntryType Type { get; set; }
    public string LinkPath { get; set; } = "";
    public int Mode { get; set; }
    public long Uid { get; set; }
    public long Gid { get; set; }
    public long Size { get; set; }
    public long MTimeSeconds { get; set; }
    public long MTimeNanoseconds { get; set; }
    public int DevMajor { get; set; }
    public int DevMinor { get; set; }
    /// <summary>POSIX ACLs in acl_to_text form (PAX SCHILY.acl.access / .default, as GNU tar --acls writes them).</summary>
    public string? AclAccess { get; set; }
    public string? AclDefault { get; set; }
    /// <summary>Extended attributes with their raw values (PAX SCHILY.xattr.NAME, as GNU tar --xattrs writes them).</summary>
    public SortedDictionary<string, byte[]> Xattrs { get; } = new(StringComparer.Ordinal);
}

/// <summary>
/// A POSIX.1-2001 (PAX) tar writer. System.Formats.Tar keeps PAX values as .NET strings and writes
/// them as UTF-8, which corrupts binary xattr values such as security.capability; this writer puts
/// the raw bytes in SCHILY.xattr.* records exactly as GNU tar and bsdtar do, so either can read it.
/// </summary>
public sealed class PaxTarWriter : IDisposable
{
    private readonly Stream _out;
    private readonly byte[] _header = new byte[512];
    private long _paxCounter;

    public PaxTarWriter(Stream output) => _out = output;

    public void WriteEntry(TarEntry entry, Stream? data)
    {
        var pax = new MemoryStream();
        var path = entry.Type == TarEntryType.Directory && !entry.Path.EndsWith('/') ? entry.Path + "/" : entry.Path;
        var pathBytes = Encoding.UTF8.GetBytes(path);
        var linkBytes = Encoding.UTF8.GetBytes(entry.LinkPath);
        if (pathBytes.Length > 100 || !IsAscii(pathBytes)) Record(pax, "path", pathBytes);
        if (linkBytes.Length > 100 || !IsAscii(linkBytes)) Record(pax, "linkpath", linkBytes);
        if (entry.Uid > 0x1FFFFF) Record(pax, "uid", Ascii(entry.Uid.ToString(CultureInfo.InvariantCulture)));
        if (entry.Gid > 0x1FFFFF) Record(pax, "gid", Ascii(entry.Gid.ToString(CultureInfo.InvariantCulture)));
        if (entry.Size > 0x1FFFFFFFF) Record(pax, "size", Ascii(entry.Size.ToString(CultureInfo.InvariantCulture)));
        if (entry.MTimeNanoseconds != 0)
            Record(pax, "mtime", Ascii($"{entry.MTimeSeconds}.{entry.MTimeNanoseconds:D9}"));
        if (entry.AclAccess is not null) Record(pax, "SCHILY.acl.access", Encoding.UTF8.GetBytes(entry.AclAccess));
        if (entry.AclDefault is not null) Record(pax, "SCHILY.acl.default", Encoding.UTF8.GetBytes(entry.AclDefault));
        foreach (var (name, value) in entry.Xattrs) Record(pax, "SCHILY.xattr." + name, value);
        if (pax.Length > 0)
        {
            var name = $"PaxHeaders.{++_paxCounter}/{System.IO.Path.GetFileName(path.TrimEnd('/'))}";
            WriteHeader(Truncate(name, 100), (byte)'x', 0x1A4, 0, 0, pax.Length, entry.MTimeSeconds, "", 0, 0);
            pax.Position = 0;
            pax.CopyTo(_out);
            Pad(pax.Length);
        }
        var size = entry.Type == TarEntryType.Regular ? entry.Size : 0;
        WriteHeader(Truncate(path, 100), (byte)entry.Type, entry.Mode, entry.Uid, entry.Gid, size, entry.MTimeSeconds,
            Truncate(entry.LinkPath, 100), entry.DevMajor, entry.DevMinor);
        if (size > 0)
        {
            if (data is null) throw new ArgumentNullException(nameof(data));
            if (data is FileStream source && _out is FileStream target && CopyInKernel(source, target, size))
            {
                Pad(size);
                return;
            }
            var buffer = ArrayPool<byte>.Shared.Rent(1 << 20);
            try
            {
                long left = size;
                while (left > 0)
                {
                    int n = data.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
                    if (n <= 0)
                    {
                        // The file shrank while we read it: pad with zeros so the archive stays valid.
                        Array.Clear(buffer);
                        while (left > 0) { int z = (int)Math.Min(buffer.Length, left); _out.Write(buffer, 0, z); left -= z; }
                        break;
                    }
                    _out.Write(buffer, 0, n);
                    left -= n;
                }
            }
            finally { ArrayPool<byte>.Shared.Return(buffer); }
            Pad(size);
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    static extern unsafe nint copy_file_range(int fdIn, long* offIn, int fdOut, long* offOut, nuint len, uint flags);

    /// <summary>
    /// An uncompressed archive written to a file: the data goes file to file in the kernel
    /// (copy_file_range; no copy through user space, and block-aligned extents may even be shared).
    /// False when the kernel cannot (then nothing was written and the caller copies).
    /// </summary>
    static unsafe bool CopyInKernel(FileStream source, FileStream target, long size)
    {
        target.Flush();
        long inOff = source.Position, outOff = target.Position, start = outOff;
        bool release = false, releaseOut = false;
        source.SafeFileHandle.DangerousAddRef(ref release);
        target.SafeFileHandle.DangerousAddRef(ref releaseOut);
        try
        {
            int sfd = (int)source.SafeFileHandle.DangerousGetHandle(), tfd = (int)target.SafeFileHandle.DangerousGetHandle();
            while (outOff - start < size)
            {
                nint n = copy_file_range(sfd, &inOff, tfd, &outOff, (nuint)Math.Min(size - (outOff - start), 1L << 30), 0);
                if (n > 0) continue;
                if (n == 0) break; // the file shrank: pad below
                if (outOff == start) return false; // EXDEV, EINVAL, ENOSYS...: the caller copies through a buffer
                throw new IOException($"copy_file_range failed: {System.Runtime.InteropServices.Marshal.GetPInvokeErrorMessage(System.Runtime.InteropServices.Marshal.GetLastPInvokeError())}");
            }
        }
        finally
        {
            if (release) source.SafeFileHandle.DangerousRelease();
            if (releaseOut) target.SafeFileHandle.DangerousRelease();
        }
        target.Position = outOff;
        source.Position = inOff;
        if (outOff - start < size) target.Write(new byte[size - (outOff - start)]);
        return true;
    }

    static bool IsAscii(byte[] b) => b.All(x => x is > 0 and < 0x80);
    static byte[] Ascii(string s) => Encoding.ASCII.GetBytes(s);
    static string Truncate(string s, int max)
    {
        var b = Encoding.UTF8.GetBytes(s);
        if (b.Length <= max && IsAscii(b)) return s;
        var ascii = new string(s.Select(c => c < 0x80 ? c : '_').ToArray());
        return ascii.Length <= max ? ascii : ascii[..max];
    }

    /// <summary>"LEN key=value\n", LEN counting its own digits.</summary>
    static void Record(Stream pax, string key, byte[] value)
    {
        var keyBytes = Encoding.UTF8.GetBytes(key);
        int body = 1 + keyBytes.Length + 1 + value.Length + 1;
        int len = body + 1;
        while (len != body + len.ToString(CultureInfo.InvariantCulture).Length) len = body + len.ToString(CultureInfo.InvariantCulture).Length;
        pax.Write(Ascii(len.ToString(CultureInfo.InvariantCulture) + " "));
        pax.Write(keyBytes);
        pax.WriteByte((byte)'=');
        pax.Write(value);
        pax.WriteByte((byte)'\n');
    }

    void WriteHeader(string name, byte type, int mode, long uid, long gid, long size, long mtime, string link, int major, int minor)
    {
        var h = _header;
        Array.Clear(h);
        Encoding.ASCII.GetBytes(name).CopyTo(h, 0);
        Octal(h, 100, 8, mode & 0xFFF);
        Octal(h, 108, 8, Math.Min(uid, 0x1FFFFF));
        Octal(h, 116, 8, Math.Min(gid, 0x1FFFFF));
        Octal(h, 124, 12, Math.Min(size, 0x1FFFFFFFF));
        Octal(h, 136, 12, Math.Clamp(mtime, 0, 0x1FFFFFFFF));
        h[156] = type;
        Encoding.ASCII.GetBytes(link).CopyTo(h, 157);
        Encoding.ASCII.GetBytes("ustar\0" + "00").CopyTo(h, 257);
        Octal(h, 329, 8, major);
        Octal(h, 337, 8, minor);
        for (int i = 148; i < 156; i++) h[i] = (byte)' ';
        int sum = 0;
        foreach (var b in h) sum += b;
        Octal(h, 148, 7, sum);
        _out.Write(h);
    }

    static void Octal(byte[] h, int offset, int width, long value)
    {
        var text = Convert.ToString(value, 8).PadLeft(width - 1, '0');
        Encoding.ASCII.GetBytes(text).CopyTo(h, offset);
        h[offset + width - 1] = 0;
    }

    void Pad(long size)
    {
        int rest = (int)(size % 512);
        if (rest != 0) _out.Write(new byte[512 - rest]);
    }

    /// <summary>Ends the archive (two zero blocks).</summary>
    public void Finish() => _out.Write(new byte[1024]);

    public void Dispose() { }
}

/// <summary>
/// Reads ustar, PAX (x/g, with SCHILY.xattr.* kept as raw bytes) and GNU (././@LongLink 'L'/'K',
/// base-256 numbers) archives: what GNU tar, bsdtar and <see cref="PaxTarWriter"/> write.
/// </summary>
public sealed class PaxTarReader
{
    private readonly Stream _in;
    private readonly byte[] _header = new byte[512];
    private long _pendingSkip;
    private string _pendingEntry = "";
    private BoundedStream? _current;

    public PaxTarReader(Stream input) => _in = new GuardStream(input);

    /// <summary>Bytes of the (decompressed) archive read so far.</summary>
    public long Position => ((GuardStream)_in).Consumed;

    /// <summary>A damaged gzip or zstd stream is a corrupt archive, not a stray InvalidDataException.</summary>
    private sealed class GuardStream(Stream inner) : Stream
    {
        public long Consumed;
        public override bool CanRead => true;
        public override bool CanSeek => inner.CanSeek;
        public override bool CanWrite => false;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count)
        {
            try
            {
                int n = inner.Read(buffer, offset, count);
                Consumed += n;
                return n;
            }
            catch (InvalidDataException ex) { throw new ContainerException("ArchiveCorrupt", ContainerErrorKind.InvalidData, $"The archive is not a valid tar archive: its compressed data is damaged ({ex.Message}).", null, ex); }
            catch (ZstdSharp.ZstdException ex) { throw new ContainerException("ArchiveCorrupt", ContainerErrorKind.InvalidData, $"The archive is not a valid tar archive: its zstd data is damaged ({ex.Message}).", null, ex); }
        }
        /// <summary>Skips forward; an uncompressed archive file is seeked over instead of read.</summary>
        public bool TrySkip(long count)
        {
            if (!inner.CanSeek || inner.Position + count > inner.Length) return false;
            inner.Seek(count, SeekOrigin.Current);
            Consumed += count;
            return true;
        }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>Longest path and path component the kernel takes (PATH_MAX, NAME_MAX).</summary>
    const int MaxPath = 4096, MaxComponent = 255;

    internal static ContainerException Corrupt(string why, string? entry = null) =>
        new("ArchiveCorrupt", ContainerErrorKind.InvalidData,
            entry is null ? $"The archive is not a valid tar archive: {why}." : $"The archive is not a valid tar archive: entry '{Shorten(entry)}': {why}.",
            entry is null ? null : Shorten(entry));

    static string Shorten(string entry) => entry.Length <= 200 ? entry : entry[..200] + "...";

    /// <summary>The next entry and a stream over its data (valid until the next call); null at the end.</summary>
    public (TarEntry Entry, Stream Data)? Next()
    {
        _current?.Drain();
        Skip(_pendingSkip, _pendingEntry);
        _pendingSkip = 0;
        Dictionary<string, byte[]>? pax = null;
        string? longName = null, longLink = null;
        string? lastExtended = null;
        while (true)
        {
            if (!ReadBlock(_header)) return null;
            if (_header.All(b => b == 0)) return null;
            // Named as soon as possible: every error below says which entry it is about.
            var name = CString(_header, 0, 100);
            if (Encoding.ASCII.GetString(_header, 257, 5) == "ustar" && _header[345] != 0)
                name = CString(_header, 345, 155) + "/" + name;
            var label = longName ?? (pax is not null && pax.TryGetValue("path", out var pp) ? Encoding.UTF8.GetString(pp) : name);
            if (label.Length == 0) label = lastExtended ?? "(unnamed entry)";
            if (!ChecksumOk(_header, label)) throw Corrupt("its header checksum does not match (damaged or not a tar file)", label);
            var type = _header[156];
            var size = Number(_header, 124, 12, label, "size");
            if (type is (byte)'x' or (byte)'g' or (byte)'L' or (byte)'K')
            {
                if (size > 16 << 20) throw Corrupt("an extended header is larger than 16 MiB", label);
                var data = new byte[size];
                ReadExactly(data, label);
                Skip(PadOf(size), label);
                lastExtended = name;
                if (type == (byte)'x') pax = ParsePax(data, name);
                else if (type == (byte)'L') longName = CString(data, 0, data.Length);
                else if (type == (byte)'K') longLink = CString(data, 0, data.Length);
                continue;
            }
            var entry = new TarEntry
            {
                Path = longName ?? name,
                Mode = (int)Number(_header, 100, 8, label, "mode", max: 0xFFFFF),
                Uid = Number(_header, 108, 8, label, "uid", max: uint.MaxValue - 1),
                Gid = Number(_header, 116, 8, label, "gid", max: uint.MaxValue - 1),
                Size = size,
                MTimeSeconds = Number(_header, 136, 12, label, "mtime", allowNegative: true),
                LinkPath = CString(_header, 157, 100),
                DevMajor = (int)Number(_header, 329, 8, label, "devmajor", max: int.MaxValue),
                DevMinor = (int)Number(_header, 337, 8, label, "devminor", max: int.MaxValue),
            };
            if (longLink is not null) entry.LinkPath = longLink;
            entry.Type = type switch
            {
                (byte)'0' or 0 or (byte)'7' => TarEntryType.Regular,
                (byte)'1' => TarEntryType.HardLink,
                (byte)'2' => TarEntryType.SymbolicLink,
                (byte)'3' => TarEntryType.CharacterDevice,
                (byte)'4' => TarEntryType.BlockDevice,
                (byte)'5' => TarEntryType.Directory,
                (byte)'6' => TarEntryType.Fifo,
                (byte)'S' => throw new ContainerException("ArchiveUnsupported", ContainerErrorKind.InvalidData,
                    $"Entry '{Shorten(label)}' is a GNU sparse file (tar -S), which is not supported. Make the archive without -S/--sparse.", Shorten(label)),
                _ => throw new ContainerException("ArchiveUnsupported", ContainerErrorKind.InvalidData,
                    $"Entry '{Shorten(label)}' has the unknown tar type '{(char)type}'.", Shorten(label)),
            };
            if (type == 0 && entry.Path.EndsWith('/')) entry.Type = TarEntryType.Directory;
            if (pax is not null) ApplyPax(entry, pax);
            CheckPath(entry.Path, entry.Path, "name");
            if (entry.LinkPath.Length > 0) CheckPath(entry.LinkPath, entry.Path, "link target");
            // Links carry no data whatever their size field says; anything else is followed by Size bytes.
            long archived = entry.Type is TarEntryType.HardLink or TarEntryType.SymbolicLink ? 0 : entry.Size;
            if (archived < 0) throw Corrupt("its size is negative", entry.Path);
            bool regular = entry.Type == TarEntryType.Regular;
            if (!regular) entry.Size = 0;
            _current = new BoundedStream(_in, regular ? archived : 0, entry.Path);
            _pendingSkip = PadOf(archived) + (regular ? 0 : archived);
            _pendingEntry = entry.Path;
            return (entry, _current);
        }
    }

    /// <summary>What no filesystem here can hold is corrupt, not an I/O error half-way through the import.</summary>
    static void CheckPath(string path, string entry, string what)
    {
        if (path.Length == 0 && what == "name") throw Corrupt("it has no name", "(unnamed entry)");
        if (path.Contains('\0')) throw Corrupt($"its {what} contains a NUL character", entry);
        if (Encoding.UTF8.GetByteCount(path) > MaxPath) throw Corrupt($"its {what} is longer than {MaxPath} bytes", entry);
        foreach (var part in path.Split('/'))
            if (Encoding.UTF8.GetByteCount(part) > MaxComponent) throw Corrupt($"its {what} has a component longer than {MaxComponent} bytes", entry);
    }

    static long PaxNumber(byte[] value, string entry, string key, long min, long max)
    {
        var text = Encoding.UTF8.GetString(value);
        if (text.Length == 0 || text.Length > 19 || !text.All(char.IsAsciiDigit) || !long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var v) || v < min || v > max)
            throw Corrupt($"its PAX record '{key}={Shorten(text)}' is not a number from {min} to {max}", entry);
        return v;
    }

    static void ApplyPax(TarEntry entry, Dictionary<string, byte[]> pax)
    {
        if (pax.TryGetValue("path", out var pathValue)) entry.Path = Encoding.UTF8.GetString(pathValue);
        foreach (var (key, value) in pax)
        {
            string Text() => Encoding.UTF8.GetString(value);
            switch (key)
            {
                case "path": break;
                case "linkpath": entry.LinkPath = Text(); break;
                case "uid": entry.Uid = PaxNumber(value, entry.Path, key, 0, uint.MaxValue - 1); break;
                case "gid": entry.Gid = PaxNumber(value, entry.Path, key, 0, uint.MaxValue - 1); break;
                case "size": entry.Size = PaxNumber(value, entry.Path, key, 0, long.MaxValue); break;
                case "mtime":
                    var t = Text();
                    var parts = t.Split('.');
                    var whole = parts[0].StartsWith('-') ? parts[0][1..] : parts[0];
                    if (parts.Length > 2 || whole.Length is 0 or > 18 || !whole.All(char.IsAsciiDigit)
                        || (parts.Length == 2 && (parts[1].Length == 0 || !parts[1].All(char.IsAsciiDigit))))
                        throw Corrupt($"its PAX record 'mtime={Shorten(t)}' is not a time in seconds", entry.Path);
                    entry.MTimeSeconds = long.Parse(parts[0], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
                    entry.MTimeNanoseconds = parts.Length > 1 ? long.Parse(parts[1].PadRight(9, '0')[..9], CultureInfo.InvariantCulture) : 0;
                    break;
                case "SCHILY.acl.access":
                    if (value.Length > 0) entry.Xattrs["system.posix_acl_access"] = PosixAcl.FromText(Text(), entry.Path);
                    break;
                case "SCHILY.acl.default":
                    if (value.Length > 0) entry.Xattrs["system.posix_acl_default"] = PosixAcl.FromText(Text(), entry.Path);
                    break;
                default:
                    if (key.StartsWith("SCHILY.xattr.", StringComparison.Ordinal))
                    {
                        var name = key["SCHILY.xattr.".Length..];
                        // The kernel's limits (XATTR_NAME_MAX, XATTR_SIZE_MAX): a longer one is no xattr.
                        if (name.Length is 0 or > 255 || value.Length > 65536) throw Corrupt($"its extended attribute '{Shorten(name)}' is empty-named or too long", entry.Path);
                        entry.Xattrs[name] = value;
                    }
                    break;
            }
        }
    }

    static Dictionary<string, byte[]> ParsePax(byte[] data, string header)
    {
        var result = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        int pos = 0;
        while (pos < data.Length)
        {
            int space = Array.IndexOf(data, (byte)' ', pos);
            if (space < 0) break;
            if (!int.TryParse(Encoding.ASCII.GetString(data, pos, space - pos), NumberStyles.None, CultureInfo.InvariantCulture, out var len)
                || len <= space - pos || pos + len > data.Length || data[pos + len - 1] != (byte)'\n')
                throw Corrupt($"a PAX extended header record at byte {pos} is malformed (its length field is wrong)", header);
            int eq = Array.IndexOf(data, (byte)'=', space + 1, pos + len - space - 1);
            if (eq < 0) throw Corrupt($"a PAX extended header record at byte {pos} has no '='", header);
            var key = Encoding.UTF8.GetString(data, space + 1, eq - space - 1);
            result[key] = data[(eq + 1)..(pos + len - 1)];
            pos += len;
        }
        return result;
    }

    static string CString(byte[] b, int offset, int max)
    {
        int end = Array.IndexOf(b, (byte)0, offset, max);
        return Encoding.UTF8.GetString(b, offset, (end < 0 ? offset + max : end) - offset);
    }

    static long Number(byte[] h, int offset, int width, string entry, string field, long max = long.MaxValue, bool allowNegative = false)
    {
        long value = 0;
        if ((h[offset] & 0x80) != 0)
        {
            // GNU base-256: big-endian two's complement in the remaining bits.
            bool negative = (h[offset] & 0x40) != 0;
            value = negative ? -1 : 0;
            value = (value << 6) | (long)(h[offset] & 0x3F);
            for (int i = 1; i < width; i++)
            {
                if (!negative && value > (long.MaxValue >> 8) || negative && value < (long.MinValue >> 8))
                    throw Corrupt($"its {field} field (base-256) does not fit in 64 bits", entry);
                value = (value << 8) | h[offset + i];
            }
        }
        else
        {
            bool digits = false, ended = false;
            for (int i = offset; i < offset + width; i++)
            {
                var c = h[i];
                if (c == 0) break;
                if (c == ' ') { if (digits) ended = true; continue; }
                if (ended || c < '0' || c > '7') throw Corrupt($"its {field} field is not an octal number", entry);
                digits = true;
                value = value * 8 + (c - '0');
            }
        }
        if (value < 0 && !allowNegative) throw Corrupt($"its {field} field is negative", entry);
        if (value > max) throw Corrupt($"its {field} field is too large ({value})", entry);
        return value;
    }

    static bool ChecksumOk(byte[] h, string entry)
    {
        long stored = Number(h, 148, 8, entry, "checksum");
        long sum = 0;
        for (int i = 0; i < 512; i++) sum += i is >= 148 and < 156 ? ' ' : h[i];
        return sum == stored;
    }

    static long PadOf(long size) => (512 - size % 512) % 512;

    bool ReadBlock(byte[] block)
    {
        int got = 0;
        while (got < block.Length)
        {
            int n = _in.Read(block, got, block.Length - got);
            if (n <= 0)
            {
                if (got == 0) return false;
                throw Corrupt("the archive ends in the middle of the header that follows it", _pendingEntry.Length > 0 ? _pendingEntry : "(the first entry)");
            }
            got += n;
        }
        return true;
    }

    void ReadExactly(byte[] data, string entry)
    {
        try { _in.ReadExactly(data); }
        catch (EndOfStreamException) { throw Corrupt("the archive ends in the middle of it", entry); }
    }

    void Skip(long count, string entry)
    {
        if (count > 0 && ((GuardStream)_in).TrySkip(count)) return;
        var buffer = new byte[Math.Min(count, 1 << 16)];
        while (count > 0)
        {
            int n = _in.Read(buffer, 0, (int)Math.Min(buffer.Length, count));
            if (n <= 0) throw Corrupt("the archive ends in the middle of it", entry);
            count -= n;
        }
    }

    private sealed class BoundedStream(Stream inner, long length, string entry) : Stream
    {
        private long _left = length;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        private readonly long _length = length;
        public override long Length => _length;
        public override long Position { get => _length - _left; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count)
        {
            if (_left <= 0) return 0;
            int n = inner.Read(buffer, offset, (int)Math.Min(count, _left));
            if (n <= 0) throw Corrupt("the archive ends in the middle of its data", entry);
            _left -= n;
            return n;
        }
        public void Drain()
        {
            if (_left > 0 && inner is GuardStream g && g.TrySkip(_left)) { _left = 0; return; }
            var buffer = new byte[65536];
            while (_left > 0) Read(buffer, 0, buffer.Length);
        }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

/// <summary>Compression by file name (writing) or by magic bytes (reading): none, gzip, zstd.</summary>
public static class TarCompression
{
    public static string ForPath(string path)
    {
        var p = path.ToLowerInvariant();
        if (p.EndsWith(".tar.gz") || p.EndsWith(".tgz")) return "gzip";
        if (p.EndsWith(".tar.zst") || p.EndsWith(".tzst") || p.EndsWith(".tar.zstd")) return "zstd";
        if (p.EndsWith(".tar")) return "none";
        throw new ContainerException("UnknownArchiveType", ContainerErrorKind.InvalidArgument,
            $"Cannot tell the archive type of '{path}': name it .tar, .tar.gz (.tgz) or .tar.zst.", path);
    }

    public static Stream Compress(Stream output, string kind) => kind switch
    {
        "gzip" => new GZipStream(output, CompressionLevel.Fastest, leaveOpen: false),
        "zstd" => Zstd(output),
        _ => output,
    };

    static Stream Zstd(Stream output)
    {
        var stream = new ZstdSharp.CompressionStream(output, 3, leaveOpen: false);
        // Compress on every core while this thread reads files (the zstd CLI's -T0).
        stream.SetParameter(ZstdSharp.Unsafe.ZSTD_cParameter.ZSTD_c_nbWorkers, Environment.ProcessorCount);
        return stream;
    }

    /// <summary>Wraps <paramref name="input"/> in a decompressor chosen by its first bytes.</summary>
    public static Stream Decompress(Stream input)
    {
        if (input.CanSeek)
        {
            // A plain tar file stays seekable: a survey of its headers seeks over the data.
            var start = input.Position;
            var magic = new byte[4];
            int got = 0;
            while (got < 4) { int r = input.Read(magic, got, 4 - got); if (r <= 0) break; got += r; }
            input.Position = start;
            bool compressed = got >= 2 && magic[0] == 0x1F && magic[1] == 0x8B || got >= 4 && magic[0] == 0x28 && magic[1] == 0xB5 && magic[2] == 0x2F && magic[3] == 0xFD;
            if (!compressed) return input;
        }
        var buffered = new BufferedStream(input, 1 << 20);
        int n = 0;
        // BufferedStream cannot unread: read the magic through a small peek buffer instead.
        var head = new byte[4];
        while (n < 4) { int r = buffered.Read(head, n, 4 - n); if (r <= 0) break; n += r; }
        var rest = new PrefixStream(head[..n], buffered);
        if (n >= 2 && head[0] == 0x1F && head[1] == 0x8B) return new GZipStream(rest, CompressionMode.Decompress);
        if (n >= 4 && head[0] == 0x28 && head[1] == 0xB5 && head[2] == 0x2F && head[3] == 0xFD) return new ZstdSharp.DecompressionStream(rest);
        return rest;
    }

    private sealed class PrefixStream(byte[] prefix, Stream inner) : Stream
    {
        private int _pos;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count)
        {
            if (_pos < prefix.Length)
            {
                int n = Math.Min(count, prefix.Length - _pos);
                Array.Copy(prefix, _pos, buffer, offset, n);
                _pos += n;
                return n;
            }
            return inner.Read(buffer, offset, count);
        }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        protected override void Dispose(bool disposing) { if (disposing) inner.Dispose(); base.Dispose(disposing); }
    }
}

/// <summary>
/// POSIX ACLs as GNU tar --acls stores them (SCHILY.acl.access: acl_to_text, "user::rw-,user:1000:r--,...")
/// turned into the kernel's system.posix_acl_* xattr value (version 2, entries sorted by tag and id).
/// </summary>
public static class PosixAcl
{
    public static byte[] FromText(string text, string entryPath)
    {
        var entries = new List<(ushort Tag, uint Id, ushort Perm)>();
        foreach (var raw in text.Split(new[] { ',', '\n' }, StringSplitOptions.RemoveEmptyEntries))
        {
            var item = raw.Split('#')[0].Trim();
            if (item.Length == 0) continue;
            var parts = item.Split(':');
            if (parts.Length < 3) throw Bad(entryPath, item);
            ushort tag;
            var qualifier = parts[1];
            switch (parts[0])
            {
                case "user" or "u": tag = qualifier.Length == 0 ? (ushort)1 : (ushort)2; break;
                case "group" or "g": tag = qualifier.Length == 0 ? (ushort)4 : (ushort)8; break;
                case "mask" or "m": tag = 0x10; break;
                case "other" or "o": tag = 0x20; break;
                default: throw Bad(entryPath, item);
            }
            uint id = uint.MaxValue;
            // GNU tar writes user and group names even with --numeric-owner; like GNU tar, resolve them on this host.
            if (tag is 2 or 8 && !uint.TryParse(qualifier, NumberStyles.None, CultureInfo.InvariantCulture, out id)
                && !HostId(tag == 2 ? "/etc/passwd" : "/etc/group", qualifier, out id))
                throw new ContainerException("ArchiveUnsupported", ContainerErrorKind.InvalidData,
                    $"Entry '{entryPath}' has an ACL naming the {(tag == 2 ? "user" : "group")} '{qualifier}', which does not exist on this host. Create it, or make the archive with numeric ACL ids.", entryPath);
            ushort perm = 0;
            foreach (var c in parts[^1])
                perm |= c switch { 'r' => (ushort)4, 'w' => (ushort)2, 'x' => (ushort)1, '-' => (ushort)0, _ => throw Bad(entryPath, item) };
            entries.Add((tag, id, perm));
        }
        var ms = new MemoryStream();
        ms.Write(BitConverter.GetBytes(2u));
        foreach (var e in entries.OrderBy(e => e.Tag).ThenBy(e => e.Id))
        {
            ms.Write(BitConverter.GetBytes(e.Tag));
            ms.Write(BitConverter.GetBytes(e.Perm));
            ms.Write(BitConverter.GetBytes(e.Id));
        }
        return ms.ToArray();
    }

    /// <summary>The kernel's xattr value as acl_to_text with numeric ids ("user::rw-,user:1000:r--,..."); null if unreadable.</summary>
    public static string? ToText(byte[] value)
    {
        if (value.Length < 4 || (value.Length - 4) % 8 != 0 || BitConverter.ToUInt32(value, 0) != 2) return null;
        var parts = new List<string>();
        for (int i = 4; i < value.Length; i += 8)
        {
            ushort tag = BitConverter.ToUInt16(value, i), perm = BitConverter.ToUInt16(value, i + 2);
            uint id = BitConverter.ToUInt32(value, i + 4);
            string kind = tag switch { 1 or 2 => "user", 4 or 8 => "group", 0x10 => "mask", 0x20 => "other", _ => "" };
            if (kind.Length == 0) return null;
            string q = tag is 2 or 8 ? id.ToString(CultureInfo.InvariantCulture) : "";
            parts.Add($"{kind}:{q}:{((perm & 4) != 0 ? 'r' : '-')}{((perm & 2) != 0 ? 'w' : '-')}{((perm & 1) != 0 ? 'x' : '-')}");
        }
        return string.Join(',', parts);
    }

    static bool HostId(string file, string name, out uint id)
    {
        id = 0;
        try
        {
            foreach (var line in File.ReadLines(file))
            {
                var f = line.Split(':');
                if (f.Length > 2 && f[0] == name && uint.TryParse(f[2], NumberStyles.None, CultureInfo.InvariantCulture, out id)) return true;
            }
        }
        catch (IOException) { }
        return false;
    }

    static ContainerException Bad(string entryPath, string item) =>
        new("ArchiveCorrupt", ContainerErrorKind.InvalidData, $"Entry '{entryPath}' has an ACL entry that cannot be read: '{item}'.", entryPath);
}
