using System.Text;
using PSContainers.Runtime;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Storage;
using PSContainers.Tests.Infrastructure;
using PSContainers.Runtime.Filesystem;

namespace PSContainers.Tests;

/// <summary>
/// Issue 11, item 9 (tar import edges): every malformed header field or PAX record ends in
/// ArchiveCorrupt naming the entry (never a raw FormatException, overflow or I/O error), and an
/// archive that would not fit is refused before anything is written.
/// </summary>
[Collection("Containers")]
public sealed class TarImportEdgeTests : IDisposable
{
    private readonly TestStore _store = new();

    public void Dispose() => _store.Dispose();

    private static byte[] Tar(params (TarEntry Entry, byte[]? Data)[] entries)
    {
        var ms = new MemoryStream();
        var w = new PaxTarWriter(ms);
        foreach (var (e, d) in entries) w.WriteEntry(e, d is null ? null : new MemoryStream(d));
        w.Finish();
        return ms.ToArray();
    }

    private static TarEntry File_(string path, int size) => new() { Path = path, Type = TarEntryType.Regular, Mode = 0x1A4, Size = size, MTimeSeconds = 1 };
    private static TarEntry Dir(string path) => new() { Path = path, Type = TarEntryType.Directory, Mode = 0x1ED, MTimeSeconds = 1 };

    /// <summary>Reads every entry (and its data) of an archive.</summary>
    private static void ReadAll(byte[] tar)
    {
        var reader = new PaxTarReader(new MemoryStream(tar));
        while (reader.Next() is var (_, data)) data.CopyTo(Stream.Null);
    }

    /// <summary>A raw ustar header block with a correct checksum.</summary>
    private static byte[] Header(string name, Action<byte[]> edit, char type = '0', long size = 0)
    {
        var h = new byte[512];
        Encoding.ASCII.GetBytes(name).CopyTo(h, 0);
        void Oct(int off, int width, long v) => Encoding.ASCII.GetBytes(Convert.ToString(v, 8).PadLeft(width - 1, '0') + "\0").CopyTo(h, off);
        Oct(100, 8, 0x1A4); Oct(108, 8, 0); Oct(116, 8, 0); Oct(124, 12, size); Oct(136, 12, 1);
        h[156] = (byte)type;
        Encoding.ASCII.GetBytes("ustar\000").CopyTo(h, 257);
        edit(h);
        FixChecksum(h);
        return h;
    }

    private static void FixChecksum(byte[] h)
    {
        for (int i = 148; i < 156; i++) h[i] = (byte)' ';
        int sum = h.Sum(b => b);
        Encoding.ASCII.GetBytes(Convert.ToString(sum, 8).PadLeft(6, '0') + "\0 ").CopyTo(h, 148);
    }

    private static byte[] Blocks(params byte[][] parts)
    {
        var ms = new MemoryStream();
        foreach (var p in parts) { ms.Write(p); if (p.Length % 512 != 0) ms.Write(new byte[512 - p.Length % 512]); }
        ms.Write(new byte[1024]);
        return ms.ToArray();
    }

    private static byte[] PaxRecord(string key, string value)
    {
        var body = $" {key}={value}\n";
        int len = body.Length + 1;
        while (len != body.Length + len.ToString().Length) len = body.Length + len.ToString().Length;
        return Encoding.ASCII.GetBytes(len + body);
    }

    private static byte[] WithPax(byte[] pax, string entryName = "rootfs/victim") =>
        Blocks(Header("PaxHeaders.1/victim", _ => { }, 'x', pax.Length), pax, Header(entryName, _ => { }));

    public static TheoryData<string, string> MalformedCases => new()
    {
        { "pax-uid-letters", "uid=abc" }, { "pax-gid-negative", "gid=-5" }, { "pax-uid-too-big", "uid=99999999999999999999" },
        { "pax-uid-minus-one", "uid=4294967295" }, { "pax-size-letters", "size=1e3" }, { "pax-mtime-letters", "mtime=x.y" },
        { "pax-mtime-two-dots", "mtime=1.2.3" }, { "pax-length-short", "short" }, { "pax-length-long", "long" }, { "pax-length-letters", "letters" },
        { "pax-no-equals", "noequals" }, { "octal-mode", "mode" }, { "octal-uid-digit-8", "uid8" }, { "base256-overflow", "b256" },
        { "base256-negative-size", "b256neg" }, { "long-name", "longname" }, { "long-component", "longcomponent" }, { "xattr-name-too-long", "xattr" },
    };

    [Theory]
    [MemberData(nameof(MalformedCases))]
    public void MalformedField_IsArchiveCorrupt_NamingTheEntry(string kind, string spec)
    {
        byte[] tar = kind switch
        {
            _ when kind.StartsWith("pax-", StringComparison.Ordinal) && spec.Contains('=') => WithPax(PaxRecord(spec.Split('=')[0], spec.Split('=', 2)[1])),
            "pax-length-short" => WithPax(Encoding.ASCII.GetBytes("5 uid=0\n")),
            "pax-length-long" => WithPax(Encoding.ASCII.GetBytes("99 uid=0\n")),
            "pax-length-letters" => WithPax(Encoding.ASCII.GetBytes("x9 uid=0\n")),
            "pax-no-equals" => WithPax(Encoding.ASCII.GetBytes("8 uid00\n")),
            "octal-mode" => Blocks(Header("rootfs/victim", h => Encoding.ASCII.GetBytes("07x4\0").CopyTo(h, 100))),
            "octal-uid-digit-8" => Blocks(Header("rootfs/victim", h => Encoding.ASCII.GetBytes("0000008\0").CopyTo(h, 108))),
            "base256-overflow" => Blocks(Header("rootfs/victim", h => { h[124] = 0x80; for (int i = 125; i < 136; i++) h[i] = 0xFF; })),
            "base256-negative-size" => Blocks(Header("rootfs/victim", h => { for (int i = 124; i < 136; i++) h[i] = 0xFF; })),
            "long-name" => WithPax(PaxRecord("path", "rootfs/" + new string('a', 200) + "/" + string.Join("/", Enumerable.Repeat(new string('b', 200), 25)))),
            "long-component" => WithPax(PaxRecord("path", "rootfs/" + new string('c', 300))),
            "xattr-name-too-long" => WithPax(PaxRecord("SCHILY.xattr.user." + new string('x', 300), "v")),
            _ => throw new ArgumentException(kind),
        };
        var ex = Assert.Throws<ContainerException>(() => ReadAll(tar));
        Assert.Equal("ArchiveCorrupt", ex.ErrorId);
        Assert.Equal(ContainerErrorKind.InvalidData, ex.Kind);
        var named = ex.Target as string;
        Assert.False(string.IsNullOrEmpty(named), ex.Message);
        Assert.Contains("entry '", ex.Message);
        Assert.True(named!.StartsWith("rootfs/", StringComparison.Ordinal) || named.StartsWith("PaxHeaders.1/victim", StringComparison.Ordinal), named);
    }

    [Fact]
    public void PaxUidLetters_ThroughImportContainer_IsArchiveCorrupt_AndNothingIsWritten()
    {
        var archive = Path.Combine(_store.Root, "uid.tar");
        File.WriteAllBytes(archive, WithPax(PaxRecord("uid", "abc")));
        using var ps = _store.OpenSession();
        var r = ps.Invoke("Import-Container $args[0] -Name psct-uid", archive);
        Assert.Equal("ArchiveCorrupt,PSContainers.Cmdlets.ImportContainerCommand", r.SingleError.FullyQualifiedErrorId);
        Assert.Equal("rootfs/victim", r.SingleError.TargetObject);
        Assert.Contains("uid=abc", r.SingleError.Exception.Message);
        Assert.False(Directory.Exists(_store.Manager.Store.TempDirectory) && Directory.EnumerateFileSystemEntries(_store.Manager.Store.TempDirectory).Any());
    }

    /// <summary>
    /// Fuzz: every byte of every header block of a real archive (PAX records, long names, xattrs,
    /// devices, links) set to values that break numbers, with the checksum fixed so the parser gets
    /// past it. The reader either reads the archive or fails with ArchiveCorrupt / ArchiveUnsupported
    /// / ArchiveEntryUnsafe-free ContainerException naming the entry; never anything else.
    /// </summary>
    [Fact]
    public void Fuzz_EveryHeaderByte_EndsInAnArchiveError_NeverARawException()
    {
        var entries = new List<(TarEntry, byte[]?)>
        {
            (Dir("rootfs"), null),
            (File_("rootfs/" + new string('n', 150) + "/file", 3), new byte[] { 1, 2, 3 }),
            (new TarEntry { Path = "rootfs/x", Type = TarEntryType.Regular, Mode = 0x1ED, Uid = 3_000_000, Gid = 7, Size = 5, MTimeSeconds = 9, MTimeNanoseconds = 5 }, new byte[5]),
            (new TarEntry { Path = "rootfs/dev", Type = TarEntryType.CharacterDevice, Mode = 0x1B6, DevMajor = 1, DevMinor = 3, MTimeSeconds = 1 }, null),
            (new TarEntry { Path = "rootfs/link", Type = TarEntryType.SymbolicLink, LinkPath = new string('t', 120), MTimeSeconds = 1 }, null),
        };
        var withXattr = File_("rootfs/cap", 1);
        withXattr.Xattrs["security.capability"] = new byte[] { 1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
        withXattr.AclAccess = "user::rw-,user:1000:r--,group::r--,mask::r--,other::r--";
        entries.Add((withXattr, new byte[] { 9 }));
        var good = Tar(entries.ToArray());
        ReadAll(good); // the unfuzzed archive is fine

        // Header blocks: every 512-byte block that has a valid checksum.
        var headers = new List<int>();
        for (int off = 0; off + 512 <= good.Length; off += 512)
        {
            var block = good.AsSpan(off, 512);
            if (block.IndexOfAnyExcept((byte)0) < 0) continue;
            var copy = block.ToArray();
            var stored = copy.AsSpan(148, 8).ToArray();
            FixChecksum(copy);
            if (copy.AsSpan(148, 6).SequenceEqual(stored.AsSpan(0, 6))) headers.Add(off);
        }
        Assert.True(headers.Count >= 8, $"found {headers.Count} headers");
        var values = new byte[] { 0x00, 0x20, (byte)'7', (byte)'8', (byte)'9', (byte)'x', (byte)'-', (byte)'=', (byte)'\n', 0x7F, 0x80, 0xBF, 0xC0, 0xFF };
        var rng = new Random(11);
        var failures = new List<string>();
        int corrupt = 0, fine = 0;
        foreach (var off in headers)
        {
            for (int i = 0; i < 512; i++)
            {
                if (i is >= 148 and < 156) continue;
                foreach (var v in values.OrderBy(_ => rng.Next()).Take(4))
                {
                    var tar = (byte[])good.Clone();
                    tar[off + i] = v;
                    var h = tar.AsSpan(off, 512).ToArray();
                    FixChecksum(h);
                    h.CopyTo(tar, off);
                    try { ReadAll(tar); fine++; }
                    catch (ContainerException ex) when (ex.ErrorId is "ArchiveCorrupt" or "ArchiveUnsupported")
                    {
                        corrupt++;
                        if (ex.Target is not string { Length: > 0 })
                            failures.Add($"block {off} byte {i} = 0x{v:X2}: not named: {ex.Message}");
                    }
                    catch (Exception ex) { failures.Add($"block {off} byte {i} = 0x{v:X2}: {ex.GetType().Name}: {ex.Message}"); }
                }
            }
        }
        // PAX data blocks: random bytes in the records.
        for (int n = 0; n < 3000; n++)
        {
            var tar = (byte[])good.Clone();
            var off = headers[rng.Next(headers.Count)] + 512 + rng.Next(512);
            if (off >= tar.Length - 1024) continue;
            tar[off] = values[rng.Next(values.Length)];
            try { ReadAll(tar); fine++; }
            catch (ContainerException ex) when (ex.ErrorId is "ArchiveCorrupt" or "ArchiveUnsupported") { corrupt++; }
            catch (Exception ex) { failures.Add($"data byte {off}: {ex.GetType().Name}: {ex.Message}"); }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} raw failures, e.g.:\n{string.Join("\n", failures.Take(20))}");
        Assert.True(corrupt > 100 && fine > 100, $"corrupt {corrupt}, fine {fine}");
    }

    [Fact]
    public void DamagedGzip_IsArchiveCorrupt()
    {
        var ms = new MemoryStream();
        using (var gz = new System.IO.Compression.GZipStream(ms, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true))
            gz.Write(Tar((Dir("rootfs"), null), (File_("rootfs/a", 100000), new byte[100000])));
        var bytes = ms.ToArray();
        for (int i = 20; i < bytes.Length - 8; i += 7) bytes[i] ^= 0x5A;
        var archive = Path.Combine(_store.Root, "damaged.tar.gz");
        File.WriteAllBytes(archive, bytes);
        var ex = Assert.Throws<ContainerException>(() => ContainerArchive.Import(_store.Manager, archive, "psct-gz"));
        Assert.Equal("ArchiveCorrupt", ex.ErrorId);
    }

    /// <summary>A gzip bomb: 64 MiB of zeros in well under a megabyte.</summary>
    private string Bomb(string file, int megabytes = 64)
    {
        var path = Path.Combine(_store.Root, file);
        using var f = File.Create(path);
        using var gz = new System.IO.Compression.GZipStream(f, System.IO.Compression.CompressionLevel.Optimal);
        var w = new PaxTarWriter(gz);
        w.WriteEntry(Dir("rootfs"), null);
        var zeros = new byte[1 << 20];
        w.WriteEntry(File_("rootfs/zeros", megabytes << 20), new RepeatStream(zeros, megabytes));
        w.Finish();
        return path;
    }

    private sealed class RepeatStream(byte[] block, int times) : Stream
    {
        int _left = times, _pos;
        public override bool CanRead => true; public override bool CanSeek => false; public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count)
        {
            if (_left == 0) return 0;
            int n = Math.Min(count, block.Length - _pos);
            Array.Copy(block, _pos, buffer, offset, n);
            _pos += n;
            if (_pos == block.Length) { _pos = 0; _left--; }
            return n;
        }
        public override long Seek(long o, SeekOrigin s) => throw new NotSupportedException();
        public override void SetLength(long v) => throw new NotSupportedException();
        public override void Write(byte[] b, int o, int c) => throw new NotSupportedException();
    }

    [Fact]
    public void MaximumSize_RefusesBeforeWriting_ThroughTheCmdlet()
    {
        var bomb = Bomb("bomb.tar.gz");
        Assert.True(new FileInfo(bomb).Length < 1 << 20, "a bomb: small archive, big content");
        using var ps = _store.OpenSession();
        var r = ps.Invoke("Import-Container $args[0] -Name psct-bomb -MaximumSize 16MB", bomb);
        Assert.Equal("ArchiveTooLarge,PSContainers.Cmdlets.ImportContainerCommand", r.SingleError.FullyQualifiedErrorId);
        Assert.Equal(System.Management.Automation.ErrorCategory.LimitsExceeded, r.SingleError.CategoryInfo.Category);
        Assert.Contains("64.0 MiB", r.SingleError.Exception.Message);
        Assert.Contains("-MaximumSize 16.0 MiB", r.SingleError.Exception.Message);
        Assert.False(Directory.Exists(_store.Manager.Store.ContainerDirectory("psct-bomb")));
        Assert.False(Directory.Exists(_store.Manager.Store.TempDirectory) && Directory.EnumerateFileSystemEntries(_store.Manager.Store.TempDirectory).Any());
        // Big enough: imported.
        Assert.Empty(ps.Invoke("Import-Container $args[0] -Name psct-bomb -MaximumSize 100MB -WarningAction SilentlyContinue", bomb).Errors);
        Assert.True(_store.Manager.Exists("psct-bomb"));
    }

    [Fact]
    public void ArchiveLargerThanTheStoresFreeSpace_IsRefusedBeforeWriting()
    {
        // A store on a 32 MiB tmpfs: the bomb's 64 MiB cannot fit.
        var small = Path.Combine(_store.Root, "small");
        Directory.CreateDirectory(small);
        HostCommand.Run("mount", "-t", "tmpfs", "-o", "size=32m", "psc-test-tmpfs", small);
        try
        {
            var manager = PSContainers.Runtime.Composition.ContainerRuntime.Open(Path.Combine(small, "store"));
            var bomb = Bomb("bomb2.tar.gz");
            var ex = Assert.Throws<ContainerException>(() => ContainerArchive.Import(manager, bomb, "psct-big"));
            Assert.Equal("ArchiveTooLarge", ex.ErrorId);
            Assert.Contains("free", ex.Message);
            var used = HostCommand.Run("df", "--output=used", "-B1", small).Split('\n').Last().Trim();
            Assert.True(long.Parse(used) < 1 << 20, $"{used} bytes were written");
            // One that fits goes in.
            var fits = Bomb("fits.tar.gz", megabytes: 4);
            Assert.Equal("psct-fits", ContainerArchive.Import(manager, fits, "psct-fits").Container.Name);
        }
        finally { HostCommand.Run("umount", small); }
    }

    [Fact]
    public void ArchiveChangedBetweenThePasses_IsRefused()
    {
        var first = Path.Combine(_store.Root, "first.tar");
        File.WriteAllBytes(first, Tar((Dir("rootfs"), null), (File_("rootfs/a", 1), new byte[1])));
        var survey = ContainerArchive.Survey(first);
        File.WriteAllBytes(first, Tar((Dir("rootfs"), null), (File_("rootfs/a", 1), new byte[1]), (File_("rootfs/b", 4096), new byte[4096])));
        var ex = Assert.Throws<ContainerException>(() => ContainerArchive.Import(_store.Manager, first, new ImportOptions { Name = "psct-changed" }, survey));
        Assert.Equal("ArchiveChanged", ex.ErrorId);
        Assert.False(_store.Manager.Exists("psct-changed"));
    }
}
